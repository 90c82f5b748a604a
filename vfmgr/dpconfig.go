package vfmgr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// DefaultDevicePluginConfig is where the SR-IOV network device plugin
// keeps its config file.
const DefaultDevicePluginConfig = "/etc/pcidp/config.json"

// DefaultResourcePrefix is the device plugin's default --resource-prefix.
const DefaultResourcePrefix = "intel.com"

// DevicePluginConfig is the part of the SR-IOV network device plugin's
// config that describes VF pools: resources of deviceType netDevice.
type DevicePluginConfig struct {
	Resources []ResourceConfig
}

// ResourceConfig is one netDevice resource: a pool of VFs.
type ResourceConfig struct {
	// Prefix defaults to DefaultResourcePrefix.
	Prefix string
	Name   string
	// Selectors are alternatives: a VF is in the pool when any matches.
	Selectors []Selector
}

// PoolName is the resource's full name, "prefix/name".
func (r ResourceConfig) PoolName() string { return r.Prefix + "/" + r.Name }

// Selector picks VFs; every set field must match. Lists match when the VF's
// value is one of theirs.
type Selector struct {
	// Vendors and Devices are the VF's PCI IDs in lower-case hex ("15b3").
	Vendors      []string
	Devices      []string
	Drivers      []string
	PCIAddresses []string
	// PFNames match the PF netdev, RootDevices the PF PCI address, each
	// optionally limited to VF indexes ("p0#0-3,7").
	PFNames     []FunctionSelector
	RootDevices []FunctionSelector
	// LinkTypes are "ether", "infiniband", ...
	LinkTypes []string
	// IsRDMA selects only VFs with an RDMA device.
	IsRDMA bool
	// NeedVhostNet marks the pool as wanting /dev/vhost-net; it selects nothing.
	NeedVhostNet bool
}

// FunctionSelector names a PF and, optionally, which of its VFs.
type FunctionSelector struct {
	Name string
	// VFs limits the VF indexes; nil means all.
	VFs IndexSet
}

// IndexRange is an inclusive range of VF indexes.
type IndexRange struct{ First, Last int }

// IndexSet is a list of ranges.
type IndexSet []IndexRange

// Contains reports whether i is in the set.
func (s IndexSet) Contains(i int) bool {
	for _, r := range s {
		if i >= r.First && i <= r.Last {
			return true
		}
	}
	return false
}

// ConfigError is one problem in a config file, at a field path such as
// "resourceList[1].selectors.pfNames[0]".
type ConfigError struct {
	Path string
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Unwrap makes every ConfigError match ErrInvalid.
func (e *ConfigError) Unwrap() error { return ErrInvalid }

// LoadDevicePluginConfig reads and parses a config file.
func LoadDevicePluginConfig(path string) (*DevicePluginConfig, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read device plugin config: %w", err)
	}
	cfg, warnings, err := ParseDevicePluginConfig(data)
	if err != nil {
		return nil, warnings, fmt.Errorf("device plugin config %s: %w", path, err)
	}
	return cfg, warnings, nil
}

// ParseDevicePluginConfig parses and validates the device plugin's
// config.json. It accepts "selectors" as one object or as a list of
// alternatives, and matches keys case-insensitively as the plugin's JSON
// decoding does. Resources of other device types are skipped with a
// warning. Selector fields offloadd cannot honour are errors, because
// ignoring them would put more VFs in a pool than intended. All problems
// are reported, each a *ConfigError.
func ParseDevicePluginConfig(data []byte) (*DevicePluginConfig, []string, error) {
	p := &dpParser{}
	cfg := p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.warnings, errors.Join(p.errs...)
	}
	return cfg, p.warnings, nil
}

type dpParser struct {
	errs     []error
	warnings []string
}

func (p *dpParser) fail(path, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// object decodes raw as a JSON object and returns its keys lower-cased,
// with the spelling used in the file for error paths.
func (p *dpParser) object(path string, raw json.RawMessage) (map[string]json.RawMessage, map[string]string, bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		p.fail(path, "want an object")
		return nil, nil, false
	}
	fields := make(map[string]json.RawMessage, len(obj))
	names := make(map[string]string, len(obj))
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if prev, dup := names[lk]; dup {
			p.fail(join(path, k), "duplicate of field %q", prev)
			continue
		}
		fields[lk] = obj[k]
		names[lk] = k
	}
	return fields, names, true
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func (p *dpParser) parse(data []byte) *DevicePluginConfig {
	var top json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		p.fail("", "not JSON: %v", err)
		return nil
	}
	fields, names, ok := p.object("", top)
	if !ok {
		return nil
	}
	for _, lk := range sortedKeys(names) {
		if lk != "resourcelist" {
			p.fail(names[lk], "unknown field")
		}
	}
	raw, ok := fields["resourcelist"]
	if !ok {
		p.fail("resourceList", "required")
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		p.fail(names["resourcelist"], "want a list")
		return nil
	}
	cfg := &DevicePluginConfig{}
	seen := map[string]string{}
	for i, raw := range list {
		path := fmt.Sprintf("resourceList[%d]", i)
		r, ok := p.resource(path, raw)
		if !ok {
			continue
		}
		if prev, dup := seen[r.PoolName()]; dup {
			p.fail(path+".resourceName", "duplicate resource %q (also %s)", r.PoolName(), prev)
			continue
		}
		seen[r.PoolName()] = path
		cfg.Resources = append(cfg.Resources, r)
	}
	return cfg
}

var resourceNameRe = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

func (p *dpParser) resource(path string, raw json.RawMessage) (ResourceConfig, bool) {
	fields, names, ok := p.object(path, raw)
	if !ok {
		return ResourceConfig{}, false
	}
	before := len(p.errs)
	r := ResourceConfig{Prefix: DefaultResourcePrefix}
	deviceType := "netDevice"
	var selectors json.RawMessage
	for _, lk := range sortedKeys(names) {
		fp := join(path, names[lk])
		v := fields[lk]
		switch lk {
		case "resourcename":
			var ok bool
			if r.Name, ok = p.str(fp, v); ok && !resourceNameRe.MatchString(r.Name) {
				p.fail(fp, "%q is not [a-zA-Z0-9_]+", r.Name)
			}
		case "resourceprefix":
			if s, _ := p.str(fp, v); s != "" {
				if strings.ContainsAny(s, "/ \t") {
					p.fail(fp, "%q must not contain '/' or spaces", s)
				}
				r.Prefix = s
			}
		case "devicetype":
			if s, _ := p.str(fp, v); s != "" {
				deviceType = s
			}
		case "selectors":
			selectors = v
		case "excludetopology":
			p.boolean(fp, v)
			p.warnings = append(p.warnings, fp+": ignored (NUMA topology is the kubelet's)")
		default:
			p.fail(fp, "unknown field")
		}
	}
	if _, ok := fields["resourcename"]; !ok {
		p.fail(path+".resourceName", "required")
	}
	switch deviceType {
	case "netDevice":
	case "accelerator", "auxNetDevice":
		p.warnings = append(p.warnings, fmt.Sprintf("%s: deviceType %s is not a VF pool; skipped", path, deviceType))
		return ResourceConfig{}, false
	default:
		p.fail(join(path, "deviceType"), "%q is not netDevice, accelerator or auxNetDevice", deviceType)
	}
	if selectors == nil {
		p.fail(path+".selectors", "required")
	} else {
		r.Selectors = p.selectors(join(path, names["selectors"]), selectors)
	}
	return r, len(p.errs) == before
}

// selectors accepts one selector object or a list of them.
func (p *dpParser) selectors(path string, raw json.RawMessage) []Selector {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			p.fail(path, "want an object or a list of objects")
			return nil
		}
		if len(list) == 0 {
			p.fail(path, "empty list")
		}
		var out []Selector
		for i, r := range list {
			out = append(out, p.selector(fmt.Sprintf("%s[%d]", path, i), r))
		}
		return out
	}
	return []Selector{p.selector(path, raw)}
}

var (
	pciIDRe    = regexp.MustCompile(`^[0-9a-fA-F]{4}$`)
	pciAddrRe  = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)
	netdevRe   = regexp.MustCompile(`^[^\s/:#]{1,15}$`)
	linkTypeRe = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)
)

func (p *dpParser) selector(path string, raw json.RawMessage) Selector {
	var s Selector
	fields, names, ok := p.object(path, raw)
	if !ok {
		return s
	}
	for _, lk := range sortedKeys(names) {
		fp := join(path, names[lk])
		v := fields[lk]
		switch lk {
		case "vendors":
			s.Vendors = p.matching(fp, v, pciIDRe, "a 4-digit hex PCI vendor ID", true)
		case "devices":
			s.Devices = p.matching(fp, v, pciIDRe, "a 4-digit hex PCI device ID", true)
		case "drivers":
			s.Drivers = p.matching(fp, v, netdevRe, "a driver name", false)
		case "pciaddresses":
			s.PCIAddresses = p.matching(fp, v, pciAddrRe, "a PCI address (0000:08:00.2)", true)
		case "pfnames":
			s.PFNames = p.functions(fp, v, netdevRe, "a PF netdev name")
		case "rootdevices":
			s.RootDevices = p.functions(fp, v, pciAddrRe, "a PF PCI address")
		case "linktypes":
			s.LinkTypes = p.matching(fp, v, linkTypeRe, "a link type (ether, infiniband)", true)
		case "isrdma":
			s.IsRDMA = p.boolean(fp, v)
		case "needvhostnet":
			s.NeedVhostNet = p.boolean(fp, v)
		case "ddpprofiles", "pkeys", "vdpatype", "acpiindexes", "auxtypes", "nicnames":
			p.fail(fp, "not supported by offloadd")
		default:
			p.fail(fp, "unknown field")
		}
	}
	return s
}

func (p *dpParser) str(path string, raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		p.fail(path, "want a string")
		return "", false
	}
	return s, true
}

func (p *dpParser) boolean(path string, raw json.RawMessage) bool {
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		p.fail(path, "want true or false")
	}
	return b
}

func (p *dpParser) strings(path string, raw json.RawMessage) []string {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		p.fail(path, "want a list of strings")
		return nil
	}
	return list
}

// matching returns the list's entries that match re, reporting the others.
func (p *dpParser) matching(path string, raw json.RawMessage, re *regexp.Regexp, what string, lower bool) []string {
	var out []string
	for i, s := range p.strings(path, raw) {
		if !re.MatchString(s) {
			p.fail(fmt.Sprintf("%s[%d]", path, i), "%q is not %s", s, what)
			continue
		}
		if lower {
			s = strings.ToLower(s)
		}
		out = append(out, s)
	}
	return out
}

// functions parses "name" or "name#ranges" entries.
func (p *dpParser) functions(path string, raw json.RawMessage, re *regexp.Regexp, what string) []FunctionSelector {
	var out []FunctionSelector
	for i, s := range p.strings(path, raw) {
		ep := fmt.Sprintf("%s[%d]", path, i)
		name, ranges, hasRanges := strings.Cut(s, "#")
		if !re.MatchString(name) {
			p.fail(ep, "%q is not %s", name, what)
			continue
		}
		fs := FunctionSelector{Name: name}
		if hasRanges {
			set, ok := parseIndexSet(ranges)
			if !ok {
				p.fail(ep, "bad VF range %q", s)
				continue
			}
			fs.VFs = set
		}
		out = append(out, fs)
	}
	return out
}

// parseIndexSet parses "1,3,5-9,23".
func parseIndexSet(s string) (IndexSet, bool) {
	var set IndexSet
	for part := range strings.SplitSeq(s, ",") {
		first, last, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(first)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(last)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return nil, false
		}
		set = append(set, IndexRange{First: a, Last: b})
	}
	return set, true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
