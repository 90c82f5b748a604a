package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

type harness struct {
	engine *fakeEngine
	server *Server
	flows  v1.FlowServiceClient
	node   v1.NodeServiceClient
	health healthpb.HealthClient
	gs     *grpc.Server
}

func newHarness(t *testing.T, devs ...nic.Device) *harness {
	t.Helper()
	return newHarnessWith(t, nil, devs...)
}

// newHarnessWith serves with the given server options.
func newHarnessWith(t *testing.T, opts []grpc.ServerOption, devs ...nic.Device) *harness {
	t.Helper()
	return newHarnessFull(t, opts, nil, devs...)
}

// newHarnessFull serves with the given gRPC server and API options.
func newHarnessFull(t testing.TB, opts []grpc.ServerOption, sopts []Option, devs ...nic.Device) *harness {
	t.Helper()
	h := &harness{engine: newFakeEngine()}
	h.server = NewServer(h.engine, fakeNode(devs), append([]Option{WithHostname("node-1"), WithVersion("v0.1.0"),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, sopts...)...)
	lis := bufconn.Listen(1 << 20)
	h.gs = grpc.NewServer(opts...)
	h.server.Register(h.gs)
	go func() { _ = h.gs.Serve(lis) }()
	t.Cleanup(h.gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	h.flows = v1.NewFlowServiceClient(conn)
	h.node = v1.NewNodeServiceClient(conn)
	h.health = healthpb.NewHealthClient(conn)
	return h
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func outcomes(resp *v1.ApplyFlowsResponse) []v1.ApplyOutcome {
	var out []v1.ApplyOutcome
	for _, r := range resp.GetResults() {
		out = append(out, r.GetOutcome())
	}
	return out
}

func violationFields(vs []*v1.FieldViolation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.GetField()+": "+v.GetDescription())
	}
	return out
}

const (
	okFlow   = `{"id":"a","port":"pf0vf0","priority":1,"actions":[{"drop":{}}]}`
	badFlow  = `{"id":"b","port":"pf0vf0","priority":1,"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.0/33"},"actions":[{"drop":{}}]}`
	failFlow = `{"id":"c","port":"pf0vf0","priority":2,"policy":"PLACEMENT_POLICY_HARDWARE_ONLY","actions":[{"drop":{}}]}`
	dupFlow  = `{"id":"a","port":"pf0vf1","priority":1,"actions":[{"drop":{}}]}`
	portFlow = `{"id":"d","port":"nope","priority":1,"actions":[{"redirect":{"port":"gone"}}]}`
)

func TestApplyFlowsLeavesFlowsOutUnlessAsked(t *testing.T) {
	h := newHarness(t)
	lean, err := h.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{wireFlow(t, okFlow)}})
	require.NoError(t, err)
	assert.Nil(t, lean.GetResults()[0].GetStatus().GetFlow(), "flows are left out unless asked for")
	assert.Equal(t, v1.FlowState_FLOW_STATE_HARDWARE, lean.GetResults()[0].GetStatus().GetState())
}

func TestApplyFlowsNonAtomic(t *testing.T) {
	h := newHarness(t)
	h.engine.fail["c"] = &offload.PlacementError{ID: "c", Reasons: []nic.Reason{{Code: nic.ReasonRefused, Message: "hardware refused: no"}}}
	h.engine.violations["d"] = []flow.Violation{{Field: "port", Reason: `unknown port "nope"`}, {Field: "actions[0].port", Reason: `unknown port "gone"`}}

	req := &v1.ApplyFlowsRequest{Flows: []*v1.Flow{
		wireFlow(t, okFlow), wireFlow(t, badFlow), wireFlow(t, failFlow), wireFlow(t, dupFlow), wireFlow(t, portFlow),
	}, IncludeFlows: true}
	resp, err := h.flows.ApplyFlows(ctx(t), req)
	require.NoError(t, err)
	assert.Equal(t, []v1.ApplyOutcome{
		v1.ApplyOutcome_APPLY_OUTCOME_CREATED,
		v1.ApplyOutcome_APPLY_OUTCOME_INVALID,
		v1.ApplyOutcome_APPLY_OUTCOME_FAILED,
		v1.ApplyOutcome_APPLY_OUTCOME_INVALID,
		v1.ApplyOutcome_APPLY_OUTCOME_INVALID,
	}, outcomes(resp))

	r := resp.GetResults()
	assert.Equal(t, []string{"a", "b", "c", "a", "d"}, []string{r[0].GetId(), r[1].GetId(), r[2].GetId(), r[3].GetId(), r[4].GetId()})
	assert.Equal(t, v1.FlowState_FLOW_STATE_HARDWARE, r[0].GetStatus().GetState())
	assert.Equal(t, "a", r[0].GetStatus().GetFlow().GetId())
	assert.Equal(t, []string{"flows[1].match.ipv4_dst: prefix 33 > 32"}, violationFields(r[1].GetViolations()))
	assert.Nil(t, r[1].GetStatus())
	assert.Contains(t, r[2].GetError(), "hardware refused: no")
	assert.Equal(t, []string{"flows[3].id: duplicate of flows[0] in the same batch"}, violationFields(r[3].GetViolations()))
	assert.Equal(t, []string{`flows[4].port: unknown port "nope"`, `flows[4].actions[0].redirect.port: unknown port "gone"`},
		violationFields(r[4].GetViolations()))

	// Only flows that converted cleanly reach the engine, in request order.
	require.Len(t, h.engine.applied, 1)
	var ids []string
	for _, f := range h.engine.applied[0] {
		ids = append(ids, f.ID)
	}
	assert.Equal(t, []string{"a", "c", "d"}, ids)
	assert.Equal(t, []bool{false}, h.engine.atomic)

	// Applying the same flow again is unchanged.
	resp, err = h.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{wireFlow(t, okFlow)}})
	require.NoError(t, err)
	assert.Equal(t, []v1.ApplyOutcome{v1.ApplyOutcome_APPLY_OUTCOME_UNCHANGED}, outcomes(resp))
}

// rejection unpacks an atomic batch's error.
func rejection(t *testing.T, err error) (*status.Status, *errdetails.BadRequest, *v1.ApplyFlowsResponse) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "%v", err)
	var br *errdetails.BadRequest
	var resp *v1.ApplyFlowsResponse
	for _, d := range st.Details() {
		switch x := d.(type) {
		case *errdetails.BadRequest:
			br = x
		case *v1.ApplyFlowsResponse:
			resp = x
		}
	}
	require.NotNil(t, resp, "details carry the per-flow results")
	return st, br, resp
}

func TestApplyFlowsAtomicInvalid(t *testing.T) {
	h := newHarness(t)
	_, err := h.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Atomic: true, Flows: []*v1.Flow{wireFlow(t, okFlow), wireFlow(t, badFlow)}})
	st, br, resp := rejection(t, err)
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Contains(t, st.Message(), `flows[1] (id "b") invalid: flows[1].match.ipv4_dst: prefix 33 > 32`)
	require.NotNil(t, br)
	require.Len(t, br.GetFieldViolations(), 1)
	assert.Equal(t, "flows[1].match.ipv4_dst", br.GetFieldViolations()[0].GetField())
	assert.Equal(t, "prefix 33 > 32", br.GetFieldViolations()[0].GetDescription())
	assert.Equal(t, []v1.ApplyOutcome{v1.ApplyOutcome_APPLY_OUTCOME_ABORTED, v1.ApplyOutcome_APPLY_OUTCOME_INVALID}, outcomes(resp))
	assert.Empty(t, h.engine.applied, "nothing reaches the engine")
}

func TestApplyFlowsAtomicEngineRejects(t *testing.T) {
	refused := &offload.PlacementError{ID: "c", Reasons: []nic.Reason{{Code: nic.ReasonUnsupportedKey, Message: "no ct_mark"}},
		Err: nic.Refusal(syscall.EOPNOTSUPP, "ct_mark not supported")}
	full := &offload.PlacementError{ID: "c", Capacity: true, Reasons: []nic.Reason{{Code: nic.ReasonCapacity, Message: "table full"}},
		Err: nic.Refusal(syscall.ENOSPC, "")}
	tests := []struct {
		name       string
		fail       map[string]error
		violations map[string][]flow.Violation
		code       codes.Code
		msg        string
		badRequest []string
	}{
		{"refused", map[string]error{"c": refused}, nil, codes.FailedPrecondition, `flows[1] (id "c") failed: flow c cannot be placed: unsupported-match-key: no ct_mark`, nil},
		{"capacity", map[string]error{"c": full}, nil, codes.ResourceExhausted, `flows[1] (id "c") failed: flow c cannot be placed: hardware-table-full: table full`, nil},
		{"capacity and refused", map[string]error{"c": full, "a": refused}, nil, codes.FailedPrecondition, "2 of 2 flows invalid or failed", nil},
		{"software error", map[string]error{"c": errors.New("install c in software on pf0vf0: boom")}, nil, codes.FailedPrecondition, "boom", nil},
		{"engine violation", nil, map[string][]flow.Violation{"c": {{Field: "actions[0].chain", Reason: "goto chain 9, which has no rules"}}},
			codes.InvalidArgument, "flows[1].actions[0].chain: goto chain 9", []string{"flows[1].actions[0].chain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.engine.fail = tt.fail
			if tt.violations != nil {
				h.engine.violations = tt.violations
			}
			_, err := h.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Atomic: true, Flows: []*v1.Flow{wireFlow(t, okFlow), wireFlow(t, failFlow)}})
			st, br, resp := rejection(t, err)
			assert.Equal(t, tt.code, st.Code(), st.Message())
			assert.Contains(t, st.Message(), tt.msg)
			assert.Contains(t, st.Message(), "batch rejected, nothing applied")
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
			assert.Equal(t, tt.badRequest, fields)
			assert.Len(t, resp.GetResults(), 2)
			assert.Equal(t, []bool{true}, h.engine.atomic)
			assert.Empty(t, h.engine.flows)
		})
	}
}

func TestApplyFlowsAtomicRejectedWithoutCulprit(t *testing.T) {
	h := newHarness(t)
	h.engine.rejectAll = true
	_, err := h.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Atomic: true, Flows: []*v1.Flow{wireFlow(t, okFlow)}})
	st, br, resp := rejection(t, err)
	assert.Equal(t, codes.FailedPrecondition, st.Code())
	assert.Nil(t, br)
	assert.Equal(t, []v1.ApplyOutcome{v1.ApplyOutcome_APPLY_OUTCOME_ABORTED}, outcomes(resp))
}

func TestRejectedMessageIsBounded(t *testing.T) {
	resp := &v1.ApplyFlowsResponse{}
	for range 50 {
		resp.Results = append(resp.Results, &v1.ApplyResult{Id: "x", Outcome: v1.ApplyOutcome_APPLY_OUTCOME_FAILED, Error: "nope"})
	}
	st := status.Convert(rejected(resp, nil))
	assert.Contains(t, st.Message(), "50 of 50 flows invalid or failed")
	assert.Contains(t, st.Message(), "; and 30 more")
	assert.Less(t, len(st.Message()), 2000)
}

func TestDeleteFlows(t *testing.T) {
	h := newHarness(t)
	_, err := h.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{wireFlow(t, okFlow)}})
	require.NoError(t, err)
	resp, err := h.flows.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: []string{"a", "zz"}})
	require.NoError(t, err)
	want := &v1.DeleteFlowsResponse{Results: []*v1.DeleteResult{{Id: "a", Found: true}, {Id: "zz"}}}
	assert.True(t, proto.Equal(want, resp), "%v", resp)

	_, err = h.flows.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: []string{"a", ""}})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}

func seed(h *harness, ids ...string) {
	for i, id := range ids {
		f := &flow.Flow{ID: id, Port: "pf0vf0", Priority: 1, Chain: uint32(i % 2), Actions: []flow.Action{{Kind: flow.ActDrop}}}
		st := offload.State(offload.StateHardware)
		if i%3 == 0 {
			st = offload.StateSoftware
		}
		h.engine.flows[id] = offload.Status{Flow: f, State: st, Generation: 1, Device: "p0"}
	}
}

func TestListFlowsPaging(t *testing.T) {
	h := newHarness(t)
	seed(h, "f1", "f2", "f3", "f4", "f5")
	var got []string
	token := ""
	pages := 0
	for {
		resp, err := h.flows.ListFlows(ctx(t), &v1.ListFlowsRequest{PageSize: 2, PageToken: token})
		require.NoError(t, err)
		pages++
		for _, st := range resp.GetFlows() {
			got = append(got, st.GetFlow().GetId())
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	assert.Equal(t, []string{"f1", "f2", "f3", "f4", "f5"}, got)
	assert.Equal(t, 3, pages)

	resp, err := h.flows.ListFlows(ctx(t), &v1.ListFlowsRequest{})
	require.NoError(t, err)
	assert.Len(t, resp.GetFlows(), 5)
	assert.Empty(t, resp.GetNextPageToken())

	_, err = h.flows.ListFlows(ctx(t), &v1.ListFlowsRequest{PageToken: "!!"})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestListFlowsFilters(t *testing.T) {
	h := newHarness(t)
	seed(h, "f1", "f2", "f3", "g4")
	chain := uint32(1)
	resp, err := h.flows.ListFlows(ctx(t), &v1.ListFlowsRequest{Port: "pf0vf0", State: v1.FlowState_FLOW_STATE_HARDWARE, IdPrefix: "f", Chain: &chain})
	require.NoError(t, err)
	require.Len(t, resp.GetFlows(), 1)
	assert.Equal(t, "f2", resp.GetFlows()[0].GetFlow().GetId())

	f := h.engine.filters[len(h.engine.filters)-1]
	assert.Equal(t, "pf0vf0", f.Port)
	assert.Equal(t, "f", f.IDPrefix)
	require.NotNil(t, f.State)
	assert.Equal(t, offload.StateHardware, *f.State)
	require.NotNil(t, f.Chain)
	assert.Equal(t, uint32(1), *f.Chain)

	_, err = h.flows.ListFlows(ctx(t), &v1.ListFlowsRequest{})
	require.NoError(t, err)
	f = h.engine.filters[len(h.engine.filters)-1]
	assert.Nil(t, f.State)
	assert.Nil(t, f.Chain)

	_, err = h.flows.ListFlows(ctx(t), &v1.ListFlowsRequest{State: v1.FlowState(42)})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestGetFlow(t *testing.T) {
	h := newHarness(t)
	seed(h, "f1")
	resp, err := h.flows.GetFlow(ctx(t), &v1.GetFlowRequest{Id: "f1"})
	require.NoError(t, err)
	assert.Equal(t, "f1", resp.GetStatus().GetFlow().GetId())
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, resp.GetStatus().GetState())

	_, err = h.flows.GetFlow(ctx(t), &v1.GetFlowRequest{Id: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	_, err = h.flows.GetFlow(ctx(t), &v1.GetFlowRequest{})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestExplainFlow(t *testing.T) {
	h := newHarness(t)
	seed(h, "b")

	// Unparsable: answered without the engine, with the installed copy.
	resp, err := h.flows.ExplainFlow(ctx(t), &v1.ExplainFlowRequest{Flow: wireFlow(t, badFlow)})
	require.NoError(t, err)
	assert.Equal(t, v1.FlowState_FLOW_STATE_FAILED, resp.GetState())
	assert.Equal(t, []string{"flow.match.ipv4_dst: prefix 33 > 32"}, violationFields(resp.GetViolations()))
	assert.Equal(t, "b", resp.GetInstalled().GetFlow().GetId())
	assert.True(t, resp.GetChanged())
	assert.Empty(t, h.engine.explained)

	// Valid: the engine's answer, with wire paths.
	installed := h.engine.flows["b"]
	h.engine.explain = offload.Explanation{
		State:      offload.StateSoftware,
		Reasons:    []nic.Reason{{Code: nic.ReasonCTState, Field: "match.ct_state", Message: "+new is not offloaded"}, {Code: nic.ReasonPort, Field: "actions[0].port", Message: "not a representor"}},
		Violations: []flow.Violation{{Field: "actions[0].port", Reason: "x"}},
		Installed:  &installed,
		Changed:    true,
	}
	resp, err = h.flows.ExplainFlow(ctx(t), &v1.ExplainFlowRequest{Flow: wireFlow(t,
		`{"id":"b","port":"pf0vf0","priority":1,"match":{"ct_state":"+trk+new"},"actions":[{"mirror":{"port":"p0"}},{"drop":{}}]}`)})
	require.NoError(t, err)
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, resp.GetState())
	require.Len(t, resp.GetReasons(), 2)
	assert.Equal(t, "ct-state", resp.GetReasons()[0].GetCode())
	assert.Equal(t, "match.ct_state", resp.GetReasons()[0].GetField())
	assert.Equal(t, "actions[0].mirror.port", resp.GetReasons()[1].GetField())
	assert.Equal(t, []string{"flow.actions[0].mirror.port: x"}, violationFields(resp.GetViolations()))
	assert.Equal(t, "b", resp.GetInstalled().GetFlow().GetId())
	assert.True(t, resp.GetChanged())
	require.Len(t, h.engine.explained, 1)
	assert.Equal(t, flow.Masked16{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew}, h.engine.explained[0].Match.CTState)

	// Nil flow: every required field is reported.
	resp, err = h.flows.ExplainFlow(ctx(t), &v1.ExplainFlowRequest{})
	require.NoError(t, err)
	assert.Contains(t, violationFields(resp.GetViolations()), "flow.id: must not be empty")
}

func TestWatchFlows(t *testing.T) {
	h := newHarness(t)
	seed(h, "f1", "f2")
	stream, err := h.flows.WatchFlows(ctx(t), &v1.WatchFlowsRequest{})
	require.NoError(t, err)

	var kinds []string
	recv := func() *v1.WatchFlowsResponse {
		ev, err := stream.Recv()
		require.NoError(t, err)
		kinds = append(kinds, ev.GetKind().String()+" "+ev.GetStatus().GetFlow().GetId())
		return ev
	}
	recv()
	recv()
	sync := recv()
	assert.Nil(t, sync.GetStatus())

	st := h.engine.flows["f1"]
	st.State = offload.StateSoftware
	st.Reasons = []nic.Reason{{Code: nic.ReasonCapacity, Message: "full"}}
	h.engine.events <- offload.Event{Kind: offload.EventUpsert, Status: st}
	h.engine.events <- offload.Event{Kind: offload.EventDelete, Status: h.engine.flows["f2"]}
	up := recv()
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, up.GetStatus().GetState())
	assert.Equal(t, "hardware-table-full", up.GetStatus().GetReasons()[0].GetCode())
	recv()
	assert.Equal(t, []string{
		"WATCH_EVENT_KIND_SNAPSHOT f1", "WATCH_EVENT_KIND_SNAPSHOT f2", "WATCH_EVENT_KIND_SYNC ",
		"WATCH_EVENT_KIND_UPSERT f1", "WATCH_EVENT_KIND_DELETE f2",
	}, kinds)

	close(h.engine.events)
	_, err = stream.Recv()
	require.Error(t, err)
	assert.NotEqual(t, io.EOF, err, "a watch never ends cleanly")
	assert.Equal(t, codes.Unavailable, status.Code(err))
}

func TestWatchEnd(t *testing.T) {
	tests := []struct {
		werr, serr error
		code       codes.Code
	}{
		{offload.ErrWatcherLagged, nil, codes.Aborted},
		{offload.ErrClosed, nil, codes.Unavailable},
		{nil, nil, codes.Unavailable},
		{context.Canceled, nil, codes.Canceled},
		{offload.ErrWatcherLagged, context.Canceled, codes.Canceled},
		{nil, context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("odd"), nil, codes.Internal},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.code, status.Code(watchEnd(tt.werr, tt.serr)), "%v %v", tt.werr, tt.serr)
	}
}

func TestEngineError(t *testing.T) {
	assert.Equal(t, codes.Unavailable, status.Code(engineError("x", offload.ErrClosed)))
	assert.Equal(t, codes.Canceled, status.Code(engineError("x", context.Canceled)))
	assert.Equal(t, codes.Internal, status.Code(engineError("x", errors.New("boom"))))
}

func testDevice() *fakeDevice {
	return &fakeDevice{
		info: nic.Info{Name: "p0", Driver: "mlx5_core", Model: "ConnectX-6 Dx", Profile: "mlx5-cx6dx", PCIAddress: "0000:3b:00.0",
			FirmwareVersion: "22.39.1002", SwitchID: "aabbcc", Emulated: true, EswitchMode: nic.EswitchSwitchdev, NumVFs: 2, TotalVFs: 8},
		profile: &nic.Profile{
			Name:      "mlx5-cx6dx",
			MatchKeys: flow.Keys(flow.KeyEthSrc, flow.KeyIPv4Dst, flow.KeyTunID, flow.KeyCTState),
			Actions:   flow.Actions(flow.ActDrop, flow.ActRedirect, flow.ActTunnelEncap, flow.ActCT),
			MaxChain:  3, MaxPriority: 16,
			Rules: []nic.Rule{{Name: "ct-state-flags"}},
			Notes: []string{"firmware steering"},
		},
		ports: []nic.Port{
			{Name: "pf0vf1", Kind: nic.PortRepresentor, PhysPortName: "pf0vf1", SwitchID: "aabbcc", VF: 1, PCIAddress: "0000:3b:00.3", MTU: 1500, Up: true, Peer: "p0v1"},
			{Name: "p0", Kind: nic.PortUplink, PhysPortName: "p0", SwitchID: "aabbcc", VF: -1, PCIAddress: "0000:3b:00.0",
				MAC: [6]byte{2, 0, 0, 0, 0, 1}, MTU: 9000, Up: true},
		},
		used: 10, total: 1024,
	}
}

func TestGetNode(t *testing.T) {
	other := &fakeDevice{info: nic.Info{Name: "ens1f0", Driver: "ice", EswitchMode: nic.EswitchLegacy}}
	h := newHarness(t, testDevice(), other)
	resp, err := h.node.GetNode(ctx(t), &v1.GetNodeRequest{})
	require.NoError(t, err)
	want := &v1.Node{
		Hostname: "node-1", Version: "v0.1.0",
		Nics: []*v1.Nic{
			{Name: "ens1f0", Driver: "ice", EswitchMode: v1.EswitchMode_ESWITCH_MODE_LEGACY, HardwareTable: &v1.HardwareTable{}},
			{Name: "p0", Driver: "mlx5_core", Model: "ConnectX-6 Dx", Profile: "mlx5-cx6dx", PciAddress: "0000:3b:00.0",
				FirmwareVersion: "22.39.1002", SwitchId: "aabbcc", Emulated: true, EswitchMode: v1.EswitchMode_ESWITCH_MODE_SWITCHDEV,
				NumVfs: 2, TotalVfs: 8, HardwareTable: &v1.HardwareTable{Used: 10, Total: 1024},
				Capabilities: &v1.Capabilities{
					MatchKeys: []string{"eth_src", "ipv4_dst", "tunnel.vni", "ct_state"},
					Actions:   []string{"drop", "redirect", "tunnel_encap", "ct"},
					MaxChain:  3, MaxPriority: 16, Rules: []string{"ct-state-flags"}, Notes: []string{"firmware steering"},
				}},
		},
	}
	assert.True(t, proto.Equal(want, resp.GetNode()), "got %v", resp.GetNode())
}

func TestCapabilityNamesAreWireNames(t *testing.T) {
	// Every action name must be an Action oneof member, every key a Match path.
	actions := (&v1.Action{}).ProtoReflect().Descriptor().Oneofs().ByName("action").Fields()
	for _, a := range allActions {
		assert.NotNil(t, actions.ByName(protoName(a.String())), a.String())
	}
	assert.Equal(t, actions.Len(), len(allActions))
	match := (&v1.Match{}).ProtoReflect().Descriptor()
	flow.AllKeys.Each(func(k flow.Key) {
		name, sub, nested := cut(k.String())
		fd := match.Fields().ByName(protoName(name))
		require.NotNil(t, fd, k.String())
		if nested {
			assert.NotNil(t, fd.Message().Fields().ByName(protoName(sub)), k.String())
		}
	})
}

func TestListPorts(t *testing.T) {
	h := newHarness(t, testDevice())
	resp, err := h.node.ListPorts(ctx(t), &v1.ListPortsRequest{})
	require.NoError(t, err)
	vf := uint32(1)
	want := []*v1.Port{
		{Name: "p0", Kind: v1.PortKind_PORT_KIND_UPLINK, PhysPortName: "p0", SwitchId: "aabbcc", PciAddress: "0000:3b:00.0",
			Mac: "02:00:00:00:00:01", Mtu: 9000, Up: true, Device: "p0"},
		{Name: "pf0vf1", Kind: v1.PortKind_PORT_KIND_REPRESENTOR, PhysPortName: "pf0vf1", SwitchId: "aabbcc", Vf: &vf,
			PciAddress: "0000:3b:00.3", Mtu: 1500, Up: true, Peer: "p0v1", Device: "p0"},
	}
	require.Len(t, resp.GetPorts(), 2)
	for i := range want {
		assert.True(t, proto.Equal(want[i], resp.GetPorts()[i]), "port %d: %v", i, resp.GetPorts()[i])
	}

	resp, err = h.node.ListPorts(ctx(t), &v1.ListPortsRequest{Device: "p0"})
	require.NoError(t, err)
	assert.Len(t, resp.GetPorts(), 2)
	_, err = h.node.ListPorts(ctx(t), &v1.ListPortsRequest{Device: "p9"})
	assert.Equal(t, codes.NotFound, status.Code(err))
}

func TestHealthAndReflection(t *testing.T) {
	h := newHarness(t)
	for _, svc := range []string{"", "offloadd.v1.FlowService", "offloadd.v1.NodeService"} {
		resp, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus(), svc)
	}
	h.server.SetServing(false)
	resp, err := h.health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: "offloadd.v1.FlowService"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus())

	info := h.gs.GetServiceInfo()
	for _, svc := range []string{"offloadd.v1.FlowService", "offloadd.v1.NodeService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		assert.Contains(t, info, svc)
	}
}

func TestStatusToProto(t *testing.T) {
	used := time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)
	f := &flow.Flow{ID: "x", Port: "p", Priority: 1, Actions: []flow.Action{{Kind: flow.ActRedirect, Port: "q"}}}
	st := offload.Status{
		Flow: f, State: offload.StateFailed, Generation: 4, Device: "p0",
		Reasons: []nic.Reason{{Code: nic.ReasonRefused, Field: "actions[0].port", Message: "m"}},
		HW:      nic.Counters{Packets: 5, Bytes: 300, LastUsed: used},
		SW:      nic.Counters{Packets: 1, Bytes: 64},
		Updated: used,
	}
	p := StatusToProto(st)
	assert.Equal(t, v1.FlowState_FLOW_STATE_FAILED, p.GetState())
	assert.Equal(t, "actions[0].redirect.port", p.GetReasons()[0].GetField())
	assert.Equal(t, uint64(5), p.GetHardware().GetPackets())
	assert.Equal(t, used, p.GetHardware().GetLastUsed().AsTime())
	assert.Nil(t, p.GetSoftware().GetLastUsed(), "never used has no timestamp")
	assert.Equal(t, uint64(4), p.GetGeneration())
	assert.Equal(t, used, p.GetUpdated().AsTime())
	assert.Nil(t, StatusToProto(offload.Status{}))

	for s := offload.StatePending; s <= offload.StateFailed; s++ {
		back, ok := StateFromProto(StateToProto(s))
		assert.True(t, ok)
		assert.Equal(t, s, back)
	}
	_, ok := StateFromProto(v1.FlowState_FLOW_STATE_UNSPECIFIED)
	assert.False(t, ok)
}

func protoName(s string) protoreflect.Name { return protoreflect.Name(s) }

func cut(s string) (string, string, bool) { return strings.Cut(s, ".") }

// The engine and its device list are what the daemon passes to NewServer.
var (
	_ FlowEngine = (*offload.Engine)(nil)
	_ NodeInfo   = (*offload.Engine)(nil)
)
