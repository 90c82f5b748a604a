package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/representor"
	"github.com/offloadd/offloadd/vfmgr"
)

// VFPoolsConfig configures the VF pools VfService allocates from.
type VFPoolsConfig struct {
	// Config is an SR-IOV network device plugin config file (the format of
	// /etc/pcidp/config.json: resourceList with selectors). "" (default):
	// no pools, and VfService refuses allocations.
	Config string `json:"config,omitempty"`
	// Store is the file that keeps allocations across restarts (default
	// STATE_DIR/vf-allocations.json; in memory when stateDir is "").
	Store string `json:"store,omitempty"`
}

// vfStoreFile is the default allocation file in the state directory.
const vfStoreFile = "vf-allocations.json"

// wireVFPools serves VfService: with a pool config, over a vfmgr.Allocator
// on the backend in use (the emulated NIC through vfmgr.Emulated, or the
// host's sysfs, rtnetlink, ethtool and devlink); without, a service that
// lists no pools and refuses allocations.
func (d *Daemon) wireVFPools(cfg Config, emu *emulated.Device) error {
	pc := cfg.VFPools
	storePath := pc.Store
	if storePath == "" && cfg.StateDir != "" {
		storePath = filepath.Join(cfg.StateDir, vfStoreFile)
	}
	if pc.Config == "" {
		d.warnOrphanAllocations(storePath)
		api.NewVFService(nil, nil, d.log).Register(d.grpc)
		return nil
	}
	pools, warnings, err := vfmgr.LoadDevicePluginConfig(pc.Config)
	if err != nil {
		return fmt.Errorf("vfPools.config: %w", err)
	}
	for _, w := range warnings {
		d.log.Warn("VF pool config", "file", pc.Config, "warning", w)
	}
	var store vfmgr.Store = &memVFStore{}
	if storePath != "" {
		if err := os.MkdirAll(filepath.Dir(storePath), 0o700); err != nil {
			return fmt.Errorf("vfPools.store: create directory of %s: %w", storePath, err)
		}
		store = vfmgr.NewFileStore(storePath)
	}
	var mcfg vfmgr.ManagerConfig
	if emu != nil {
		mcfg = vfmgr.NewEmulated(emu).ManagerConfig(d.log)
	} else if mcfg, err = d.linuxVFManagerConfig(cfg.Linux.SysfsRoot); err != nil {
		return err
	}
	mgr, err := vfmgr.NewManager(mcfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alloc, err := vfmgr.NewAllocator(ctx, vfmgr.AllocatorConfig{Manager: mgr, Store: store, Pools: pools, Logger: d.log})
	if err != nil {
		return fmt.Errorf("vfPools: %w", err)
	}
	d.vfAlloc = alloc
	api.NewVFService(alloc, pools, d.log).Register(d.grpc)
	d.log.Info("VF pools configured", "config", pc.Config, "pools", len(pools.Resources),
		"allocations", len(alloc.Allocations()), "store", storePath)
	return nil
}

// warnOrphanAllocations tells, when pools are off, that VFs recorded as
// allocated stay as they are.
func (d *Daemon) warnOrphanAllocations(storePath string) {
	if storePath == "" {
		return
	}
	allocs, err := vfmgr.NewFileStore(storePath).Load()
	if err != nil || len(allocs) == 0 {
		return
	}
	d.log.Warn("VF pools are off (no vfPools.config) but VFs are recorded as allocated; they keep their settings until pools are configured and they are released",
		"store", storePath, "allocations", len(allocs))
}

// linuxVFManagerConfig wires the host's implementations, in the daemon's
// network namespace. The sockets close at shutdown.
func (d *Daemon) linuxVFManagerConfig(sysfsRoot string) (vfmgr.ManagerConfig, error) {
	nl, err := vfmgr.NewNetlink(netns.None())
	if err != nil {
		return vfmgr.ManagerConfig{}, fmt.Errorf("vfPools: %w", err)
	}
	d.closers = append(d.closers, nl.Close)
	et, err := vfmgr.NewEthtool(netns.None())
	if err != nil {
		return vfmgr.ManagerConfig{}, fmt.Errorf("vfPools: %w", err)
	}
	d.closers = append(d.closers, et.Close)
	dl, err := vfmgr.NewDevlink(netns.None())
	if err != nil {
		return vfmgr.ManagerConfig{}, fmt.Errorf("vfPools: %w", err)
	}
	d.closers = append(d.closers, dl.Close)
	return vfmgr.ManagerConfig{
		Discover: representor.NewSysfsScanner(sysfsRoot, devlinkEswitch{dl}),
		PCI:      vfmgr.NewSysfsPCI(vfmgr.DirFS{Root: sysfsRoot}),
		VFs:      nl,
		Features: et,
		Eswitch:  dl,
		Logger:   d.log,
	}, nil
}

// devlinkEswitch lets discovery read eswitch modes through vfmgr's devlink
// socket instead of opening another.
type devlinkEswitch struct{ dl *vfmgr.Devlink }

var _ representor.EswitchReader = devlinkEswitch{}

func (e devlinkEswitch) EswitchMode(bus, device string) (nic.EswitchMode, error) {
	if bus != "pci" {
		return 0, fmt.Errorf("eswitch mode of %s/%s: %w: not a PCI device", bus, device, vfmgr.ErrUnsupported)
	}
	return e.dl.EswitchMode(device)
}

// memVFStore keeps allocations in memory, for a daemon without a state
// directory: they are forgotten at exit.
type memVFStore struct {
	mu     sync.Mutex
	allocs []vfmgr.Allocation
}

var _ vfmgr.Store = (*memVFStore)(nil)

func (s *memVFStore) Load() ([]vfmgr.Allocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.allocs), nil
}

func (s *memVFStore) Save(allocs []vfmgr.Allocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs = slices.Clone(allocs)
	return nil
}
