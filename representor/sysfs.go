package representor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/offloadd/offloadd/nic"
)

// EswitchReader reads a devlink device's eswitch mode. Bus and device name
// the devlink handle: "pci", "0000:08:00.0".
type EswitchReader interface {
	EswitchMode(bus, device string) (nic.EswitchMode, error)
}

// SysfsScanner discovers the SR-IOV topology from sysfs below Root.
// The layout it reads is the kernel's:
//
//	class/net/<dev>/device -> ../../../<pci>    (any path ending in the PCI address)
//	class/net/<dev>/{phys_port_name,phys_switch_id,address,mtu,flags,type}
//	bus/pci/devices/<pf>/{sriov_numvfs,sriov_totalvfs,vendor,device}
//	bus/pci/devices/<pf>/virtfn<N> -> ../<vf>
//	bus/pci/devices/<pci>/driver -> .../drivers/<driver>
//	bus/pci/devices/<vf>/net/<vfnetdev>/, bus/pci/devices/<vf>/infiniband/
//	bus/pci/devices/<pf>/net/<uplink or representor>/
//
// Uplinks and VF representors are found by sriovnet, reading the same
// tree (see findRepresentors); on Linux only, elsewhere Scan fails with
// nic.ErrNotImplemented. Only netdevs of the network namespace sysfs was
// mounted in are seen.
type SysfsScanner struct {
	root    string
	eswitch EswitchReader
}

// NewSysfsScanner returns a scanner of the sysfs tree at root ("/sys" on a
// host). eswitch may be nil: the mode is then inferred from representors.
// When eswitch also lists devlink ports (*Devlink does), sriovnet asks
// devlink for representors before it reads phys_port_name.
func NewSysfsScanner(root string, eswitch EswitchReader) *SysfsScanner {
	return &SysfsScanner{root: root, eswitch: eswitch}
}

type netdevInfo struct {
	link     Link
	pci      string // PCI address of the parent device, "" when not PCI
	portName PortName
	linkType string
}

// Scan reads the topology. A netdev or device that vanishes during the scan
// is left out; malformed attributes are errors.
func (s *SysfsScanner) Scan(ctx context.Context) (Snapshot, error) {
	netDir := filepath.Join(s.root, "class", "net")
	entries, err := os.ReadDir(netDir)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scan netdevs in %s: %w", netDir, err)
	}
	devs := make(map[string]netdevInfo, len(entries))
	var names []string
	for _, e := range entries {
		info, ok, err := s.readNetdev(e.Name())
		if err != nil {
			return Snapshot{}, err
		}
		if ok {
			devs[e.Name()] = info
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)

	// Group netdevs by parent PCI device and keep the SR-IOV capable ones.
	byPCI := map[string][]string{}
	for _, name := range names {
		if pci := devs[name].pci; pci != "" {
			byPCI[pci] = append(byPCI[pci], name)
		}
	}
	var pfPCIs []string
	for pci := range byPCI {
		if exists(s.pciPath(pci, "sriov_totalvfs")) {
			pfPCIs = append(pfPCIs, pci)
		}
	}
	slices.Sort(pfPCIs)

	snap := Snapshot{Links: map[string]Link{}}
	for _, pci := range pfPCIs {
		if err := ctx.Err(); err != nil {
			return Snapshot{}, fmt.Errorf("scan %s: %w", s.root, err)
		}
		pf, ok, err := s.readPF(pci, byPCI[pci], devs)
		if err != nil {
			return Snapshot{}, err
		}
		if ok {
			snap.PFs = append(snap.PFs, pf)
		}
	}
	if err := s.attachRepresentors(&snap, names, devs); err != nil {
		return Snapshot{}, err
	}
	for i := range snap.PFs {
		pf := &snap.PFs[i]
		if pf.EswitchErr != "" {
			pf.Eswitch = nic.EswitchLegacy
			for _, vf := range pf.VFs {
				if vf.Representor != "" {
					pf.Eswitch = nic.EswitchSwitchdev
				}
			}
		}
		for _, n := range []string{pf.Name, pf.Uplink} {
			if n != "" {
				snap.Links[n] = devs[n].link
			}
		}
		for j := range pf.VFs {
			vf := &pf.VFs[j]
			vf.LinkType = pf.LinkType
			if d, ok := devs[vf.Netdev]; ok && vf.Netdev != "" {
				vf.LinkType = d.linkType
				snap.Links[vf.Netdev] = d.link
			}
			if vf.Representor != "" {
				snap.Links[vf.Representor] = devs[vf.Representor].link
			}
		}
	}
	return snap, nil
}

// readPF builds a PF from its PCI device and the netdevs whose parent it is.
// ok is false when no netdev of the group is the PF itself.
func (s *SysfsScanner) readPF(pci string, group []string, devs map[string]netdevInfo) (PF, bool, error) {
	// The PF netdev is the group member that is not a representor: the
	// uplink ("p0") in switchdev mode, a netdev without a port name or with
	// "p0" in legacy mode. mlx5 parents its VF representors on the PF too.
	name := ""
	for _, n := range group {
		k := devs[n].portName.Kind
		if k == NamePhysical {
			name = n
			break
		}
		if k == NameNone && name == "" {
			name = n
		}
	}
	if name == "" {
		return PF{}, false, nil
	}
	d := devs[name]
	pf := PF{
		Name:     name,
		PCI:      pci,
		Index:    pciFunction(pci),
		PortName: d.link.PhysPortName,
		SwitchID: d.link.SwitchID,
		LinkType: d.linkType,
	}
	if d.portName.Kind == NamePhysical {
		pf.Uplink = name
	}
	var err error
	if pf.Vendor, err = s.readID(s.pciPath(pci, "vendor")); err != nil {
		return PF{}, false, err
	}
	if pf.Device, err = s.readID(s.pciPath(pci, "device")); err != nil {
		return PF{}, false, err
	}
	pf.Driver = s.linkBase(s.pciPath(pci, "driver"))
	if pf.TotalVFs, err = s.readInt(s.pciPath(pci, "sriov_totalvfs")); err != nil {
		return PF{}, false, err
	}
	if pf.NumVFs, err = s.readInt(s.pciPath(pci, "sriov_numvfs")); err != nil {
		return PF{}, false, err
	}
	if s.eswitch != nil {
		mode, err := s.eswitch.EswitchMode("pci", pci)
		if err != nil {
			pf.EswitchErr = err.Error()
		} else {
			pf.Eswitch = mode
		}
	} else {
		pf.EswitchErr = "no devlink reader"
	}
	if pf.VFs, err = s.readVFs(pci); err != nil {
		return PF{}, false, err
	}
	return pf, true, nil
}

func (s *SysfsScanner) readVFs(pfPCI string) ([]VF, error) {
	dir := s.pciPath(pfPCI)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read VFs of %s: %w", pfPCI, err)
	}
	var vfs []VF
	for _, e := range entries {
		idx, ok := strings.CutPrefix(e.Name(), "virtfn")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("read VFs of %s: bad link %s", pfPCI, e.Name())
		}
		vfPCI := s.linkBase(filepath.Join(dir, e.Name()))
		if vfPCI == "" {
			continue
		}
		vf := VF{Index: n, PCI: vfPCI}
		if vf.Vendor, err = s.readID(s.pciPath(vfPCI, "vendor")); err != nil {
			return nil, err
		}
		if vf.Device, err = s.readID(s.pciPath(vfPCI, "device")); err != nil {
			return nil, err
		}
		vf.Driver = s.linkBase(s.pciPath(vfPCI, "driver"))
		if nets, err := os.ReadDir(s.pciPath(vfPCI, "net")); err == nil && len(nets) > 0 {
			vf.Netdev = nets[0].Name() // ReadDir sorts by name
		}
		vf.RDMA = exists(s.pciPath(vfPCI, "infiniband"))
		vfs = append(vfs, vf)
	}
	slices.SortFunc(vfs, func(a, b VF) int { return a.Index - b.Index })
	return vfs, nil
}

// attachRepresentors finds the uplinks and VF representors with sriovnet
// (findRepresentors), then attaches the VF representors sriovnet cannot
// see because no PF's PCI device is their parent (nfp): by switch ID and
// the PF number of their phys_port_name "pf<p>vf<n>". Representors with a
// controller number ("c1pf0vf3") stand for another host's VFs, as on a
// DPU, and are not attached.
func (s *SysfsScanner) attachRepresentors(snap *Snapshot, names []string, devs map[string]netdevInfo) error {
	if err := s.findRepresentors(snap, devs); err != nil {
		return err
	}
	parent := map[string]bool{}
	for _, pf := range snap.PFs {
		parent[pf.PCI] = true
	}
	for _, name := range names {
		d := devs[name]
		if d.portName.Kind != NameVF || d.portName.Controller >= 0 || d.link.SwitchID == "" || parent[d.pci] {
			continue
		}
		i := slices.IndexFunc(snap.PFs, func(pf PF) bool {
			return pf.SwitchID == d.link.SwitchID && pf.Index == d.portName.PF
		})
		if i < 0 {
			continue
		}
		for j, vf := range snap.PFs[i].VFs {
			if vf.Index == d.portName.Num {
				snap.PFs[i].VFs[j].Representor = name
			}
		}
	}
	return nil
}

// readNetdev reads one netdev's attributes; ok is false when it vanished.
func (s *SysfsScanner) readNetdev(name string) (netdevInfo, bool, error) {
	dir := filepath.Join(s.root, "class", "net", name)
	if !exists(dir) {
		return netdevInfo{}, false, nil
	}
	info := netdevInfo{link: Link{Name: name}}
	info.pci = pciAddress(s.linkBase(filepath.Join(dir, "device")))
	info.link.PhysPortName = s.readOptional(filepath.Join(dir, "phys_port_name"))
	info.link.SwitchID = s.readOptional(filepath.Join(dir, "phys_switch_id"))
	info.link.MAC = s.readOptional(filepath.Join(dir, "address"))
	info.portName = ParsePortName(info.link.PhysPortName)
	if v := s.readOptional(filepath.Join(dir, "mtu")); v != "" {
		mtu, err := strconv.Atoi(v)
		if err != nil {
			return netdevInfo{}, false, fmt.Errorf("read %s/mtu: %w", dir, err)
		}
		info.link.MTU = mtu
	}
	if v := s.readOptional(filepath.Join(dir, "flags")); v != "" {
		flags, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
		if err != nil {
			return netdevInfo{}, false, fmt.Errorf("read %s/flags: %w", dir, err)
		}
		info.link.Up = flags&0x1 != 0 // IFF_UP
	}
	info.linkType = linkTypeName(s.readOptional(filepath.Join(dir, "type")))
	return info, true, nil
}

func (s *SysfsScanner) pciPath(pci string, elem ...string) string {
	return filepath.Join(append([]string{s.root, "bus", "pci", "devices", pci}, elem...)...)
}

// readOptional reads an attribute, "" when it is missing or the kernel
// refuses to show it (phys_port_name answers EOPNOTSUPP on most netdevs).
func (s *SysfsScanner) readOptional(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (s *SysfsScanner) readInt(path string) (int, error) {
	v := s.readOptional(path)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n, nil
}

// readID reads a PCI ID file ("0x15b3") and returns it without the prefix.
func (s *SysfsScanner) readID(path string) (string, error) {
	v := strings.ToLower(s.readOptional(path))
	if v == "" {
		return "", nil
	}
	id := strings.TrimPrefix(v, "0x")
	if _, err := strconv.ParseUint(id, 16, 16); err != nil {
		return "", fmt.Errorf("read %s: bad PCI ID %q", path, v)
	}
	return id, nil
}

// linkBase returns the last element of a symlink's target, "" when path is
// not a symlink.
func (s *SysfsScanner) linkBase(path string) string {
	t, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// pciAddress returns s when it looks like a PCI address (DDDD:BB:DD.F).
func pciAddress(s string) string {
	if len(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.' {
		return ""
	}
	for i, c := range s {
		if i == 4 || i == 7 || i == 10 {
			continue
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return ""
		}
	}
	return s
}

// pciFunction returns the function number of a PCI address.
func pciFunction(pci string) int {
	return int(pci[len(pci)-1] - '0')
}

// linkTypeName maps an ARPHRD number from sysfs "type" to the names the
// SR-IOV device plugin uses for linkTypes.
func linkTypeName(t string) string {
	switch t {
	case "1":
		return "ether"
	case "32":
		return "infiniband"
	}
	return t
}
