package nic

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry finds the capability profile for a device by name, PCI ID or
// kernel driver. It hands out copies, so callers may change what they get
// (an emulator overriding HWTableSize) without touching the registry.
// It is safe for concurrent use; the zero value is an empty registry.
type Registry struct {
	mu       sync.RWMutex
	byName   map[string]*Profile
	byPCI    map[string]string // "15b3:101d" -> profile name
	byDriver map[string]string // driver -> its default (first registered) profile
}

// NewRegistry returns a registry holding the built-in profiles (Builtin).
func NewRegistry() *Registry {
	r := &Registry{}
	for _, p := range Builtin() {
		if err := r.Register(p); err != nil {
			// The built-in profiles are fixed data; tests register them all.
			panic(err)
		}
	}
	return r
}

// Register adds a copy of p. The first profile registered for a driver
// becomes that driver's default. A name already registered, or a PCI
// device another profile claims, is an error wrapping ErrExists.
func (r *Registry) Register(p *Profile) error {
	if p == nil || p.Name == "" {
		return fmt.Errorf("register profile: a profile with a name is required")
	}
	if len(p.PCIDevices) > 0 && normPCIID(p.PCIVendor) == "" {
		return fmt.Errorf("register profile %q: PCI devices %v need a PCI vendor", p.Name, p.PCIDevices)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[p.Name]; ok {
		return fmt.Errorf("register profile %q: %w", p.Name, ErrExists)
	}
	c := p.Clone()
	c.PCIVendor = normPCIID(c.PCIVendor)
	var keys []string
	for i, d := range c.PCIDevices {
		c.PCIDevices[i] = normPCIID(d)
		k := pciKey(c.PCIVendor, d)
		if other, ok := r.byPCI[k]; ok {
			return fmt.Errorf("register profile %q: PCI device %s belongs to profile %q: %w", p.Name, k, other, ErrExists)
		}
		keys = append(keys, k)
	}
	if r.byName == nil {
		r.byName, r.byPCI, r.byDriver = map[string]*Profile{}, map[string]string{}, map[string]string{}
	}
	r.byName[c.Name] = c
	for _, k := range keys {
		r.byPCI[k] = c.Name
	}
	if _, ok := r.byDriver[c.Driver]; c.Driver != "" && !ok {
		r.byDriver[c.Driver] = c.Name
	}
	return nil
}

// Lookup returns a copy of the profile registered under name.
func (r *Registry) Lookup(name string) (*Profile, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.byName[name]
	if !ok {
		return nil, false
	}
	return p.Clone(), true
}

// ForDevice picks the profile for a PCI function: the profile claiming the
// exact vendor and device ID first ("15b3", "101d"; a 0x prefix and case do
// not matter), else the driver's default, else the generic profile.
func (r *Registry) ForDevice(driver, pciVendor, pciDevice string) *Profile {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if name, ok := r.byPCI[pciKey(pciVendor, pciDevice)]; ok {
		return r.byName[name].Clone()
	}
	if name, ok := r.byDriver[driver]; ok {
		return r.byName[name].Clone()
	}
	if p, ok := r.byName[ProfileGeneric]; ok {
		return p.Clone()
	}
	return Generic()
}

// Names lists the registered profile names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Clone returns a copy of p that shares no slices with it. Rules are
// shared by value; their Check functions hold no state.
func (p *Profile) Clone() *Profile {
	c := *p
	c.PCIDevices = slices.Clone(p.PCIDevices)
	c.Rules = slices.Clone(p.Rules)
	c.Notes = slices.Clone(p.Notes)
	return &c
}

func normPCIID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.TrimPrefix(s, "0x")
}

func pciKey(vendor, device string) string { return normPCIID(vendor) + ":" + normPCIID(device) }
