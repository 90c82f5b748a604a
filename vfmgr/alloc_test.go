package vfmgr

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testPools = &DevicePluginConfig{Resources: []ResourceConfig{
	{Prefix: "nvidia.com", Name: "cx6", Selectors: []Selector{{PFNames: []FunctionSelector{{Name: "enp8s0f0np0", VFs: IndexSet{{0, 1}}}}}}},
	{Prefix: "intel.com", Name: "e810", Selectors: []Selector{{Drivers: []string{"iavf"}}}},
}}

// memStore is a Store in memory that can be told to fail.
type memStore struct {
	mu     sync.Mutex
	allocs []Allocation
	fail   error
	saves  int
}

func (s *memStore) Load() ([]Allocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Allocation(nil), s.allocs...), nil
}

func (s *memStore) Save(a []Allocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.saves++
	s.allocs = append([]Allocation(nil), a...)
	return nil
}

func newAllocator(t *testing.T, h *fakeHost, store Store) *Allocator {
	t.Helper()
	a, err := NewAllocator(context.Background(), AllocatorConfig{Manager: h.manager(t), Store: store, Pools: testPools, Logger: quiet})
	require.NoError(t, err)
	return a
}

func TestAllocateRelease(t *testing.T) {
	ctx := context.Background()
	h := twoNICs(t)
	before := h.render()
	store := &memStore{}
	a := newAllocator(t, h, store)

	req := Request{Owner: "vm1/port0", Pool: "nvidia.com/cx6", Driver: "vfio-pci",
		Settings: VFSettings{MAC: "02:00:00:00:01:01", VLAN: &VLAN{ID: 100}, Trust: Bool(true)}}
	al, err := a.Allocate(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, Allocation{Owner: "vm1/port0", Pool: "nvidia.com/cx6", PF: "enp8s0f0np0", PFPCI: mlxPF, VF: 0,
		VFPCI: "0000:08:00.2", Netdev: "enp8s0f0np0v0", Representor: "enp8s0f0npf0vf0", Settings: req.Settings,
		Driver: "vfio-pci", Original: VFState{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: LinkAuto},
		OriginalDriver: "mlx5_core"}, al)
	assert.Equal(t, []string{
		"set enp8s0f0np0 vf 0 mac 02:00:00:00:01:01 vlan 100 qos 0 trust on",
		"unbind 0000:08:00.2 from mlx5_core",
		"bind 0000:08:00.2 to vfio-pci",
	}, h.takeOps())
	assert.Equal(t, []Allocation{al}, store.allocs)

	// The same request again is the same VF and changes nothing.
	again, err := a.Allocate(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, al, again)
	assert.Empty(t, h.takeOps())

	// A changed request for the same owner updates the VF in place.
	req.Settings.VLAN = &VLAN{ID: 200}
	again, err = a.Allocate(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "0000:08:00.2", again.VFPCI)
	assert.Equal(t, []string{"set enp8s0f0np0 vf 0 vlan 200 qos 0"}, h.takeOps())
	assert.Equal(t, &VLAN{ID: 200}, store.allocs[0].Settings.VLAN)

	// The second VF of the pool, then none.
	al2, err := a.Allocate(ctx, Request{Owner: "vm2/port0", Pool: "nvidia.com/cx6"})
	require.NoError(t, err)
	assert.Equal(t, "0000:08:00.3", al2.VFPCI)
	_, err = a.Allocate(ctx, Request{Owner: "vm3/port0", Pool: "nvidia.com/cx6"})
	assert.ErrorIs(t, err, ErrExhausted)

	pools, err := a.Pools(ctx)
	require.NoError(t, err)
	require.Len(t, pools, 2)
	assert.Equal(t, []string{"vm1/port0", "vm2/port0"}, []string{pools[0].VFs[0].Owner, pools[0].VFs[1].Owner})
	assert.Equal(t, []string{"vm1/port0", "vm2/port0"}, owners(a.Allocations()))

	// Release restores settings and driver; releasing twice is fine.
	h.takeOps()
	require.NoError(t, a.Release(ctx, "vm1/port0"))
	assert.Equal(t, []string{
		"set enp8s0f0np0 vf 0 mac 00:00:00:00:00:00 vlan 0 qos 0 trust off",
		"unbind 0000:08:00.2 from vfio-pci",
		"bind 0000:08:00.2 to mlx5_core",
	}, h.takeOps())
	require.NoError(t, a.Release(ctx, "vm1/port0"))
	require.NoError(t, a.Release(ctx, "vm2/port0"))
	assert.Empty(t, a.Allocations())
	assert.Empty(t, store.allocs)
	assert.Equal(t, before, h.render())
}

func owners(allocs []Allocation) []string {
	var out []string
	for _, al := range allocs {
		out = append(out, al.Owner)
	}
	return out
}

func TestAllocateErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("request", func(t *testing.T) {
		h := twoNICs(t)
		a := newAllocator(t, h, &memStore{})
		_, err := a.Allocate(ctx, Request{Pool: "nvidia.com/cx6"})
		assert.ErrorIs(t, err, ErrInvalid)
		_, err = a.Allocate(ctx, Request{Owner: "o", Pool: "nvidia.com/cx6", Settings: VFSettings{MAC: "x"}})
		assert.ErrorIs(t, err, ErrInvalid)
		_, err = a.Allocate(ctx, Request{Owner: "o", Pool: "nvidia.com/none"})
		assert.ErrorIs(t, err, ErrNotFound)
		assert.Empty(t, h.takeOps())
	})
	t.Run("owner in another pool", func(t *testing.T) {
		h := twoNICs(t)
		a := newAllocator(t, h, &memStore{})
		_, err := a.Allocate(ctx, Request{Owner: "o", Pool: "nvidia.com/cx6"})
		require.NoError(t, err)
		_, err = a.Allocate(ctx, Request{Owner: "o", Pool: "intel.com/e810"})
		assert.ErrorIs(t, err, ErrConflict)
	})
	t.Run("failed apply restores the VF and holds nothing", func(t *testing.T) {
		h := twoNICs(t)
		before := h.render()
		h.failSet["trust"] = syscall.EOPNOTSUPP
		store := &memStore{}
		a := newAllocator(t, h, store)
		_, err := a.Allocate(ctx, Request{Owner: "o", Pool: "intel.com/e810", Driver: "vfio-pci",
			Settings: VFSettings{MAC: "02:00:00:00:00:09", Trust: Bool(true)}})
		assert.ErrorIs(t, err, syscall.EOPNOTSUPP)
		assert.Equal(t, before, h.render())
		assert.Empty(t, a.Allocations())
		assert.Empty(t, store.allocs)
		assert.Equal(t, 2, store.saves, "the record is written before applying and removed after undoing")
	})
	t.Run("failed bind restores the settings", func(t *testing.T) {
		h := twoNICs(t)
		before := h.render()
		a := newAllocator(t, h, &memStore{})
		_, err := a.Allocate(ctx, Request{Owner: "o", Pool: "intel.com/e810", Driver: "igb_uio",
			Settings: VFSettings{MAC: "02:00:00:00:00:09"}})
		assert.ErrorIs(t, err, ErrNotApplied)
		assert.Equal(t, before, h.render())
		assert.Empty(t, a.Allocations())
	})
	t.Run("store failure touches nothing", func(t *testing.T) {
		h := twoNICs(t)
		a := newAllocator(t, h, &memStore{fail: syscall.ENOSPC})
		_, err := a.Allocate(ctx, Request{Owner: "o", Pool: "intel.com/e810", Settings: VFSettings{Trust: Bool(true)}})
		assert.ErrorIs(t, err, syscall.ENOSPC)
		assert.Empty(t, h.takeOps())
		assert.Empty(t, a.Allocations())
	})
	t.Run("failed restore keeps the record for a retry", func(t *testing.T) {
		h := twoNICs(t)
		store := &memStore{}
		a := newAllocator(t, h, store)
		_, err := a.Allocate(ctx, Request{Owner: "o", Pool: "intel.com/e810", Settings: VFSettings{Trust: Bool(true)}})
		require.NoError(t, err)
		h.failSet["trust"] = syscall.EIO
		assert.ErrorIs(t, a.Release(ctx, "o"), syscall.EIO)
		assert.Len(t, a.Allocations(), 1)
		delete(h.failSet, "trust")
		require.NoError(t, a.Release(ctx, "o"))
		assert.Empty(t, store.allocs)
	})
}

// Allocations survive a restart; the new allocator restores what the old
// one recorded, and drops records of VFs that disappeared.
func TestAllocatorRestart(t *testing.T) {
	ctx := context.Background()
	h := twoNICs(t)
	before := h.render()
	path := filepath.Join(t.TempDir(), "vfs.json")
	a := newAllocator(t, h, NewFileStore(path))
	_, err := a.Allocate(ctx, Request{Owner: "vm1", Pool: "nvidia.com/cx6", Settings: VFSettings{MAC: "02:00:00:00:00:01"}})
	require.NoError(t, err)
	_, err = a.Allocate(ctx, Request{Owner: "vm2", Pool: "intel.com/e810", Settings: VFSettings{LinkState: LinkDisable}})
	require.NoError(t, err)
	h.takeOps()

	b := newAllocator(t, h, NewFileStore(path))
	assert.Equal(t, a.Allocations(), b.Allocations())
	assert.Empty(t, h.takeOps(), "adopting allocations changes nothing on the host")
	_, err = b.Allocate(ctx, Request{Owner: "vm3", Pool: "nvidia.com/cx6"})
	require.NoError(t, err, "vm1's VF stays taken, the other one is free")
	require.NoError(t, b.Release(ctx, "vm3"))

	// The E810's VFs go away; releasing vm2 just forgets it.
	h.mu.Lock()
	h.removeVFs(h.pfs[icePF])
	h.mu.Unlock()
	require.NoError(t, b.Release(ctx, "vm2"))
	require.NoError(t, b.Release(ctx, "vm1"))
	c := newAllocator(t, h, NewFileStore(path))
	assert.Empty(t, c.Allocations())
	h.setNumVFs(icePF, 2)
	h.tree.Write("bus/pci/devices/0000:3b:00.2/vendor", "0x8086")
	h.tree.Write("bus/pci/devices/0000:3b:00.3/vendor", "0x8086")
	assert.Equal(t, before, h.render())
}

func TestNewAllocator(t *testing.T) {
	h := twoNICs(t)
	_, err := NewAllocator(context.Background(), AllocatorConfig{Store: &memStore{}})
	assert.Error(t, err)
	dup := &memStore{allocs: []Allocation{
		{Owner: "a", VFPCI: "0000:08:00.2"}, {Owner: "a", VFPCI: "0000:08:00.3"}, {Owner: "b", VFPCI: "0000:08:00.2"},
		{Owner: "c", VFPCI: "0000:99:00.2"},
	}}
	a := newAllocator(t, h, dup)
	assert.Equal(t, []string{"a", "c"}, owners(a.Allocations()))

	a.SetPools(nil)
	_, err = a.Allocate(context.Background(), Request{Owner: "x", Pool: "nvidia.com/cx6"})
	assert.ErrorIs(t, err, ErrNotFound)

	_, err = NewAllocator(context.Background(), AllocatorConfig{Manager: h.manager(t), Store: &failingLoad{}})
	assert.ErrorContains(t, err, "new vf allocator: disk gone")
}

type failingLoad struct{ memStore }

func (*failingLoad) Load() ([]Allocation, error) { return nil, errors.New("disk gone") }

func TestAllocateConcurrent(t *testing.T) {
	h := twoNICs(t)
	a := newAllocator(t, h, &memStore{})
	var wg sync.WaitGroup
	got := make([]string, 6)
	for i := range 6 {
		wg.Go(func() {
			al, err := a.Allocate(context.Background(), Request{Owner: string(rune('a' + i%3)), Pool: "nvidia.com/cx6"})
			if err == nil {
				got[i] = al.VFPCI
			} else if !errors.Is(err, ErrExhausted) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	held := map[string]string{}
	for _, al := range a.Allocations() {
		held[al.VFPCI] = al.Owner
	}
	assert.Len(t, held, 2, "two VFs, never one VF twice")
	for i, pci := range got {
		if pci != "" {
			assert.Equal(t, string(rune('a'+i%3)), held[pci])
		}
	}
}
