package authz

import (
	"context"
	"crypto/x509"
	"fmt"
	"strconv"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Transport is how a caller reached the daemon.
type Transport string

// Transports.
const (
	TransportUnix      Transport = "unix"
	TransportTLS       Transport = "tls"
	TransportPlaintext Transport = "plaintext"
	// TransportUnknown is a connection whose handshake this package did not
	// perform (e.g. a server built without ServerCredentials).
	TransportUnknown Transport = "unknown"
)

// Anonymous is the identity of a caller on plaintext TCP.
const Anonymous = "anonymous"

// Identity is who called.
type Identity struct {
	Transport Transport
	// Name is the primary identity: "spiffe://…" (any URI SAN), "dns:NAME",
	// "cn:NAME", "uid:N" or "anonymous"; "" when the certificate names nothing.
	Name string
	// UID, GID and PID are the unix socket peer's credentials.
	UID, GID uint32
	PID      int32
	// Addr is the peer's address, for the audit log.
	Addr string
}

// Principals are the names a policy binding may match: the identity's
// name and, on the unix socket, its group as "gid:N".
func (id Identity) Principals() []string {
	if id.Transport == TransportUnix {
		return []string{id.Name, "gid:" + strconv.FormatUint(uint64(id.GID), 10)}
	}
	if id.Name == "" {
		return nil
	}
	return []string{id.Name}
}

// String is the identity for logs: its name, or the transport when the
// certificate names nothing.
func (id Identity) String() string {
	if id.Name == "" {
		return "(unnamed " + string(id.Transport) + " peer)"
	}
	return id.Name
}

// CertIdentity is a certificate's identity: its first URI SAN, else
// "dns:" and its first DNS SAN, else "cn:" and its common name, else "".
func CertIdentity(c *x509.Certificate) string {
	switch {
	case c == nil:
		return ""
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return "dns:" + c.DNSNames[0]
	case c.Subject.CommonName != "":
		return "cn:" + c.Subject.CommonName
	}
	return ""
}

// IdentityFromContext is the identity of the caller of the RPC in ctx.
func IdentityFromContext(ctx context.Context) Identity {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{Transport: TransportUnknown}
	}
	return IdentityFromPeer(p)
}

// IdentityFromPeer is the identity of a gRPC peer.
func IdentityFromPeer(p *peer.Peer) Identity {
	id := Identity{Transport: TransportUnknown}
	if p.Addr != nil {
		id.Addr = p.Addr.String()
	}
	switch ai := p.AuthInfo.(type) {
	case UnixPeer:
		id.Transport, id.Name = TransportUnix, "uid:"+strconv.FormatUint(uint64(ai.UID), 10)
		id.UID, id.GID, id.PID = ai.UID, ai.GID, ai.PID
		id.Addr = fmt.Sprintf("pid %d", ai.PID)
	case credentials.TLSInfo:
		id.Transport = TransportTLS
		if len(ai.State.VerifiedChains) > 0 && len(ai.State.VerifiedChains[0]) > 0 {
			id.Name = CertIdentity(ai.State.VerifiedChains[0][0])
		}
	case PlaintextPeer:
		id.Transport, id.Name = TransportPlaintext, Anonymous
	}
	return id
}
