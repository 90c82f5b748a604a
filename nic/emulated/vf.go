package emulated

import (
	"fmt"
	"syscall"

	"github.com/offloadd/offloadd/nic"
)

// VFLinkState is a VF's administrative link state as the PF sets it.
type VFLinkState uint8

const (
	// VFLinkAuto follows the PF's link (the default).
	VFLinkAuto VFLinkState = iota
	// VFLinkEnable forces the link up.
	VFLinkEnable
	// VFLinkDisable forces the link down.
	VFLinkDisable
)

var vfLinkNames = [...]string{"auto", "enable", "disable"}

func (s VFLinkState) String() string {
	if int(s) < len(vfLinkNames) {
		return vfLinkNames[s]
	}
	return "unknown"
}

// ParseVFLinkState parses "auto", "enable" or "disable".
func ParseVFLinkState(s string) (VFLinkState, bool) {
	for i, n := range vfLinkNames {
		if n == s {
			return VFLinkState(i), true
		}
	}
	return 0, false
}

// VFConfig is what the PF sets for one VF.
type VFConfig struct {
	// MAC is the VF's address; the zero MAC restores the device's default.
	MAC [6]byte
	// VLAN is the port VLAN (0: none); QoS its priority and needs a VLAN.
	VLAN      uint16
	QoS       uint8
	Trust     bool
	SpoofChk  bool
	LinkState VFLinkState
	// MinTxRate and MaxTxRate are in Mbit/s (0: no limit).
	MinTxRate uint32
	MaxTxRate uint32
}

// VF is one VF as the device reports it.
type VF struct {
	Index      int
	PCIAddress string
	// Netdev is the VF's netdev ("enp8s0f0v3").
	Netdev string
	// Representor is its representor ("pf0vf3"), "" in legacy mode.
	Representor string
	Config      VFConfig
}

func (d *Device) defaultVF(n int) VFConfig {
	return VFConfig{MAC: macPlus(d.baseMAC, macVFOffset+n)}
}

// applyVF sets the port attributes a VF config decides.
func (d *Device) applyVF(p *nic.Port, c VFConfig) {
	p.MAC = c.MAC
	p.Up = c.LinkState != VFLinkDisable
}

// NumVFs returns the number of VFs on PF 0.
func (d *Device) NumVFs() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.vfs)
}

// SetNumVFs creates or destroys PF 0's VFs like the kernel's
// sriov_numvfs: more than TotalVFs is ERANGE, and changing a non-zero
// count to another non-zero count is EBUSY (go through 0). New VFs get
// default configs and, in switchdev mode, representors (EventPortAdded for
// each representor, then its VF); destroyed ones take the flows on their
// ports with them (EventPortRemoved for each VF, then its representor).
// Equivalent to: echo N > /sys/class/net/p0/device/sriov_numvfs
func (d *Device) SetNumVFs(n int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("set numvfs %d on %s: %w", n, uplinkName(0), nic.ErrClosed)
	}
	cur := len(d.vfs)
	switch {
	case n < 0 || n > d.cfg.TotalVFs:
		return fmt.Errorf("set numvfs %d on %s: not between 0 and %d: %w", n, uplinkName(0), d.cfg.TotalVFs, syscall.ERANGE)
	case n == cur:
		return nil
	case cur != 0 && n != 0:
		return fmt.Errorf("set numvfs %d on %s: %d VFs already enabled, disable them first: %w", n, uplinkName(0), cur, syscall.EBUSY)
	}
	if n == 0 {
		gone := make(map[string]bool, 2*cur)
		for v := range cur {
			gone[d.vfName(v)] = true
			gone[repName(0, v)] = true
		}
		d.flushPorts(gone)
		for v := range cur {
			d.removePort(d.vfName(v))
			d.removePort(repName(0, v))
		}
		d.vfs = nil
		return nil
	}
	d.vfs = make([]VFConfig, n)
	for v := range n {
		d.vfs[v] = d.defaultVF(v)
		if d.mode == nic.EswitchSwitchdev {
			d.addPort(d.repPort(v))
		}
		d.addPort(d.vfPort(v))
	}
	return nil
}

// SetVF sets VF index's config and reports EventPortChanged for its
// netdev when the config changes. An index without a VF is an error
// wrapping nic.ErrNotFound; an invalid config one wrapping EINVAL.
// Equivalent to: ip link set p0 vf N mac M vlan V qos Q trust on spoofchk off state auto min_tx_rate A max_tx_rate B
func (d *Device) SetVF(index int, c VFConfig) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("set vf %d on %s: %w", index, uplinkName(0), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("set vf %d on %s: %w", index, uplinkName(0), nic.ErrClosed)
	}
	if index < 0 || index >= len(d.vfs) {
		return fmt.Errorf("set vf %d on %s: %w", index, uplinkName(0), nic.ErrNotFound)
	}
	if c.MAC == ([6]byte{}) {
		c.MAC = d.defaultVF(index).MAC
	}
	if d.vfs[index] == c {
		return nil
	}
	d.vfs[index] = c
	p := d.vfPort(index)
	d.ports[p.Name] = p
	d.events.push(nic.Event{Kind: nic.EventPortChanged, Port: p})
	return nil
}

func (c *VFConfig) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), syscall.EINVAL)
	}
	switch {
	case c.MAC[0]&1 != 0:
		return bad("mac %x is a multicast address", c.MAC)
	case c.VLAN > 4095:
		return bad("vlan %d > 4095", c.VLAN)
	case c.QoS > 7:
		return bad("qos %d > 7", c.QoS)
	case c.QoS != 0 && c.VLAN == 0:
		return bad("qos needs a vlan")
	case c.LinkState > VFLinkDisable:
		return bad("unknown link state %d", c.LinkState)
	case c.MaxTxRate != 0 && c.MinTxRate > c.MaxTxRate:
		return bad("min_tx_rate %d above max_tx_rate %d", c.MinTxRate, c.MaxTxRate)
	}
	return nil
}

// VF returns VF index; an index without a VF is an error wrapping nic.ErrNotFound.
func (d *Device) VF(index int) (VF, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if index < 0 || index >= len(d.vfs) {
		return VF{}, fmt.Errorf("vf %d on %s: %w", index, uplinkName(0), nic.ErrNotFound)
	}
	return d.vf(index), nil
}

// VFs lists PF 0's VFs by index.
func (d *Device) VFs() []VF {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]VF, len(d.vfs))
	for i := range d.vfs {
		out[i] = d.vf(i)
	}
	return out
}

func (d *Device) vf(n int) VF {
	v := VF{Index: n, PCIAddress: vfPCI(d.pci, d.cfg.Ports, n).String(), Netdev: d.vfName(n), Config: d.vfs[n]}
	if d.mode == nic.EswitchSwitchdev {
		v.Representor = repName(0, n)
	}
	return v
}
