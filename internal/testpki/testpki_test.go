package testpki

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIssueVerifiesAgainstItsCA(t *testing.T) {
	ca := NewCA(t, "test-ca")
	leaf := ca.Issue(t, Leaf{CN: "node-a", URIs: []string{"spiffe://example.org/node/a"}, DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/node/a", leaf.Cert.URIs[0].String())

	other := NewCA(t, "other-ca")
	_, err = leaf.Cert.Verify(x509.VerifyOptions{Roots: other.Pool()})
	assert.Error(t, err, "an untrusted CA")

	old := ca.Issue(t, Leaf{CN: "old", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	_, err = old.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool()})
	assert.Error(t, err, "an expired certificate")

	dir := t.TempDir()
	c, k := leaf.WriteFiles(t, dir, "a")
	assert.FileExists(t, c)
	assert.FileExists(t, k)
	leaf.TLS(t)
}
