package api

import (
	"context"
	"net"
	"testing"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func datapathClient(t *testing.T, dps map[string]Datapath) v1.DatapathServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	NewDatapathService(dps).Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return v1.NewDatapathServiceClient(conn)
}

// emulatedDatapath is an emulated ConnectX-6 Dx with a datapath and one
// flow: pf0vf0's TCP to port 22 is dropped, the rest goes to the uplink.
func emulatedDatapath(t *testing.T) (*emulated.Device, *datapath.Datapath) {
	t.Helper()
	dev, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	clock := datapath.NewManualClock(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	dp, err := datapath.New(dev, datapath.Config{Now: clock.Now})
	require.NoError(t, err)
	fs := []*flow.Flow{
		{ID: "ssh", Port: "pf0vf0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			DstPort: flow.Masked16{Value: 22, Mask: 0xffff}}, Actions: []flow.Action{{Kind: flow.ActDrop}}},
		{ID: "out", Port: "pf0vf0", Priority: 2, Actions: []flow.Action{
			{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteEthDst, MAC: [6]byte{2, 0, 0, 0, 0, 9}}},
			{Kind: flow.ActRedirect, Port: "p0"}}},
	}
	for _, err := range dev.Program(context.Background(), flow.Hardware, []nic.Op{{Kind: nic.OpAdd, Flow: fs[0]}, {Kind: nic.OpAdd, Flow: fs[1]}}) {
		require.NoError(t, err)
	}
	return dev, dp
}

func TestInjectPacket(t *testing.T) {
	_, dp := emulatedDatapath(t)
	c := datapathClient(t, map[string]Datapath{"p0": dp})
	ctx := context.Background()

	resp, err := c.InjectPacket(ctx, &v1.InjectPacketRequest{Port: "pf0vf0",
		Packet: &v1.InjectPacketRequest_Spec{Spec: "tcp,src=10.0.0.10,dst=10.0.1.5,dport=80"}})
	require.NoError(t, err)
	tr := resp.GetTrace()
	assert.Equal(t, "pf0vf0", tr.GetInPort())
	assert.Equal(t, v1.PacketVerdict_PACKET_VERDICT_FORWARDED, tr.GetVerdict())
	assert.Equal(t, v1.TracePlane_TRACE_PLANE_HARDWARE, tr.GetPlane())
	assert.False(t, tr.GetSoftwarePath())
	assert.Equal(t, "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.10 > 10.0.1.5 ttl 64, tcp 12345 > 80 [S]", tr.GetInputSummary())
	assert.Equal(t, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), tr.GetTime().AsTime())
	var kinds []v1.TraceStepKind
	for _, s := range tr.GetSteps() {
		kinds = append(kinds, s.GetKind())
	}
	assert.Equal(t, []v1.TraceStepKind{v1.TraceStepKind_TRACE_STEP_KIND_PORT, v1.TraceStepKind_TRACE_STEP_KIND_RULE,
		v1.TraceStepKind_TRACE_STEP_KIND_RULE, v1.TraceStepKind_TRACE_STEP_KIND_ACTION, v1.TraceStepKind_TRACE_STEP_KIND_ACTION,
		v1.TraceStepKind_TRACE_STEP_KIND_OUTPUT}, kinds)
	rule := tr.GetSteps()[2]
	assert.Equal(t, "out", rule.GetFlowId())
	assert.True(t, rule.GetMatched())
	assert.Equal(t, uint32(2), rule.GetPriority())
	assert.Equal(t, []*v1.FieldChange{{Field: "eth_dst", Before: "02:42:0f:00:00:00", After: "02:00:00:00:00:09"}}, stripChanges(tr.GetSteps()[3].GetChanges()))
	require.Len(t, tr.GetOutputs(), 1)
	o := tr.GetOutputs()[0]
	assert.Equal(t, "p0", o.GetPort())
	assert.Equal(t, v1.TraceOutputKind_TRACE_OUTPUT_KIND_WIRE, o.GetKind())
	assert.Equal(t, []byte{2, 0, 0, 0, 0, 9}, o.GetFrame()[0:6])
	assert.Contains(t, o.GetSummary(), "02:42:0f:01:00:00 > 02:00:00:00:00:09")
	assert.Contains(t, resp.GetText(), "prio 2 out: match")
	assert.Contains(t, resp.GetText(), "Verdict: forwarded in hardware")

	// A raw frame.
	frame, err := dp.BuildSpec("pf0vf0", "tcp,dport=22")
	require.NoError(t, err)
	resp, err = c.InjectPacket(ctx, &v1.InjectPacketRequest{Port: "pf0vf0", Packet: &v1.InjectPacketRequest_Frame{Frame: frame}})
	require.NoError(t, err)
	assert.Equal(t, v1.PacketVerdict_PACKET_VERDICT_DROPPED, resp.GetTrace().GetVerdict())
	assert.Equal(t, "flow ssh drops it", resp.GetTrace().GetReason())
	assert.Equal(t, frame, resp.GetTrace().GetInput())

	stats, err := c.GetDatapathStats(ctx, &v1.GetDatapathStatsRequest{})
	require.NoError(t, err)
	require.Len(t, stats.GetPorts(), 2)
	assert.Equal(t, "p0", stats.GetPorts()[0].GetPort())
	assert.Equal(t, uint64(1), stats.GetPorts()[0].GetTxPackets())
	assert.Equal(t, "pf0vf0", stats.GetPorts()[1].GetPort())
	assert.Equal(t, "p0", stats.GetPorts()[1].GetDevice())
	assert.Equal(t, uint64(2), stats.GetPorts()[1].GetRxPackets())
	assert.Equal(t, uint64(1), stats.GetPorts()[1].GetDrops())

	one, err := c.GetDatapathStats(ctx, &v1.GetDatapathStatsRequest{Port: "pf0vf3"})
	require.NoError(t, err)
	require.Len(t, one.GetPorts(), 1)
	assert.Equal(t, "pf0vf3", one.GetPorts()[0].GetPort())
	assert.Zero(t, one.GetPorts()[0].GetRxPackets())
}

func stripChanges(cs []*v1.FieldChange) []*v1.FieldChange {
	out := make([]*v1.FieldChange, len(cs))
	for i, c := range cs {
		out[i] = &v1.FieldChange{Field: c.GetField(), Before: c.GetBefore(), After: c.GetAfter()}
	}
	return out
}

func TestInjectPacketErrors(t *testing.T) {
	_, dp := emulatedDatapath(t)
	c := datapathClient(t, map[string]Datapath{"p0": dp})
	ctx := context.Background()
	tests := []struct {
		name string
		req  *v1.InjectPacketRequest
		code codes.Code
		msg  string
	}{
		{"no port", &v1.InjectPacketRequest{Packet: &v1.InjectPacketRequest_Spec{Spec: "tcp"}}, codes.InvalidArgument, "port is required"},
		{"unknown port", &v1.InjectPacketRequest{Port: "eth9", Packet: &v1.InjectPacketRequest_Spec{Spec: "tcp"}}, codes.NotFound, `no emulated NIC has a port "eth9"`},
		{"no packet", &v1.InjectPacketRequest{Port: "pf0vf0"}, codes.InvalidArgument, "a frame or a spec is required"},
		{"bad spec", &v1.InjectPacketRequest{Port: "pf0vf0", Packet: &v1.InjectPacketRequest_Spec{Spec: "tcp,bogus=1"}}, codes.InvalidArgument, "unknown key"},
		{"runt frame", &v1.InjectPacketRequest{Port: "pf0vf0", Packet: &v1.InjectPacketRequest_Frame{Frame: []byte{1, 2, 3}}}, codes.InvalidArgument, "shorter than an Ethernet header"},
		{"not vxlan on a tunnel", &v1.InjectPacketRequest{Port: "vxlan0", Packet: &v1.InjectPacketRequest_Spec{Spec: "udp"}}, codes.InvalidArgument, "not a VXLAN frame"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.InjectPacket(ctx, tc.req)
			st, ok := status.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tc.code, st.Code())
			assert.Contains(t, st.Message(), tc.msg)
		})
	}
	_, err := c.GetDatapathStats(ctx, &v1.GetDatapathStatsRequest{Port: "eth9"})
	assert.Equal(t, codes.NotFound, status.Code(err))
}

func TestDatapathServiceWithoutEmulatedNIC(t *testing.T) {
	c := datapathClient(t, nil)
	ctx := context.Background()
	_, err := c.InjectPacket(ctx, &v1.InjectPacketRequest{Port: "p0", Packet: &v1.InjectPacketRequest_Spec{Spec: "tcp"}})
	st, _ := status.FromError(err)
	assert.Equal(t, codes.Unimplemented, st.Code())
	assert.Contains(t, st.Message(), "needs the emulated backend")
	_, err = c.GetDatapathStats(ctx, &v1.GetDatapathStatsRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestInjectAcrossDevices(t *testing.T) {
	_, a := emulatedDatapath(t)
	cfg := emulated.DefaultConfig()
	cfg.BaseMAC, cfg.PCIAddress, cfg.NumVFs, cfg.Tunnels = "02:43:00:00:00:00", "0000:09:00.0", 0, nil
	dev, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	b, err := datapath.New(dev, datapath.Config{})
	require.NoError(t, err)
	// Both devices name their uplink p0: the first device in name order wins.
	c := datapathClient(t, map[string]Datapath{"nic-a": a, "nic-b": b})
	resp, err := c.InjectPacket(context.Background(), &v1.InjectPacketRequest{Port: "pf0vf0",
		Packet: &v1.InjectPacketRequest_Spec{Spec: "udp"}})
	require.NoError(t, err)
	assert.Equal(t, v1.PacketVerdict_PACKET_VERDICT_FORWARDED, resp.GetTrace().GetVerdict())
	stats, err := c.GetDatapathStats(context.Background(), &v1.GetDatapathStatsRequest{})
	require.NoError(t, err)
	for _, p := range stats.GetPorts() {
		assert.Equal(t, "nic-a", p.GetDevice())
	}
}
