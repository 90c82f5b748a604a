package representor

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/k8snetworkplumbingwg/sriovnet"
	utilfs "github.com/k8snetworkplumbingwg/sriovnet/pkg/utils/filesystem"
	"github.com/k8snetworkplumbingwg/sriovnet/pkg/utils/netlinkops"
	"github.com/vishvananda/netlink"
)

// sriovnet reads sysfs through the package global utilfs.Fs, at the fixed
// paths /sys/class/net and /sys/bus/pci/devices, and devlink through the
// package global netlinkops. Both are process-wide, so sriovnetMu
// serialises every sriovnet call of this package, and withSriovnet points
// both seams at one scanner's sysfs root and devlink for the duration of
// one call, then puts them back. Parallel tests with different fake trees
// therefore take turns, and this package must be the only user of
// sriovnet in the binary: another caller would see the seams mid-swap.
//
// Only sriovnet functions that go through both seams are called.
// IsSriovSupported, IsSriovEnabled, GetVfPciDevList and
// GetVfIndexByPciAddress read the real /sys with os calls whatever
// utilfs.Fs is; GetPciFromNetDevice needs class/net/<dev> to be a symlink
// and never returns for a virtual netdev ("../../devices/virtual/net/lo"
// walks up to "." and stays there). So PFs, VFs and netdev parents are
// read by the root-taking readers in sysfs.go.
var sriovnetMu sync.Mutex

func withSriovnet(root string, ports portLister, fn func()) {
	sriovnetMu.Lock()
	defer sriovnetMu.Unlock()
	prevFs, prevOps := utilfs.Fs, netlinkops.GetNetlinkOps()
	utilfs.Fs = newSysfsAt(root)
	netlinkops.SetNetlinkOps(&devlinkOps{list: ports})
	defer func() {
		utilfs.Fs = prevFs
		netlinkops.SetNetlinkOps(prevOps)
	}()
	fn()
}

// portLister lists devlink ports. An EswitchReader that is one too (as
// *Devlink is) lets sriovnet find representors by devlink port flavour
// and number instead of by phys_port_name.
type portLister interface {
	Ports() ([]*netlink.DevlinkPort, error)
}

// findRepresentors sets each PF's uplink and each VF's representor as
// sriovnet finds them (GetUplinkRepresentor, GetVfRepresentor): the
// physical and local pci_vf devlink ports of the PF when the eswitch
// reader lists ports, else the netdevs below the PF's PCI device by
// phys_port_name: "p<n>" with a phys_switch_id for the uplink,
// "pf<p>vf<n>" for VF n whatever p is (as our own matching did), never
// "c<c>pf<p>vf<n>" or "pf<p>sf<n>". Names that are not in devs (gone since
// the netdev walk) are dropped. A PF netdev named "p<n>" that sriovnet
// does not confirm stays its own uplink.
func (s *SysfsScanner) findRepresentors(snap *Snapshot, devs map[string]netdevInfo) error {
	ports, _ := s.eswitch.(portLister)
	known := func(name string, err error) bool { _, ok := devs[name]; return err == nil && ok }
	withSriovnet(s.root, ports, func() {
		for i := range snap.PFs {
			pf := &snap.PFs[i]
			if up, err := sriovnet.GetUplinkRepresentor(pf.PCI); known(up, err) {
				pf.Uplink = up
			}
			for j := range pf.VFs {
				if rep, err := sriovnet.GetVfRepresentor(pf.PCI, pf.VFs[j].Index); known(rep, err) {
					pf.VFs[j].Representor = rep
				}
			}
		}
	})
	return nil
}

var (
	errNoDevlink = errors.New("no devlink port source")
	errReadOnly  = errors.New("representor discovery only reads")
)

// devlinkOps is sriovnet's netlinkops over one call's devlink port list,
// dumped at most once however many VFs are looked up. It only reads.
type devlinkOps struct {
	list  portLister
	once  sync.Once
	ports []*netlink.DevlinkPort
	err   error
}

var _ netlinkops.NetlinkOps = (*devlinkOps)(nil)

func (o *devlinkOps) DevLinkGetAllPortList() ([]*netlink.DevlinkPort, error) {
	o.once.Do(func() {
		if o.list == nil {
			o.err = errNoDevlink
			return
		}
		o.ports, o.err = o.list.Ports()
	})
	return o.ports, o.err
}

func (o *devlinkOps) DevLinkGetPortByNetdevName(netdev string) (*netlink.DevlinkPort, error) {
	ports, err := o.DevLinkGetAllPortList()
	for _, p := range ports {
		if p.NetdeviceName == netdev {
			return p, nil
		}
	}
	if err == nil {
		err = errors.New("no devlink port for netdev " + netdev)
	}
	return nil, err
}

func (o *devlinkOps) DevLinkGetDevicePortList(bus, device string) ([]*netlink.DevlinkPort, error) {
	ports, err := o.DevLinkGetAllPortList()
	var out []*netlink.DevlinkPort
	for _, p := range ports {
		if p.BusName == bus && p.DeviceName == device {
			out = append(out, p)
		}
	}
	return out, err
}

func (*devlinkOps) LinkByName(string) (netlink.Link, error) { return nil, errReadOnly }
func (*devlinkOps) LinkSetUp(netlink.Link) error            { return errReadOnly }
func (*devlinkOps) LinkSetVfHardwareAddr(netlink.Link, int, net.HardwareAddr) error {
	return errReadOnly
}
func (*devlinkOps) LinkSetVfVlan(netlink.Link, int, int) error { return errReadOnly }
func (*devlinkOps) LinkSetVfNodeGUID(netlink.Link, int, net.HardwareAddr) error {
	return errReadOnly
}
func (*devlinkOps) LinkSetVfPortGUID(netlink.Link, int, net.HardwareAddr) error {
	return errReadOnly
}
func (*devlinkOps) LinkSetVfTrust(netlink.Link, int, bool) error    { return errReadOnly }
func (*devlinkOps) LinkSetVfSpoofchk(netlink.Link, int, bool) error { return errReadOnly }
func (*devlinkOps) DevLinkPortFnSet(string, string, uint32, netlink.DevlinkPortFnSetAttrs) error {
	return errReadOnly
}

// sysfsAt is sriovnet's utilfs.Filesystem over the sysfs tree at root: a
// path "/sys/<rest>" is read at <root>/<rest>, other paths do not exist,
// and writes are refused. Directory listings and file contents are read
// once per withSriovnet call: sriovnet's sysfs fallback lists the PF's
// net/ directory and reads every phys_port_name in it again for each VF,
// which made a scan of 127 VFs about 4 times slower than the hand-written
// one (BenchmarkSysfsScan).
// It is used under sriovnetMu only.
type sysfsAt struct {
	root  string
	dirs  memo[[]os.FileInfo]
	files memo[[]byte]
}

func newSysfsAt(root string) *sysfsAt {
	return &sysfsAt{root: root, dirs: memo[[]os.FileInfo]{}, files: memo[[]byte]{}}
}

var _ utilfs.Filesystem = (*sysfsAt)(nil)

type memo[T any] map[string]struct {
	v   T
	err error
}

func (m memo[T]) read(path string, read func(string) (T, error)) (T, error) {
	if r, ok := m[path]; ok {
		return r.v, r.err
	}
	v, err := read(path)
	m[path] = struct {
		v   T
		err error
	}{v, err}
	return v, err
}

func at[T any](s *sysfsAt, name string, read func(string) (T, error)) (T, error) {
	rest, ok := strings.CutPrefix(name, "/sys/")
	if !ok {
		var zero T
		return zero, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return read(filepath.Join(s.root, rest))
}

func (s *sysfsAt) Stat(name string) (os.FileInfo, error) { return at(s, name, os.Stat) }
func (s *sysfsAt) Readlink(name string) (string, error)  { return at(s, name, os.Readlink) }
func (s *sysfsAt) ReadFile(name string) ([]byte, error) {
	return at(s, name, func(p string) ([]byte, error) { return s.files.read(p, os.ReadFile) })
}
func (s *sysfsAt) ReadDir(dir string) ([]os.FileInfo, error) {
	return at(s, dir, func(p string) ([]os.FileInfo, error) { return s.dirs.read(p, utilfs.DefaultFs{}.ReadDir) })
}

// Walk would hand walkFn paths below root instead of /sys: refused.
func (*sysfsAt) Walk(string, filepath.WalkFunc) error         { return errReadOnly }
func (*sysfsAt) Create(string) (utilfs.File, error)           { return nil, errReadOnly }
func (*sysfsAt) Rename(string, string) error                  { return errReadOnly }
func (*sysfsAt) MkdirAll(string, os.FileMode) error           { return errReadOnly }
func (*sysfsAt) Chtimes(string, time.Time, time.Time) error   { return errReadOnly }
func (*sysfsAt) RemoveAll(string) error                       { return errReadOnly }
func (*sysfsAt) Remove(string) error                          { return errReadOnly }
func (*sysfsAt) Symlink(string, string) error                 { return errReadOnly }
func (*sysfsAt) WriteFile(string, []byte, os.FileMode) error  { return errReadOnly }
func (*sysfsAt) TempDir(string, string) (string, error)       { return "", errReadOnly }
func (*sysfsAt) TempFile(string, string) (utilfs.File, error) { return nil, errReadOnly }
