package representor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/k8snetworkplumbingwg/sriovnet"
	utilfs "github.com/k8snetworkplumbingwg/sriovnet/pkg/utils/filesystem"
	"github.com/k8snetworkplumbingwg/sriovnet/pkg/utils/netlinkops"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor/sysfstest"
)

// fakeDevlink is an EswitchReader that also lists devlink ports.
type fakeDevlink struct {
	fakeEswitch
	ports []*netlink.DevlinkPort
	err   error
	calls int
}

func (f *fakeDevlink) Ports() ([]*netlink.DevlinkPort, error) {
	f.calls++
	return f.ports, f.err
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }

// vfPort is a pci_vf devlink port of pf0 (external: another host's VF).
func vfPort(netdev string, vf uint16, external bool) *netlink.DevlinkPort {
	return &netlink.DevlinkPort{BusName: "pci", DeviceName: pf0PCI, NetdeviceName: netdev,
		PortFlavour: sriovnet.PORT_FLAVOUR_PCI_VF, PfNumber: u16(0), VfNumber: &vf, External: &external}
}

// The ARM side of a BlueField DPU: the ECPF's uplink p0 parents the
// representors of the host's PF ("c1pf0"), of the host's VFs ("c1pf0vf1")
// and of subfunctions ("pf0sf1"); the ECPF has two VFs of its own, VF 0
// with a local representor ("pf0vf0"). Only that one is attached: VF 1
// must take neither the host's VF 1 nor SF 1, and the host PF
// representor is no PF netdev.
func TestSysfsScannerBlueFieldNames(t *testing.T) {
	const bfID = "0c42a1030070d2c6"
	tr := sysfstest.New(t)
	tr.AddPF(sysfstest.PF{PCI: pf0PCI, Netdev: "p0", Driver: "mlx5_core", Vendor: "15b3", Device: "a2d6",
		PortName: "p0", SwitchID: bfID, TotalVFs: 8, NumVFs: 2, Up: true})
	for i := range 2 {
		tr.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: i, PCI: sysfstest.VFAddress(pf0PCI, i), Vendor: "15b3", Device: "101e",
			Driver: "mlx5_core"})
	}
	for _, n := range []sysfstest.Netdev{
		{Name: "pf0hpf", PortName: "c1pf0"},
		{Name: "pf0vf0", PortName: "c1pf0vf0"},
		{Name: "pf0vf1", PortName: "c1pf0vf1"},
		{Name: "en3f0pf0sf1", PortName: "pf0sf1"},
		{Name: "en3f0pf0sf5", PortName: "c1pf0sf5"},
		{Name: "eth4", PortName: "pf0vf0"},
	} {
		n.PCI, n.SwitchID = pf0PCI, bfID
		tr.AddNetdev(n)
	}

	snap, err := NewSysfsScanner(tr.Root, fakeEswitch{"pci/" + pf0PCI: nic.EswitchSwitchdev}).Scan(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.PFs, 1)
	pf := snap.PFs[0]
	assert.Equal(t, "p0", pf.Name)
	assert.Equal(t, "p0", pf.Uplink)
	require.Len(t, pf.VFs, 2)
	assert.Equal(t, "eth4", pf.VFs[0].Representor)
	assert.Equal(t, "", pf.VFs[1].Representor)
	var names []string
	for _, p := range snap.Ports() {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"p0", "eth4"}, names)

	// With devlink the host's ports are external: still not attached.
	dl := &fakeDevlink{fakeEswitch: fakeEswitch{"pci/" + pf0PCI: nic.EswitchSwitchdev}, ports: []*netlink.DevlinkPort{
		vfPort("pf0vf0", 0, true), vfPort("pf0vf1", 1, true), vfPort("eth4", 0, false),
	}}
	snap, err = NewSysfsScanner(tr.Root, dl).Scan(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "eth4", snap.PFs[0].VFs[0].Representor)
	assert.Equal(t, "", snap.PFs[0].VFs[1].Representor)
}

// With a devlink port list, sriovnet takes a VF's representor from the
// local pci_vf port with its number, whatever the netdev's phys_port_name
// says, and falls back to phys_port_name for VFs without a port. The list
// is dumped once per scan. When listing fails, phys_port_name decides.
func TestSysfsScannerDevlinkPorts(t *testing.T) {
	tr := dualPortCX6(t)
	tr.AddNetdev(sysfstest.Netdev{Name: "rep-a", PCI: pf0PCI, SwitchID: swID}) // no phys_port_name
	es := fakeEswitch{"pci/" + pf0PCI: nic.EswitchSwitchdev, "pci/" + pf1PCI: nic.EswitchLegacy}
	reps := func(dl *fakeDevlink) []string {
		t.Helper()
		snap, err := NewSysfsScanner(tr.Root, dl).Scan(context.Background())
		require.NoError(t, err)
		var out []string
		for _, vf := range snap.PFs[0].VFs {
			out = append(out, vf.Representor)
		}
		_, ok := snap.Links["rep-a"]
		assert.Equal(t, out[1] == "rep-a", ok, "Links holds the attached representor")
		return out
	}

	dl := &fakeDevlink{fakeEswitch: es, ports: []*netlink.DevlinkPort{vfPort("rep-a", 1, false)}}
	assert.Equal(t, []string{"enp8s0f0npf0vf0", "rep-a"}, reps(dl))
	assert.Equal(t, 1, dl.calls)

	dl = &fakeDevlink{fakeEswitch: es, err: errors.New("devlink: EOPNOTSUPP")}
	assert.Equal(t, []string{"enp8s0f0npf0vf0", "enp8s0f0npf0vf1"}, reps(dl))

	// A port naming a netdev that is not in sysfs (gone, or another
	// namespace's) is not attached, nor is any other.
	dl = &fakeDevlink{fakeEswitch: es, ports: []*netlink.DevlinkPort{vfPort("gone", 1, false)}}
	assert.Equal(t, []string{"enp8s0f0npf0vf0", ""}, reps(dl))
}

// Scans of different trees may run at once (parallel tests, vfmgr and the
// watcher): each sees its own tree through sriovnet, and the seams are
// back to sriovnet's defaults afterwards. Run with -race.
func TestSysfsScannerConcurrentTrees(t *testing.T) {
	a := dualPortCX6(t)
	b := sysfstest.New(t)
	b.AddPF(sysfstest.PF{PCI: pf0PCI, Netdev: "ens1f0", Driver: "ice", Vendor: "8086", Device: "159b",
		PortName: "p0", SwitchID: swID, TotalVFs: 4, NumVFs: 1})
	b.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: 0, PCI: "0000:08:01.0", Vendor: "8086", Device: "1889", Driver: "iavf"})
	b.AddNetdev(sysfstest.Netdev{Name: "eth5", PCI: pf0PCI, PortName: "pf0vf0", SwitchID: swID})

	var wg sync.WaitGroup
	for i := range 8 {
		tr, want := a, "enp8s0f0npf0vf0"
		if i%2 == 1 {
			tr, want = b, "eth5"
		}
		wg.Go(func() {
			for range 20 {
				snap, err := NewSysfsScanner(tr.Root, nil).Scan(context.Background())
				if !assert.NoError(t, err) || !assert.NotEmpty(t, snap.PFs) || !assert.NotEmpty(t, snap.PFs[0].VFs) {
					return
				}
				assert.Equal(t, want, snap.PFs[0].VFs[0].Representor)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, utilfs.DefaultFs{}, utilfs.Fs)
	_, err := netlinkops.GetNetlinkOps().LinkByName("lo")
	assert.NotErrorIs(t, err, errReadOnly)
}

func TestSysfsAt(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "class/net/eth0"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "class/net/eth0/phys_port_name"), []byte("p0\n"), 0o644))
	fs := newSysfsAt(root)

	b, err := fs.ReadFile("/sys/class/net/eth0/phys_port_name")
	require.NoError(t, err)
	assert.Equal(t, "p0\n", string(b))
	infos, err := fs.ReadDir("/sys/class/net")
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.Equal(t, "eth0", infos[0].Name())

	_, err = fs.ReadFile(filepath.Join(root, "class/net/eth0/phys_port_name"))
	assert.ErrorIs(t, err, os.ErrNotExist, "only /sys paths are mapped")
	_, err = fs.Stat("/sysfoo/class")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorIs(t, fs.WriteFile("/sys/class/net/eth0/phys_port_name", []byte("p1"), 0o644), errReadOnly)
	b, err = os.ReadFile(filepath.Join(root, "class/net/eth0/phys_port_name"))
	require.NoError(t, err)
	assert.Equal(t, "p0\n", string(b))

	// One sysfsAt serves one scan: what it read once it does not read again.
	require.NoError(t, os.WriteFile(filepath.Join(root, "class/net/eth0/phys_port_name"), []byte("p1\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(root, "class/net/eth1"), 0o755))
	b, err = fs.ReadFile("/sys/class/net/eth0/phys_port_name")
	require.NoError(t, err)
	assert.Equal(t, "p0\n", string(b))
	infos, err = fs.ReadDir("/sys/class/net")
	require.NoError(t, err)
	assert.Len(t, infos, 1)
	b, err = newSysfsAt(root).ReadFile("/sys/class/net/eth0/phys_port_name")
	require.NoError(t, err)
	assert.Equal(t, "p1\n", string(b))
}
