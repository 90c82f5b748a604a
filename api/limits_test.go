package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// limited is a real gRPC server on a unix socket, with the daemon's codec,
// Limits' server options and listener, and a fake engine.
type limited struct {
	engine *watchEngine
	hits   *LimitHits
	sock   string
	gs     *grpc.Server
}

// watchEngine ends a watch when its context ends, as the engine does.
type watchEngine struct{ *fakeEngine }

func (e *watchEngine) Watch(ctx context.Context) (*offload.Watcher, error) {
	c := make(chan offload.Event)
	go func() { <-ctx.Done(); close(c) }()
	return offload.NewStaticWatcher(e.List(offload.Filter{}), c), nil
}

func serveLimited(t *testing.T, l Limits) *limited {
	t.Helper()
	dir, err := os.MkdirTemp("", "lim") // short: unix socket paths are at most 108 bytes
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &limited{engine: &watchEngine{newFakeEngine()}, sock: filepath.Join(dir, "s"),
		hits: NewLimitHits(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	srv := NewServer(s.engine, fakeNode(nil), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithLimits(l, s.hits))
	s.gs = grpc.NewServer(append(ServerOptions(), l.ServerOptions()...)...)
	srv.Register(s.gs)
	lis, err := net.Listen("unix", s.sock)
	require.NoError(t, err)
	go func() { _ = s.gs.Serve(LimitListener(lis, l.WithDefaults().MaxConnections, s.hits)) }()
	t.Cleanup(s.gs.Stop)
	return s
}

func (s *limited) dial(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+s.sock, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// count reads offloadd_api_limit_hits_total{limit} as Prometheus would.
func (s *limited) count(t *testing.T, limit string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s.hits))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		require.Equal(t, "offloadd_api_limit_hits_total", mf.GetName())
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == limit {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series for limit %q", limit)
	return 0
}

func manyFlows(t *testing.T, n int) []*v1.Flow {
	out := make([]*v1.Flow, n)
	for i := range out {
		out[i] = wireFlow(t, fmt.Sprintf(`{"id":"f%d","port":"pf0vf0","priority":1,"actions":[{"drop":{}}]}`, i))
	}
	return out
}

func TestLimitFlowsPerRequest(t *testing.T) {
	s := serveLimited(t, Limits{MaxFlowsPerRequest: 3})
	fc := v1.NewFlowServiceClient(s.dial(t))
	_, err := fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: manyFlows(t, 3)})
	require.NoError(t, err)
	_, err = fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: manyFlows(t, 4)})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "4 flows in one request, over the limit of 3; send them in batches of at most 3")
	_, err = fc.ExplainFlows(ctx(t), &v1.ExplainFlowsRequest{Flows: manyFlows(t, 4)})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Len(t, s.engine.applied, 1, "the refused batch reached no engine")
	assert.Equal(t, 2.0, s.count(t, LimitFlowsPerRequest))
}

func TestLimitIncludeFlowsAnswerSize(t *testing.T) {
	s := serveLimited(t, Limits{MaxSendMsgSize: 8 << 10})
	fc := v1.NewFlowServiceClient(s.dial(t))
	flows := manyFlows(t, 100) // ~5 KB of request, ~21 KB of answer with the flows
	_, err := fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: flows, IncludeFlows: true})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "over the 0.0 MiB limit")
	assert.Contains(t, status.Convert(err).Message(), "nothing was applied")
	assert.Empty(t, s.engine.applied, "refused before anything is committed")
	assert.Equal(t, 1.0, s.count(t, LimitSendMsgSize))

	resp, err := fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: flows})
	require.NoError(t, err, "without the flows the answer fits")
	assert.Len(t, resp.GetResults(), 100)
}

func TestLimitRecvMsgSize(t *testing.T) {
	s := serveLimited(t, Limits{MaxRecvMsgSize: 1024})
	fc := v1.NewFlowServiceClient(s.dial(t))
	_, err := fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: manyFlows(t, 100)})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Empty(t, s.engine.applied)
	assert.Equal(t, 1.0, s.count(t, LimitRecvMsgSize))
}

// rawCodec sends []byte as the message, to put malformed protobuf on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return encoding.GetCodec("proto").Marshal(v)
}
func (rawCodec) Unmarshal(data []byte, v any) error {
	return encoding.GetCodec("proto").Unmarshal(data, v)
}
func (rawCodec) Name() string { return "proto" }

func TestMalformedRequestsAreInvalidArgument(t *testing.T) {
	s := serveLimited(t, Limits{})
	conn := s.dial(t, grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	badUTF8 := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{'a', 0xff, 0xfe})
	truncated := []byte{0x0a, 0x10, 'a'} // field 1, 16 bytes announced, 1 sent
	for _, tt := range []struct {
		method string
		body   []byte
	}{
		{v1.FlowService_GetFlow_FullMethodName, badUTF8},
		{v1.FlowService_GetFlow_FullMethodName, truncated},
		{v1.FlowService_ApplyFlows_FullMethodName, truncated},
		// A flow whose id is not UTF-8: the fast decoder hands it to
		// protobuf, which refuses it.
		{v1.FlowService_ApplyFlows_FullMethodName, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), badUTF8)},
		{v1.NodeService_GetNode_FullMethodName, truncated},
	} {
		var out []byte
		err := conn.Invoke(ctx(t), tt.method, tt.body, &out)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%s %x: %v", tt.method, tt.body, err)
		assert.Contains(t, status.Convert(err).Message(), "malformed request")
	}
	// A server stream reads its request through RecvMsg.
	st, err := conn.NewStream(ctx(t), &grpc.StreamDesc{ServerStreams: true}, v1.FlowService_WatchFlows_FullMethodName)
	require.NoError(t, err)
	require.NoError(t, st.SendMsg(truncated))
	require.NoError(t, st.CloseSend())
	var out []byte
	err = st.RecvMsg(&out)
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Empty(t, s.engine.applied)
}

func TestGetFlowDoesNotEchoAHugeID(t *testing.T) {
	s := serveLimited(t, Limits{})
	fc := v1.NewFlowServiceClient(s.dial(t))
	id := strings.Repeat("é", 50_000)
	_, err := fc.GetFlow(ctx(t), &v1.GetFlowRequest{Id: id})
	require.Equal(t, codes.NotFound, status.Code(err))
	msg := status.Convert(err).Message()
	assert.Less(t, len(msg), 120, msg)
	assert.Equal(t, `flow "`+strings.Repeat("é", 32)+`…" not found`, msg)
}

func TestClipID(t *testing.T) {
	assert.Equal(t, "short", clipID("short"))
	assert.Equal(t, strings.Repeat("x", 64), clipID(strings.Repeat("x", 64)))
	assert.Equal(t, strings.Repeat("x", 64)+"…", clipID(strings.Repeat("x", 65)))
	// 63 ASCII bytes then a 2-byte rune: the cut moves back to a boundary.
	assert.Equal(t, strings.Repeat("x", 63)+"…", clipID(strings.Repeat("x", 63)+"éé"))
}

func TestLimitConnections(t *testing.T) {
	s := serveLimited(t, Limits{MaxConnections: 1})
	first := s.dial(t)
	_, err := v1.NewNodeServiceClient(first).GetNode(ctx(t), &v1.GetNodeRequest{})
	require.NoError(t, err)

	second := s.dial(t)
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = v1.NewNodeServiceClient(second).GetNode(c, &v1.GetNodeRequest{})
	require.Error(t, err, "a second connection is closed on accept")
	assert.Contains(t, []codes.Code{codes.Unavailable, codes.DeadlineExceeded}, status.Code(err))
	assert.GreaterOrEqual(t, s.count(t, LimitConnections), 1.0)

	// The refused client keeps redialling: close it, or it may take the
	// slot the first one frees.
	require.NoError(t, second.Close())
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool {
		conn, err := grpc.NewClient("unix://"+s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		_, err = v1.NewNodeServiceClient(conn).GetNode(ctx(t), &v1.GetNodeRequest{})
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "the slot is free again once the first connection closed")
}

// watch opens WatchFlows on conn and waits for the SYNC marker.
func watch(t *testing.T, c context.Context, conn *grpc.ClientConn) (grpc.ServerStreamingClient[v1.WatchFlowsResponse], error) {
	st, err := v1.NewFlowServiceClient(conn).WatchFlows(c, &v1.WatchFlowsRequest{})
	if err != nil {
		return nil, err
	}
	ev, err := st.Recv()
	if err != nil {
		return nil, err
	}
	require.Equal(t, v1.WatchEventKind_WATCH_EVENT_KIND_SYNC, ev.GetKind())
	return st, nil
}

func TestLimitStreamsPerConnection(t *testing.T) {
	s := serveLimited(t, Limits{MaxStreamsPerConnection: 1})
	conn := s.dial(t)
	c1, cancel1 := context.WithCancel(ctx(t))
	_, err := watch(t, c1, conn)
	require.NoError(t, err)

	// The client holds a second call until the first ends.
	c2, cancel2 := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel2()
	_, err = watch(t, c2, conn)
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)

	cancel1()
	require.Eventually(t, func() bool {
		c3, cancel3 := context.WithTimeout(ctx(t), 500*time.Millisecond)
		defer cancel3()
		_, err := watch(t, c3, conn)
		return err == nil
	}, 5*time.Second, 50*time.Millisecond)
}

func TestLimitWatchers(t *testing.T) {
	s := serveLimited(t, Limits{MaxWatchers: 1})
	conn := s.dial(t)
	c1, cancel1 := context.WithCancel(ctx(t))
	_, err := watch(t, c1, conn)
	require.NoError(t, err)
	_, err = watch(t, ctx(t), conn)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "1 watches are open, the limit")
	assert.Equal(t, 1.0, s.count(t, LimitWatchers))
	cancel1()
	require.Eventually(t, func() bool {
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		_, err := watch(t, c, conn)
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "a closed watch frees its place")
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	s := serveLimited(t, Limits{MaxConnectionIdle: 200 * time.Millisecond})
	conn := s.dial(t)
	_, err := v1.NewNodeServiceClient(conn).GetNode(ctx(t), &v1.GetNodeRequest{})
	require.NoError(t, err)
	require.Equal(t, connectivity.Ready, conn.GetState())
	c, cancel := context.WithTimeout(ctx(t), 5*time.Second)
	defer cancel()
	require.True(t, conn.WaitForStateChange(c, connectivity.Ready), "the server sends GOAWAY after 200ms idle")
	assert.NotEqual(t, connectivity.Ready, conn.GetState())
}

// TestKeepaliveIsEnforced pings on a raw HTTP/2 connection far more often
// than KeepaliveMinTime allows: the server answers GOAWAY too_many_pings.
func TestKeepaliveIsEnforced(t *testing.T) {
	s := serveLimited(t, Limits{KeepaliveMinTime: time.Hour})
	nc, err := net.Dial("unix", s.sock)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = nc.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	fr := http2.NewFramer(nc, nc)
	require.NoError(t, fr.WriteSettings())
	for i := range 5 {
		require.NoError(t, fr.WritePing(false, [8]byte{byte(i)}))
	}
	for {
		f, err := fr.ReadFrame()
		require.NoError(t, err, "the server closes with GOAWAY, not silently")
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			assert.Equal(t, http2.ErrCodeEnhanceYourCalm, ga.ErrCode)
			assert.Equal(t, "too_many_pings", string(ga.DebugData()))
			return
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	d := DefaultLimits()
	assert.Equal(t, d, Limits{}.WithDefaults())
	l := Limits{MaxFlowsPerRequest: 5}.WithDefaults()
	assert.Equal(t, 5, l.MaxFlowsPerRequest)
	assert.Equal(t, d.MaxConnections, l.MaxConnections)
}
