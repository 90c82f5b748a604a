// Package flowfile reads the flow files users write for
// "offloadctl flows apply -f": YAML or JSON documents in the protobuf JSON
// mapping of offloadd.v1.Flow, as a list of flows, as {"flows": [...]}, or
// as one flow. It imports only the generated API package, so clients can
// use it without the daemon.
//
// A file looks like:
//
//	flows:
//	- id: web-in
//	  port: pf0vf1
//	  priority: 10
//	  match: {eth_type: ipv4, ip_proto: tcp, ipv4_dst: 10.0.0.5, dst_port: 443}
//	  actions:
//	  - redirect: {port: pf0vf2}
//	- id: drop-rest
//	  port: pf0vf1
//	  priority: 100
//	  policy: PLACEMENT_POLICY_HARDWARE_ONLY
//	  actions: [{drop: {}}]
//
// YAML reads 0x0800 as the number 2048, which is accepted for the string
// field eth_type; write EtherTypes by name or in hex, since YAML reads a
// leading zero (0800) as decimal 800.
package flowfile
