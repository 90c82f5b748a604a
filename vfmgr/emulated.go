package vfmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/representor"
)

// EmulatedDevice is the part of an emulated NIC the Emulated adapter uses
// (*emulated.Device).
type EmulatedDevice interface {
	Info() nic.Info
	Profile() *nic.Profile
	Ports() []nic.Port
	VFs() []emulated.VF
	VF(index int) (emulated.VF, error)
	SetVF(index int, c emulated.VFConfig) error
	SetNumVFs(n int) error
	SetEswitchMode(ctx context.Context, mode nic.EswitchMode) error
}

var _ EmulatedDevice = (*emulated.Device)(nil)

// Emulated lets a Manager, and so an Allocator, run on an emulated NIC: it
// is the Discoverer, VFConfigurer, PCI, FeatureSetter and EswitchSetter of
// the device. Its topology has one PF per uplink ("p0", "p1", ...), VFs on
// PF 0 only. The device has no PCI driver model, so the adapter keeps each
// VF's bound driver itself: VFs start on the NIC's VF driver (mlx5_core for
// mlx5, nfp, iavf for ice), only that driver gives a VF its netdev, and
// binding to a driver outside EmulatedDrivers leaves the VF unbound, as a
// probe with an unloaded driver does. It is safe for concurrent use.
type Emulated struct {
	dev EmulatedDevice
	ids emulatedIDs

	mu sync.Mutex
	// drivers holds the VFs bound elsewhere than ids.vfDriver ("" unbound),
	// by VF PCI address.
	drivers map[string]string
}

var (
	_ Discoverer    = (*Emulated)(nil)
	_ VFConfigurer  = (*Emulated)(nil)
	_ PCI           = (*Emulated)(nil)
	_ FeatureSetter = (*Emulated)(nil)
	_ EswitchSetter = (*Emulated)(nil)
)

// EmulatedDrivers are the drivers an Emulated VF binds to besides the
// NIC's own VF driver: the userspace I/O drivers a VM or DPDK uses.
var EmulatedDrivers = []string{"vfio-pci", "uio_pci_generic"}

// emulatedIDs are the PCI identity of the emulated PF and its VFs.
type emulatedIDs struct {
	pfDriver, vendor, pfDevice string
	vfDriver, vfDevice         string
}

// vfIdentity is each PF driver's VF device ID and VF driver, from the PCI
// ID database: ConnectX-6 Dx and BlueField-2 VFs are 15b3:101e on
// mlx5_core, Agilio VFs 19ee:6003 on nfp, E810 VFs 8086:1889 on iavf.
var vfIdentity = map[string]struct{ device, driver string }{
	nic.DriverMLX5: {"101e", nic.DriverMLX5},
	nic.DriverNFP:  {"6003", nic.DriverNFP},
	nic.DriverICE:  {"1889", "iavf"},
}

// NewEmulated returns the adapter over dev. Every VF starts bound to the
// VF driver.
func NewEmulated(dev EmulatedDevice) *Emulated {
	p := dev.Profile()
	ids := emulatedIDs{pfDriver: p.Driver, vendor: strings.ToLower(p.PCIVendor)}
	if len(p.PCIDevices) > 0 {
		ids.pfDevice = strings.ToLower(p.PCIDevices[0])
	}
	ids.vfDevice, ids.vfDriver = ids.pfDevice, ids.pfDriver
	if v, ok := vfIdentity[p.Driver]; ok {
		ids.vfDevice, ids.vfDriver = v.device, v.driver
	}
	return &Emulated{dev: dev, ids: ids, drivers: map[string]string{}}
}

// ManagerConfig returns a config with e in every role, for NewManager.
func (e *Emulated) ManagerConfig(log *slog.Logger) ManagerConfig {
	return ManagerConfig{Discover: e, PCI: e, VFs: e, Features: e, Eswitch: e, Logger: log}
}

// Scan builds the topology from the device's ports and VFs.
func (e *Emulated) Scan(ctx context.Context) (representor.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return representor.Snapshot{}, fmt.Errorf("scan emulated NIC: %w", err)
	}
	info := e.dev.Info()
	vfs := e.dev.VFs()
	ports := e.dev.Ports()
	e.mu.Lock()
	drivers := make(map[string]string, len(vfs))
	for _, vf := range vfs {
		drivers[vf.PCIAddress] = e.driverLocked(vf.PCIAddress)
	}
	e.mu.Unlock()

	byName := make(map[string]nic.Port, len(ports))
	for _, p := range ports {
		byName[p.Name] = p
	}
	snap := representor.Snapshot{Links: map[string]representor.Link{}}
	link := func(name string) {
		if p, ok := byName[name]; ok && name != "" {
			l := representor.Link{Name: name, MTU: p.MTU, Up: p.Up, PhysPortName: p.PhysPortName, SwitchID: p.SwitchID}
			if p.MAC != ([6]byte{}) {
				l.MAC = net.HardwareAddr(p.MAC[:]).String()
			}
			snap.Links[name] = l
		}
	}
	switchdev := info.EswitchMode == nic.EswitchSwitchdev
	for _, p := range ports {
		if p.Kind != nic.PortUplink {
			continue
		}
		pf := representor.PF{
			Name: p.Name, PCI: p.PCIAddress, Driver: e.ids.pfDriver, Vendor: e.ids.vendor, Device: e.ids.pfDevice,
			Index: p.PF, SwitchID: info.SwitchID, Eswitch: info.EswitchMode, LinkType: "ether",
		}
		if switchdev {
			pf.PortName, pf.Uplink = p.PhysPortName, p.Name
		}
		if p.PF == 0 {
			pf.NumVFs, pf.TotalVFs = len(vfs), info.TotalVFs
			for _, vf := range vfs {
				v := representor.VF{
					Index: vf.Index, PCI: vf.PCIAddress, Vendor: e.ids.vendor, Device: e.ids.vfDevice,
					Driver: drivers[vf.PCIAddress], Representor: vf.Representor, LinkType: "ether",
				}
				if v.Driver == e.ids.vfDriver {
					v.Netdev = vf.Netdev
				}
				link(v.Netdev)
				link(v.Representor)
				pf.VFs = append(pf.VFs, v)
			}
		}
		link(p.Name)
		snap.PFs = append(snap.PFs, pf)
	}
	slices.SortFunc(snap.PFs, func(a, b representor.PF) int { return strings.Compare(a.PCI, b.PCI) })
	return snap, nil
}

// checkPF0 fails unless pf names PF 0 by netdev or PCI address.
func (e *Emulated) checkPF0(pf string) error {
	info := e.dev.Info()
	if pf != info.Name && pf != info.PCIAddress {
		return fmt.Errorf("pf %s: %w: the emulated NIC's VFs are on %s", pf, ErrNotFound, info.Name)
	}
	return nil
}

// VFState reads VF vf's config from the device.
// Equivalent to: ip link show dev p0 (the "vf N" line)
func (e *Emulated) VFState(pf string, vf int) (VFState, error) {
	if err := e.checkPF0(pf); err != nil {
		return VFState{}, err
	}
	v, err := e.dev.VF(vf)
	if err != nil {
		return VFState{}, fmt.Errorf("vf %d of %s: %w: %w", vf, pf, ErrNotFound, err)
	}
	return stateFromEmulated(v.Config), nil
}

func stateFromEmulated(c emulated.VFConfig) VFState {
	s := VFState{
		MAC:       net.HardwareAddr(c.MAC[:]).String(),
		VLAN:      VLAN{ID: int(c.VLAN), QoS: int(c.QoS)},
		Trust:     c.Trust,
		SpoofChk:  c.SpoofChk,
		LinkState: LinkAuto,
		Rate:      Rate{MinMbps: c.MinTxRate, MaxMbps: c.MaxTxRate},
	}
	switch c.LinkState {
	case emulated.VFLinkEnable:
		s.LinkState = LinkEnable
	case emulated.VFLinkDisable:
		s.LinkState = LinkDisable
	}
	return s
}

// SetVF applies the set fields of s to VF vf in one device change. The
// emulated NIC has no 802.1ad port VLANs: such a VLAN is ErrUnsupported.
// Equivalent to: ip link set dev p0 vf N mac M vlan V qos Q trust on|off spoofchk on|off state S min_tx_rate A max_tx_rate B
func (e *Emulated) SetVF(pf string, vf int, s VFSettings) error {
	if err := e.checkPF0(pf); err != nil {
		return err
	}
	v, err := e.dev.VF(vf)
	if err != nil {
		return fmt.Errorf("set vf %d on %s: %w: %w", vf, pf, ErrNotFound, err)
	}
	c := v.Config
	if s.MAC != "" {
		hw, err := net.ParseMAC(s.MAC)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("set vf %d mac %q on %s: %w: not an Ethernet address", vf, s.MAC, pf, ErrInvalid)
		}
		copy(c.MAC[:], hw)
	}
	if vl := s.VLAN; vl != nil {
		if vl.proto() != 0x8100 && (vl.ID != 0 || vl.QoS != 0) {
			return fmt.Errorf("set vf %d vlan %d proto %#04x on %s: %w: the emulated NIC has 802.1Q port VLANs only",
				vf, vl.ID, vl.Proto, pf, ErrUnsupported)
		}
		if vl.ID < 0 || vl.ID > 4095 || vl.QoS < 0 || vl.QoS > 7 {
			return fmt.Errorf("set vf %d vlan %d qos %d on %s: %w", vf, vl.ID, vl.QoS, pf, ErrInvalid)
		}
		c.VLAN, c.QoS = uint16(vl.ID), uint8(vl.QoS)
	}
	if s.Trust != nil {
		c.Trust = *s.Trust
	}
	if s.SpoofChk != nil {
		c.SpoofChk = *s.SpoofChk
	}
	switch s.LinkState {
	case "":
	case LinkAuto:
		c.LinkState = emulated.VFLinkAuto
	case LinkEnable:
		c.LinkState = emulated.VFLinkEnable
	case LinkDisable:
		c.LinkState = emulated.VFLinkDisable
	default:
		return fmt.Errorf("set vf %d state %q on %s: %w", vf, s.LinkState, pf, ErrInvalid)
	}
	if r := s.Rate; r != nil {
		c.MinTxRate, c.MaxTxRate = r.MinMbps, r.MaxMbps
	}
	if err := e.dev.SetVF(vf, c); err != nil {
		if errors.Is(err, nic.ErrNotFound) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return fmt.Errorf("set vf %d on %s: %w", vf, pf, err)
	}
	return nil
}

// NumVFs returns the VF count of the PF at PCI address pf.
func (e *Emulated) NumVFs(pf string) (int, error) {
	idx, err := e.pfIndex(pf)
	if err != nil {
		return 0, err
	}
	if idx != 0 {
		return 0, nil
	}
	return len(e.dev.VFs()), nil
}

// SetNumVFs changes PF 0's VF count through 0, as sysfs needs. The new
// VFs are bound to the VF driver.
// Equivalent to: echo 0 > sriov_numvfs; echo n > sriov_numvfs
func (e *Emulated) SetNumVFs(pf string, n int) error {
	idx, err := e.pfIndex(pf)
	if err != nil {
		return fmt.Errorf("set numvfs of %s to %d: %w", pf, n, err)
	}
	if idx != 0 {
		if n == 0 {
			return nil
		}
		return fmt.Errorf("set numvfs of %s to %d: %w: only PF 0 of the emulated NIC has VFs", pf, n, ErrUnsupported)
	}
	if n < 0 || n > e.dev.Info().TotalVFs {
		return fmt.Errorf("set numvfs of %s to %d: %w: the PF supports 0-%d", pf, n, ErrInvalid, e.dev.Info().TotalVFs)
	}
	cur := len(e.dev.VFs())
	if cur == n {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur != 0 {
		if err := e.dev.SetNumVFs(0); err != nil {
			return fmt.Errorf("set numvfs of %s to 0: %w", pf, err)
		}
		clear(e.drivers)
	}
	if n > 0 {
		if err := e.dev.SetNumVFs(n); err != nil {
			return fmt.Errorf("set numvfs of %s to %d: %w", pf, n, err)
		}
	}
	return nil
}

// Driver returns the driver of the PF or VF at PCI address dev.
func (e *Emulated) Driver(dev string) (string, error) {
	if _, err := e.pfIndex(dev); err == nil {
		return e.ids.pfDriver, nil
	}
	if !e.isVF(dev) {
		return "", fmt.Errorf("driver of %s: %w", dev, ErrNotFound)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.driverLocked(dev), nil
}

func (e *Emulated) driverLocked(vfPCI string) string {
	if d, ok := e.drivers[vfPCI]; ok {
		return d
	}
	return e.ids.vfDriver
}

// BindDriver binds the VF at PCI address dev to driver ("" unbinds it).
// A driver that is neither the VF driver nor in EmulatedDrivers leaves
// the VF unbound and fails with ErrNotApplied, like a probe with a driver
// that is not loaded. PFs stay on their driver: ErrUnsupported.
func (e *Emulated) BindDriver(dev, driver string) error {
	if _, err := e.pfIndex(dev); err == nil {
		if driver == e.ids.pfDriver {
			return nil
		}
		return fmt.Errorf("bind %s to %q: %w: the emulated PF stays on %s", dev, driver, ErrUnsupported, e.ids.pfDriver)
	}
	if !e.isVF(dev) {
		return fmt.Errorf("bind %s to %q: %w", dev, driver, ErrNotFound)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.driverLocked(dev) == driver {
		return nil
	}
	switch {
	case driver == e.ids.vfDriver:
		delete(e.drivers, dev)
	case driver == "" || slices.Contains(EmulatedDrivers, driver):
		e.drivers[dev] = driver
	default:
		e.drivers[dev] = ""
		return fmt.Errorf("bind %s to %s: %w: bound to \"\" after probing (driver not loaded?)", dev, driver, ErrNotApplied)
	}
	return nil
}

// Feature reports hw-tc-offload on every uplink and representor as on and
// fixed: the emulated hardware plane cannot be switched off.
// Equivalent to: ethtool -k DEV
func (e *Emulated) Feature(dev, name string) (Feature, error) {
	if err := e.offloadPort(dev, name); err != nil {
		return Feature{}, err
	}
	return Feature{Changeable: false, Active: true}, nil
}

// SetFeature accepts turning hw-tc-offload on, which it is already.
// Equivalent to: ethtool -K DEV NAME on|off
func (e *Emulated) SetFeature(dev, name string, on bool) error {
	if err := e.offloadPort(dev, name); err != nil {
		return fmt.Errorf("set feature %s %s on %s: %w", name, onOff(on), dev, err)
	}
	if !on {
		return fmt.Errorf("set feature %s off on %s: %w: fixed on in the emulated NIC", name, dev, ErrUnsupported)
	}
	return nil
}

func (e *Emulated) offloadPort(dev, name string) error {
	if name != HWTCOffload {
		return fmt.Errorf("feature %s of %s: %w", name, dev, ErrNotFound)
	}
	for _, p := range e.dev.Ports() {
		if p.Name == dev && (p.Kind == nic.PortUplink || p.Kind == nic.PortRepresentor) {
			return nil
		}
	}
	return fmt.Errorf("feature %s of %s: %w: no such uplink or representor", name, dev, ErrNotFound)
}

// EswitchMode returns the device's mode; every PF shares PF 0's eswitch.
// Equivalent to: devlink dev eswitch show pci/PF
func (e *Emulated) EswitchMode(pfPCI string) (nic.EswitchMode, error) {
	if _, err := e.pfIndex(pfPCI); err != nil {
		return 0, fmt.Errorf("eswitch mode of pci/%s: %w", pfPCI, err)
	}
	return e.dev.Info().EswitchMode, nil
}

// SetEswitchMode changes the device's mode.
// Equivalent to: devlink dev eswitch set pci/PF mode legacy|switchdev
func (e *Emulated) SetEswitchMode(pfPCI string, mode nic.EswitchMode) error {
	if _, err := e.pfIndex(pfPCI); err != nil {
		return fmt.Errorf("set eswitch mode of pci/%s to %s: %w", pfPCI, mode, err)
	}
	if err := e.dev.SetEswitchMode(context.Background(), mode); err != nil {
		return fmt.Errorf("set eswitch mode of pci/%s to %s: %w", pfPCI, mode, err)
	}
	return nil
}

// pfIndex returns the PF number of the uplink at PCI address (or netdev) pf.
func (e *Emulated) pfIndex(pf string) (int, error) {
	for _, p := range e.dev.Ports() {
		if p.Kind == nic.PortUplink && (p.PCIAddress == pf || p.Name == pf) {
			return p.PF, nil
		}
	}
	return 0, fmt.Errorf("pf %s: %w", pf, ErrNotFound)
}

func (e *Emulated) isVF(pci string) bool {
	return slices.ContainsFunc(e.dev.VFs(), func(v emulated.VF) bool { return v.PCIAddress == pci })
}
