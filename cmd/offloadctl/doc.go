// Offloadctl is the command-line client of offloadd's gRPC API.
//
//	offloadctl [--socket PATH | --addr HOST:PORT --cert F --key F --ca F] [-o table|json|yaml] COMMAND
//
//	node                                   the node, its NICs and what they offload
//	ports [--device NIC]                   uplinks, representors, VFs, tunnel ports
//	flows apply -f FILE [--atomic]         create or replace the flows of a file
//	flows list [--port --state --id-prefix --chain]
//	flows get ID
//	flows delete ID... | -f FILE
//	flows explain -f FILE                  would each flow run in hardware, and if not why
//	flows watch                            snapshot, then every change
//	trace --port P SPEC | --pcap F | --frame HEX   a packet's path (emulated NIC)
//	trace stats                            per-port datapath counters
//	migrate prepare|drain|export|import|reoffload|commit|abort|get|list
//	migrate run --to ADDR [--forward-peer PEER] ...   the whole live-migration handoff
//	vfs pools | list | allocate --owner O --pool P [settings] | release --owner O
//
// The socket defaults to $OFFLOADD_SOCKET, else /run/offloadd/offloadd.sock.
// Over TCP the daemon requires a client certificate (--cert, --key, and
// --ca to verify the daemon; --insecure only for an --insecure-tcp
// daemon). ~/.config/offloadd/offloadctl.yaml, or the file
// $OFFLOADCTL_CONFIG names, gives defaults for socket, addr, cert, key, ca
// and serverName (config.go); flags win.
// FILE is YAML or JSON in the offloadd.v1.Flow JSON mapping ("-" reads
// stdin); see package api/flowfile. Tables are for people; -o json and
// -o yaml print the API's messages for scripts. Exit status: 0 ok, 1 an
// RPC failed or a flow failed or was invalid, 2 usage error.
//
// offloadctl imports only the generated API package and api/flowfile,
// never the daemon's packages.
package main
