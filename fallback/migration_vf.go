package fallback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
)

// VFSettings are what the PF sets for a VF: the workload's MAC, port VLAN,
// trust, spoof check and rate limits. They travel in the bundle so the
// destination VF looks like the source VF to the guest.
type VFSettings struct {
	// MAC in colon form; "" means the device's default address.
	MAC  string `json:"mac,omitempty"`
	VLAN uint16 `json:"vlan,omitempty"`
	// QoS is the port VLAN's priority; it needs a VLAN.
	QoS      uint8 `json:"qos,omitempty"`
	Trust    bool  `json:"trust,omitempty"`
	SpoofChk bool  `json:"spoofchk,omitempty"`
	// MinTxRate and MaxTxRate are in Mbit/s (0: no limit).
	MinTxRate uint32 `json:"minTxRate,omitempty"`
	MaxTxRate uint32 `json:"maxTxRate,omitempty"`
}

// Validate checks the MAC, VLAN and rates.
func (s VFSettings) Validate() error {
	if s.MAC != "" {
		hw, err := net.ParseMAC(s.MAC)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("vf mac %q is not a MAC address", s.MAC)
		}
		if hw[0]&1 != 0 {
			return fmt.Errorf("vf mac %q is a multicast address", s.MAC)
		}
	}
	switch {
	case s.VLAN > 4095:
		return fmt.Errorf("vf vlan %d > 4095", s.VLAN)
	case s.QoS > 7:
		return fmt.Errorf("vf qos %d > 7", s.QoS)
	case s.QoS != 0 && s.VLAN == 0:
		return errors.New("vf qos needs a vlan")
	case s.MaxTxRate != 0 && s.MinTxRate > s.MaxTxRate:
		return fmt.Errorf("vf min_tx_rate %d above max_tx_rate %d", s.MinTxRate, s.MaxTxRate)
	}
	return nil
}

// VFLease is a VF held for a workload, with what Release puts back.
type VFLease struct {
	Owner       string `json:"owner,omitempty"`
	Index       int    `json:"index"`
	PCIAddress  string `json:"pciAddress,omitempty"`
	Netdev      string `json:"netdev,omitempty"`
	Representor string `json:"representor"`
	// Settings are the VF's settings as last applied or read.
	Settings VFSettings `json:"settings"`
	// Restore are the settings Release applies.
	Restore VFSettings `json:"restore"`
}

// VFPool hands out VFs for migrating workloads. The emulated NIC's is
// EmulatedVFs; on Linux, an adapter over vfmgr.Allocator fits.
type VFPool interface {
	// Reserve holds a free VF for owner and applies s; the VF's previous
	// settings go in the lease's Restore.
	Reserve(ctx context.Context, owner string, s VFSettings) (VFLease, error)
	// Configure applies s to the leased VF.
	Configure(ctx context.Context, l VFLease, s VFSettings) (VFLease, error)
	// Lookup describes the VF behind a representor port, its current
	// settings, and the device defaults as Restore. A port that is no VF
	// representor is an error wrapping nic.ErrNotFound.
	Lookup(ctx context.Context, representor string) (VFLease, error)
	// Release applies l.Restore and frees the VF; releasing twice is not an error.
	Release(ctx context.Context, l VFLease) error
}

// VFAdopter is a VFPool that must be told, after a restart, of the VFs
// that migrations in flight still hold, so it does not hand them out.
type VFAdopter interface {
	Adopt(l VFLease)
}

var _ VFAdopter = (*EmulatedVFs)(nil)

// ErrNoVF: the pool has no free VF.
var ErrNoVF = errors.New("no free VF")

// EmulatedVFDevice is the part of an emulated NIC EmulatedVFs uses
// (*emulated.Device).
type EmulatedVFDevice interface {
	VFs() []emulated.VF
	VF(index int) (emulated.VF, error)
	SetVF(index int, c emulated.VFConfig) error
}

// EmulatedVFs is a VFPool over an emulated NIC's VFs. A VF is free when no
// lease holds it and busy (if set) says its representor is unused.
type EmulatedVFs struct {
	dev  EmulatedVFDevice
	busy func(representor string) bool

	mu     sync.Mutex
	leases map[string]VFLease // by owner
}

var _ VFPool = (*EmulatedVFs)(nil)

// NewEmulatedVFs returns a pool over dev. busy reports representors in use
// by workloads (for example: the engine has flows on them); nil treats
// every VF without a lease as free.
func NewEmulatedVFs(dev EmulatedVFDevice, busy func(representor string) bool) *EmulatedVFs {
	return &EmulatedVFs{dev: dev, busy: busy, leases: map[string]VFLease{}}
}

// Adopt records a lease made before a restart, so its VF is not handed out again.
func (p *EmulatedVFs) Adopt(l VFLease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.Owner != "" {
		p.leases[l.Owner] = l
	}
}

// Reserve holds the free VF with the lowest index for owner; reserving
// again for the same owner returns the same VF with s applied.
// Equivalent to: ip link set p0 vf N mac M vlan V qos Q trust on|off spoofchk on|off ...
func (p *EmulatedVFs) Reserve(ctx context.Context, owner string, s VFSettings) (VFLease, error) {
	if err := ctx.Err(); err != nil {
		return VFLease{}, fmt.Errorf("reserve vf for %s: %w", owner, err)
	}
	cfg, err := s.emulated()
	if err != nil {
		return VFLease{}, fmt.Errorf("reserve vf for %s: %w", owner, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.leases[owner]; ok {
		if err := p.dev.SetVF(l.Index, cfg); err != nil {
			return VFLease{}, fmt.Errorf("reserve vf %d for %s: %w", l.Index, owner, err)
		}
		l.Settings = s
		p.leases[owner] = l
		return l, nil
	}
	taken := map[int]bool{}
	for _, l := range p.leases {
		taken[l.Index] = true
	}
	for _, vf := range p.dev.VFs() {
		if taken[vf.Index] || vf.Representor == "" || p.busy != nil && p.busy(vf.Representor) {
			continue
		}
		l := leaseOf(vf)
		l.Owner, l.Restore = owner, l.Settings
		if err := p.dev.SetVF(vf.Index, cfg); err != nil {
			return VFLease{}, fmt.Errorf("reserve vf %d for %s: %w", vf.Index, owner, err)
		}
		l.Settings = s
		p.leases[owner] = l
		return l, nil
	}
	return VFLease{}, fmt.Errorf("reserve vf for %s: %w", owner, ErrNoVF)
}

// Configure applies s to the leased VF.
func (p *EmulatedVFs) Configure(ctx context.Context, l VFLease, s VFSettings) (VFLease, error) {
	if err := ctx.Err(); err != nil {
		return l, fmt.Errorf("configure vf %d: %w", l.Index, err)
	}
	cfg, err := s.emulated()
	if err != nil {
		return l, fmt.Errorf("configure vf %d: %w", l.Index, err)
	}
	if err := p.dev.SetVF(l.Index, cfg); err != nil {
		return l, fmt.Errorf("configure vf %d: %w", l.Index, err)
	}
	l.Settings = s
	p.mu.Lock()
	if _, ok := p.leases[l.Owner]; ok && l.Owner != "" {
		p.leases[l.Owner] = l
	}
	p.mu.Unlock()
	return l, nil
}

// Lookup finds the VF whose representor is the given port.
func (p *EmulatedVFs) Lookup(ctx context.Context, representor string) (VFLease, error) {
	if err := ctx.Err(); err != nil {
		return VFLease{}, fmt.Errorf("look up vf of %s: %w", representor, err)
	}
	for _, vf := range p.dev.VFs() {
		if vf.Representor == representor {
			return leaseOf(vf), nil
		}
	}
	return VFLease{}, fmt.Errorf("look up vf of %s: %w", representor, nic.ErrNotFound)
}

// Release applies l.Restore and forgets the lease. A VF that no longer
// exists has nothing to restore.
func (p *EmulatedVFs) Release(ctx context.Context, l VFLease) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("release vf %d: %w", l.Index, err)
	}
	cfg, err := l.Restore.emulated()
	if err != nil {
		return fmt.Errorf("release vf %d: %w", l.Index, err)
	}
	if err := p.dev.SetVF(l.Index, cfg); err != nil && !errors.Is(err, nic.ErrNotFound) {
		return fmt.Errorf("release vf %d: %w", l.Index, err)
	}
	p.mu.Lock()
	if cur, ok := p.leases[l.Owner]; ok && cur.Index == l.Index {
		delete(p.leases, l.Owner)
	}
	p.mu.Unlock()
	return nil
}

// leaseOf describes vf with its current settings and the defaults as Restore.
func leaseOf(vf emulated.VF) VFLease {
	c := vf.Config
	return VFLease{
		Index: vf.Index, PCIAddress: vf.PCIAddress, Netdev: vf.Netdev, Representor: vf.Representor,
		Settings: VFSettings{MAC: net.HardwareAddr(c.MAC[:]).String(), VLAN: c.VLAN, QoS: c.QoS, Trust: c.Trust,
			SpoofChk: c.SpoofChk, MinTxRate: c.MinTxRate, MaxTxRate: c.MaxTxRate},
	}
}

func (s VFSettings) emulated() (emulated.VFConfig, error) {
	if err := s.Validate(); err != nil {
		return emulated.VFConfig{}, err
	}
	c := emulated.VFConfig{VLAN: s.VLAN, QoS: s.QoS, Trust: s.Trust, SpoofChk: s.SpoofChk,
		MinTxRate: s.MinTxRate, MaxTxRate: s.MaxTxRate}
	if s.MAC != "" {
		hw, _ := net.ParseMAC(s.MAC)
		copy(c.MAC[:], hw)
	}
	return c, nil
}
