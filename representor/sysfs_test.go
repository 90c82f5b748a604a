//go:build linux

// The SysfsScanner finds representors with sriovnet, which builds on Linux only.

package representor

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor/sysfstest"
)

// fakeEswitch answers eswitch modes from a map; missing devices fail.
type fakeEswitch map[string]nic.EswitchMode

func (f fakeEswitch) EswitchMode(bus, dev string) (nic.EswitchMode, error) {
	m, ok := f[bus+"/"+dev]
	if !ok {
		return 0, fmt.Errorf("get devlink device %s/%s: no such device", bus, dev)
	}
	return m, nil
}

const (
	pf0PCI = "0000:08:00.0"
	pf1PCI = "0000:08:00.1"
	nfpPCI = "0000:3b:00.0"
	swID   = "b8cef603003e4c10"
)

// dualPortCX6 builds a ConnectX-6 Dx with two ports sharing one switch ID:
// port 0 in switchdev mode with 2 VFs (VF0 on mlx5_core, VF1 on vfio-pci),
// port 1 in legacy mode with 1 VF; plus a virtio NIC and a loopback that
// are not SR-IOV.
func dualPortCX6(t *testing.T) *sysfstest.Tree {
	tr := sysfstest.New(t)
	tr.AddPF(sysfstest.PF{PCI: pf0PCI, Netdev: "enp8s0f0np0", Driver: "mlx5_core", Vendor: "15b3", Device: "101d",
		PortName: "p0", SwitchID: swID, TotalVFs: 8, NumVFs: 2, MAC: "b8:ce:f6:3e:4c:10", MTU: 9000, Up: true})
	tr.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: 0, PCI: "0000:08:00.2", Vendor: "15b3", Device: "101e",
		Driver: "mlx5_core", Netdev: "enp8s0f0v0", RDMA: true, MAC: "02:00:00:00:00:01"})
	tr.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: 1, PCI: "0000:08:00.3", Vendor: "15b3", Device: "101e",
		Driver: "vfio-pci"})
	tr.AddNetdev(sysfstest.Netdev{Name: "enp8s0f0npf0vf0", PCI: pf0PCI, PortName: "pf0vf0", SwitchID: swID, Up: true})
	tr.AddNetdev(sysfstest.Netdev{Name: "enp8s0f0npf0vf1", PCI: pf0PCI, PortName: "pf0vf1", SwitchID: swID})

	tr.AddPF(sysfstest.PF{PCI: pf1PCI, Netdev: "enp8s0f1np1", Driver: "mlx5_core", Vendor: "15b3", Device: "101d",
		PortName: "p1", SwitchID: swID, TotalVFs: 8, NumVFs: 1, MAC: "b8:ce:f6:3e:4c:11"})
	tr.AddVF(sysfstest.VF{PFPCI: pf1PCI, Index: 0, PCI: sysfstest.VFAddress(pf1PCI, 0), Vendor: "15b3", Device: "101e",
		Driver: "mlx5_core", Netdev: "enp8s0f1v0"})

	tr.AddNetdev(sysfstest.Netdev{Name: "lo", Type: 772, Up: true})
	tr.AddNetdev(sysfstest.Netdev{Name: "eth0", Up: true})
	tr.Symlink("class/net/eth0/device", "../../../virtio2")
	return tr
}

func TestSysfsScanner(t *testing.T) {
	tr := dualPortCX6(t)
	es := fakeEswitch{"pci/" + pf0PCI: nic.EswitchSwitchdev, "pci/" + pf1PCI: nic.EswitchLegacy}
	snap, err := NewSysfsScanner(tr.Root, es).Scan(context.Background())
	require.NoError(t, err)

	want := Snapshot{
		PFs: []PF{
			{Name: "enp8s0f0np0", PCI: pf0PCI, Driver: "mlx5_core", Vendor: "15b3", Device: "101d", Index: 0,
				PortName: "p0", SwitchID: swID, Eswitch: nic.EswitchSwitchdev, NumVFs: 2, TotalVFs: 8,
				Uplink: "enp8s0f0np0", LinkType: "ether",
				VFs: []VF{
					{Index: 0, PCI: "0000:08:00.2", Vendor: "15b3", Device: "101e", Driver: "mlx5_core",
						Netdev: "enp8s0f0v0", Representor: "enp8s0f0npf0vf0", RDMA: true, LinkType: "ether"},
					{Index: 1, PCI: "0000:08:00.3", Vendor: "15b3", Device: "101e", Driver: "vfio-pci",
						Representor: "enp8s0f0npf0vf1", LinkType: "ether"},
				}},
			{Name: "enp8s0f1np1", PCI: pf1PCI, Driver: "mlx5_core", Vendor: "15b3", Device: "101d", Index: 1,
				PortName: "p1", SwitchID: swID, Eswitch: nic.EswitchLegacy, NumVFs: 1, TotalVFs: 8,
				Uplink: "enp8s0f1np1", LinkType: "ether",
				VFs: []VF{
					{Index: 0, PCI: "0000:08:08.2", Vendor: "15b3", Device: "101e", Driver: "mlx5_core",
						Netdev: "enp8s0f1v0", LinkType: "ether"},
				}},
		},
		Links: map[string]Link{
			"enp8s0f0np0":     {Name: "enp8s0f0np0", MAC: "b8:ce:f6:3e:4c:10", MTU: 9000, Up: true, PhysPortName: "p0", SwitchID: swID},
			"enp8s0f0v0":      {Name: "enp8s0f0v0", MAC: "02:00:00:00:00:01", MTU: 1500},
			"enp8s0f0npf0vf0": {Name: "enp8s0f0npf0vf0", MAC: "00:00:00:00:00:00", MTU: 1500, Up: true, PhysPortName: "pf0vf0", SwitchID: swID},
			"enp8s0f0npf0vf1": {Name: "enp8s0f0npf0vf1", MAC: "00:00:00:00:00:00", MTU: 1500, PhysPortName: "pf0vf1", SwitchID: swID},
			"enp8s0f1np1":     {Name: "enp8s0f1np1", MAC: "b8:ce:f6:3e:4c:11", MTU: 1500, PhysPortName: "p1", SwitchID: swID},
			"enp8s0f1v0":      {Name: "enp8s0f1v0", MAC: "00:00:00:00:00:00", MTU: 1500},
		},
	}
	assert.Equal(t, want, snap)

	pf, err := snap.PF(pf1PCI)
	require.NoError(t, err)
	assert.Equal(t, "enp8s0f1np1", pf.Name)
	_, err = snap.PF("nope")
	assert.ErrorIs(t, err, ErrNotFound)
	gotPF, vf, err := snap.FindVF("0000:08:00.3")
	require.NoError(t, err)
	assert.Equal(t, "enp8s0f0np0", gotPF.Name)
	assert.Equal(t, 1, vf.Index)
	_, err = pf.VF(7)
	assert.ErrorIs(t, err, ErrNotFound)
	gotPF, vf, err = snap.FindRepresentor("enp8s0f0npf0vf1")
	require.NoError(t, err)
	assert.Equal(t, pf0PCI, gotPF.PCI)
	assert.Equal(t, "0000:08:00.3", vf.PCI)
	_, _, err = snap.FindRepresentor("")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestSysfsScannerEswitchInference(t *testing.T) {
	tests := []struct {
		name string
		reps bool
		want nic.EswitchMode
	}{
		{"representors mean switchdev", true, nic.EswitchSwitchdev},
		{"no representors mean legacy", false, nic.EswitchLegacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := sysfstest.New(t)
			tr.AddPF(sysfstest.PF{PCI: pf0PCI, Netdev: "ens1f0", Driver: "ice", Vendor: "8086", Device: "159b",
				PortName: "p0", SwitchID: swID, TotalVFs: 4, NumVFs: 1})
			tr.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: 0, PCI: "0000:08:01.0", Vendor: "8086", Device: "1889", Driver: "iavf"})
			if tt.reps {
				tr.AddNetdev(sysfstest.Netdev{Name: "eth5", PCI: pf0PCI, PortName: "pf0vf0", SwitchID: swID})
			}
			snap, err := NewSysfsScanner(tr.Root, fakeEswitch{}).Scan(context.Background())
			require.NoError(t, err)
			require.Len(t, snap.PFs, 1)
			assert.Equal(t, tt.want, snap.PFs[0].Eswitch)
			assert.Contains(t, snap.PFs[0].EswitchErr, "no such device")
		})
	}
}

// nfp representors are not parented on the PF's PCI device: they are
// matched by switch ID and PF number. Representors of another host's VFs
// (controller c1) are not attached.
func TestSysfsScannerRepresentorBySwitchID(t *testing.T) {
	tr := sysfstest.New(t)
	tr.AddPF(sysfstest.PF{PCI: nfpPCI, Netdev: "ens2np0", Driver: "nfp", Vendor: "19ee", Device: "4000",
		PortName: "p0", SwitchID: "00154d1300bd", TotalVFs: 56, NumVFs: 2})
	tr.AddVF(sysfstest.VF{PFPCI: nfpPCI, Index: 0, PCI: "0000:3b:08.0", Vendor: "19ee", Device: "6003", Driver: "nfp_netvf", Netdev: "ens2v0"})
	tr.AddVF(sysfstest.VF{PFPCI: nfpPCI, Index: 1, PCI: "0000:3b:08.1", Vendor: "19ee", Device: "6003", Driver: "nfp_netvf", Netdev: "ens2v1"})
	tr.AddNetdev(sysfstest.Netdev{Name: "eth10", PortName: "pf0vf0", SwitchID: "00154d1300bd"})
	tr.AddNetdev(sysfstest.Netdev{Name: "eth11", PortName: "pf0vf1", SwitchID: "00154d1300bd"})
	tr.AddNetdev(sysfstest.Netdev{Name: "eth12", PortName: "c1pf0vf1", SwitchID: "00154d1300bd"})
	tr.AddNetdev(sysfstest.Netdev{Name: "eth13", PortName: "pf0vf1", SwitchID: "ffff"})

	snap, err := NewSysfsScanner(tr.Root, fakeEswitch{"pci/" + nfpPCI: nic.EswitchSwitchdev}).Scan(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.PFs, 1)
	var reps []string
	for _, vf := range snap.PFs[0].VFs {
		reps = append(reps, vf.Representor)
	}
	assert.Equal(t, []string{"eth10", "eth11"}, reps)
}

// A PF whose netdev has no phys_port_name (legacy mode on older kernels,
// drivers without switchdev) is still a PF; a PCI device with only
// representor netdevs is not.
func TestSysfsScannerPFWithoutPortName(t *testing.T) {
	tr := sysfstest.New(t)
	tr.AddPF(sysfstest.PF{PCI: pf0PCI, Netdev: "ens1f0", Driver: "i40e", Vendor: "8086", Device: "1572", TotalVFs: 64})
	tr.AddPF(sysfstest.PF{PCI: pf1PCI, Driver: "mlx5_core", TotalVFs: 8})
	tr.AddNetdev(sysfstest.Netdev{Name: "rep0", PCI: pf1PCI, PortName: "pf1vf0", SwitchID: swID})
	snap, err := NewSysfsScanner(tr.Root, nil).Scan(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.PFs, 1)
	pf := snap.PFs[0]
	assert.Equal(t, "ens1f0", pf.Name)
	assert.Equal(t, "", pf.Uplink)
	assert.Equal(t, "", pf.PortName)
	assert.Equal(t, nic.EswitchLegacy, pf.Eswitch)
	assert.Equal(t, "no devlink reader", pf.EswitchErr)
	assert.Empty(t, pf.VFs)
}

func TestSysfsScannerErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(tr *sysfstest.Tree)
		want   string
	}{
		{"no class/net", func(tr *sysfstest.Tree) { tr.RemoveAll("class") }, "scan netdevs in"},
		{"bad numvfs", func(tr *sysfstest.Tree) { tr.Write(sysfstest.PCIPath(pf0PCI, "sriov_numvfs"), "two") }, "sriov_numvfs"},
		{"bad vendor", func(tr *sysfstest.Tree) { tr.Write(sysfstest.PCIPath(pf0PCI, "vendor"), "0xzzzz") }, `bad PCI ID "0xzzzz"`},
		{"bad mtu", func(tr *sysfstest.Tree) { tr.Write("class/net/enp8s0f0np0/mtu", "big") }, "enp8s0f0np0/mtu"},
		{"bad flags", func(tr *sysfstest.Tree) { tr.Write("class/net/enp8s0f0np0/flags", "0xg") }, "enp8s0f0np0/flags"},
		{"bad virtfn", func(tr *sysfstest.Tree) { tr.Symlink(sysfstest.PCIPath(pf0PCI, "virtfnX"), "../x") }, "bad link virtfnX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := dualPortCX6(t)
			tt.mutate(tr)
			_, err := NewSysfsScanner(tr.Root, nil).Scan(context.Background())
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestSysfsScannerCanceled(t *testing.T) {
	tr := dualPortCX6(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewSysfsScanner(tr.Root, nil).Scan(ctx)
	assert.True(t, errors.Is(err, context.Canceled), err)
}

func TestSnapshotPorts(t *testing.T) {
	tr := dualPortCX6(t)
	es := fakeEswitch{"pci/" + pf0PCI: nic.EswitchSwitchdev, "pci/" + pf1PCI: nic.EswitchLegacy}
	snap, err := NewSysfsScanner(tr.Root, es).Scan(context.Background())
	require.NoError(t, err)
	mac := func(s string) [6]byte {
		var m [6]byte
		_, err := fmt.Sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5])
		require.NoError(t, err)
		return m
	}
	want := []nic.Port{
		{Name: "enp8s0f0np0", Kind: nic.PortUplink, PhysPortName: "p0", SwitchID: swID, PF: 0, VF: -1,
			PCIAddress: pf0PCI, MAC: mac("b8:ce:f6:3e:4c:10"), MTU: 9000, Up: true},
		{Name: "enp8s0f0npf0vf0", Kind: nic.PortRepresentor, PhysPortName: "pf0vf0", SwitchID: swID, PF: 0, VF: 0,
			PCIAddress: "0000:08:00.2", MTU: 1500, Up: true, Peer: "enp8s0f0v0"},
		{Name: "enp8s0f0v0", Kind: nic.PortVF, PF: 0, VF: 0, PCIAddress: "0000:08:00.2",
			MAC: mac("02:00:00:00:00:01"), MTU: 1500, Peer: "enp8s0f0npf0vf0"},
		{Name: "enp8s0f0npf0vf1", Kind: nic.PortRepresentor, PhysPortName: "pf0vf1", SwitchID: swID, PF: 0, VF: 1,
			PCIAddress: "0000:08:00.3", MTU: 1500},
		{Name: "enp8s0f1np1", Kind: nic.PortUplink, PhysPortName: "p1", SwitchID: swID, PF: 1, VF: -1,
			PCIAddress: pf1PCI, MAC: mac("b8:ce:f6:3e:4c:11"), MTU: 1500},
		{Name: "enp8s0f1v0", Kind: nic.PortVF, PF: 1, VF: 0, PCIAddress: "0000:08:08.2", MTU: 1500},
	}
	assert.Equal(t, want, snap.Ports())
}

func TestDiff(t *testing.T) {
	a := nic.Port{Name: "a", Kind: nic.PortUplink, VF: -1}
	b := nic.Port{Name: "b", Kind: nic.PortRepresentor, VF: 0}
	b2 := b
	b2.Up = true
	c := nic.Port{Name: "c", Kind: nic.PortVF, VF: 0}
	d := nic.Port{Name: "d", Kind: nic.PortVF, VF: 1}
	tests := []struct {
		name     string
		old, cur []nic.Port
		want     []nic.Event
	}{
		{"nothing", nil, nil, []nic.Event{}},
		{"same", []nic.Port{a, b}, []nic.Port{b, a}, []nic.Event{}},
		{"added", []nic.Port{a}, []nic.Port{c, a, b}, []nic.Event{
			{Kind: nic.EventPortAdded, Port: b}, {Kind: nic.EventPortAdded, Port: c}}},
		{"removed", []nic.Port{d, a, c}, []nic.Port{a}, []nic.Event{
			{Kind: nic.EventPortRemoved, Port: c}, {Kind: nic.EventPortRemoved, Port: d}}},
		{"changed", []nic.Port{a, b}, []nic.Port{a, b2}, []nic.Event{{Kind: nic.EventPortChanged, Port: b2}}},
		{"all at once", []nic.Port{a, b, c}, []nic.Port{b2, d, a}, []nic.Event{
			{Kind: nic.EventPortRemoved, Port: c}, {Kind: nic.EventPortAdded, Port: d}, {Kind: nic.EventPortChanged, Port: b2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Diff(tt.old, tt.cur))
		})
	}
}
