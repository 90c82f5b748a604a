package vfmgr

import (
	"slices"
	"strings"

	"github.com/offloadd/offloadd/representor"
)

// Pool is a named set of VFs built from one resource of the config.
type Pool struct {
	// Name is "prefix/resourceName".
	Name         string
	NeedVhostNet bool
	// VFs are ordered by PF PCI address, then VF index: the allocation order.
	VFs []PoolVF
}

// PoolVF is one VF of a pool.
type PoolVF struct {
	PF          string
	PFPCI       string
	Index       int
	PCI         string
	Driver      string
	Netdev      string
	Representor string
	// Owner holds the VF ("" when free); filled in by Allocator.Pools.
	Owner string
}

// BuildPools matches the config's resources against a snapshot. A VF may
// be in several pools; an Allocator never gives it to two owners.
func BuildPools(cfg *DevicePluginConfig, snap representor.Snapshot) []Pool {
	if cfg == nil {
		return nil
	}
	pfs := slices.Clone(snap.PFs)
	slices.SortFunc(pfs, func(a, b representor.PF) int { return strings.Compare(a.PCI, b.PCI) })
	pools := make([]Pool, 0, len(cfg.Resources))
	for _, r := range cfg.Resources {
		pool := Pool{Name: r.PoolName()}
		for _, sel := range r.Selectors {
			pool.NeedVhostNet = pool.NeedVhostNet || sel.NeedVhostNet
		}
		for _, pf := range pfs {
			for _, vf := range pf.VFs {
				if !slices.ContainsFunc(r.Selectors, func(s Selector) bool { return s.Matches(pf, vf) }) {
					continue
				}
				pool.VFs = append(pool.VFs, PoolVF{
					PF: pf.Name, PFPCI: pf.PCI, Index: vf.Index, PCI: vf.PCI,
					Driver: vf.Driver, Netdev: vf.Netdev, Representor: vf.Representor,
				})
			}
		}
		pools = append(pools, pool)
	}
	return pools
}

// Matches reports whether the VF of pf passes every set field of s.
func (s Selector) Matches(pf representor.PF, vf representor.VF) bool {
	in := func(list []string, v string) bool {
		return len(list) == 0 || slices.Contains(list, strings.ToLower(v))
	}
	inExact := func(list []string, v string) bool {
		return len(list) == 0 || slices.Contains(list, v)
	}
	fn := func(list []FunctionSelector, name string) bool {
		if len(list) == 0 {
			return true
		}
		for _, f := range list {
			if f.Name == name && (f.VFs == nil || f.VFs.Contains(vf.Index)) {
				return true
			}
		}
		return false
	}
	return in(s.Vendors, vf.Vendor) &&
		in(s.Devices, vf.Device) &&
		inExact(s.Drivers, vf.Driver) &&
		in(s.PCIAddresses, vf.PCI) &&
		fn(s.PFNames, pf.Name) &&
		fn(s.RootDevices, strings.ToLower(pf.PCI)) &&
		in(s.LinkTypes, vf.LinkType) &&
		(!s.IsRDMA || vf.RDMA)
}
