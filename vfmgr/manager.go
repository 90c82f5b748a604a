package vfmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor"
)

// Discoverer reads the SR-IOV topology (*representor.SysfsScanner).
type Discoverer interface {
	Scan(ctx context.Context) (representor.Snapshot, error)
}

// VFConfigurer reads and changes VF settings through the PF netdev.
type VFConfigurer interface {
	// VFState returns VF vf's configuration as the PF reports it.
	VFState(pf string, vf int) (VFState, error)
	// SetVF applies the set fields of s to VF vf, in the order MAC, VLAN,
	// rate, spoof check, trust, link state.
	SetVF(pf string, vf int, s VFSettings) error
}

// Feature is a netdev offload feature's state.
type Feature struct {
	// Changeable is false for features the driver fixes ("[fixed]").
	Changeable bool
	Active     bool
}

// FeatureSetter reads and changes netdev features (ethtool -k / -K).
type FeatureSetter interface {
	Feature(dev, name string) (Feature, error)
	SetFeature(dev, name string, on bool) error
}

// EswitchSetter reads and changes a PF's devlink eswitch mode.
type EswitchSetter interface {
	EswitchMode(pfPCI string) (nic.EswitchMode, error)
	SetEswitchMode(pfPCI string, mode nic.EswitchMode) error
}

// HWTCOffload is the ethtool feature that lets tc flower rules reach hardware.
const HWTCOffload = "hw-tc-offload"

// ManagerConfig wires a Manager. All interfaces are required.
type ManagerConfig struct {
	Discover Discoverer
	PCI      PCI
	VFs      VFConfigurer
	Features FeatureSetter
	Eswitch  EswitchSetter
	// Orders are the per-driver eswitch change orders. Default DefaultEswitchOrders.
	Orders []EswitchOrder
	// Logger gets one line per step taken. Default slog.Default().
	Logger *slog.Logger
}

// Manager changes PFs and VFs. It is safe for concurrent use; changes are
// serialised.
type Manager struct {
	cfg ManagerConfig
	mu  sync.Mutex
}

// NewManager checks cfg and returns a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	switch {
	case cfg.Discover == nil:
		return nil, errors.New("new vf manager: no discoverer")
	case cfg.PCI == nil:
		return nil, errors.New("new vf manager: no PCI")
	case cfg.VFs == nil:
		return nil, errors.New("new vf manager: no VF configurer")
	case cfg.Features == nil:
		return nil, errors.New("new vf manager: no feature setter")
	case cfg.Eswitch == nil:
		return nil, errors.New("new vf manager: no eswitch setter")
	}
	if cfg.Orders == nil {
		cfg.Orders = DefaultEswitchOrders
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg}, nil
}

// PFConfig is the desired state of a PF; nil fields are left as they are.
type PFConfig struct {
	NumVFs  *int             `json:"numVFs,omitempty"`
	Eswitch *nic.EswitchMode `json:"eswitch,omitempty"`
	// HWTCOffload enables hw-tc-offload on the uplink (or PF) netdev.
	HWTCOffload bool `json:"hwTCOffload,omitempty"`
}

// ConfigurePF brings a PF (netdev name or PCI address) to want. A mode
// change runs the driver's EswitchOrder; otherwise only the VF count is
// changed. Applying the same config twice does nothing the second time.
// Changing the VF count or mode destroys VFs: release allocations first.
func (m *Manager) ConfigurePF(ctx context.Context, pf string, want PFConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	info, err := m.pf(ctx, pf)
	if err != nil {
		return fmt.Errorf("configure pf %s: %w", pf, err)
	}
	target := info.NumVFs
	if want.NumVFs != nil {
		target = *want.NumVFs
		if target < 0 || target > info.TotalVFs {
			return fmt.Errorf("configure pf %s: numvfs %d: %w: the PF supports 0-%d", pf, target, ErrInvalid, info.TotalVFs)
		}
	}
	if want.Eswitch != nil {
		cur, err := m.cfg.Eswitch.EswitchMode(info.PCI)
		if err != nil {
			return fmt.Errorf("configure pf %s: %w", pf, err)
		}
		if cur != *want.Eswitch {
			if err := m.changeMode(ctx, info, *want.Eswitch, target); err != nil {
				return fmt.Errorf("configure pf %s: %w", pf, err)
			}
		}
	}
	// The mode change usually created the VFs already; then this is a no-op.
	cur, err := m.cfg.PCI.NumVFs(info.PCI)
	if err != nil {
		return fmt.Errorf("configure pf %s: %w", pf, err)
	}
	if cur != target {
		m.cfg.Logger.Info("setting VF count", "pf", info.Name, "pci", info.PCI, "from", cur, "to", target)
		if err := m.cfg.PCI.SetNumVFs(info.PCI, target); err != nil {
			return fmt.Errorf("configure pf %s: %w", pf, err)
		}
	}
	if want.HWTCOffload {
		// The mode change may have replaced the netdevs: look again.
		info, err := m.pf(ctx, info.PCI)
		if err != nil {
			return fmt.Errorf("configure pf %s: %w", pf, err)
		}
		dev := info.Uplink
		if dev == "" {
			dev = info.Name
		}
		if err := m.enableFeature(dev, HWTCOffload); err != nil {
			return fmt.Errorf("configure pf %s: %w", pf, err)
		}
	}
	return nil
}

// changeMode runs the driver's steps. When a step fails after VFs were
// unbound, they are bound back before returning.
func (m *Manager) changeMode(ctx context.Context, info representor.PF, mode nic.EswitchMode, numVFs int) error {
	order := findOrder(m.cfg.Orders, info.Driver)
	if order.Fixed {
		return fmt.Errorf("set eswitch mode %s: %w: driver %s has %s mode only", mode, ErrUnsupported, info.Driver, order.FixedMode)
	}
	unbound := map[string]string{} // VF PCI -> driver
	var unboundOrder []string
	rebind := func() error {
		var errs []error
		for _, pci := range unboundOrder {
			if err := m.cfg.PCI.BindDriver(pci, unbound[pci]); err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
		}
		unboundOrder = nil
		return errors.Join(errs...)
	}
	for _, step := range order.Steps {
		if err := ctx.Err(); err != nil {
			return errors.Join(fmt.Errorf("set eswitch mode %s before %s: %w", mode, step, err), rebind())
		}
		m.cfg.Logger.Info("eswitch mode change step", "pf", info.Name, "pci", info.PCI, "driver", info.Driver,
			"mode", mode.String(), "step", string(step))
		var err error
		switch step {
		case StepCreateVFs:
			err = m.cfg.PCI.SetNumVFs(info.PCI, numVFs)
		case StepEnsureVFs:
			err = m.cfg.PCI.SetNumVFs(info.PCI, max(numVFs, 1))
		case StepRemoveVFs:
			err = m.cfg.PCI.SetNumVFs(info.PCI, 0)
		case StepUnbindVFs:
			var cur representor.PF
			if cur, err = m.pf(ctx, info.PCI); err == nil {
				for _, vf := range cur.VFs {
					if vf.Driver == "" {
						continue
					}
					if err = m.cfg.PCI.BindDriver(vf.PCI, ""); err != nil {
						break
					}
					unbound[vf.PCI] = vf.Driver
					unboundOrder = append(unboundOrder, vf.PCI)
				}
			}
		case StepSetMode:
			err = m.cfg.Eswitch.SetEswitchMode(info.PCI, mode)
		case StepRebindVFs:
			err = rebind()
		default:
			err = fmt.Errorf("%w: unknown step %q", ErrInvalid, step)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("set eswitch mode %s: step %s: %w", mode, step, err), rebind())
		}
	}
	return nil
}

// EnableHWTCOffload turns hw-tc-offload on for dev and confirms it by
// reading it back (ethtool's SFEATURES succeeds even when nothing changed).
// Equivalent to: ethtool -K DEV hw-tc-offload on
func (m *Manager) EnableHWTCOffload(dev string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enableFeature(dev, HWTCOffload)
}

func (m *Manager) enableFeature(dev, name string) error {
	f, err := m.cfg.Features.Feature(dev, name)
	if err != nil {
		return fmt.Errorf("enable %s on %s: %w", name, dev, err)
	}
	if f.Active {
		return nil
	}
	if !f.Changeable {
		return fmt.Errorf("enable %s on %s: %w: the feature is fixed off", name, dev, ErrUnsupported)
	}
	m.cfg.Logger.Info("enabling feature", "dev", dev, "feature", name)
	if err := m.cfg.Features.SetFeature(dev, name, true); err != nil {
		return fmt.Errorf("enable %s on %s: %w", name, dev, err)
	}
	f, err = m.cfg.Features.Feature(dev, name)
	if err != nil {
		return fmt.Errorf("enable %s on %s: read back: %w", name, dev, err)
	}
	if !f.Active {
		return fmt.Errorf("enable %s on %s: %w: still off after the change", name, dev, ErrNotApplied)
	}
	return nil
}

// VFState reads VF vf of pf (PF netdev name).
// Equivalent to: ip link show dev PF (the "vf N" lines)
func (m *Manager) VFState(pf string, vf int) (VFState, error) {
	s, err := m.cfg.VFs.VFState(pf, vf)
	if err != nil {
		return VFState{}, fmt.Errorf("read pf %s vf %d: %w", pf, vf, err)
	}
	return s, nil
}

// ApplyVF changes only the fields of s that differ from the VF's current
// state, then reads them back; a field the driver silently ignored is
// ErrNotApplied.
// Equivalent to: ip link set dev PF vf N mac … vlan … qos … trust … spoofchk … state … min_tx_rate … max_tx_rate …
func (m *Manager) ApplyVF(pf string, vf int, s VFSettings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyVF(pf, vf, s)
}

func (m *Manager) applyVF(pf string, vf int, s VFSettings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("set pf %s vf %d: %w", pf, vf, err)
	}
	cur, err := m.cfg.VFs.VFState(pf, vf)
	if err != nil {
		return fmt.Errorf("set pf %s vf %d: %w", pf, vf, err)
	}
	d := s.Delta(cur)
	if d.IsZero() {
		return nil
	}
	m.cfg.Logger.Info("setting VF", "pf", pf, "vf", vf, "change", d.String())
	if err := m.cfg.VFs.SetVF(pf, vf, d); err != nil {
		return fmt.Errorf("set pf %s vf %d %s: %w", pf, vf, d, err)
	}
	after, err := m.cfg.VFs.VFState(pf, vf)
	if err != nil {
		return fmt.Errorf("set pf %s vf %d: read back: %w", pf, vf, err)
	}
	if left := d.Delta(after); !left.IsZero() {
		return fmt.Errorf("set pf %s vf %d: %w: %s", pf, vf, ErrNotApplied, left)
	}
	return nil
}

// BindDriver binds the VF (PCI address) to driver, "" to unbind it.
func (m *Manager) BindDriver(vfPCI, driver string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.PCI.BindDriver(vfPCI, driver)
}

// Scan returns the current topology from the Discoverer.
func (m *Manager) Scan(ctx context.Context) (representor.Snapshot, error) {
	return m.cfg.Discover.Scan(ctx)
}

func (m *Manager) pf(ctx context.Context, nameOrPCI string) (representor.PF, error) {
	snap, err := m.cfg.Discover.Scan(ctx)
	if err != nil {
		return representor.PF{}, err
	}
	pf, err := snap.PF(nameOrPCI)
	if err != nil {
		return representor.PF{}, fmt.Errorf("%w: no SR-IOV PF %q", ErrNotFound, nameOrPCI)
	}
	return pf, nil
}
