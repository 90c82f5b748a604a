package sysfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Tree is a fake sysfs tree rooted at Root.
type Tree struct {
	Root string
	t    testing.TB
}

// New returns an empty tree under t.TempDir() with class/net and the PCI
// bus directories in place.
func New(t testing.TB) *Tree {
	t.Helper()
	tr := &Tree{Root: t.TempDir(), t: t}
	tr.Mkdir("class/net")
	tr.Mkdir("bus/pci/devices")
	tr.Mkdir("bus/pci/drivers")
	return tr
}

// PF describes a physical function and its netdev.
type PF struct {
	PCI    string // "0000:08:00.0"
	Netdev string // "" for no netdev
	Driver string
	Vendor string // "15b3"
	Device string // "101d"
	// PortName is the netdev's phys_port_name ("p0"; "" for none).
	PortName string
	SwitchID string
	TotalVFs int
	NumVFs   int
	MAC      string
	MTU      int
	Up       bool
}

// AddPF creates the PF's PCI device and netdev.
func (tr *Tree) AddPF(pf PF) {
	tr.t.Helper()
	tr.addPCI(pf.PCI, pf.Vendor, pf.Device, pf.Driver)
	tr.Write(tr.pci(pf.PCI, "sriov_totalvfs"), strconv.Itoa(pf.TotalVFs))
	tr.Write(tr.pci(pf.PCI, "sriov_numvfs"), strconv.Itoa(pf.NumVFs))
	if pf.Netdev != "" {
		tr.AddNetdev(Netdev{Name: pf.Netdev, PCI: pf.PCI, PortName: pf.PortName, SwitchID: pf.SwitchID,
			MAC: pf.MAC, MTU: pf.MTU, Up: pf.Up})
	}
}

// VF describes a virtual function.
type VF struct {
	PFPCI  string
	Index  int
	PCI    string
	Vendor string
	Device string
	Driver string // "" for unbound
	Netdev string // "" for none
	RDMA   bool
	MAC    string
}

// AddVF creates the VF's PCI device, the PF's virtfn link and, when Netdev
// is set, the VF netdev.
func (tr *Tree) AddVF(vf VF) {
	tr.t.Helper()
	tr.addPCI(vf.PCI, vf.Vendor, vf.Device, vf.Driver)
	tr.Symlink(tr.pci(vf.PFPCI, "virtfn"+strconv.Itoa(vf.Index)), "../"+vf.PCI)
	tr.Symlink(tr.pci(vf.PCI, "physfn"), "../"+vf.PFPCI)
	if vf.RDMA {
		tr.Mkdir(tr.pci(vf.PCI, "infiniband", "mlx5_"+strconv.Itoa(vf.Index+2)))
	}
	if vf.Netdev != "" {
		tr.AddNetdev(Netdev{Name: vf.Netdev, PCI: vf.PCI, MAC: vf.MAC, MTU: 1500})
	}
}

// RemoveVF removes a VF's device, netdev and virtfn link.
func (tr *Tree) RemoveVF(pfPCI string, index int) {
	tr.t.Helper()
	link := tr.pci(pfPCI, "virtfn"+strconv.Itoa(index))
	target, err := os.Readlink(filepath.Join(tr.Root, link))
	if err != nil {
		tr.t.Fatalf("remove vf %d of %s: %v", index, pfPCI, err)
	}
	vfPCI := filepath.Base(target)
	if nets, err := os.ReadDir(filepath.Join(tr.Root, tr.pci(vfPCI, "net"))); err == nil {
		for _, n := range nets {
			tr.RemoveAll(filepath.Join("class/net", n.Name()))
		}
	}
	tr.RemoveAll(tr.pci(vfPCI))
	tr.RemoveAll(link)
}

// Netdev describes a network device.
type Netdev struct {
	Name string
	// PCI is the parent device's address ("" for a virtual device).
	PCI      string
	PortName string
	SwitchID string
	MAC      string
	MTU      int
	Up       bool
	// Type is the ARPHRD type, 1 (ether) when 0.
	Type int
}

// AddNetdev creates class/net/<name> and, when PCI is set, the device link
// and the device's net/<name> entry.
func (tr *Tree) AddNetdev(n Netdev) {
	tr.t.Helper()
	dir := filepath.Join("class/net", n.Name)
	tr.Mkdir(dir)
	if n.PCI != "" {
		tr.Symlink(filepath.Join(dir, "device"), "../../../bus/pci/devices/"+n.PCI)
		tr.Mkdir(tr.pci(n.PCI, "net", n.Name))
	}
	if n.PortName != "" {
		tr.Write(filepath.Join(dir, "phys_port_name"), n.PortName)
	}
	if n.SwitchID != "" {
		tr.Write(filepath.Join(dir, "phys_switch_id"), n.SwitchID)
	}
	mac := n.MAC
	if mac == "" {
		mac = "00:00:00:00:00:00"
	}
	tr.Write(filepath.Join(dir, "address"), mac)
	mtu := n.MTU
	if mtu == 0 {
		mtu = 1500
	}
	tr.Write(filepath.Join(dir, "mtu"), strconv.Itoa(mtu))
	flags := 0x1002 // IFF_BROADCAST|IFF_MULTICAST
	if n.Up {
		flags |= 0x1
	}
	tr.Write(filepath.Join(dir, "flags"), fmt.Sprintf("0x%x", flags))
	typ := n.Type
	if typ == 0 {
		typ = 1
	}
	tr.Write(filepath.Join(dir, "type"), strconv.Itoa(typ))
}

// RemoveNetdev removes class/net/<name> and its device's net/<name>.
func (tr *Tree) RemoveNetdev(name string) {
	tr.t.Helper()
	dir := filepath.Join("class/net", name)
	if target, err := os.Readlink(filepath.Join(tr.Root, dir, "device")); err == nil {
		tr.RemoveAll(tr.pci(filepath.Base(target), "net", name))
	}
	tr.RemoveAll(dir)
}

// BindDriver points a PCI device's driver link at driver ("" unbinds).
func (tr *Tree) BindDriver(pci, driver string) {
	tr.t.Helper()
	link := tr.pci(pci, "driver")
	tr.RemoveAll(link)
	if driver != "" {
		tr.Mkdir(filepath.Join("bus/pci/drivers", driver))
		tr.Symlink(link, "../../drivers/"+driver)
	}
}

// Write writes value and a newline to the file at rel, creating parents.
func (tr *Tree) Write(rel, value string) {
	tr.t.Helper()
	p := filepath.Join(tr.Root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

// Mkdir creates the directory rel and its parents.
func (tr *Tree) Mkdir(rel ...string) {
	tr.t.Helper()
	if err := os.MkdirAll(filepath.Join(tr.Root, filepath.Join(rel...)), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

// Symlink creates rel as a symlink to target, replacing what was there.
func (tr *Tree) Symlink(rel, target string) {
	tr.t.Helper()
	p := filepath.Join(tr.Root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	_ = os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		tr.t.Fatal(err)
	}
}

// RemoveAll removes rel and everything below it.
func (tr *Tree) RemoveAll(rel string) {
	tr.t.Helper()
	if err := os.RemoveAll(filepath.Join(tr.Root, rel)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *Tree) addPCI(pci, vendor, device, driver string) {
	tr.Mkdir(tr.pci(pci))
	if vendor != "" {
		tr.Write(tr.pci(pci, "vendor"), "0x"+vendor)
	}
	if device != "" {
		tr.Write(tr.pci(pci, "device"), "0x"+device)
	}
	tr.Write(tr.pci(pci, "driver_override"), "(null)")
	tr.BindDriver(pci, driver)
}

func (tr *Tree) pci(pci string, elem ...string) string {
	return filepath.Join(append([]string{"bus/pci/devices", pci}, elem...)...)
}

// PCIPath returns the tree-relative path of a PCI device attribute.
func PCIPath(pci string, elem ...string) string {
	return filepath.Join(append([]string{"bus/pci/devices", pci}, elem...)...)
}

// VFAddress returns a unique PCI address for VF index of a PF on the PF's
// domain and bus: routing ID 2+index+64*function, so 0000:08:00.0 has VF 0
// at 0000:08:00.2 and VF 6 at 0000:08:01.0, as mlx5 lays them out.
func VFAddress(pfPCI string, index int) string {
	fn := int(pfPCI[len(pfPCI)-1] - '0')
	n := 2 + index + fn*64
	return fmt.Sprintf("%s%02x.%d", pfPCI[:len(pfPCI)-4], n/8, n%8)
}
