// Package authz decides who may call which offloadd RPC, and records it.
//
// A caller's identity comes from its transport (identity.go): on TCP the
// verified client certificate (its first URI SAN, else its first DNS SAN as
// "dns:NAME", else its common name as "cn:NAME"); on the unix socket the
// peer's uid and gid from SO_PEERCRED ("uid:N", "gid:N"); on plaintext TCP,
// allowed only with --insecure-tcp, "anonymous". ServerCredentials
// (creds.go) performs the handshake that attaches it: TLS 1.3 with a
// required client certificate on TCP, SO_PEERCRED on unix sockets.
//
// A Policy (policy.go) binds identities to roles — reader, operator,
// migration-peer, admin — optionally scoping an operator's flow changes to
// flow ID prefixes and ports. Methods (methods.go) maps every RPC the
// daemon serves to the least role that may call it; an RPC missing from it
// is refused to everyone but admin.
//
// Authorizer (interceptor.go) enforces both as gRPC unary and stream
// interceptors, answering PermissionDenied before the handler runs, and
// writes an audit record (audit.go) for every mutating call and every
// denied one.
//
// TLSFiles (tlsfiles.go) serves certificates from files and re-reads them
// when they change, so rotation needs no restart.
package authz
