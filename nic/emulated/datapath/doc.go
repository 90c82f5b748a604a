// Package datapath runs real packets through the emulated SmartNIC: the
// executor that makes the emulator's flow tables forward, drop, rewrite,
// encapsulate and track connections like a switchdev NIC and the kernel
// behind it.
//
// Frames are bytes, parsed with gopacket into a flow key once per header
// change and matched against the device's flows in tc order (per ingress
// port, chain 0 first, priorities ascending, ties by flow ID; the first
// match wins). The hardware plane runs first. A miss there continues in
// the software plane at the same port and chain, as the kernel classifies
// a packet that missed skip_sw rules with the skip_hw ones; a goto into a
// chain without hardware rules does the same. A software miss is an
// upcall to the slow path. When hardware cannot run an action of a rule
// that matched (a ct action for a connection that is not offloaded, a
// tunnel encap without a neighbour entry) software resumes at that
// action, as the kernel's "hardware miss to tc action" does.
//
// Ports are wired as switchdev wires them: egress on a representor
// delivers to its VF (the VM); egress on an uplink goes to the wire; a VF
// that sends arrives at its representor's ingress; redirect to ingress
// classifies again at that port; egress on a tunnel device encapsulates
// in VXLAN (outer MACs from the uplink and the neighbour table, outer UDP
// source port from a hash of the inner flow, checksum unless no_csum) and
// leaves by the uplink. VXLAN frames to a tunnel device's UDP port that
// no uplink rule consumed are decapsulated and classified on the tunnel
// device with their tunnel metadata.
//
// Conntrack (package conntrack) is set up in software; once a connection
// is established and assured, and the profile offloads ct, it is marked
// offloaded and later packets run through hardware flows that match
// +trk+est. Police is a token bucket per plane copy. Time is an injected
// clock (Config.Now, ManualClock), so tests are deterministic.
//
// Inject returns a Trace of every table consulted, action applied and
// frame sent, which String renders like ovs-appctl ofproto/trace.
// BuildFrame makes frames from packet specs ("tcp,dst=10.0.0.2,dport=80"),
// ReadPcap and Capture read and write pcap files, and Generate sends
// many flows for tests and benchmarks. Counters go to the device through
// AddCounters, per flow and plane.
package datapath
