package daemon

import (
	"context"
	"crypto/tls"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/offloadd/offloadd/api/authz"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/internal/testpki"
)

func listCode(t *testing.T, conn *grpc.ClientConn) (codes.Code, error) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := v1.NewFlowServiceClient(conn).ListFlows(c, &v1.ListFlowsRequest{})
	return status.Code(err), err
}

// TestTLSHandshakeFailures: what does not complete an mTLS handshake with
// the daemon, and what completes it but has no role.
func TestTLSHandshakeFailures(t *testing.T) {
	p := newPKI(t)
	n := startSecure(t, p.node(t, "a"), func(c *Config) {
		c.Policy = []authz.Binding{{Identity: clientID("reader"), Roles: []authz.Role{authz.RoleReader}}}
	})
	roots := p.ca.Pool()
	good := p.client(t, "reader")
	other := testpki.NewCA(t, "someone-else")
	untrusted := other.Issue(t, testpki.Leaf{CN: "reader", URIs: []string{clientID("reader")}}).TLS(t)
	expired := p.ca.Issue(t, testpki.Leaf{CN: "reader", URIs: []string{clientID("reader")},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).TLS(t)
	stranger := p.client(t, "stranger")

	code, err := listCode(t, dialTLS(t, n.tcp, clientTLS(&good, roots)))
	require.Equal(t, codes.OK, code, "the good client: %v", err)

	for _, tt := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"client certificate from an untrusted CA", clientTLS(&untrusted, roots)},
		{"expired client certificate", clientTLS(&expired, roots)},
		{"no client certificate", clientTLS(nil, roots)},
		{"client does not trust the daemon's CA", clientTLS(&good, other.Pool())},
		{"TLS 1.2 only", func() *tls.Config {
			c := clientTLS(&good, roots)
			c.MaxVersion = tls.VersionTLS12
			c.MinVersion = 0
			return c
		}()},
	} {
		code, err := listCode(t, dialTLS(t, n.tcp, tt.cfg))
		assert.Equal(t, codes.Unavailable, code, "%s: %v", tt.name, err)
	}

	// Plaintext to the TLS port.
	plain, err := grpc.NewClient("passthrough:///"+n.tcp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plain.Close()
	code, err = listCode(t, plain)
	assert.Equal(t, codes.Unavailable, code, "plaintext client: %v", err)

	// A valid certificate whose identity has no role: the handshake
	// succeeds, the call is denied, health still answers.
	sc := dialTLS(t, n.tcp, clientTLS(&stranger, roots))
	code, err = listCode(t, sc)
	assert.Equal(t, codes.PermissionDenied, code, "%v", err)
	assert.ErrorContains(t, err, clientID("stranger"))
	_, err = healthpb.NewHealthClient(sc).Check(ctx(t), &healthpb.HealthCheckRequest{})
	assert.NoError(t, err)
}

// TestInsecureTCP: plaintext TCP only with insecureTCP, logged as a
// warning; its callers are "anonymous"; a TLS client cannot talk to it.
func TestInsecureTCP(t *testing.T) {
	p := newPKI(t)
	n := startSecure(t, TLSConfig{}, func(c *Config) { c.InsecureTCP = true })
	assert.Contains(t, n.log.String(), "PLAINTEXT")
	assert.Contains(t, n.log.String(), "level=WARN")
	plain, err := grpc.NewClient("passthrough:///"+n.tcp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plain.Close()
	code, err := listCode(t, plain)
	assert.Equal(t, codes.PermissionDenied, code, "anonymous has no role unless the policy gives one: %v", err)
	assert.ErrorContains(t, err, "anonymous")

	good := p.client(t, "reader")
	code, err = listCode(t, dialTLS(t, n.tcp, clientTLS(&good, p.ca.Pool())))
	assert.Equal(t, codes.Unavailable, code, "TLS client to a plaintext port: %v", err)

	n2 := startSecure(t, TLSConfig{}, func(c *Config) {
		c.InsecureTCP = true
		c.Policy = []authz.Binding{{Identity: authz.Anonymous, Roles: []authz.Role{authz.RoleReader}}}
	})
	plain2, err := grpc.NewClient("passthrough:///"+n2.tcp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plain2.Close()
	code, err = listCode(t, plain2)
	assert.Equal(t, codes.OK, code, "%v", err)

	cfg := DefaultConfig()
	cfg.TCP = "127.0.0.1:0"
	assert.ErrorContains(t, cfg.Validate(), "needs tls")
}

// serialOf is the serial number of the certificate a new connection to
// addr is served.
func serialOf(t *testing.T, addr string, cfg *tls.Config) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	require.NoError(t, err)
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestCertificateRotation: rewriting the certificate files changes what
// new connections get, with no restart, while a watch stream opened
// before keeps running; a new CA bundle admits clients of the new CA.
func TestCertificateRotation(t *testing.T) {
	p := newPKI(t)
	tc := p.node(t, "a")
	n := startSecure(t, tc, func(c *Config) {
		c.Policy = []authz.Binding{
			{Identity: clientID("reader"), Roles: []authz.Role{authz.RoleReader}},
			{Identity: clientID("new-reader"), Roles: []authz.Role{authz.RoleReader}},
		}
	})
	roots := p.ca.Pool()
	reader := p.client(t, "reader")
	raw := clientTLS(&reader, roots)
	raw.NextProtos = []string{"h2"}
	first := serialOf(t, n.tcp, raw)

	conn := dialTLS(t, n.tcp, clientTLS(&reader, roots))
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := v1.NewFlowServiceClient(conn).WatchFlows(wctx, &v1.WatchFlowsRequest{})
	require.NoError(t, err)
	ev, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, v1.WatchEventKind_WATCH_EVENT_KIND_SYNC, ev.GetKind(), "the empty snapshot ends with the sync marker: %v", ev)

	// Rotate: a new certificate for the same identity, written over the files.
	next := p.ca.Issue(t, testpki.Leaf{CN: "a", URIs: []string{nodeID("a")}, DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	next.WriteFiles(t, p.dir, "node-a")
	second := serialOf(t, n.tcp, raw)
	assert.NotEqual(t, first, second, "a new connection gets the new certificate")
	assert.Equal(t, next.Cert.SerialNumber, second)

	// The stream opened before the rotation still delivers changes.
	_, err = v1.NewFlowServiceClient(n.admin).ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("after-rotation", "pf0vf0")}})
	require.NoError(t, err)
	ev, err = watch.Recv()
	require.NoError(t, err)
	assert.Equal(t, "after-rotation", ev.GetStatus().GetFlow().GetId(), "%v", ev)
	code, err := listCode(t, conn)
	assert.Equal(t, codes.OK, code, "the old connection still works: %v", err)

	// A half-written pair (certificate without its key) keeps the old one.
	require.NoError(t, os.WriteFile(tc.Cert, []byte("garbage"), 0o600))
	assert.Equal(t, second, serialOf(t, n.tcp, raw))
	next.WriteFiles(t, p.dir, "node-a")

	// CA rotation: clients of a new CA get in once the bundle holds it.
	ca2 := testpki.NewCA(t, "offloadd-test-ca-2")
	newReader := ca2.Issue(t, testpki.Leaf{CN: "new-reader", URIs: []string{clientID("new-reader")}}).TLS(t)
	code, _ = listCode(t, dialTLS(t, n.tcp, clientTLS(&newReader, roots)))
	assert.Equal(t, codes.Unavailable, code, "not trusted yet")
	require.NoError(t, os.WriteFile(tc.ClientCA+".tmp", append(append([]byte{}, p.ca.PEM...), ca2.PEM...), 0o600))
	require.NoError(t, os.Rename(tc.ClientCA+".tmp", tc.ClientCA))
	code, err = listCode(t, dialTLS(t, n.tcp, clientTLS(&newReader, roots)))
	assert.Equal(t, codes.OK, code, "trusted after the bundle changed: %v", err)
	assert.Contains(t, n.log.String(), "certificates reloaded")
}

// TestReflectionOnTCPOnlyWhenEnabled: reflection answers on the unix
// socket, and on TCP only with tcpReflection; health likewise with tcpHealth.
func TestReflectionOnTCPOnlyWhenEnabled(t *testing.T) {
	p := newPKI(t)
	admin := p.client(t, "admin")
	pol := []authz.Binding{{Identity: clientID("admin"), Roles: []authz.Role{authz.RoleAdmin}}}
	list := func(conn *grpc.ClientConn) (codes.Code, error) {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(c)
		if err != nil {
			return status.Code(err), err
		}
		if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return status.Code(err), err
		}
		_, err = st.Recv()
		return status.Code(err), err
	}
	off := startSecure(t, p.node(t, "a"), func(c *Config) { c.Policy = pol })
	code, err := list(dialTLS(t, off.tcp, clientTLS(&admin, p.ca.Pool())))
	assert.Equal(t, codes.Unimplemented, code, "%v", err)
	code, err = list(off.admin)
	assert.Equal(t, codes.OK, code, "the unix socket keeps reflection: %v", err)

	on := startSecure(t, p.node(t, "b"), func(c *Config) { c.Policy = pol; c.TCPReflection = true; c.TCPHealth = false })
	conn := dialTLS(t, on.tcp, clientTLS(&admin, p.ca.Pool()))
	code, err = list(conn)
	assert.Equal(t, codes.OK, code, "%v", err)

	// Health on TCP only when asked for (tcpHealth: true, as startSecure
	// sets for the handshake tests); off here.
	_, err = healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
	_, err = healthpb.NewHealthClient(on.admin).Check(ctx(t), &healthpb.HealthCheckRequest{})
	assert.NoError(t, err, "the unix socket keeps health")
}

// TestMetricsTLS: with metricsTLS the metrics listener speaks TLS with the
// daemon's certificate and refuses plain HTTP.
func TestMetricsTLS(t *testing.T) {
	p := newPKI(t)
	n := startSecure(t, p.node(t, "a"), func(c *Config) { c.Metrics = "127.0.0.1:0"; c.MetricsTLS = true })
	addr := n.d.MetricsAddr().String()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost"}}}
	resp, err := hc.Get("https://" + addr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.Contains(string(body), "offloadd_"), "metrics served")
	assert.Equal(t, tls.VersionTLS13, int(resp.TLS.Version))

	resp, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err == nil {
		resp.Body.Close()
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, "plain HTTP gets no metrics")
	}
}
