package vfmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/offloadd/offloadd/representor"
)

// Allocation is one VF held by one owner, with what is needed to undo it.
type Allocation struct {
	Owner string `json:"owner"`
	Pool  string `json:"pool"`
	// PF is the PF netdev at allocation time; PFPCI identifies it for good.
	PF    string `json:"pf"`
	PFPCI string `json:"pfPCI"`
	VF    int    `json:"vf"`
	VFPCI string `json:"vfPCI"`
	// Netdev and Representor are the VF's netdevs at allocation time.
	Netdev      string `json:"netdev,omitempty"`
	Representor string `json:"representor,omitempty"`
	// Settings and Driver are what the owner asked for.
	Settings VFSettings `json:"settings"`
	Driver   string     `json:"driver,omitempty"`
	// Original and OriginalDriver are restored on release.
	Original       VFState `json:"original"`
	OriginalDriver string  `json:"originalDriver,omitempty"`
}

// Request asks for a VF from a pool for an owner.
type Request struct {
	// Owner names the holder (a VM port ID, "pod/iface"). One VF per owner.
	Owner string
	// Pool is the resource's full name, "prefix/name".
	Pool     string
	Settings VFSettings
	// Driver binds the VF to this driver ("vfio-pci"); "" keeps its driver.
	Driver string
}

// AllocatorConfig wires an Allocator. Manager and Store are required.
type AllocatorConfig struct {
	Manager *Manager
	Store   Store
	// Pools is the parsed device plugin config; nil: no pools.
	Pools  *DevicePluginConfig
	Logger *slog.Logger
}

// Allocator hands VFs from pools to owners. It is safe for concurrent use.
type Allocator struct {
	mgr   *Manager
	store Store
	log   *slog.Logger

	mu     sync.Mutex
	pools  *DevicePluginConfig
	allocs []Allocation
}

// NewAllocator loads the saved allocations and adopts them as they are:
// nothing on the host is changed. A record whose VF is gone is kept until
// Release drops it; a second record for an owner or a VF is skipped.
func NewAllocator(ctx context.Context, cfg AllocatorConfig) (*Allocator, error) {
	if cfg.Manager == nil || cfg.Store == nil {
		return nil, errors.New("new vf allocator: manager and store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	saved, err := cfg.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("new vf allocator: %w", err)
	}
	a := &Allocator{mgr: cfg.Manager, store: cfg.Store, log: cfg.Logger, pools: cfg.Pools}
	snap, scanErr := cfg.Manager.Scan(ctx)
	owners, vfs := map[string]bool{}, map[string]bool{}
	for _, al := range saved {
		if owners[al.Owner] || vfs[al.VFPCI] {
			a.log.Warn("skipping duplicate VF allocation record", "owner", al.Owner, "vf", al.VFPCI)
			continue
		}
		owners[al.Owner], vfs[al.VFPCI] = true, true
		if scanErr == nil {
			if _, _, err := snap.FindVF(al.VFPCI); err != nil {
				a.log.Warn("allocated VF no longer exists; release will drop it", "owner", al.Owner, "vf", al.VFPCI)
			}
		}
		a.allocs = append(a.allocs, al)
	}
	if scanErr != nil {
		a.log.Warn("could not check allocated VFs", "err", scanErr)
	}
	return a, nil
}

// SetPools replaces the pool config. Existing allocations stay.
func (a *Allocator) SetPools(cfg *DevicePluginConfig) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools = cfg
}

// Allocations returns the current allocations sorted by owner.
func (a *Allocator) Allocations() []Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.allocs)
	slices.SortFunc(out, func(x, y Allocation) int { return strings.Compare(x.Owner, y.Owner) })
	return out
}

// Pools returns the pools of the current topology with each VF's owner.
func (a *Allocator) Pools(ctx context.Context) ([]Pool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	snap, err := a.mgr.Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	pools := BuildPools(a.pools, snap)
	owner := map[string]string{}
	for _, al := range a.allocs {
		owner[al.VFPCI] = al.Owner
	}
	for i := range pools {
		for j := range pools[i].VFs {
			pools[i].VFs[j].Owner = owner[pools[i].VFs[j].PCI]
		}
	}
	return pools, nil
}

// Allocate gives the owner a free VF of the pool, records the VF's original
// settings and driver, then applies the requested ones. It is idempotent
// by owner: asking again returns the same VF, re-applying the request (so
// a changed request updates the VF and a drifted VF is corrected). If
// applying fails the VF is restored and nothing is held.
func (a *Allocator) Allocate(ctx context.Context, req Request) (Allocation, error) {
	if req.Owner == "" {
		return Allocation{}, fmt.Errorf("allocate from pool %s: %w: no owner", req.Pool, ErrInvalid)
	}
	if err := req.Settings.Validate(); err != nil {
		return Allocation{}, fmt.Errorf("allocate from pool %s for %s: %w", req.Pool, req.Owner, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	snap, err := a.mgr.Scan(ctx)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate from pool %s for %s: %w", req.Pool, req.Owner, err)
	}
	if i := a.find(req.Owner); i >= 0 {
		return a.reapply(snap, i, req)
	}
	pool, ok := a.pool(snap, req.Pool)
	if !ok {
		return Allocation{}, fmt.Errorf("allocate for %s: %w: no pool %q", req.Owner, ErrNotFound, req.Pool)
	}
	used := map[string]bool{}
	for _, al := range a.allocs {
		used[al.VFPCI] = true
	}
	idx := slices.IndexFunc(pool.VFs, func(v PoolVF) bool { return !used[v.PCI] })
	if idx < 0 {
		return Allocation{}, fmt.Errorf("allocate from pool %s for %s: %w: all %d VFs held", req.Pool, req.Owner, ErrExhausted, len(pool.VFs))
	}
	vf := pool.VFs[idx]
	orig, err := a.mgr.VFState(vf.PF, vf.Index)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate from pool %s for %s: %w", req.Pool, req.Owner, err)
	}
	al := Allocation{
		Owner: req.Owner, Pool: req.Pool, PF: vf.PF, PFPCI: vf.PFPCI, VF: vf.Index, VFPCI: vf.PCI,
		Netdev: vf.Netdev, Representor: vf.Representor, Settings: req.Settings, Driver: req.Driver,
		Original: orig, OriginalDriver: vf.Driver,
	}
	// Record the originals before touching the VF, so a crash midway still
	// knows what to restore.
	if err := a.save(append(slices.Clone(a.allocs), al)); err != nil {
		return Allocation{}, fmt.Errorf("allocate %s for %s: %w", vf.PCI, req.Owner, err)
	}
	a.allocs = append(a.allocs, al)
	if err := a.apply(al); err != nil {
		restoreErr := a.restore(al)
		if restoreErr == nil {
			a.drop(req.Owner)
			if serr := a.save(a.allocs); serr != nil {
				restoreErr = serr
			}
		}
		if restoreErr != nil {
			a.log.Error("VF allocation failed and its undo too; the record is kept for release",
				"owner", req.Owner, "vf", vf.PCI, "err", restoreErr)
		}
		return Allocation{}, errors.Join(fmt.Errorf("allocate %s for %s: %w", vf.PCI, req.Owner, err), restoreErr)
	}
	a.log.Info("allocated VF", "owner", req.Owner, "pool", req.Pool, "pf", vf.PF, "vf", vf.Index, "pci", vf.PCI)
	return al, nil
}

// reapply handles a repeated Allocate for an owner that holds a VF.
func (a *Allocator) reapply(snap representor.Snapshot, i int, req Request) (Allocation, error) {
	al := a.allocs[i]
	if al.Pool != req.Pool {
		return Allocation{}, fmt.Errorf("allocate from pool %s for %s: %w: it holds %s from pool %s",
			req.Pool, req.Owner, ErrConflict, al.VFPCI, al.Pool)
	}
	pf, _, err := snap.FindVF(al.VFPCI)
	if err != nil {
		return Allocation{}, fmt.Errorf("allocate from pool %s for %s: held VF %s is gone: %w", req.Pool, req.Owner, al.VFPCI, err)
	}
	al.PF = pf.Name
	changed := !equalSettings(al.Settings, req.Settings) || al.Driver != req.Driver
	al.Settings, al.Driver = req.Settings, req.Driver
	if changed {
		next := slices.Clone(a.allocs)
		next[i] = al
		if err := a.save(next); err != nil {
			return Allocation{}, fmt.Errorf("allocate %s for %s: %w", al.VFPCI, req.Owner, err)
		}
	}
	a.allocs[i] = al
	if err := a.apply(al); err != nil {
		return Allocation{}, fmt.Errorf("allocate %s for %s: %w", al.VFPCI, req.Owner, err)
	}
	return al, nil
}

// Release restores the owner's VF to its original settings and driver and
// forgets the allocation. Releasing an owner with nothing is not an error.
// If the VF no longer exists the record is dropped. If restoring fails the
// record is kept, so Release can be retried.
func (a *Allocator) Release(ctx context.Context, owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := a.find(owner)
	if i < 0 {
		return nil
	}
	al := a.allocs[i]
	snap, err := a.mgr.Scan(ctx)
	if err != nil {
		return fmt.Errorf("release %s of %s: %w", al.VFPCI, owner, err)
	}
	pf, _, err := snap.FindVF(al.VFPCI)
	switch {
	case errors.Is(err, representor.ErrNotFound):
		a.log.Warn("released VF no longer exists; dropping its record", "owner", owner, "vf", al.VFPCI)
	case err != nil:
		return fmt.Errorf("release %s of %s: %w", al.VFPCI, owner, err)
	default:
		al.PF = pf.Name
		if err := a.restore(al); err != nil {
			return fmt.Errorf("release %s of %s: %w", al.VFPCI, owner, err)
		}
	}
	next := slices.Delete(slices.Clone(a.allocs), i, i+1)
	if err := a.save(next); err != nil {
		return fmt.Errorf("release %s of %s: %w", al.VFPCI, owner, err)
	}
	a.allocs = next
	a.log.Info("released VF", "owner", owner, "pool", al.Pool, "pci", al.VFPCI)
	return nil
}

// apply sets the requested settings (on the PF side, so the VF driver
// sees them when it binds), then the driver.
func (a *Allocator) apply(al Allocation) error {
	if err := a.mgr.ApplyVF(al.PF, al.VF, al.Settings); err != nil {
		return err
	}
	if al.Driver != "" {
		if err := a.mgr.BindDriver(al.VFPCI, al.Driver); err != nil {
			return err
		}
	}
	return nil
}

// restore puts back the original settings and driver; both steps change
// only what differs.
func (a *Allocator) restore(al Allocation) error {
	errSettings := a.mgr.ApplyVF(al.PF, al.VF, al.Original.Settings())
	errDriver := a.mgr.BindDriver(al.VFPCI, al.OriginalDriver)
	return errors.Join(errSettings, errDriver)
}

func (a *Allocator) pool(snap representor.Snapshot, name string) (Pool, bool) {
	for _, p := range BuildPools(a.pools, snap) {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

func (a *Allocator) find(owner string) int {
	return slices.IndexFunc(a.allocs, func(al Allocation) bool { return al.Owner == owner })
}

func (a *Allocator) drop(owner string) {
	if i := a.find(owner); i >= 0 {
		a.allocs = slices.Delete(a.allocs, i, i+1)
	}
}

func (a *Allocator) save(allocs []Allocation) error {
	if err := a.store.Save(allocs); err != nil {
		return fmt.Errorf("save allocations: %w", err)
	}
	return nil
}

func equalSettings(x, y VFSettings) bool {
	eqPtr := func(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return strings.EqualFold(x.MAC, y.MAC) && x.LinkState == y.LinkState &&
		eqPtr(x.Trust, y.Trust) && eqPtr(x.SpoofChk, y.SpoofChk) &&
		(x.VLAN == nil) == (y.VLAN == nil) && (x.VLAN == nil || *x.VLAN == *y.VLAN) &&
		(x.Rate == nil) == (y.Rate == nil) && (x.Rate == nil || *x.Rate == *y.Rate)
}
