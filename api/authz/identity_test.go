package authz

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/offloadd/offloadd/internal/testpki"
)

// TestCertIdentity: the first URI SAN, else the first DNS SAN, else the CN.
func TestCertIdentity(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	for _, tt := range []struct {
		leaf testpki.Leaf
		want string
	}{
		{testpki.Leaf{CN: "c", DNS: []string{"d1", "d2"}, URIs: []string{"spiffe://x/a", "spiffe://x/b"}}, "spiffe://x/a"},
		{testpki.Leaf{CN: "c", DNS: []string{"d1", "d2"}}, "dns:d1"},
		{testpki.Leaf{CN: "c", IPs: []string{"127.0.0.1"}}, "cn:c"},
		{testpki.Leaf{}, ""},
	} {
		c := ca.Issue(t, tt.leaf)
		assert.Equal(t, tt.want, CertIdentity(c.Cert))
		id := IdentityFromPeer(&peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c.Cert}}}}})
		assert.Equal(t, TransportTLS, id.Transport)
		assert.Equal(t, tt.want, id.Name)
	}
	// Unverified certificates name nobody.
	c := ca.Issue(t, testpki.Leaf{CN: "c"})
	id := IdentityFromPeer(&peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Cert}}}})
	assert.Empty(t, id.Name)
	assert.Empty(t, id.Principals())
}

// TestVerifyPeer: the chain must reach the roots and the identity must be
// the pinned one.
func TestVerifyPeer(t *testing.T) {
	ca, other := testpki.NewCA(t, "ca"), testpki.NewCA(t, "other")
	b := ca.Issue(t, testpki.Leaf{CN: "b", URIs: []string{"spiffe://x/node/b"}})
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{b.Cert}}
	require.NoError(t, VerifyPeer(cs, ca.Pool(), "spiffe://x/node/b"))
	assert.ErrorContains(t, VerifyPeer(cs, ca.Pool(), "spiffe://x/node/c"), "is not the configured")
	assert.ErrorContains(t, VerifyPeer(cs, other.Pool(), "spiffe://x/node/b"), "verify peer certificate")
	assert.Error(t, VerifyPeer(tls.ConnectionState{}, ca.Pool(), "spiffe://x/node/b"))
}
