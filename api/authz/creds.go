package authz

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
)

// UnixPeer is the AuthInfo of a unix socket connection: the peer
// process's credentials from SO_PEERCRED, read when it connected.
type UnixPeer struct {
	credentials.CommonAuthInfo
	UID, GID uint32
	PID      int32
}

// AuthType implements credentials.AuthInfo.
func (UnixPeer) AuthType() string { return "unix-peercred" }

// PlaintextPeer is the AuthInfo of a plaintext TCP connection.
type PlaintextPeer struct{ credentials.CommonAuthInfo }

// AuthType implements credentials.AuthInfo.
func (PlaintextPeer) AuthType() string { return "insecure" }

// ErrPlaintextRefused is the handshake error of a TCP connection to a
// server that has no TLS and no permission to serve plaintext.
var ErrPlaintextRefused = errors.New("plaintext TCP refused: no TLS configured and --insecure-tcp not set")

// ServerCredentials are the daemon's gRPC transport credentials for every
// listener of one server: unix socket connections carry their SO_PEERCRED
// credentials, TCP connections go through TLS (or, with InsecureTCP and no
// TLS, stay plaintext as the anonymous identity).
type ServerCredentials struct {
	// TLS serves TCP connections; nil means no TLS.
	TLS *tls.Config
	// InsecureTCP allows plaintext TCP when TLS is nil (default false).
	InsecureTCP bool

	tls credentials.TransportCredentials
}

// NewServerCredentials builds the credentials; tlsCfg may be nil.
func NewServerCredentials(tlsCfg *tls.Config, insecureTCP bool) *ServerCredentials {
	c := &ServerCredentials{TLS: tlsCfg, InsecureTCP: insecureTCP}
	if tlsCfg != nil {
		c.tls = credentials.NewTLS(tlsCfg)
	}
	return c
}

var _ credentials.TransportCredentials = (*ServerCredentials)(nil)

// ServerHandshake attaches the peer's identity to conn.
func (c *ServerCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if uc, ok := unixConn(conn); ok {
		p, err := peerCred(uc)
		if err != nil {
			return nil, nil, fmt.Errorf("read peer credentials of unix socket connection: %w", err)
		}
		return conn, p, nil
	}
	switch {
	case c.tls != nil:
		return c.tls.ServerHandshake(conn)
	case c.InsecureTCP:
		return conn, PlaintextPeer{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	return nil, nil, fmt.Errorf("handshake with %s: %w", conn.RemoteAddr(), ErrPlaintextRefused)
}

// unixConn finds the unix socket connection under conn, through wrappers
// that expose what they wrap with NetConn (as api.LimitListener's
// connections do), but not through TLS: a TLS connection's identity is its
// certificate.
func unixConn(conn net.Conn) (*net.UnixConn, bool) {
	for range 8 {
		switch c := conn.(type) {
		case *net.UnixConn:
			return c, true
		case *tls.Conn:
			return nil, false
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// ClientHandshake is not supported: these are server credentials.
func (c *ServerCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("authz.ServerCredentials are for servers only")
}

// Info describes the protocol.
func (c *ServerCredentials) Info() credentials.ProtocolInfo {
	if c.tls != nil {
		return c.tls.Info()
	}
	return credentials.ProtocolInfo{SecurityProtocol: "offloadd-local"}
}

// Clone copies the credentials.
func (c *ServerCredentials) Clone() credentials.TransportCredentials {
	return NewServerCredentials(c.TLS, c.InsecureTCP)
}

// OverrideServerName is deprecated in gRPC and does nothing here.
func (c *ServerCredentials) OverrideServerName(string) error { return nil }
