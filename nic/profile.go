package nic

import "github.com/offloadd/offloadd/offload/flow"

// Profile is what one driver and model offloads through tc flower, as data.
// Check applies it to a flow. The real kernel's answer always wins over it.
type Profile struct {
	// Name identifies the profile: "mlx5-cx6dx", "mlx5-bf2", "nfp-agilio-cx", "ice-e810", "generic".
	Name   string
	Driver string // kernel driver name the registry keys on
	Vendor string
	Model  string
	// PCIVendor and PCIDevices select the profile for a PCI function ("15b3", ["101d"]).
	PCIVendor  string
	PCIDevices []string

	// MatchKeys and Actions are what the hardware offloads at all.
	MatchKeys flow.KeySet
	Actions   flow.ActionSet
	// MaxChain is the highest chain offloaded; MaxPriority the highest priority (0: no limit).
	MaxChain    uint32
	MaxPriority uint16
	// HWTableSize is the hardware flow table capacity the emulator enforces.
	HWTableSize int
	// InsertRate is hardware rule insertions per second the emulator paces to (0: no pacing).
	InsertRate int
	// Rules are the driver's quirks beyond plain key/action support, in order.
	Rules []Rule
	// Notes are shown to operators by GetNode.
	Notes []string
}

// Rule is one driver quirk: it returns reasons when the flow hits it.
type Rule struct {
	Name  string
	Check func(f *flow.Flow, ports PortKinds) []Reason
}

// PortKinds tells a profile what kind a named port is (0 when unknown).
type PortKinds func(name string) PortKind
