package emulated

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// Config describes one emulated SmartNIC. The zero value is not usable:
// start from DefaultConfig. In YAML every field is optional and keeps its
// default when absent.
type Config struct {
	// Profile is the capability profile name (default "mlx5-cx6dx").
	Profile string `json:"profile"`
	// Ports is the number of physical ports, one PF each (default 1).
	// Port i is the uplink "p<i>" at PCI function i of PCIAddress.
	Ports int `json:"ports"`
	// NumVFs is the number of VFs PF 0 starts with (default 8).
	NumVFs int `json:"numVFs"`
	// TotalVFs is the most VFs PF 0 supports, like sriov_totalvfs (default 64).
	TotalVFs int `json:"totalVFs"`
	// HWTableSize overrides the profile's hardware flow table size; 0 (the
	// default) keeps the profile's. DemoConfig uses a small table so that
	// spill to software is visible.
	HWTableSize int `json:"hwTableSize"`
	// EswitchMode is "switchdev" (default) or "legacy".
	EswitchMode string `json:"eswitchMode"`
	// BaseMAC is the uplink's MAC; other ports derive theirs from it
	// (default "02:42:0f:00:00:00").
	BaseMAC string `json:"baseMAC"`
	// PCIAddress is PF 0's address (default "0000:08:00.0").
	PCIAddress string `json:"pciAddress"`
	// FirmwareVersion overrides the firmware string Info reports
	// (default: a plausible version for the profile's driver).
	FirmwareVersion string `json:"firmwareVersion,omitempty"`
	// Tunnels are the tunnel devices (default one VXLAN "vxlan0" on 4789).
	Tunnels []TunnelConfig `json:"tunnels"`
	// PaceInserts paces hardware adds and replaces to the profile's
	// InsertRate (default false).
	PaceInserts bool `json:"paceInserts"`
	// Latency is added to every hardware Program call (default 0).
	Latency Duration `json:"latency"`
	// Faults are refusal rules active from the start (default none).
	Faults []FaultSpec `json:"faults"`
}

// TunnelConfig is one tunnel device.
type TunnelConfig struct {
	// Name is the netdev name ("vxlan0").
	Name string `json:"name"`
	// Type is "vxlan", the only overlay the emulated datapath speaks
	// (default "vxlan"); other types are refused at load.
	Type string `json:"type"`
	// DstPort is the UDP port (default 4789).
	DstPort uint16 `json:"dstPort"`
}

// FaultSpec is the configuration form of a Fault: names instead of numbers.
type FaultSpec struct {
	Name string `json:"name"`
	// Plane is "hardware" (default) or "software".
	Plane string         `json:"plane,omitempty"`
	Match FaultMatchSpec `json:"match,omitempty"`
	// Errno is a name ("EOPNOTSUPP", "ENOSPC", "EIO", ...) or a number.
	Errno   string `json:"errno"`
	Message string `json:"message,omitempty"`
	// Count is how many flows the fault refuses; 0 means forever.
	Count int `json:"count,omitempty"`
}

// FaultMatchSpec is the configuration form of a FaultMatch.
type FaultMatchSpec struct {
	Port     string  `json:"port,omitempty"`
	IDPrefix string  `json:"idPrefix,omitempty"`
	Chain    *uint32 `json:"chain,omitempty"`
	// Action is an action kind name ("ct", "redirect", "tunnel_encap", ...).
	Action string `json:"action,omitempty"`
}

// Duration is a time.Duration written as "150ms" in YAML.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "150ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration %s: want a string like \"150ms\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Defaults.
const (
	DefaultProfile    = "mlx5-cx6dx"
	DefaultNumVFs     = 8
	DefaultTotalVFs   = 64
	DefaultBaseMAC    = "02:42:0f:00:00:00"
	DefaultPCIAddress = "0000:08:00.0"
	// DemoHWTableSize is the small hardware table DemoConfig uses.
	DemoHWTableSize = 64

	maxPorts    = 16
	maxTotalVFs = 1024
)

// DefaultConfig returns the default emulated NIC: a one-port ConnectX-6 Dx
// in switchdev mode with 8 VFs and one VXLAN device.
func DefaultConfig() Config {
	return Config{
		Profile:     DefaultProfile,
		Ports:       1,
		NumVFs:      DefaultNumVFs,
		TotalVFs:    DefaultTotalVFs,
		EswitchMode: "switchdev",
		BaseMAC:     DefaultBaseMAC,
		PCIAddress:  DefaultPCIAddress,
		Tunnels:     []TunnelConfig{{Name: "vxlan0", Type: "vxlan", DstPort: 4789}},
	}
}

// DemoConfig is DefaultConfig with a DemoHWTableSize-entry hardware table,
// so that a demo fills the hardware quickly and spills to software.
func DemoConfig() Config {
	c := DefaultConfig()
	c.HWTableSize = DemoHWTableSize
	return c
}

// ParseConfig reads YAML (or JSON) over DefaultConfig and validates it.
// Unknown fields are errors.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("parse emulated NIC config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads and validates a YAML config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load emulated NIC config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("load emulated NIC config %s: %w", path, err)
	}
	return c, nil
}

// AddFlags registers the scalar fields as flags named prefix+"profile",
// prefix+"num-vfs", ... with the config's current values as defaults.
// Tunnels and faults are set through the config file only.
func (c *Config) AddFlags(fs *pflag.FlagSet, prefix string) {
	fs.StringVar(&c.Profile, prefix+"profile", c.Profile, "emulated NIC capability profile (mlx5-cx6dx, mlx5-bf2, mlx5-cx5, nfp-agilio-cx, ice-e810, generic)")
	fs.IntVar(&c.Ports, prefix+"ports", c.Ports, "emulated NIC physical ports (one PF each)")
	fs.IntVar(&c.NumVFs, prefix+"num-vfs", c.NumVFs, "VFs on PF 0 at start")
	fs.IntVar(&c.TotalVFs, prefix+"total-vfs", c.TotalVFs, "most VFs PF 0 supports (sriov_totalvfs)")
	fs.IntVar(&c.HWTableSize, prefix+"hw-table-size", c.HWTableSize, "hardware flow table entries (0: the profile's)")
	fs.StringVar(&c.EswitchMode, prefix+"eswitch-mode", c.EswitchMode, "eswitch mode at start: switchdev or legacy")
	fs.StringVar(&c.BaseMAC, prefix+"base-mac", c.BaseMAC, "MAC of p0; other ports derive theirs from it")
	fs.StringVar(&c.PCIAddress, prefix+"pci-address", c.PCIAddress, "PCI address of PF 0")
	fs.StringVar(&c.FirmwareVersion, prefix+"firmware-version", c.FirmwareVersion, "firmware version reported (empty: the driver's usual)")
	fs.BoolVar(&c.PaceInserts, prefix+"pace-inserts", c.PaceInserts, "pace hardware inserts to the profile's insert rate")
	fs.DurationVar((*time.Duration)(&c.Latency), prefix+"latency", time.Duration(c.Latency), "latency added to every hardware Program call")
}

// Validate checks the config and returns every problem found, each
// prefixed with its field path ("tunnels[0].name: must not be empty").
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Profile == "" {
		add("profile", "must not be empty")
	}
	if c.Ports < 1 || c.Ports > maxPorts {
		add("ports", "%d is not between 1 and %d", c.Ports, maxPorts)
	}
	if c.TotalVFs < 0 || c.TotalVFs > maxTotalVFs {
		add("totalVFs", "%d is not between 0 and %d", c.TotalVFs, maxTotalVFs)
	}
	if c.NumVFs < 0 || c.NumVFs > c.TotalVFs {
		add("numVFs", "%d is not between 0 and totalVFs (%d)", c.NumVFs, c.TotalVFs)
	}
	if c.HWTableSize < 0 {
		add("hwTableSize", "%d is negative", c.HWTableSize)
	}
	if _, ok := parseEswitchMode(c.EswitchMode); !ok {
		add("eswitchMode", "%q is not switchdev or legacy", c.EswitchMode)
	}
	if _, err := parseMAC(c.BaseMAC); err != nil {
		add("baseMAC", "%v", err)
	}
	if pci, err := parsePCI(c.PCIAddress); err != nil {
		add("pciAddress", "%v", err)
	} else if last := int(pci.rid()) + c.Ports + c.TotalVFs - 1; last > 0xffff {
		add("pciAddress", "%s leaves no room for %d ports and %d VFs on its bus range", c.PCIAddress, c.Ports, c.TotalVFs)
	}
	if c.Latency < 0 {
		add("latency", "%s is negative", time.Duration(c.Latency))
	}
	names := map[string]string{}
	for i := range c.Ports {
		names[uplinkName(i)] = "an uplink"
	}
	for i, t := range c.Tunnels {
		p := fmt.Sprintf("tunnels[%d]", i)
		switch {
		case t.Name == "":
			add(p+".name", "must not be empty")
		case len(t.Name) > 15 || strings.ContainsAny(t.Name, "/: \t\n"):
			add(p+".name", "%q is not a valid netdev name", t.Name)
		case isRepName(t.Name) || names[t.Name] != "":
			add(p+".name", "%q collides with a port name", t.Name)
		}
		names[t.Name] = "a tunnel"
		switch t.Type {
		case "", "vxlan":
		case "geneve", "gre", "gretap", "ip6gretap", "vxlan-gpe":
			add(p+".type", "%q is not emulated: the emulated datapath encapsulates and decapsulates VXLAN only", t.Type)
		default:
			add(p+".type", "%q is not a tunnel type (vxlan)", t.Type)
		}
	}
	faults := map[string]bool{}
	for i, s := range c.Faults {
		p := fmt.Sprintf("faults[%d]", i)
		if _, ferrs := s.fault(p); len(ferrs) > 0 {
			errs = append(errs, ferrs...)
		}
		if faults[s.Name] {
			add(p+".name", "duplicate fault name %q", s.Name)
		}
		faults[s.Name] = true
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid emulated NIC config: %w", errors.Join(errs...))
}

// withDefaults fills in a tunnel's type and port.
func (t TunnelConfig) withDefaults() TunnelConfig {
	if t.Type == "" {
		t.Type = "vxlan"
	}
	if t.DstPort == 0 {
		t.DstPort = 4789
	}
	return t
}

func parseMAC(s string) ([6]byte, error) {
	var m [6]byte
	hw, err := net.ParseMAC(s)
	if err != nil {
		return m, fmt.Errorf("%q is not a MAC address", s)
	}
	if len(hw) != 6 {
		return m, fmt.Errorf("%q is not a 48-bit MAC address", s)
	}
	copy(m[:], hw)
	if m[0]&1 != 0 {
		return m, fmt.Errorf("%q is a multicast address", s)
	}
	if m == ([6]byte{}) {
		return m, fmt.Errorf("%q is the zero address", s)
	}
	return m, nil
}
