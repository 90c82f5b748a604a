package api

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/fallback"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	ct "github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// migNode is one emulated node serving FlowService and MigrationService on
// an in-memory listener.
type migNode struct {
	name string
	dev  *emulated.Device
	eng  *offload.Engine
	ct   *ct.Table
	mig  *fallback.Migrator
	lis  *bufconn.Listener
	mc   v1.MigrationServiceClient
	fc   v1.FlowServiceClient
}

// bufNet dials nodes by name, for the clients and as the configured
// peers of forward_to (api.Peers).
type bufNet map[string]*bufconn.Listener

func (n bufNet) HasPeer(name string) bool { _, ok := n[name]; return ok }

func (n bufNet) DialPeer(ctx context.Context, name string) (*grpc.ClientConn, error) {
	return n.dial(ctx, name)
}

func (n bufNet) dial(_ context.Context, addr string) (*grpc.ClientConn, error) {
	lis, ok := n[addr]
	if !ok {
		return nil, fmt.Errorf("no node %q", addr)
	}
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
}

var clock = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newMigNode(t *testing.T, net bufNet, name string) *migNode {
	t.Helper()
	dev, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(t, err)
	eng, err := offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: quietLog})
	require.NoError(t, err)
	n := &migNode{name: name, dev: dev, eng: eng, ct: ct.New(ct.DefaultTimeouts()), lis: bufconn.Listen(1 << 20)}
	vfs := fallback.NewEmulatedVFs(dev, func(rep string) bool { return len(eng.List(offload.Filter{Port: rep})) > 0 })
	n.mig, err = fallback.NewMigrator(fallback.MigratorConfig{Engine: eng, VFs: vfs, Node: name, Logger: quietLog,
		Conntrack: fallback.NewEmulatedConns(n.ct, func() time.Time { return clock }), Now: func() time.Time { return clock }})
	require.NoError(t, err)
	gs := grpc.NewServer()
	NewServer(eng, eng, WithLogger(quietLog)).Register(gs)
	NewMigrationService(n.mig, WithMigrationLogger(quietLog), WithPeers(net)).Register(gs)
	go func() { _ = gs.Serve(n.lis) }()
	net[name] = n.lis
	conn, err := net.dial(context.Background(), name)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		eng.Close()
		dev.Close()
	})
	n.mc, n.fc = v1.NewMigrationServiceClient(conn), v1.NewFlowServiceClient(conn)
	return n
}

// workloadFlows are the migrating VM's flows on port: an ACL, conntrack
// in zone 5, established traffic to VXLAN VNI 100, and VXLAN traffic
// decapsulated to the port.
func workloadFlows(port string) []*v1.Flow {
	u := func(v uint32) *uint32 { return &v }
	return []*v1.Flow{
		{Id: "vm1-acl", Port: port, Priority: 1, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", DstPort: u(25)},
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}},
		{Id: "vm1-ct", Port: port, Priority: 10, Match: &v1.Match{EthType: "ipv4", CtState: "-trk"},
			Actions: []*v1.Action{{Action: &v1.Action_Ct{Ct: &v1.Conntrack{Zone: 5}}}, {Action: &v1.Action_Goto{Goto: &v1.Goto{Chain: 1}}}}},
		{Id: "vm1-est", Port: port, Chain: 1, Priority: 1, Match: &v1.Match{EthType: "ipv4", CtState: "+trk+est"},
			Actions: []*v1.Action{
				{Action: &v1.Action_TunnelEncap{TunnelEncap: &v1.TunnelEncap{Vni: 100, Src: "192.0.2.1", Dst: "192.0.2.2"}}},
				{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: "vxlan0"}}}}},
		{Id: "vm1-vxlan-in", Port: "vxlan0", Priority: 100,
			Match: &v1.Match{EthType: "ipv4", Ipv4Dst: "10.0.0.3", Tunnel: &v1.TunnelMatch{Vni: u(100), DstPort: u(4789)}},
			Actions: []*v1.Action{{Action: &v1.Action_TunnelDecap{TunnelDecap: &v1.TunnelDecap{}}},
				{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: port}}}}},
	}
}

func (n *migNode) applyFlows(t *testing.T, fs ...*v1.Flow) {
	t.Helper()
	_, err := n.fc.ApplyFlows(context.Background(), &v1.ApplyFlowsRequest{Flows: fs, Atomic: true})
	require.NoError(t, err)
}

// openTCP runs a TCP handshake through zone 5 of the node's conntrack table.
func (n *migNode) openTCP(sport uint16) ct.Tuple {
	orig := ct.Tuple{Src: netip.MustParseAddr("10.0.0.3"), Dst: netip.MustParseAddr("10.0.1.7"), Proto: ct.ProtoTCP, SrcPort: sport, DstPort: 80}
	for _, p := range []ct.Packet{{Tuple: orig, TCPFlags: ct.TCPSyn}, {Tuple: orig.Reverse(), TCPFlags: ct.TCPSyn | ct.TCPAck}, {Tuple: orig, TCPFlags: ct.TCPAck}} {
		n.ct.Track(ct.Request{Zone: 5, Packet: p, Commit: true}, clock)
	}
	return orig
}

func (n *migNode) states(t *testing.T) map[string]v1.FlowState {
	t.Helper()
	resp, err := n.fc.ListFlows(context.Background(), &v1.ListFlowsRequest{})
	require.NoError(t, err)
	out := map[string]v1.FlowState{}
	for _, st := range resp.GetFlows() {
		out[st.GetFlow().GetId()] = st.GetState()
	}
	return out
}

func code(err error) codes.Code { return status.Code(err) }

func TestMigrationServiceHandoff(t *testing.T) {
	ctx := context.Background()
	net := bufNet{}
	src, dst := newMigNode(t, net, "src"), newMigNode(t, net, "dst")
	src.applyFlows(t, workloadFlows("pf0vf3")...)
	dst.applyFlows(t, &v1.Flow{Id: "busy", Port: "pf0vf0", Priority: 1, Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
	conn := src.openTCP(40000)
	before := src.states(t)

	prep, err := dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, "pf0vf1", prep.GetPort())
	assert.Equal(t, "pf0vf1", prep.GetVf().GetRepresentor())
	assert.Equal(t, v1.MigrationStep_MIGRATION_STEP_PREPARED, prep.GetMigration().GetStep())
	assert.Equal(t, v1.MigrationRole_MIGRATION_ROLE_DESTINATION, prep.GetMigration().GetRole())

	dr, err := src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, uint32(4), dr.GetFlows())
	assert.Equal(t, uint32(1), dr.GetHeld())
	for id, st := range src.states(t) {
		assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, st, id)
	}

	// Export straight to the destination daemon.
	ex, err := src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: "dst"})
	require.NoError(t, err)
	require.NotNil(t, ex.GetForwarded())
	assert.Equal(t, uint32(4), ex.GetForwarded().GetFlowsCreated())
	assert.Equal(t, uint32(1), ex.GetForwarded().GetConntrackCreated())
	assert.Equal(t, "1.0", ex.GetBundle().GetVersion())
	var content v1.MigrationBundleContent
	require.NoError(t, proto.Unmarshal(ex.GetBundle().GetContent(), &content))
	assert.Equal(t, []uint32{5}, content.GetConntrackZones())
	require.Len(t, content.GetConntrack(), 1)
	assert.Equal(t, "ESTABLISHED", content.GetConntrack()[0].GetTcp().GetState())

	// The established connection is known at the destination: its next
	// segment is established, with no SYN.
	res := dst.ct.Track(ct.Request{Zone: 5, Packet: ct.Packet{Tuple: conn, TCPFlags: ct.TCPAck | ct.TCPPsh}}, clock)
	assert.Equal(t, flow.CTTracked|flow.CTEstablished, res.State, res.Note)
	got, err := dst.fc.GetFlow(ctx, &v1.GetFlowRequest{Id: "vm1-vxlan-in"})
	require.NoError(t, err)
	assert.Equal(t, "pf0vf1", got.GetStatus().GetFlow().GetActions()[1].GetRedirect().GetPort())
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, got.GetStatus().GetState())
	assert.Equal(t, "port-draining", got.GetStatus().GetReasons()[0].GetCode())

	// Importing the same bundle again answers the same.
	imp, err := dst.mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: "m1", Bundle: ex.GetBundle()})
	require.NoError(t, err)
	assert.True(t, proto.Equal(ex.GetForwarded(), imp), "repeated import:\n%v\n%v", ex.GetForwarded(), imp)

	ro, err := dst.mc.ReoffloadMigration(ctx, &v1.ReoffloadMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	assert.Equal(t, uint32(4), ro.GetHardware())
	after := dst.states(t)
	delete(after, "busy")
	assert.Equal(t, before, after, "the same placements as on the source")

	cm, err := src.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	assert.Equal(t, uint32(4), cm.GetFlowsRemoved())
	assert.Equal(t, uint32(1), cm.GetConntrackRemoved())
	assert.True(t, cm.GetVfReleased())
	assert.Empty(t, src.states(t))
	assert.Empty(t, src.ct.Entries(clock))
	_, err = dst.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)

	g, err := src.mc.GetMigration(ctx, &v1.GetMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	assert.Equal(t, v1.MigrationStep_MIGRATION_STEP_COMMITTED, g.GetMigration().GetStep())
	assert.Equal(t, uint32(1), g.GetMigration().GetConntrackEntries())
	l, err := dst.mc.ListMigrations(ctx, &v1.ListMigrationsRequest{})
	require.NoError(t, err)
	require.Len(t, l.GetMigrations(), 1)
	assert.Equal(t, "pf0vf3", l.GetMigrations()[0].GetSourcePort())
}

func TestMigrationServiceErrors(t *testing.T) {
	ctx := context.Background()
	net := bufNet{}
	src, dst := newMigNode(t, net, "src"), newMigNode(t, net, "dst")
	src.applyFlows(t, workloadFlows("pf0vf3")...)

	_, err := dst.mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: "m1", Bundle: &v1.MigrationBundle{Version: "1.0"}})
	assert.Equal(t, codes.InvalidArgument, code(err), "checksum: %v", err)
	assert.ErrorContains(t, err, "checksum mismatch")
	_, err = src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1"})
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.ErrorContains(t, err, "expected Drain first")
	_, err = src.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "nope"})
	assert.Equal(t, codes.NotFound, code(err))
	_, err = src.mc.GetMigration(ctx, &v1.GetMigrationRequest{MigrationId: "nope"})
	assert.Equal(t, codes.NotFound, code(err))
	_, err = src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "has space", Port: "pf0vf3"})
	assert.Equal(t, codes.InvalidArgument, code(err))
	_, err = src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1", ConntrackAddresses: []string{"nope"}})
	assert.Equal(t, codes.InvalidArgument, code(err))

	// Invalid pre-installed flows are reported with their request paths.
	_, err = dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3",
		Flows: []*v1.Flow{{Id: "x", Port: "pf0vf3", Priority: 1, Match: &v1.Match{Ipv4Dst: "10.0.0.300"},
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}}})
	require.Equal(t, codes.InvalidArgument, code(err))
	var br *errdetails.BadRequest
	for _, d := range status.Convert(err).Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	require.NotNil(t, br)
	assert.Equal(t, "flows[0].match.ipv4_dst", br.GetFieldViolations()[0].GetField())

	// Every VF taken: RESOURCE_EXHAUSTED.
	for i := range 8 {
		dst.applyFlows(t, &v1.Flow{Id: fmt.Sprintf("vm%d", i), Port: fmt.Sprintf("pf0vf%d", i), Priority: 1,
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
	}
	_, err = dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3"})
	assert.Equal(t, codes.ResourceExhausted, code(err), "%v", err)

	// A bundle with a newer major version is refused by name.
	_, err = dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m2", SourcePort: "pf0vf3", Port: "pf0vf7"})
	require.NoError(t, err)
	_, err = src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "m2", Port: "pf0vf3"})
	require.NoError(t, err)
	ex, err := src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m2"})
	require.NoError(t, err)
	b := proto.Clone(ex.GetBundle()).(*v1.MigrationBundle)
	b.Version = "2.0"
	_, err = dst.mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: "m2", Bundle: b})
	assert.Equal(t, codes.InvalidArgument, code(err))
	assert.ErrorContains(t, err, "bundle version 2.0 is not supported")
	b = proto.Clone(ex.GetBundle()).(*v1.MigrationBundle)
	b.Content = b.Content[:len(b.Content)-1]
	_, err = dst.mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: "m2", Bundle: b})
	assert.ErrorContains(t, err, "truncated or altered")

	// A colliding flow id fails the import with FAILED_PRECONDITION naming it.
	dst.applyFlows(t, &v1.Flow{Id: "vm1-acl", Port: "pf0vf0", Priority: 2, Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
	_, err = dst.mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: "m2", Bundle: ex.GetBundle()})
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.ErrorContains(t, err, "flow vm1-acl is already installed")

	// Forwarding to a configured peer that is down.
	ghost := bufconn.Listen(1 << 10)
	ghost.Close()
	net["ghost"] = ghost
	_, err = src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m2", ForwardTo: "ghost"})
	assert.Equal(t, codes.Unavailable, code(err))
	// Forwarded errors keep the destination's code.
	_, err = src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m2", ForwardTo: "dst"})
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.ErrorContains(t, err, "import at dst")

	// Abort on both sides.
	ab, err := src.mc.AbortMigration(ctx, &v1.AbortMigrationRequest{MigrationId: "m2"})
	require.NoError(t, err)
	assert.Len(t, ab.GetFlows(), 4)
	assert.Empty(t, ab.GetNotRestored())
	_, err = dst.mc.AbortMigration(ctx, &v1.AbortMigrationRequest{MigrationId: "m2"})
	require.NoError(t, err)
	_, err = src.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "m2"})
	assert.Equal(t, codes.FailedPrecondition, code(err))
	assert.ErrorContains(t, err, "aborted")
}

func TestBundleRoundTrip(t *testing.T) {
	exported := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f, vs := FlowFromProto(workloadFlows("pf0vf3")[2], "")
	require.Empty(t, vs)
	src, dst := netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.1.7")
	nat := netip.MustParseAddr("192.0.2.9")
	b := &fallback.Bundle{Version: fallback.BundleVersion, MigrationID: "m1", SourceNode: "n1", SourcePort: "pf0vf3",
		Serial: 3, Exported: exported, Flows: []offload.StoredFlow{{Flow: f, Generation: 7}}, Zones: []uint16{5, 6},
		Conns: []fallback.ConnEntry{
			{Zone: 5, Proto: 6, Orig: fallback.ConnTuple{Src: src, Dst: dst, SrcPort: 40000, DstPort: 80},
				Reply:  fallback.ConnTuple{Src: dst, Dst: nat, SrcPort: 80, DstPort: 1024},
				TCP:    &fallback.ConnTCP{State: fallback.TCPEstablished, OrigWScale: 7, ReplyWScale: 9, OrigFlags: 0x23},
				Status: fallback.ConnSeenReply | fallback.ConnAssured | fallback.ConnSrcNAT, Mark: 9, Timeout: time.Hour},
			{Zone: 6, Proto: 1, Orig: fallback.ConnTuple{Src: src, Dst: dst, ICMPID: 77, ICMPType: 8},
				Reply: fallback.ConnTuple{Src: dst, Dst: src, ICMPID: 77}, Timeout: 30 * time.Second},
		},
		VF: &fallback.VFSettings{MAC: "02:00:00:00:00:33", VLAN: 100, QoS: 3, SpoofChk: true, MaxTxRate: 1000}}
	p, err := BundleToProto(b)
	require.NoError(t, err)
	back, err := BundleFromProto(p)
	require.NoError(t, err)
	assert.Equal(t, b, back)
	assert.True(t, back.Conns[0].SNAT())
	assert.False(t, back.Conns[0].DNAT())

	p2, err := BundleToProto(b)
	require.NoError(t, err)
	assert.Equal(t, p.GetContent(), p2.GetContent(), "deterministic encoding")

	p.Version = "1.9"
	_, err = BundleFromProto(p)
	assert.NoError(t, err, "a newer minor version is read")
	p.Sha256[0] ^= 1
	_, err = BundleFromProto(p)
	assert.ErrorIs(t, err, fallback.ErrInvalidRequest)

	var c v1.MigrationBundleContent
	require.NoError(t, proto.Unmarshal(p2.GetContent(), &c))
	c.Conntrack[0].IpProto = "bogus"
	c.Conntrack[1].Original.Src = "10.0.0.999"
	c.Flows[0].Flow.Priority = 0
	data, err := proto.Marshal(&c)
	require.NoError(t, err)
	bad := &v1.MigrationBundle{Version: "1.0", Content: data, Sha256: sum(data)}
	_, err = BundleFromProto(bad)
	require.ErrorIs(t, err, fallback.ErrInvalidRequest)
	assert.ErrorContains(t, err, "flows[0].priority")
	assert.ErrorContains(t, err, `conntrack[0]: ip_proto: unknown ip_proto "bogus"`)
	assert.ErrorContains(t, err, "conntrack[1]: original: src")
}

func sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// importRecorder is a destination that records the forwarded import.
type importRecorder struct {
	v1.UnimplementedMigrationServiceServer
	got *v1.ImportMigrationRequest
}

func (r *importRecorder) ImportMigration(_ context.Context, req *v1.ImportMigrationRequest) (*v1.ImportMigrationResponse, error) {
	r.got = req
	return &v1.ImportMigrationResponse{Serial: 7, FlowsCreated: 4}, nil
}

// TestExportRefusesAddresses: forward_to names a configured peer; an
// address, a unix socket path or an unknown name is InvalidArgument, and
// the migration is not exported (the root daemon dials nothing a client
// chose).
func TestExportRefusesAddresses(t *testing.T) {
	ctx := context.Background()
	sock := filepath.Join(t.TempDir(), "dst.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	rec := &importRecorder{}
	gs := grpc.NewServer()
	v1.RegisterMigrationServiceServer(gs, rec)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcp.Close()

	peers := bufNet{}
	src := newMigNode(t, peers, "src")
	src.applyFlows(t, workloadFlows("pf0vf3")...)
	_, err = src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	for _, to := range []string{"unix:" + sock, sock, tcp.Addr().String(), "localhost:50051", "dns:///localhost:1", "ghost", "src/../x"} {
		_, err := src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: to})
		assert.Equal(t, codes.InvalidArgument, code(err), "forward_to %q: %v", to, err)
	}
	assert.Nil(t, rec.got, "nothing reached the socket")
	got, err := src.mc.GetMigration(ctx, &v1.GetMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	assert.Equal(t, v1.MigrationStep_MIGRATION_STEP_DRAINED, got.GetMigration().GetStep(), "not exported")
	// A service without peers refuses every forward_to.
	svc := NewMigrationService(src.mig, WithMigrationLogger(quietLog))
	_, err = svc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: "src"})
	assert.Equal(t, codes.InvalidArgument, code(err))
}
