package emulated

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

var _ nic.Device = (*Device)(nil)

// eventBuffer is the capacity of the Events channel; more events wait,
// in order, in the device's queue.
const eventBuffer = 16

// Device is an emulated SmartNIC: PF uplinks, VFs with their representors,
// tunnel devices, and a hardware and a software flow table. It is safe for
// concurrent use.
type Device struct {
	cfg     Config
	profile *nic.Profile
	baseMAC [6]byte
	pci     pciAddr // PF 0
	swID    string
	kinds   nic.PortKinds

	mu        sync.RWMutex
	closed    bool
	mode      nic.EswitchMode
	ports     map[string]nic.Port
	vfs       []VFConfig
	tables    [3]table // indexed by flow.Plane: skip_sw, skip_hw, no flag
	tableSize int      // hardware capacity; 0: unlimited
	faults    []*activeFault

	latency  atomic.Int64 // time.Duration
	paceMu   sync.Mutex
	paceNext time.Time

	events    *eventQueue
	closeOnce sync.Once
}

// New builds an emulated device from cfg with the profile cfg.Profile
// names in reg (nil: nic.NewRegistry()).
func New(cfg Config, reg *nic.Registry) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new emulated NIC: %w", err)
	}
	if reg == nil {
		reg = nic.NewRegistry()
	}
	p, ok := reg.Lookup(cfg.Profile)
	if !ok {
		return nil, fmt.Errorf("new emulated NIC: profile: unknown profile %q", cfg.Profile)
	}
	return newDevice(cfg, p)
}

// newDevice builds a device from a validated config and a profile.
func newDevice(cfg Config, p *nic.Profile) (*Device, error) {
	cfg.Tunnels = slices.Clone(cfg.Tunnels)
	cfg.Faults = slices.Clone(cfg.Faults)
	// The device's own copy of the profile carries the configured table
	// size, so that what it reports matches what it enforces.
	p = p.Clone()
	if cfg.HWTableSize > 0 {
		p.HWTableSize = cfg.HWTableSize
	}
	var faults []*activeFault
	for i, s := range cfg.Faults {
		f, errs := s.fault(fmt.Sprintf("faults[%d]", i))
		if len(errs) > 0 {
			return nil, fmt.Errorf("new emulated NIC: %w", errs[0])
		}
		faults = append(faults, &activeFault{Fault: f, left: f.Count})
	}
	d := &Device{cfg: cfg, profile: p, ports: map[string]nic.Port{}, events: newEventQueue(eventBuffer)}
	d.baseMAC, _ = parseMAC(cfg.BaseMAC)
	d.pci, _ = parsePCI(cfg.PCIAddress)
	d.swID = switchID(d.baseMAC)
	d.kinds = d.portKind
	d.mode, _ = parseEswitchMode(cfg.EswitchMode)
	d.tableSize = p.HWTableSize
	for i := range d.tables {
		d.tables[i].flows = map[string]entry{}
	}
	d.latency.Store(int64(cfg.Latency))
	d.faults = faults
	for i := range cfg.Ports {
		d.ports[uplinkName(i)] = d.uplinkPort(i)
	}
	for i, t := range cfg.Tunnels {
		t = t.withDefaults()
		d.ports[t.Name] = nic.Port{Name: t.Name, Kind: nic.PortTunnel, PF: -1, VF: -1, MTU: 1450, Up: true,
			MAC: macPlus(d.baseMAC, macTunnelOffset+i), TunnelDstPort: t.DstPort}
	}
	d.vfs = make([]VFConfig, cfg.NumVFs)
	for n := range cfg.NumVFs {
		d.vfs[n] = d.defaultVF(n)
		d.ports[d.vfName(n)] = d.vfPort(n)
		if d.mode == nic.EswitchSwitchdev {
			d.ports[repName(0, n)] = d.repPort(n)
		}
	}
	return d, nil
}

func (d *Device) uplinkPort(pf int) nic.Port {
	return nic.Port{Name: uplinkName(pf), Kind: nic.PortUplink, PhysPortName: uplinkName(pf), SwitchID: d.swID,
		PF: pf, VF: -1, PCIAddress: d.pci.plus(pf).String(), MAC: macPlus(d.baseMAC, pf), MTU: 1500, Up: true}
}

// vfName is VF n's netdev: PF 0's predictable name plus "v<n>".
func (d *Device) vfName(n int) string { return fmt.Sprintf("%sv%d", d.pci.netdevName(), n) }

func (d *Device) vfPort(n int) nic.Port {
	p := nic.Port{Name: d.vfName(n), Kind: nic.PortVF, PF: 0, VF: n,
		PCIAddress: vfPCI(d.pci, d.cfg.Ports, n).String(), MTU: 1500}
	if d.mode == nic.EswitchSwitchdev {
		p.Peer = repName(0, n)
	}
	d.applyVF(&p, d.vfs[n])
	return p
}

func (d *Device) repPort(n int) nic.Port {
	return nic.Port{Name: repName(0, n), Kind: nic.PortRepresentor, PhysPortName: repName(0, n), SwitchID: d.swID,
		PF: 0, VF: n, PCIAddress: vfPCI(d.pci, d.cfg.Ports, n).String(), MAC: macPlus(d.baseMAC, macRepOffset+n),
		MTU: 1500, Up: true, Peer: d.vfName(n)}
}

// portKind is the device's nic.PortKinds. Called with d.mu held.
func (d *Device) portKind(name string) nic.PortKind {
	return d.ports[name].Kind
}

// Info describes the device.
func (d *Device) Info() nic.Info {
	fw := d.cfg.FirmwareVersion
	if fw == "" {
		fw = firmwareFor(d.profile.Driver)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return nic.Info{
		Name:            uplinkName(0),
		Driver:          d.profile.Driver,
		Model:           d.profile.Model,
		Profile:         d.profile.Name,
		PCIAddress:      d.pci.String(),
		FirmwareVersion: fw,
		SwitchID:        d.swID,
		Emulated:        true,
		EswitchMode:     d.mode,
		NumVFs:          len(d.vfs),
		TotalVFs:        d.cfg.TotalVFs,
	}
}

// Profile is the capability profile the hardware plane enforces; its
// HWTableSize is the configured one (Config.HWTableSize when set).
func (d *Device) Profile() *nic.Profile { return d.profile }

// Ports lists the ports: uplinks, representors, VFs, tunnels.
func (d *Device) Ports() []nic.Port {
	d.mu.RLock()
	out := slices.Collect(maps.Values(d.ports))
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b nic.Port) int { return portLess(&a, &b) })
	return out
}

// Port returns one port by name.
func (d *Device) Port(name string) (nic.Port, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.ports[name]
	return p, ok
}

// EswitchMode returns the current eswitch mode.
func (d *Device) EswitchMode() nic.EswitchMode {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.mode
}

// SetEswitchMode switches the eswitch. Going to legacy removes the
// representors (EventPortRemoved each) with the flows on them, empties the
// hardware table, and makes hardware Program refuse every op; going back
// to switchdev re-creates the representors (EventPortAdded) and reports
// the hardware table free (EventCapacityFreed).
// Equivalent to: devlink dev eswitch set pci/0000:08:00.0 mode switchdev
func (d *Device) SetEswitchMode(ctx context.Context, mode nic.EswitchMode) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set eswitch mode %s: %w", mode, err)
	}
	if mode != nic.EswitchLegacy && mode != nic.EswitchSwitchdev {
		return fmt.Errorf("set eswitch mode %d: unknown mode", mode)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("set eswitch mode %s: %w", mode, nic.ErrClosed)
	}
	if d.mode == mode {
		return nil
	}
	d.mode = mode
	if mode == nic.EswitchLegacy {
		gone := make(map[string]bool, len(d.vfs))
		for n := range d.vfs {
			gone[repName(0, n)] = true
		}
		clear(d.tables[flow.Hardware].flows)
		d.tables[flow.Hardware].gen++
		d.unoffloadBoth()
		d.flushPorts(gone)
		for n := range d.vfs {
			d.removePort(repName(0, n))
			d.changePort(d.vfPort(n))
		}
		return nil
	}
	for n := range d.vfs {
		d.addPort(d.repPort(n))
		d.changePort(d.vfPort(n))
	}
	d.events.push(nic.Event{Kind: nic.EventCapacityFreed})
	return nil
}

// addPort, removePort and changePort update d.ports and report the
// change. Called with d.mu held.
func (d *Device) addPort(p nic.Port) {
	d.ports[p.Name] = p
	d.events.push(nic.Event{Kind: nic.EventPortAdded, Port: p})
}

func (d *Device) removePort(name string) {
	if p, ok := d.ports[name]; ok {
		delete(d.ports, name)
		d.events.push(nic.Event{Kind: nic.EventPortRemoved, Port: p})
	}
}

func (d *Device) changePort(p nic.Port) {
	if old, ok := d.ports[p.Name]; ok && old != p {
		d.ports[p.Name] = p
		d.events.push(nic.Event{Kind: nic.EventPortChanged, Port: p})
	}
}

// Events delivers port and capacity events; Close closes it.
func (d *Device) Events() <-chan nic.Event { return d.events.out }

// Close stops the device: Program, Flows and the setters fail with
// nic.ErrClosed and Events is closed. Closing twice is not an error.
func (d *Device) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.closeOnce.Do(d.events.close)
	return nil
}

func parseEswitchMode(s string) (nic.EswitchMode, bool) {
	switch s {
	case "switchdev":
		return nic.EswitchSwitchdev, true
	case "legacy":
		return nic.EswitchLegacy, true
	}
	return 0, false
}
