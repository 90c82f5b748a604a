// Package representor discovers SR-IOV physical functions, their virtual
// functions and the switchdev representors that stand for them on the
// eswitch, and watches that topology for changes.
//
// Discovery reads sysfs below a configurable root (SysfsScanner), so tests
// build fake /sys trees (see package sysfstest). The eswitch mode comes from
// devlink through the small EswitchReader interface. A Snapshot maps to the
// []nic.Port a nic.Device reports, and a Watcher rescans on netlink link
// events and emits port diffs as nic.Events.
//
// The package only reads; configuring VFs and eswitch modes is package vfmgr.
package representor
