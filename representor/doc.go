// Package representor discovers SR-IOV physical functions, their virtual
// functions and the switchdev representors that stand for them on the
// eswitch, and watches that topology for changes.
//
// Discovery reads sysfs below a configurable root (SysfsScanner), so tests
// build fake /sys trees (see package sysfstest). PFs, VFs and netdev
// attributes are read by this package; uplink and VF representors are
// looked up with github.com/k8snetworkplumbingwg/sriovnet, through its
// filesystem and netlink seams pointed at the scanner's root and devlink
// (sriovnet_linux.go says why those seams sit behind a package mutex). The
// eswitch mode comes from devlink through the small EswitchReader
// interface. A Snapshot maps to the []nic.Port a nic.Device reports, and a
// Watcher rescans on netlink link events and emits port diffs as
// nic.Events.
//
// No test runs discovery against a kernel driver: the kernel VM's Debian
// kernel has no netdevsim and QEMU 7.2 no SR-IOV NIC.
// docs/sriov-kernel-tier.md lists what netdevsim would cover and what only
// the fake trees can.
//
// The package only reads; configuring VFs and eswitch modes is package vfmgr.
package representor
