// Package tcsyntax reads and writes offloadd flows in the syntax of
// iproute2's `tc filter … flower …`, so that operators can write
//
//	# id: acl-ssh
//	tc filter add dev pf0vf0 ingress prio 10 protocol ip flower skip_sw \
//	    ip_proto tcp dst_port 22 action drop
//
// instead of a YAML flow file. Parse returns the same offloadd.v1.Flow
// messages as the YAML mapping (api/flowfile) gives for the same rule, so
// the daemon validates and places them the same way; Format and Print turn
// flows back into tc command lines that re-create them.
//
// The grammar is iproute2's, keyword for keyword, for the match keys and
// actions offloadd's flow model holds; docs/tc-syntax.md lists them. What
// the model cannot express (port ranges, egress hooks, tc's reclassify,
// several pedit keys in one action, …) is refused with a message naming
// line, column and token, never dropped. skip_sw becomes the placement
// policy hardware-only, skip_hw software-only, neither auto.
//
// A rule's flow id comes from a "# id: NAME" comment before it; without
// one it is "tc-" and the first 12 hex digits of the SHA-256 of the rule's
// tokens joined by single spaces (a leading "tc" left out), so the same
// line always gets the same id.
//
// parse(print(f)) is f for every flow in the canonical form the daemon
// returns (api.FlowToProto), except where tc keeps no difference either,
// as nic/linux/tcflower's Decode: a police verdict equal to its default
// (conform pipe, exceed drop) reads back as unspecified, and a pushed
// VLAN's protocol 802.1Q as unset.
//
// The package imports only the generated API package, so offloadctl can
// use it without the daemon.
package tcsyntax
