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
// The file means what it says. The YAML is walked as nodes
// (go.yaml.in/yaml/v3), not converted to JSON first, so every error names
// its line and column, and values keep the text that was written:
// eth_type: 0x0800 is "0x0800", not 2048. An id must be a string: id: 010,
// id: 0x1F or id: 1e3 are numbers to YAML and are refused with "quote it".
// Numbers are plain decimal: dst_port: 0443 (octal to YAML 1.1) and 0x1bb
// are refused. Booleans are true or false; y, n, yes, no, on and off in a
// string field must be quoted, since YAML 1.1 tools read them as booleans.
// A key given twice, a second document and trailing data are refused.
//
// A block list of flows, at the top or under flows:, is read one item at a
// time (Decoder), so a file of a million flows needs the memory of one;
// JSON and flow-style documents are read whole.
package flowfile
