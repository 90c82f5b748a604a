// Package daemon wires offloadd together: the NIC backend, the engine with
// persisted desired state, the promoter and the gRPC API on its listeners,
// with access control (security.go): TLS on TCP, SO_PEERCRED on the unix
// socket, the role policy, migration peers and the audit log from
// package api/authz.
// cmd/offloadd parses flags into a Config and runs a Daemon; tests and
// benchmarks start the same Daemon in-process.
package daemon
