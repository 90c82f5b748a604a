// Package emulated is offloadd's emulated SmartNIC: a nic.Device that
// behaves like a switchdev NIC without touching the host.
//
// A Device has PF uplinks ("p0"), VFs on PF 0 with kernel-style netdev
// names ("enp8s0f0v3") and PCI addresses, their representors ("pf0vf3",
// sharing the uplink's switch ID), and tunnel devices ("vxlan0"). It keeps
// two flow tables keyed by flow ID: the hardware plane enforces the
// capability profile (nic.Profile.Check), a table size and the eswitch
// mode, and refuses like a driver does, with a *nic.RefusedError carrying
// an errno and an extack-like message; the software plane takes any flow
// on an existing port.
//
// For tests and demos it injects faults at run time: refusals by pattern
// (AddFault), a shrinking or growing table (SetTableSize), latency
// (SetLatency), and optional insert pacing to the profile's rate. VF
// management (SetNumVFs, SetVF) and SetEswitchMode report port events as
// the kernel would. AddCounters accounts traffic; hardware byte counters
// leave out the 14-byte L2 header per packet, like offloaded tc counters.
// FlowTable hands a plane's flows in tc order to the packet datapath
// (package datapath), which runs real frames through both planes.
//
// Config comes from YAML (LoadConfig) or flags (Config.AddFlags).
package emulated
