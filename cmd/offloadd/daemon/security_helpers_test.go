package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/internal/testpki"
)

// pki is one test's certificates: a cluster CA, node certificates and
// client certificates per role, all under dir.
type pki struct {
	dir    string
	ca     *testpki.CA
	caFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: testpki.NewCA(t, "offloadd-test-ca")}
	p.caFile = p.ca.WriteFile(t, p.dir, "ca.crt")
	return p
}

// nodeID is the identity of node name's certificate.
func nodeID(name string) string { return "spiffe://test.offloadd/node/" + name }

// clientID is the identity of a client certificate.
func clientID(name string) string { return "spiffe://test.offloadd/client/" + name }

// node issues a daemon certificate (serving localhost and 127.0.0.1) and
// returns the daemon's TLS config.
func (p *pki) node(t *testing.T, name string) TLSConfig {
	t.Helper()
	c := p.ca.Issue(t, testpki.Leaf{CN: name, URIs: []string{nodeID(name)}, DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	cert, key := c.WriteFiles(t, p.dir, "node-"+name)
	return TLSConfig{Cert: cert, Key: key, ClientCA: p.caFile}
}

// client issues a client certificate for clientID(name).
func (p *pki) client(t *testing.T, name string) tls.Certificate {
	t.Helper()
	return p.ca.Issue(t, testpki.Leaf{CN: name, URIs: []string{clientID(name)}}).TLS(t)
}

// secureNode is a daemon with a unix socket and an mTLS TCP listener.
type secureNode struct {
	d     *Daemon
	cfg   Config
	tcp   string
	admin *grpc.ClientConn // over the unix socket, as root
	audit string           // audit log file
	log   *lockedBuffer
}

// startSecure starts a daemon on the emulated NIC with TLS (unless mod
// clears it), serving TCP on 127.0.0.1.
func startSecure(t *testing.T, tlsCfg TLSConfig, mod func(*Config)) *secureNode {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Socket = filepath.Join(dir, "offloadd.sock")
	cfg.StateDir = ""
	cfg.StatsInterval = Duration(50 * time.Millisecond)
	cfg.PromoteRetry = Duration(time.Hour)
	cfg.TCP = "127.0.0.1:0"
	cfg.TLS = tlsCfg
	cfg.TCPHealth = true // the handshake tests probe with health
	cfg.AuditLog = filepath.Join(dir, "audit.json")
	if mod != nil {
		mod(&cfg)
	}
	buf := &lockedBuffer{}
	d, err := New(cfg, slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() { d.Shutdown(context.Background()) })
	n := &secureNode{d: d, cfg: cfg, audit: cfg.AuditLog, log: buf}
	for _, a := range d.Addrs() {
		if a.Network() == "tcp" {
			n.tcp = a.String()
		}
	}
	n.admin = dialUnix(t, cfg.Socket)
	return n
}

func dialUnix(t *testing.T, sock string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// clientTLS trusts roots for the server "localhost" and presents cert
// (none when cert is nil).
func clientTLS(cert *tls.Certificate, roots *x509.CertPool) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost"}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// dialTLS connects to addr with cfg.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func flowIDs(t *testing.T, conn *grpc.ClientConn) []string {
	t.Helper()
	resp, err := v1.NewFlowServiceClient(conn).ListFlows(ctx(t), &v1.ListFlowsRequest{})
	require.NoError(t, err)
	var out []string
	for _, s := range resp.GetFlows() {
		out = append(out, s.GetFlow().GetId())
	}
	return out
}

func dropFlow(id, port string) *v1.Flow {
	return &v1.Flow{Id: id, Port: port, Priority: 1, Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}
}

// auditRecords reads the audit log's JSON lines.
func auditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "audit line %s", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// recordsFor are the audit records of one method (short name).
func recordsFor(recs []map[string]any, method string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if m, _ := r["method"].(string); filepath.Base(m) == method {
			out = append(out, r)
		}
	}
	return out
}

// lockedBuffer is a log sink the daemon writes from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

var _ io.Writer = (*lockedBuffer)(nil)

// tcpAddrOf is a free loopback port (for a peer that never answers).
func tcpAddrOf(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}
