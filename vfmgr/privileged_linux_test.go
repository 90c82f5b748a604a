package vfmgr

import (
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// vethNetns creates a fresh network namespace holding the veth pair
// rep0/vf0, without moving the test's threads into it.
func vethNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	ns, err := netns.New()
	require.NoError(t, err)
	require.NoError(t, netns.Set(orig))
	t.Cleanup(func() { ns.Close() })

	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rep0"}, PeerName: "vf0"}))
	return ns
}

func TestPrivilegedEthtoolOnVeth(t *testing.T) {
	requireRoot(t)
	ns := vethNetns(t)
	et, err := NewEthtool(ns)
	require.NoError(t, err)
	defer et.Close()
	m, err := NewManager(ManagerConfig{Discover: representor.NewSysfsScanner("/sys", nil), PCI: NewSysfsPCI(DirFS{Root: "/sys"}),
		VFs: noVFs{}, Features: et, Eswitch: noEswitch{}, Logger: quiet})
	require.NoError(t, err)

	// The socket resolves names in the namespace: rep0 exists there only.
	_, err = et.Feature("rep0", "tx-checksum-ip-generic")
	require.NoError(t, err)
	host, err := NewEthtool(netns.None())
	require.NoError(t, err)
	defer host.Close()
	_, err = host.Feature("rep0", "tx-checksum-ip-generic")
	assert.Error(t, err)

	// veth has no tc offload: the feature is fixed off.
	f, err := et.Feature("rep0", HWTCOffload)
	require.NoError(t, err)
	assert.Equal(t, Feature{}, f)
	assert.ErrorIs(t, m.EnableHWTCOffload("rep0"), ErrUnsupported)
	// Asking the kernel anyway succeeds and changes nothing: why vfmgr reads back.
	require.NoError(t, et.SetFeature("rep0", HWTCOffload, true))
	f, err = et.Feature("rep0", HWTCOffload)
	require.NoError(t, err)
	assert.False(t, f.Active)

	// A feature veth can change goes off and on, confirmed by reading back.
	const csum = "tx-checksum-ip-generic"
	require.NoError(t, et.SetFeature("rep0", csum, false))
	f, err = et.Feature("rep0", csum)
	require.NoError(t, err)
	assert.Equal(t, Feature{Changeable: true, Active: false}, f)
	require.NoError(t, m.enableFeature("rep0", csum))
	f, err = et.Feature("rep0", csum)
	require.NoError(t, err)
	assert.True(t, f.Active)

	_, err = et.Feature("rep0", "no-such-feature")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, et.SetFeature("rep0", "no-such-feature", true), "set feature no-such-feature on on rep0")
	_, err = et.Feature("nodev", csum)
	assert.ErrorContains(t, err, "get features of nodev")
}

// veth has no VFs: reading one is ErrNotFound and setting one is refused
// by the kernel, with the operation and object in the error.
func TestPrivilegedNetlinkVFOnVeth(t *testing.T) {
	requireRoot(t)
	ns := vethNetns(t)
	nl, err := NewNetlink(ns)
	require.NoError(t, err)
	defer nl.Close()

	_, err = nl.VFState("rep0", 0)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, err, "vf 0 of rep0")
	_, err = nl.VFState("nodev", 0)
	assert.ErrorContains(t, err, "get link nodev")

	tests := []struct {
		s    VFSettings
		want string
	}{
		{VFSettings{MAC: "02:00:00:00:00:01"}, "set vf 0 mac 02:00:00:00:00:01 on rep0"},
		{VFSettings{VLAN: &VLAN{ID: 10, QoS: 1}}, "set vf 0 vlan 10 qos 1 on rep0"},
		{VFSettings{VLAN: &VLAN{ID: 10, Proto: 0x88a8}}, "set vf 0 vlan 10 qos 0 on rep0"},
		{VFSettings{Rate: &Rate{MaxMbps: 100}}, "set vf 0 min_tx_rate 0 max_tx_rate 100 on rep0"},
		{VFSettings{SpoofChk: Bool(false)}, "set vf 0 spoofchk off on rep0"},
		{VFSettings{Trust: Bool(true)}, "set vf 0 trust on on rep0"},
		{VFSettings{LinkState: LinkDisable}, "set vf 0 state disable on rep0"},
	}
	for _, tt := range tests {
		err := nl.SetVF("rep0", 0, tt.s)
		assert.ErrorContains(t, err, tt.want)
		assert.ErrorIs(t, err, syscall.EOPNOTSUPP, tt.want)
	}
}

func TestPrivilegedDevlinkAndSysfs(t *testing.T) {
	requireRoot(t)
	dl, err := NewDevlink(netns.None())
	if err != nil {
		t.Skipf("no devlink: %v", err)
	}
	defer dl.Close()
	_, err = dl.EswitchMode("0000:ff:1f.7")
	assert.ErrorContains(t, err, "get devlink device pci/0000:ff:1f.7")
	err = dl.SetEswitchMode("0000:ff:1f.7", 1)
	assert.ErrorContains(t, err, "get devlink device pci/0000:ff:1f.7")

	// Read-only checks against the real sysfs.
	p := NewSysfsPCI(DirFS{Root: "/sys"})
	_, err = p.Driver("0000:ff:1f.7")
	assert.ErrorIs(t, err, ErrNotFound)
	entries, err := os.ReadDir("/sys/bus/pci/devices")
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := os.Stat("/sys/bus/pci/devices/" + e.Name() + "/sriov_totalvfs"); err == nil {
			continue // an SR-IOV PF: not what this check is about
		}
		_, err := p.NumVFs(e.Name())
		assert.ErrorIs(t, err, ErrNotFound, e.Name())
		drv, err := p.Driver(e.Name())
		require.NoError(t, err)
		t.Logf("%s driver %q", e.Name(), drv)
		break
	}
}

type noVFs struct{}

func (noVFs) VFState(string, int) (VFState, error) { return VFState{}, ErrNotFound }
func (noVFs) SetVF(string, int, VFSettings) error  { return ErrNotFound }

type noEswitch struct{}

func (noEswitch) EswitchMode(string) (nic.EswitchMode, error)  { return 0, ErrNotFound }
func (noEswitch) SetEswitchMode(string, nic.EswitchMode) error { return ErrNotFound }
