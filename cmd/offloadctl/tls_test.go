package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/internal/testpki"
)

// identityServer is a NodeService over mTLS that answers GetNode with the
// caller's certificate common name as the hostname.
type identityServer struct {
	v1.UnimplementedNodeServiceServer
}

func (identityServer) GetNode(ctx context.Context, _ *v1.GetNodeRequest) (*v1.GetNodeResponse, error) {
	p, _ := peer.FromContext(ctx)
	cn := p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].Subject.CommonName
	return &v1.GetNodeResponse{Node: &v1.Node{Hostname: "seen-" + cn}}, nil
}

// serveTLS serves identityServer on 127.0.0.1 with a certificate for
// localhost, requiring client certificates of ca.
func serveTLS(t *testing.T, ca *testpki.CA) string {
	t.Helper()
	srv := ca.Issue(t, testpki.Leaf{CN: "daemon", DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"}}).TLS(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srv},
		ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})))
	v1.RegisterNodeServiceServer(gs, identityServer{})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// TestTLSFlagsAndConfigFile: offloadctl reaches a TCP daemon with mTLS from
// flags or from its config file (flags winning), and refuses TCP without
// a certificate unless --insecure.
func TestTLSFlagsAndConfigFile(t *testing.T) {
	ctx := context.Background()
	ca := testpki.NewCA(t, "ca")
	addr := serveTLS(t, ca)
	dir := t.TempDir()
	caFile := ca.WriteFile(t, dir, "ca.crt")
	cert, key := ca.Issue(t, testpki.Leaf{CN: "alice"}).WriteFiles(t, dir, "alice")
	bobCert, bobKey := ca.Issue(t, testpki.Leaf{CN: "bob"}).WriteFiles(t, dir, "bob")

	r := runCLI(t, ctx, nil, "", "--addr", addr, "--cert", cert, "--key", key, "--ca", caFile, "-o", "yaml", "node")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "hostname: seen-alice")

	// The config file: $OFFLOADCTL_CONFIG, relative paths next to it.
	cfg := filepath.Join(dir, "offloadctl.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("addr: "+addr+"\ncert: alice.crt\nkey: alice.key\nca: ca.crt\n"), 0o600))
	r = runCLI(t, ctx, map[string]string{configEnv: cfg}, "", "-o", "yaml", "node")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "hostname: seen-alice")
	r = runCLI(t, ctx, map[string]string{configEnv: cfg}, "", "--cert", bobCert, "--key", bobKey, "-o", "yaml", "node")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "hostname: seen-bob", "flags win over the file")

	// The default place: ~/.config/offloadd/offloadctl.yaml.
	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".config", "offloadd"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, ".config", "offloadd", "offloadctl.yaml"),
		[]byte("addr: "+addr+"\ncert: "+cert+"\nkey: "+key+"\nca: "+caFile+"\n"), 0o600))
	r = runCLI(t, ctx, map[string]string{"HOME": home}, "", "-o", "yaml", "node")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "hostname: seen-alice")

	r = runCLI(t, ctx, nil, "", "--addr", addr, "node")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "give --cert, --key and --ca")
	r = runCLI(t, ctx, map[string]string{configEnv: filepath.Join(dir, "missing.yaml")}, "", "node")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "missing.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("adress: x\n"), 0o600))
	r = runCLI(t, ctx, map[string]string{configEnv: cfg}, "", "node")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "adress")

	// A daemon certificate from another CA is refused.
	other := testpki.NewCA(t, "other")
	otherCA := other.WriteFile(t, dir, "other.crt")
	r = runCLI(t, ctx, nil, "", "--addr", addr, "--cert", cert, "--key", key, "--ca", otherCA, "node")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "Unavailable")
}
