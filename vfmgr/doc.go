// Package vfmgr manages the lifecycle of SR-IOV virtual functions: the VF
// count of a PF, its eswitch mode (legacy or switchdev, changed in the order
// each driver needs), the hw-tc-offload feature, per-VF settings made on the
// PF (MAC, VLAN and QoS, trust, spoof check, link state, tx rates), VF
// driver binding, and pools of VFs allocated to named owners.
//
// Every effect on the host goes through a small interface declared here and
// passed to a constructor: PCI (sysfs writes), VFConfigurer (netlink on the
// PF), FeatureSetter (ethtool), EswitchSetter (devlink) and Store (allocation
// records). The Linux implementations are SysfsPCI, Netlink, Ethtool and
// Devlink; an emulated NIC needs only thin adapters.
//
// Pools are built from the SR-IOV network device plugin's config file
// (/etc/pcidp/config.json) matched against a representor.Snapshot. An
// Allocator hands VFs to owners idempotently, applies the requested
// settings, and restores each VF's original settings and driver on release.
package vfmgr
