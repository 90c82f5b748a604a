package vfmgr

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/representor"
)

func newEmulatedNIC(t *testing.T, mod func(*emulated.Config)) *emulated.Device {
	t.Helper()
	cfg := emulated.DefaultConfig()
	cfg.NumVFs = 4
	if mod != nil {
		mod(&cfg)
	}
	dev, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	return dev
}

func TestEmulatedScan(t *testing.T) {
	dev := newEmulatedNIC(t, nil)
	e := NewEmulated(dev)
	snap, err := e.Scan(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.PFs, 1)
	pf := snap.PFs[0]
	assert.Equal(t, "p0", pf.Name)
	assert.Equal(t, "0000:08:00.0", pf.PCI)
	assert.Equal(t, "mlx5_core", pf.Driver)
	assert.Equal(t, "15b3", pf.Vendor)
	assert.Equal(t, "101d", pf.Device)
	assert.Equal(t, nic.EswitchSwitchdev, pf.Eswitch)
	assert.Equal(t, "p0", pf.Uplink)
	assert.Equal(t, "p0", pf.PortName)
	assert.Equal(t, 4, pf.NumVFs)
	assert.Equal(t, emulated.DefaultTotalVFs, pf.TotalVFs)
	require.Len(t, pf.VFs, 4)
	assert.Equal(t, representor.VF{Index: 3, PCI: "0000:08:00.4", Vendor: "15b3", Device: "101e", Driver: "mlx5_core",
		Netdev: "enp8s0f0v3", Representor: "pf0vf3", LinkType: "ether"}, pf.VFs[3])
	assert.Equal(t, "02:42:0f:01:00:03", snap.Links["enp8s0f0v3"].MAC)
	assert.Contains(t, snap.Links, "pf0vf3")
	assert.Contains(t, snap.Links, "p0")
	assert.NotContains(t, snap.Links, "vxlan0")

	// The snapshot's ports are the device's, tunnels aside.
	var devPorts []nic.Port
	for _, p := range dev.Ports() {
		if p.Kind != nic.PortTunnel {
			devPorts = append(devPorts, p)
		}
	}
	assert.ElementsMatch(t, devPorts, snap.Ports())
}

func TestEmulatedScanLegacyAndOtherProfiles(t *testing.T) {
	dev := newEmulatedNIC(t, func(c *emulated.Config) {
		c.Profile, c.EswitchMode, c.Ports = nic.ProfileICEE810, "legacy", 2
	})
	snap, err := NewEmulated(dev).Scan(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.PFs, 2)
	pf0, pf1 := snap.PFs[0], snap.PFs[1]
	assert.Equal(t, "ice", pf0.Driver)
	assert.Equal(t, "8086", pf0.Vendor)
	assert.Empty(t, pf0.Uplink, "no uplink representor in legacy mode")
	assert.Equal(t, nic.EswitchLegacy, pf0.Eswitch)
	require.Len(t, pf0.VFs, 4)
	assert.Equal(t, "iavf", pf0.VFs[0].Driver)
	assert.Equal(t, "1889", pf0.VFs[0].Device)
	assert.Empty(t, pf0.VFs[0].Representor)
	assert.Equal(t, "p1", pf1.Name)
	assert.Equal(t, "0000:08:00.1", pf1.PCI)
	assert.Empty(t, pf1.VFs)
}

func TestEmulatedVFStateAndSetVF(t *testing.T) {
	dev := newEmulatedNIC(t, nil)
	e := NewEmulated(dev)
	st, err := e.VFState("p0", 1)
	require.NoError(t, err)
	assert.Equal(t, VFState{MAC: "02:42:0f:01:00:01", LinkState: LinkAuto}, st)

	s := VFSettings{MAC: "02:00:00:00:00:aa", VLAN: &VLAN{ID: 10, QoS: 3}, Trust: Bool(true), SpoofChk: Bool(true),
		LinkState: LinkDisable, Rate: &Rate{MinMbps: 10, MaxMbps: 100}}
	require.NoError(t, e.SetVF("0000:08:00.0", 1, s))
	vf, err := dev.VF(1)
	require.NoError(t, err)
	assert.Equal(t, emulated.VFConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xaa}, VLAN: 10, QoS: 3, Trust: true, SpoofChk: true,
		LinkState: emulated.VFLinkDisable, MinTxRate: 10, MaxTxRate: 100}, vf.Config)
	st, err = e.VFState("p0", 1)
	require.NoError(t, err)
	assert.Equal(t, s.Apply(VFState{}), st)

	// Unset fields stay.
	require.NoError(t, e.SetVF("p0", 1, VFSettings{Trust: Bool(false)}))
	st, err = e.VFState("p0", 1)
	require.NoError(t, err)
	assert.Equal(t, 10, st.VLAN.ID)
	assert.False(t, st.Trust)

	tests := []struct {
		name string
		pf   string
		vf   int
		s    VFSettings
		want error
	}{
		{"other PF", "p1", 0, VFSettings{Trust: Bool(true)}, ErrNotFound},
		{"no such VF", "p0", 9, VFSettings{Trust: Bool(true)}, ErrNotFound},
		{"802.1ad", "p0", 0, VFSettings{VLAN: &VLAN{ID: 5, Proto: 0x88a8}}, ErrUnsupported},
		{"bad MAC", "p0", 0, VFSettings{MAC: "nope"}, ErrInvalid},
		{"bad link state", "p0", 0, VFSettings{LinkState: "up"}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, e.SetVF(tt.pf, tt.vf, tt.s), tt.want)
		})
	}
	_, err = e.VFState("p0", 9)
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestEmulatedDrivers(t *testing.T) {
	dev := newEmulatedNIC(t, nil)
	e := NewEmulated(dev)
	vf2 := "0000:08:00.3"
	drv, err := e.Driver(vf2)
	require.NoError(t, err)
	assert.Equal(t, "mlx5_core", drv)

	require.NoError(t, e.BindDriver(vf2, "vfio-pci"))
	drv, _ = e.Driver(vf2)
	assert.Equal(t, "vfio-pci", drv)
	snap, err := e.Scan(context.Background())
	require.NoError(t, err)
	_, vf, err := snap.FindVF(vf2)
	require.NoError(t, err)
	assert.Equal(t, "vfio-pci", vf.Driver)
	assert.Empty(t, vf.Netdev, "a VF on vfio-pci has no netdev")
	assert.Equal(t, "pf0vf2", vf.Representor)

	assert.ErrorIs(t, e.BindDriver(vf2, "no_such_driver"), ErrNotApplied)
	drv, _ = e.Driver(vf2)
	assert.Empty(t, drv, "a failed probe leaves the VF unbound")

	require.NoError(t, e.BindDriver(vf2, "mlx5_core"))
	snap, _ = e.Scan(context.Background())
	_, vf, _ = snap.FindVF(vf2)
	assert.Equal(t, "enp8s0f0v2", vf.Netdev)

	drv, err = e.Driver("0000:08:00.0")
	require.NoError(t, err)
	assert.Equal(t, "mlx5_core", drv)
	assert.ErrorIs(t, e.BindDriver("0000:08:00.0", "vfio-pci"), ErrUnsupported)
	assert.NoError(t, e.BindDriver("0000:08:00.0", "mlx5_core"))
	_, err = e.Driver("0000:99:00.0")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorIs(t, e.BindDriver("0000:99:00.0", ""), ErrNotFound)
}

func TestEmulatedFeatures(t *testing.T) {
	e := NewEmulated(newEmulatedNIC(t, nil))
	f, err := e.Feature("p0", HWTCOffload)
	require.NoError(t, err)
	assert.Equal(t, Feature{Active: true}, f)
	assert.NoError(t, e.SetFeature("pf0vf0", HWTCOffload, true))
	assert.ErrorIs(t, e.SetFeature("p0", HWTCOffload, false), ErrUnsupported)
	_, err = e.Feature("p0", "rx-gro")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = e.Feature("enp8s0f0v0", HWTCOffload)
	assert.ErrorIs(t, err, ErrNotFound)
}

// TestEmulatedManager runs the Manager's PF changes on the emulated NIC: a
// VF count change through 0 and mlx5's eswitch order, with the VFs bound
// back to their drivers afterwards.
func TestEmulatedManager(t *testing.T) {
	ctx := context.Background()
	dev := newEmulatedNIC(t, nil)
	e := NewEmulated(dev)
	m, err := NewManager(e.ManagerConfig(quiet))
	require.NoError(t, err)

	six := 6
	require.NoError(t, m.ConfigurePF(ctx, "p0", PFConfig{NumVFs: &six, HWTCOffload: true}))
	assert.Equal(t, 6, dev.NumVFs())
	n, err := e.NumVFs("0000:08:00.0")
	require.NoError(t, err)
	assert.Equal(t, 6, n)

	legacy := nic.EswitchLegacy
	require.NoError(t, e.BindDriver("0000:08:00.1", "vfio-pci"))
	require.NoError(t, m.ConfigurePF(ctx, "0000:08:00.0", PFConfig{Eswitch: &legacy}))
	assert.Equal(t, nic.EswitchLegacy, dev.EswitchMode())
	assert.Equal(t, 6, dev.NumVFs())
	drv, _ := e.Driver("0000:08:00.1")
	assert.Equal(t, "vfio-pci", drv, "rebound to the driver it had")

	// Applying the same config again changes nothing.
	require.NoError(t, m.ConfigurePF(ctx, "p0", PFConfig{Eswitch: &legacy, NumVFs: &six}))

	assert.ErrorIs(t, e.SetNumVFs("0000:08:00.0", emulated.DefaultTotalVFs+1), ErrInvalid)
	assert.NoError(t, e.SetNumVFs("0000:08:00.0", 0))
	assert.Zero(t, dev.NumVFs())
}

// TestEmulatedAllocator runs an Allocator unchanged on the emulated NIC.
func TestEmulatedAllocator(t *testing.T) {
	ctx := context.Background()
	dev := newEmulatedNIC(t, nil)
	e := NewEmulated(dev)
	m, err := NewManager(e.ManagerConfig(quiet))
	require.NoError(t, err)
	pools, _, err := ParseDevicePluginConfig([]byte(`{"resourceList": [
		{"resourcePrefix": "openshift.io", "resourceName": "a", "selectors": {"vendors": ["15b3"], "devices": ["101e"], "pfNames": ["p0#0-1"]}},
		{"resourcePrefix": "openshift.io", "resourceName": "b", "selectors": {"pfNames": ["p0#2-3"], "drivers": ["mlx5_core"]}}]}`))
	require.NoError(t, err)
	store := NewFileStore(filepath.Join(t.TempDir(), "allocs.json"))
	a, err := NewAllocator(ctx, AllocatorConfig{Manager: m, Store: store, Pools: pools, Logger: quiet})
	require.NoError(t, err)

	ps, err := a.Pools(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	assert.Equal(t, "openshift.io/a", ps[0].Name)
	assert.Len(t, ps[0].VFs, 2)
	assert.Len(t, ps[1].VFs, 2)

	before, err := dev.VF(0)
	require.NoError(t, err)
	req := Request{Owner: "vm1", Pool: "openshift.io/a", Driver: "vfio-pci",
		Settings: VFSettings{MAC: "02:00:00:00:01:01", VLAN: &VLAN{ID: 100}, SpoofChk: Bool(true)}}
	al, err := a.Allocate(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "0000:08:00.1", al.VFPCI)
	assert.Equal(t, "enp8s0f0v0", al.Netdev)
	assert.Equal(t, "pf0vf0", al.Representor)
	assert.Equal(t, "mlx5_core", al.OriginalDriver)
	vf, err := dev.VF(0)
	require.NoError(t, err)
	assert.Equal(t, [6]byte{2, 0, 0, 0, 1, 1}, vf.Config.MAC)
	assert.Equal(t, uint16(100), vf.Config.VLAN)
	assert.True(t, vf.Config.SpoofChk)
	drv, _ := e.Driver(al.VFPCI)
	assert.Equal(t, "vfio-pci", drv)

	// Pool "b" selects by driver: a VF moved to vfio-pci would leave it,
	// but pool "a" is by index, so the second VF of "a" is next.
	al2, err := a.Allocate(ctx, Request{Owner: "vm2", Pool: "openshift.io/a"})
	require.NoError(t, err)
	assert.Equal(t, 1, al2.VF)
	_, err = a.Allocate(ctx, Request{Owner: "vm3", Pool: "openshift.io/a"})
	assert.ErrorIs(t, err, ErrExhausted)

	require.NoError(t, a.Release(ctx, "vm1"))
	vf, err = dev.VF(0)
	require.NoError(t, err)
	assert.Equal(t, before.Config, vf.Config)
	drv, _ = e.Driver(al.VFPCI)
	assert.Equal(t, "mlx5_core", drv)
}
