package linux

import (
	"context"
	"log/slog"

	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
)

// Config describes one NIC to program.
type Config struct {
	// Uplink is the PF's uplink netdev ("p0"). It is always a managed port.
	Uplink string
	// Ports are the ports to manage, as representor discovery found them;
	// the uplink and the tunnel device are added when missing.
	Ports []nic.Port
	// RefreshPorts, when set, re-reads the port list after link changes.
	// Nil keeps Ports (only their presence and attributes are tracked).
	RefreshPorts func(ctx context.Context) ([]nic.Port, error)
	// Tunnel configures the VXLAN device; nil means no tunnel port.
	Tunnel *TunnelConfig
	// NetNS is the network namespace of the ports. The zero value and
	// netns.None() mean the namespace of the calling thread at New.
	NetNS netns.NsHandle
	// Profile is the capability profile of the NIC; nil when unknown.
	Profile *nic.Profile
	// Info is reported by Info; Name defaults to Uplink, Profile to the
	// profile's name.
	Info nic.Info
	// Log receives warnings about skipped filters and link events;
	// nil discards them.
	Log *slog.Logger
}

// TunnelConfig is the VXLAN device in external (collect metadata) mode
// that tunnel_key encap redirects to and decap rules match on.
type TunnelConfig struct {
	// Name of the device; default "vxlan_sys_4789".
	Name string
	// DstPort is its UDP port; default 4789.
	DstPort uint16
}

func (t *TunnelConfig) withDefaults() TunnelConfig {
	c := *t
	if c.DstPort == 0 {
		c.DstPort = 4789
	}
	if c.Name == "" {
		c.Name = "vxlan_sys_4789"
	}
	return c
}
