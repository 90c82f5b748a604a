package representor

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/offloadd/offloadd/nic"
)

// Snapshot is the SR-IOV topology seen at one moment.
type Snapshot struct {
	// PFs are sorted by PCI address.
	PFs []PF
	// Links holds the netdev attributes of every PF, uplink, representor and
	// VF netdev named in PFs, keyed by netdev name.
	Links map[string]Link
}

// PF is an SR-IOV physical function with a netdev.
type PF struct {
	// Name is the PF netdev.
	Name string
	// PCI is the PF's PCI address ("0000:08:00.0").
	PCI    string
	Driver string
	// Vendor and Device are PCI IDs without "0x" ("15b3", "101d").
	Vendor string
	Device string
	// Index is the PF number used in its representors' names (pf<Index>vf<n>):
	// the PCI function number.
	Index int
	// PortName is the PF netdev's phys_port_name ("p0"; "" when none).
	PortName string
	// SwitchID is the PF netdev's phys_switch_id ("" when it has none).
	SwitchID string
	// Eswitch is the devlink eswitch mode. When devlink could not say,
	// EswitchErr holds why and Eswitch is inferred: switchdev when VF
	// representors exist, legacy otherwise.
	Eswitch    nic.EswitchMode
	EswitchErr string
	NumVFs     int
	TotalVFs   int
	// Uplink is the uplink representor netdev (phys_port_name "p<n>"), "" if none.
	Uplink string
	// LinkType is "ether", "infiniband", or the ARPHRD number of other types.
	LinkType string
	// VFs are sorted by index.
	VFs []VF
}

// VF is one virtual function of a PF.
type VF struct {
	Index int
	PCI   string
	// Vendor and Device are the VF's PCI IDs without "0x".
	Vendor string
	Device string
	// Driver is the bound driver ("" when unbound).
	Driver string
	// Netdev is the VF netdev in this network namespace ("" when unbound,
	// bound to a non-network driver or moved to another namespace).
	Netdev string
	// Representor is the VF's representor netdev ("" in legacy mode).
	Representor string
	// RDMA is true when the VF has an RDMA device.
	RDMA bool
	// LinkType is the VF netdev's link type, the PF's when it has no netdev.
	LinkType string
}

// Link is the state of one netdev.
type Link struct {
	Name string
	// MAC is the address in colon form ("" when it has none).
	MAC string
	MTU int
	// Up is the administrative state (IFF_UP).
	Up           bool
	PhysPortName string
	SwitchID     string
}

// PF returns the PF with the given netdev name or PCI address.
func (s Snapshot) PF(nameOrPCI string) (PF, error) {
	for _, pf := range s.PFs {
		if pf.Name == nameOrPCI || pf.PCI == nameOrPCI {
			return pf, nil
		}
	}
	return PF{}, fmt.Errorf("pf %q: %w", nameOrPCI, ErrNotFound)
}

// VF returns the VF with the given index.
func (pf PF) VF(index int) (VF, error) {
	for _, vf := range pf.VFs {
		if vf.Index == index {
			return vf, nil
		}
	}
	return VF{}, fmt.Errorf("pf %s vf %d: %w", pf.Name, index, ErrNotFound)
}

// FindVF returns the VF with the given PCI address and its PF.
func (s Snapshot) FindVF(pci string) (PF, VF, error) {
	for _, pf := range s.PFs {
		for _, vf := range pf.VFs {
			if vf.PCI == pci {
				return pf, vf, nil
			}
		}
	}
	return PF{}, VF{}, fmt.Errorf("vf %s: %w", pci, ErrNotFound)
}

// FindRepresentor returns the VF whose representor netdev is name, and its PF.
func (s Snapshot) FindRepresentor(name string) (PF, VF, error) {
	for _, pf := range s.PFs {
		for _, vf := range pf.VFs {
			if vf.Representor == name && name != "" {
				return pf, vf, nil
			}
		}
	}
	return PF{}, VF{}, fmt.Errorf("representor %q: %w", name, ErrNotFound)
}

// Ports maps the snapshot to the ports a nic.Device reports: per PF the
// uplink, then per VF its representor and its VF netdev, in VF order.
func (s Snapshot) Ports() []nic.Port {
	var ports []nic.Port
	for _, pf := range s.PFs {
		uplink := pf.Uplink
		if uplink == "" {
			uplink = pf.Name
		}
		ports = append(ports, s.port(uplink, nic.PortUplink, pf.Index, -1, pf.PCI, ""))
		for _, vf := range pf.VFs {
			if vf.Representor != "" {
				ports = append(ports, s.port(vf.Representor, nic.PortRepresentor, pf.Index, vf.Index, vf.PCI, vf.Netdev))
			}
			if vf.Netdev != "" {
				ports = append(ports, s.port(vf.Netdev, nic.PortVF, pf.Index, vf.Index, vf.PCI, vf.Representor))
			}
		}
	}
	return ports
}

func (s Snapshot) port(name string, kind nic.PortKind, pf, vf int, pci, peer string) nic.Port {
	l := s.Links[name]
	p := nic.Port{
		Name:         name,
		Kind:         kind,
		PhysPortName: l.PhysPortName,
		SwitchID:     l.SwitchID,
		PF:           pf,
		VF:           vf,
		PCIAddress:   pci,
		MTU:          l.MTU,
		Up:           l.Up,
		Peer:         peer,
	}
	if hw, err := net.ParseMAC(l.MAC); err == nil && len(hw) == 6 {
		copy(p.MAC[:], hw)
	}
	return p
}

// Diff compares two port lists by name and returns the removed ports, then
// the added ones, then the changed ones (with their new state), each sorted
// by name. A port whose attributes are equal is not reported.
func Diff(old, cur []nic.Port) []nic.Event {
	before := make(map[string]nic.Port, len(old))
	for _, p := range old {
		before[p.Name] = p
	}
	after := make(map[string]nic.Port, len(cur))
	for _, p := range cur {
		after[p.Name] = p
	}
	var removed, added, changed []nic.Event
	for name, p := range before {
		if _, ok := after[name]; !ok {
			removed = append(removed, nic.Event{Kind: nic.EventPortRemoved, Port: p})
		}
	}
	for name, p := range after {
		q, ok := before[name]
		switch {
		case !ok:
			added = append(added, nic.Event{Kind: nic.EventPortAdded, Port: p})
		case q != p:
			changed = append(changed, nic.Event{Kind: nic.EventPortChanged, Port: p})
		}
	}
	byName := func(a, b nic.Event) int { return strings.Compare(a.Port.Name, b.Port.Name) }
	slices.SortFunc(removed, byName)
	slices.SortFunc(added, byName)
	slices.SortFunc(changed, byName)
	out := make([]nic.Event, 0, len(removed)+len(added)+len(changed))
	out = append(out, removed...)
	out = append(out, added...)
	return append(out, changed...)
}
