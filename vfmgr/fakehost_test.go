package vfmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor"
	"github.com/offloadd/offloadd/representor/sysfstest"
)

// fakeHost simulates what vfmgr touches on a host: sysfs (through AttrFS,
// over a sysfstest tree that representor.SysfsScanner reads), devlink
// eswitch modes, VF settings on the PF and ethtool features. It enforces
// the kernel rules vfmgr must respect, records every change in order and
// renders its state as sorted text.
type fakeHost struct {
	t    *testing.T
	tree *sysfstest.Tree
	dir  DirFS

	mu       sync.Mutex
	ops      []string
	pfs      map[string]*fakePF            // by PCI
	vfs      map[string]VFState            // by VF PCI
	features map[string]map[string]Feature // dev -> name -> state
	loaded   map[string]bool               // loaded drivers

	// Fault injection.
	failSet     map[string]error // VF setting field -> error from SetVF
	ignoreSet   map[string]bool  // VF setting fields SetVF silently ignores
	ignoreFeat  bool             // SetFeature changes nothing
	failMode    error            // SetEswitchMode fails
	eswitchRead error            // EswitchMode fails
}

type fakePF struct {
	pci, netdev, driver, vfDriver, switchID string
	total, num                              int
	mode                                    nic.EswitchMode
}

func newFakeHost(t *testing.T) *fakeHost {
	tr := sysfstest.New(t)
	return &fakeHost{
		t: t, tree: tr, dir: DirFS{Root: tr.Root},
		pfs: map[string]*fakePF{}, vfs: map[string]VFState{}, features: map[string]map[string]Feature{},
		loaded:  map[string]bool{"mlx5_core": true, "iavf": true, "ice": true, "nfp": true, "nfp_netvf": true, "vfio-pci": true},
		failSet: map[string]error{}, ignoreSet: map[string]bool{},
	}
}

// addPF adds a PF; vfDriver is the driver its VFs bind to by default.
func (h *fakeHost) addPF(pci, netdev, driver, vfDriver string, total int, mode nic.EswitchMode) {
	pf := &fakePF{pci: pci, netdev: netdev, driver: driver, vfDriver: vfDriver, total: total, mode: mode,
		switchID: "5w17c4" + strings.NewReplacer(":", "", ".", "").Replace(pci)}
	h.pfs[pci] = pf
	h.tree.AddPF(sysfstest.PF{PCI: pci, Netdev: netdev, Driver: driver, Vendor: "15b3", Device: "101d",
		PortName: "p" + pci[len(pci)-1:], SwitchID: pf.switchID, TotalVFs: total, Up: true})
	h.features[netdev] = map[string]Feature{HWTCOffload: {Changeable: true}}
}

// setNumVFs puts VFs in place without going through sysfs writes.
func (h *fakeHost) setNumVFs(pci string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.createVFs(h.pfs[pci], n)
}

func (h *fakeHost) scanner() *representor.SysfsScanner {
	return representor.NewSysfsScanner(h.tree.Root, fakeReader{h})
}

func (h *fakeHost) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := NewManager(ManagerConfig{Discover: h.scanner(), PCI: NewSysfsPCI(h), VFs: h, Features: h, Eswitch: h, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (h *fakeHost) logOp(format string, args ...any) {
	h.ops = append(h.ops, fmt.Sprintf(format, args...))
}

// takeOps returns and clears the change log.
func (h *fakeHost) takeOps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := h.ops
	h.ops = nil
	return ops
}

func vfNetdev(pf *fakePF, i int) string { return pf.netdev + "v" + strconv.Itoa(i) }
func repNetdev(pf *fakePF, i int) string {
	return pf.netdev[:len(pf.netdev)-2] + "pf" + pf.pci[len(pf.pci)-1:] + "vf" + strconv.Itoa(i)
}

func (h *fakeHost) vfPCI(pf *fakePF, i int) string { return sysfstest.VFAddress(pf.pci, i) }

func (h *fakeHost) createVFs(pf *fakePF, n int) {
	for i := range n {
		vf := h.vfPCI(pf, i)
		h.tree.AddVF(sysfstest.VF{PFPCI: pf.pci, Index: i, PCI: vf, Vendor: "15b3", Device: "101e",
			Driver: pf.vfDriver, Netdev: vfNetdev(pf, i)})
		h.vfs[vf] = VFState{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: LinkAuto}
		if pf.mode == nic.EswitchSwitchdev {
			h.addRep(pf, i)
		}
	}
	pf.num = n
	h.tree.Write(sysfstest.PCIPath(pf.pci, "sriov_numvfs"), strconv.Itoa(n))
}

func (h *fakeHost) removeVFs(pf *fakePF) {
	for i := range pf.num {
		h.tree.RemoveVF(pf.pci, i)
		h.tree.RemoveNetdev(repNetdev(pf, i))
		delete(h.vfs, h.vfPCI(pf, i))
	}
	pf.num = 0
	h.tree.Write(sysfstest.PCIPath(pf.pci, "sriov_numvfs"), "0")
}

func (h *fakeHost) addRep(pf *fakePF, i int) {
	h.tree.AddNetdev(sysfstest.Netdev{Name: repNetdev(pf, i), PCI: pf.pci, PortName: "pf" + pf.pci[len(pf.pci)-1:] + "vf" + strconv.Itoa(i), SwitchID: pf.switchID})
}

func (h *fakeHost) driverOf(pci string) string {
	t, err := h.dir.ReadLink(sysfstest.PCIPath(pci, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

func (h *fakeHost) pfOfVF(pci string) (*fakePF, int) {
	for _, pf := range h.pfs {
		for i := range pf.num {
			if h.vfPCI(pf, i) == pci {
				return pf, i
			}
		}
	}
	return nil, -1
}

// AttrFS: reads go to the tree, writes follow the kernel's rules.

func (h *fakeHost) ReadAttr(rel string) (string, error) { return h.dir.ReadAttr(rel) }
func (h *fakeHost) ReadLink(rel string) (string, error) { return h.dir.ReadLink(rel) }

func (h *fakeHost) WriteAttr(rel, value string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 5 && parts[2] == "devices" && parts[4] == "sriov_numvfs":
		pf := h.pfs[parts[3]]
		n, err := strconv.Atoi(value)
		if pf == nil || err != nil {
			return syscall.EINVAL
		}
		if n != 0 && pf.num != 0 {
			return syscall.EBUSY // "%d VFs already enabled. Disable before enabling %d VFs"
		}
		if n > pf.total {
			return syscall.ERANGE
		}
		h.logOp("numvfs %s %d", pf.pci, n)
		if n == 0 {
			h.removeVFs(pf)
		} else {
			h.createVFs(pf, n)
		}
		return nil
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "unbind":
		if h.driverOf(value) != parts[3] {
			return syscall.ENODEV
		}
		h.logOp("unbind %s from %s", value, parts[3])
		h.unbind(value)
		return nil
	case len(parts) == 5 && parts[2] == "devices" && parts[4] == "driver_override":
		v := strings.TrimSpace(value)
		if v == "" {
			v = "(null)"
		}
		h.tree.Write(rel, v)
		return nil
	case rel == "bus/pci/drivers_probe":
		if h.driverOf(value) != "" {
			return nil
		}
		pf, i := h.pfOfVF(value)
		if pf == nil {
			return syscall.ENODEV
		}
		drv, _ := h.dir.ReadAttr(sysfstest.PCIPath(value, "driver_override"))
		if drv == "(null)" {
			drv = pf.vfDriver
		}
		if !h.loaded[drv] {
			return nil // no driver claims it; the write still succeeds
		}
		h.logOp("bind %s to %s", value, drv)
		h.tree.BindDriver(value, drv)
		if drv == pf.vfDriver {
			h.tree.AddNetdev(sysfstest.Netdev{Name: vfNetdev(pf, i), PCI: value})
		}
		return nil
	}
	return fmt.Errorf("write %q to %s: %w", value, rel, syscall.EACCES)
}

func (h *fakeHost) unbind(pci string) {
	h.tree.BindDriver(pci, "")
	if pf, i := h.pfOfVF(pci); pf != nil {
		h.tree.RemoveNetdev(vfNetdev(pf, i))
	}
}

// EswitchSetter with the drivers' rules, stricter than the kernels where
// noted, so a wrong order fails instead of leaving stale state.

func (h *fakeHost) EswitchMode(pci string) (nic.EswitchMode, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.eswitchRead != nil {
		return 0, h.eswitchRead
	}
	pf := h.pfs[pci]
	if pf == nil {
		return 0, fmt.Errorf("get devlink device pci/%s: %w", pci, syscall.ENODEV)
	}
	return pf.mode, nil
}

func (h *fakeHost) SetEswitchMode(pci string, mode nic.EswitchMode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failMode != nil {
		return h.failMode
	}
	pf := h.pfs[pci]
	if pf == nil {
		return syscall.ENODEV
	}
	if pf.mode == mode {
		return nil
	}
	switch pf.driver {
	case "ice":
		if pf.num > 0 {
			return fmt.Errorf("Changing eswitch mode is allowed only if there is no VFs created: %w", syscall.EOPNOTSUPP)
		}
	case "mlx5_core":
		if pf.num == 0 {
			return fmt.Errorf("SR-IOV is not enabled (older kernels): %w", syscall.EOPNOTSUPP)
		}
		for i := range pf.num {
			if h.driverOf(h.vfPCI(pf, i)) != "" {
				return fmt.Errorf("VF %d still bound (fake's rule): %w", i, syscall.EBUSY)
			}
		}
	case "nfp":
		return syscall.EOPNOTSUPP
	}
	h.logOp("eswitch %s %s", pci, mode)
	pf.mode = mode
	for i := range pf.num {
		if mode == nic.EswitchSwitchdev {
			h.addRep(pf, i)
		} else {
			h.tree.RemoveNetdev(repNetdev(pf, i))
		}
		// mlx5 clears VF config on mode change (commit 3b83b6c2e024).
		h.vfs[h.vfPCI(pf, i)] = VFState{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: LinkAuto}
	}
	return nil
}

// VFConfigurer.

func (h *fakeHost) pfByNetdev(name string) *fakePF {
	for _, pf := range h.pfs {
		if pf.netdev == name {
			return pf
		}
	}
	return nil
}

func (h *fakeHost) VFState(pfName string, vf int) (VFState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pf := h.pfByNetdev(pfName)
	if pf == nil {
		return VFState{}, fmt.Errorf("get link %s: %w", pfName, syscall.ENODEV)
	}
	if vf < 0 || vf >= pf.num {
		return VFState{}, fmt.Errorf("vf %d of %s: %w", vf, pfName, ErrNotFound)
	}
	return h.vfs[h.vfPCI(pf, vf)], nil
}

func (h *fakeHost) SetVF(pfName string, vf int, s VFSettings) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	pf := h.pfByNetdev(pfName)
	if pf == nil || vf < 0 || vf >= pf.num {
		return syscall.EINVAL
	}
	for field, err := range h.failSet {
		if strings.Contains(s.String(), field) {
			return err
		}
	}
	for field := range h.ignoreSet {
		switch field {
		case "trust":
			s.Trust = nil
		case "mac":
			s.MAC = ""
		}
	}
	pci := h.vfPCI(pf, vf)
	h.vfs[pci] = s.Apply(h.vfs[pci])
	h.logOp("set %s vf %d %s", pfName, vf, s)
	return nil
}

// FeatureSetter.

func (h *fakeHost) Feature(dev, name string) (Feature, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.features[dev][name]
	if !ok {
		return Feature{}, fmt.Errorf("feature %s of %s: %w", name, dev, ErrNotFound)
	}
	return f, nil
}

func (h *fakeHost) SetFeature(dev, name string, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.features[dev][name]
	if !ok {
		return syscall.ENODEV
	}
	if f.Changeable && !h.ignoreFeat {
		f.Active = on
		h.features[dev][name] = f
		h.logOp("feature %s %s %s", dev, name, onOff(on))
	}
	return nil // like SFEATURES: success even when nothing changed
}

// render prints the host's state, one sorted line per object.
func (h *fakeHost) render() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var lines []string
	for _, pf := range h.pfs {
		lines = append(lines, fmt.Sprintf("pf %s %s numvfs=%d eswitch=%s", pf.pci, pf.netdev, pf.num, pf.mode))
		for i := range pf.num {
			pci := h.vfPCI(pf, i)
			st := h.vfs[pci]
			netdev := "-"
			if exists(h.tree.Root, "class/net/"+vfNetdev(pf, i)) {
				netdev = vfNetdev(pf, i)
			}
			rep := "-"
			if exists(h.tree.Root, "class/net/"+repNetdev(pf, i)) {
				rep = repNetdev(pf, i)
			}
			lines = append(lines, fmt.Sprintf("vf %s pf=%s index=%d driver=%s netdev=%s rep=%s mac=%s vlan=%d/%d trust=%s spoofchk=%s state=%s rate=%d/%d",
				pci, pf.pci, i, orDash(h.driverOf(pci)), netdev, rep, st.MAC, st.VLAN.ID, st.VLAN.QoS,
				onOff(st.Trust), onOff(st.SpoofChk), st.LinkState, st.Rate.MinMbps, st.Rate.MaxMbps))
		}
	}
	for dev, fs := range h.features {
		for name, f := range fs {
			lines = append(lines, fmt.Sprintf("feature %s %s=%s changeable=%t", dev, name, onOff(f.Active), f.Changeable))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func exists(root, rel string) bool {
	_, err := os.Lstat(filepath.Join(root, rel))
	return err == nil
}

// fakeReader adapts fakeHost to representor.EswitchReader.
type fakeReader struct{ h *fakeHost }

func (r fakeReader) EswitchMode(bus, dev string) (nic.EswitchMode, error) {
	if bus != "pci" {
		return 0, errors.New("not pci")
	}
	return r.h.EswitchMode(dev)
}

var _ Discoverer = (*representor.SysfsScanner)(nil)

var quiet = slog.New(slog.DiscardHandler)

func scan(t *testing.T, h *fakeHost) representor.Snapshot {
	t.Helper()
	snap, err := h.scanner().Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
