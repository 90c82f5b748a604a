package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux"
	"github.com/offloadd/offloadd/representor"
)

// LinuxConfig configures the real backend.
type LinuxConfig struct {
	// SysfsRoot is where sysfs is mounted (default /sys).
	SysfsRoot string `json:"sysfsRoot"`
	// PFs names the PF netdevs to manage; empty (default) manages every PF
	// in switchdev mode that discovery finds.
	PFs []string `json:"pfs,omitempty"`
	// Ports, when set, replaces discovery with a fixed port list on one
	// device whose uplink is Uplink: for hosts without SR-IOV, such as
	// veth pairs standing in for VFs and representors.
	Uplink string       `json:"uplink,omitempty"`
	Ports  []PortConfig `json:"ports,omitempty"`
	// Profile forces a capability profile by name; "" (default) picks it from
	// the PF's driver and PCI IDs.
	Profile string `json:"profile,omitempty"`
	// Tunnel is the VXLAN device for encap and decap.
	Tunnel TunnelConfig `json:"tunnel"`
}

// TunnelConfig is the VXLAN device in external mode.
type TunnelConfig struct {
	// Name defaults to vxlan_sys_4789.
	Name string `json:"name"`
	// DstPort defaults to 4789.
	DstPort uint16 `json:"dstPort"`
}

// PortConfig is one port of a fixed port list.
type PortConfig struct {
	Name string `json:"name"`
	// Kind is uplink, representor (default) or vf.
	Kind string `json:"kind,omitempty"`
	// Peer is the representor's VF netdev, or the VF's representor.
	Peer string `json:"peer,omitempty"`
}

func defaultLinuxConfig() LinuxConfig {
	return LinuxConfig{SysfsRoot: "/sys", Tunnel: TunnelConfig{Name: "vxlan_sys_4789", DstPort: 4789}}
}

func (c *LinuxConfig) validate() error {
	kinds := map[string]bool{"": true, "uplink": true, "representor": true, "vf": true}
	for i, p := range c.Ports {
		if p.Name == "" {
			return fmt.Errorf("linux.ports[%d].name: must not be empty", i)
		}
		if !kinds[p.Kind] {
			return fmt.Errorf("linux.ports[%d].kind: %q is not uplink, representor or vf", i, p.Kind)
		}
	}
	if len(c.Ports) > 0 && c.Uplink == "" {
		return fmt.Errorf("linux.uplink: required with a fixed port list")
	}
	if c.Profile != "" {
		if _, ok := nic.NewRegistry().Lookup(c.Profile); !ok {
			return fmt.Errorf("linux.profile: unknown profile %q", c.Profile)
		}
	}
	return nil
}

// newLinuxDevices builds one Linux device per managed PF (or one for a
// fixed port list).
func newLinuxDevices(cfg LinuxConfig, reg *nic.Registry, log *slog.Logger) ([]nic.Device, error) {
	// Only the first device creates and owns the tunnel device.
	tunnel := &linux.TunnelConfig{Name: cfg.Tunnel.Name, DstPort: cfg.Tunnel.DstPort}
	profile := func(driver, vendor, device string) *nic.Profile {
		if cfg.Profile != "" {
			p, _ := reg.Lookup(cfg.Profile)
			return p
		}
		return reg.ForDevice(driver, vendor, device)
	}
	if len(cfg.Ports) > 0 {
		var ports []nic.Port
		for _, p := range cfg.Ports {
			kind := nic.PortRepresentor
			switch p.Kind {
			case "uplink":
				kind = nic.PortUplink
			case "vf":
				kind = nic.PortVF
			}
			ports = append(ports, nic.Port{Name: p.Name, Kind: kind, VF: -1, Peer: p.Peer})
		}
		pr := profile("", "", "")
		dev, err := linux.New(linux.Config{Uplink: cfg.Uplink, Ports: ports, Tunnel: tunnel, Profile: pr,
			Info: nic.Info{Name: cfg.Uplink, Driver: pr.Driver, Model: pr.Model, EswitchMode: nic.EswitchSwitchdev}, Log: log})
		if err != nil {
			return nil, fmt.Errorf("start linux backend on %s: %w", cfg.Uplink, err)
		}
		return []nic.Device{dev}, nil
	}

	dl, err := representor.NewDevlink(netns.None())
	if err != nil {
		log.Warn("devlink unavailable, eswitch mode is inferred from representors", "err", err)
	}
	var eswitch representor.EswitchReader
	if dl != nil {
		eswitch = dl
	}
	scanner := representor.NewSysfsScanner(cfg.SysfsRoot, eswitch)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := scanner.Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("discover SR-IOV devices under %s: %w", cfg.SysfsRoot, err)
	}
	want := map[string]bool{}
	for _, n := range cfg.PFs {
		want[n] = true
	}
	var devs []nic.Device
	for _, pf := range snap.PFs {
		if len(want) > 0 && !want[pf.Name] || len(want) == 0 && pf.Eswitch != nic.EswitchSwitchdev {
			continue
		}
		one := representor.Snapshot{PFs: []representor.PF{pf}, Links: snap.Links}
		pciAddr := pf.PCI
		refresh := func(ctx context.Context) ([]nic.Port, error) {
			s, err := scanner.Scan(ctx)
			if err != nil {
				return nil, err
			}
			for _, p := range s.PFs {
				if p.PCI == pciAddr {
					return representor.Snapshot{PFs: []representor.PF{p}, Links: s.Links}.Ports(), nil
				}
			}
			return nil, fmt.Errorf("PF %s: %w", pciAddr, representor.ErrNotFound)
		}
		uplink := pf.Uplink
		if uplink == "" {
			uplink = pf.Name
		}
		pr := profile(pf.Driver, pf.Vendor, pf.Device)
		dev, err := linux.New(linux.Config{Uplink: uplink, Ports: one.Ports(), RefreshPorts: refresh, Tunnel: tunnel, Profile: pr,
			Info: nic.Info{Name: pf.Name, Driver: pf.Driver, Model: pr.Model, PCIAddress: pf.PCI, SwitchID: pf.SwitchID,
				EswitchMode: pf.Eswitch, NumVFs: pf.NumVFs, TotalVFs: pf.TotalVFs}, Log: log})
		if err != nil {
			for _, d := range devs {
				d.Close()
			}
			return nil, fmt.Errorf("start linux backend on %s: %w", pf.Name, err)
		}
		devs = append(devs, dev)
		tunnel = nil
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("linux backend: no switchdev PF found under %s (set linux.pfs, or linux.ports for a fixed port list)", cfg.SysfsRoot)
	}
	return devs, nil
}
