package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
)

// Config is the daemon's configuration file. Flags override its fields.
type Config struct {
	// Socket is the unix socket the API listens on (default /run/offloadd/offloadd.sock), mode 0600.
	Socket string `json:"socket"`
	// TCP is an optional extra listen address ("127.0.0.1:50051"); empty (default) disables it.
	TCP string `json:"tcp,omitempty"`
	// Metrics is the address of the Prometheus endpoint (/metrics), e.g.
	// "127.0.0.1:9641"; empty (default) disables it.
	Metrics string `json:"metrics,omitempty"`
	// Backend is "emulated" (default) or "linux".
	Backend string `json:"backend"`
	// Emulated configures the emulated NIC (default: one ConnectX-6 Dx port with 8 VFs).
	Emulated emulated.Config `json:"emulated"`
	// Datapath configures the emulated NIC's packet executor.
	Datapath DatapathConfig `json:"datapath"`
	// Linux configures the real backend (default: every switchdev PF under /sys).
	Linux LinuxConfig `json:"linux"`
	// VFPools configures VF pools from a device plugin config file (default: none).
	VFPools VFPoolsConfig `json:"vfPools"`
	// StateDir holds the persisted desired state (default /var/lib/offloadd); "" keeps state in memory.
	StateDir string `json:"stateDir"`
	// StatsInterval is how often counters are read from the devices (default 1s).
	StatsInterval Duration `json:"statsInterval"`
	// PromoteRetry is how often flows spilled by device errors retry hardware (default 30s).
	PromoteRetry Duration `json:"promoteRetry"`
	// LogLevel is debug, info (default), warn or error; LogFormat is text (default) or json.
	LogLevel  string `json:"logLevel"`
	LogFormat string `json:"logFormat"`
}

// DatapathConfig configures the emulated datapath.
type DatapathConfig struct {
	// Neighbours are static neighbour entries for tunnel next hops (default
	// none: they are learned from ARP/NDP replies).
	Neighbours []NeighbourConfig `json:"neighbours,omitempty"`
}

// NeighbourConfig is one static neighbour.
type NeighbourConfig struct {
	IP  string `json:"ip"`
	MAC string `json:"mac"`
}

func (c DatapathConfig) build() (datapath.Config, error) {
	var out datapath.Config
	for i, n := range c.Neighbours {
		ip, err := netip.ParseAddr(n.IP)
		if err != nil {
			return out, fmt.Errorf("datapath.neighbours[%d].ip: %w", i, err)
		}
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return out, fmt.Errorf("datapath.neighbours[%d].mac: %q is not a MAC address", i, n.MAC)
		}
		nb := datapath.Neighbour{IP: ip}
		copy(nb.MAC[:], hw)
		out.Neighbours = append(out.Neighbours, nb)
	}
	return out, nil
}

// Duration is a time.Duration written as "1s".
type Duration = emulated.Duration

// DefaultConfig returns the defaults stated on Config's fields.
func DefaultConfig() Config {
	return Config{
		Socket:        "/run/offloadd/offloadd.sock",
		Backend:       "emulated",
		Emulated:      emulated.DefaultConfig(),
		Linux:         defaultLinuxConfig(),
		StateDir:      "/var/lib/offloadd",
		StatsInterval: Duration(time.Second),
		PromoteRetry:  Duration(30 * time.Second),
		LogLevel:      "info",
		LogFormat:     "text",
	}
}

// LoadConfig reads a YAML file over the defaults.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("parse config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks the fields the daemon uses directly.
func (c *Config) Validate() error {
	switch c.Backend {
	case "emulated":
		if err := c.Emulated.Validate(); err != nil {
			return fmt.Errorf("emulated: %w", err)
		}
		if _, err := c.Datapath.build(); err != nil {
			return err
		}
	case "linux":
		if err := c.Linux.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("backend: %q is not emulated or linux", c.Backend)
	}
	if c.Socket == "" && c.TCP == "" {
		return fmt.Errorf("socket: needs a socket path or a tcp address")
	}
	if c.StatsInterval < 0 {
		return fmt.Errorf("statsInterval: must not be negative")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logLevel: %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("logFormat: %q is not text or json", c.LogFormat)
	}
	return nil
}
