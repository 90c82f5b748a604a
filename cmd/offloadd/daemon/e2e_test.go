package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/offloadd/offloadd/api/flowfile"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic/emulated"
)

// node is one in-process daemon on a real unix socket and a client to it.
type node struct {
	d     *Daemon
	conn  *grpc.ClientConn
	flows v1.FlowServiceClient
	nodes v1.NodeServiceClient
	sock  string
}

func startNode(t *testing.T, mod func(*Config)) *node {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Socket = filepath.Join(dir, "offloadd.sock")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.StatsInterval = Duration(50 * time.Millisecond)
	cfg.PromoteRetry = Duration(time.Hour)
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() { d.Shutdown(context.Background()) })
	conn, err := grpc.NewClient("unix://"+cfg.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize), grpc.MaxCallSendMsgSize(MaxMsgSize)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &node{d: d, conn: conn, flows: v1.NewFlowServiceClient(conn), nodes: v1.NewNodeServiceClient(conn), sock: cfg.Socket}
}

func withProfile(profile string, table int) func(*Config) {
	return func(c *Config) {
		c.Emulated.Profile = profile
		c.Emulated.HWTableSize = table
	}
}

func tenant(t *testing.T) []*v1.Flow {
	t.Helper()
	data, err := os.ReadFile("../../../hack/demo/tenant.yaml")
	require.NoError(t, err)
	fs, err := flowfile.Parse(data)
	require.NoError(t, err)
	return fs
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

type placement struct {
	state  v1.FlowState
	reason string // first reason code, "" in hardware
}

func placements(rs []*v1.ApplyResult) map[string]placement {
	m := map[string]placement{}
	for _, r := range rs {
		p := placement{state: r.GetStatus().GetState()}
		if rr := r.GetStatus().GetReasons(); len(rr) > 0 {
			p.reason = rr[0].GetCode()
		}
		m[r.GetId()] = p
	}
	return m
}

var (
	hw = placement{state: v1.FlowState_FLOW_STATE_HARDWARE}
	sw = func(code string) placement { return placement{state: v1.FlowState_FLOW_STATE_SOFTWARE, reason: code} }
)

// TestE2EDemoTenantOnEveryProfile applies the demo tenant to each emulated
// NIC and checks every flow's placement and first reason. Explain must
// predict each placement before the apply.
func TestE2EDemoTenantOnEveryProfile(t *testing.T) {
	common := map[string]placement{
		"antispoof-ip-vf0":   hw,
		"antispoof-drop-vf0": hw,
		"acl-ssh-vf0":        hw,
		"tap-vf1":            sw("policy-software-only"),
	}
	tests := []struct {
		profile string
		want    map[string]placement
	}{
		{"mlx5-cx6dx", map[string]placement{
			"antispoof-arp-vf0":  hw,
			"overlay-vtep1-vf0":  hw,
			"overlay-decap-vf0":  hw,
			"fw-out-ct":          hw,
			"fw-out-new":         sw("ct-state"),
			"fw-out-est":         hw,
			"fw-in-invalid":      sw("ct-state"),
			"sctp-signalling":    sw("unsupported-value"),
			"first-fragments":    sw("unsupported-value"),
			"lb-rewrite-then-ct": sw("unsupported-combination"),
		}},
		{"mlx5-bf2", map[string]placement{
			"overlay-vtep1-vf0": hw,
			"fw-out-new":        sw("ct-state"),
			"fw-out-est":        hw,
		}},
		{"nfp-agilio-cx", map[string]placement{
			"antispoof-arp-vf0": sw("unsupported-action"),
			"antispoof-ip-vf0":  sw("unsupported-combination"),
			// In hardware it would drop VM 0's traffic before the
			// software antispoof rule could pass it.
			"antispoof-drop-vf0": sw("earlier-rule-in-software"),
			"overlay-vtep1-vf0":  hw,
			"overlay-decap-vf0":  hw,
			"fw-out-ct":          hw,
			"fw-out-new":         sw("ct-state"),
			"fw-out-est":         hw,
			"fw-in-default":      sw("ct-state"),
			"sctp-signalling":    hw,
		}},
		{"ice-e810", map[string]placement{
			"antispoof-ip-vf0":   sw("unsupported-action"),
			"antispoof-drop-vf0": sw("earlier-rule-in-software"),
			"acl-ssh-vf0":        sw("chain-limit"),
			"overlay-vtep1-vf0":  sw("unsupported-action"),
			"overlay-decap-vf0":  sw("unsupported-action"),
			"fw-out-ct":          sw("unsupported-action"),
			"fw-out-est":         sw("unsupported-match-key"),
			"sctp-signalling":    sw("unsupported-value"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			n := startNode(t, withProfile(tt.profile, 0))
			c := ctx(t)
			flows := tenant(t)
			// Explain of the whole batch predicts every placement.
			xs, err := n.flows.ExplainFlows(c, &v1.ExplainFlowsRequest{Flows: flows})
			require.NoError(t, err)
			require.Len(t, xs.GetResults(), len(flows))
			predicted := map[string]v1.FlowState{}
			for i, f := range flows {
				predicted[f.GetId()] = xs.GetResults()[i].GetState()
			}
			resp, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: flows})
			require.NoError(t, err)
			require.Len(t, resp.GetResults(), len(flows))
			for i, r := range resp.GetResults() {
				require.Equal(t, flows[i].GetId(), r.GetId(), "results in request order")
				require.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_CREATED, r.GetOutcome(), "%s: %s", r.GetId(), r.GetError())
				if p, ok := predicted[r.GetId()]; ok {
					assert.Equal(t, p, r.GetStatus().GetState(), "explain predicted %s", r.GetId())
				}
				if r.GetStatus().GetState() != v1.FlowState_FLOW_STATE_HARDWARE {
					assert.NotEmpty(t, r.GetStatus().GetReasons(), "%s is not in hardware and must say why", r.GetId())
				}
			}
			// After the apply, explaining the same flows changes nothing and agrees.
			for _, f := range flows {
				x, err := n.flows.ExplainFlow(c, &v1.ExplainFlowRequest{Flow: f})
				require.NoError(t, err)
				assert.False(t, x.GetChanged(), f.GetId())
				assert.Equal(t, x.GetInstalled().GetState(), x.GetState(), "explain after apply of %s: %v", f.GetId(), x.GetReasons())
			}
			got := placements(resp.GetResults())
			if os.Getenv("OFFLOADD_E2E_DUMP") != "" {
				for _, r := range resp.GetResults() {
					t.Logf("%s %s %v", r.GetId(), r.GetStatus().GetState(), reasonsOf(resp, r.GetId()))
				}
			}
			for id, want := range common {
				if _, ok := tt.want[id]; !ok {
					tt.want[id] = want
				}
			}
			for id, want := range tt.want {
				assert.Equal(t, want, got[id], "placement of %s on %s: %v", id, tt.profile, reasonsOf(resp, id))
			}
		})
	}
}

func hasGoto(f *v1.Flow) bool {
	for _, a := range f.GetActions() {
		if a.GetGoto() != nil {
			return true
		}
	}
	return false
}

func reasonsOf(resp *v1.ApplyFlowsResponse, id string) []string {
	var out []string
	for _, r := range resp.GetResults() {
		if r.GetId() == id {
			for _, rr := range r.GetStatus().GetReasons() {
				out = append(out, rr.GetCode()+" "+rr.GetField()+": "+rr.GetMessage())
			}
		}
	}
	return out
}

func aclFlow(id string, prio, dport uint32) *v1.Flow {
	return &v1.Flow{Id: id, Port: "pf0vf1", Priority: prio,
		Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", DstPort: &dport},
		Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}
}

// TestE2ESpillAndPromote fills a 4-entry hardware table, checks the spill
// reason, then frees entries and waits for the promoter to move the
// spilled flows back, seen through WatchFlows.
func TestE2ESpillAndPromote(t *testing.T) {
	n := startNode(t, withProfile("mlx5-cx6dx", 4))
	c := ctx(t)
	var flows []*v1.Flow
	for i := range 6 {
		flows = append(flows, aclFlow(fmt.Sprintf("acl-%d", i), uint32(10+i), uint32(1000+i)))
	}
	resp, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: flows})
	require.NoError(t, err)
	got := placements(resp.GetResults())
	for i := range 4 {
		assert.Equal(t, hw, got[fmt.Sprintf("acl-%d", i)])
	}
	for _, id := range []string{"acl-4", "acl-5"} {
		assert.Equal(t, sw("hardware-table-full"), got[id])
	}

	w, err := n.flows.WatchFlows(c, &v1.WatchFlowsRequest{})
	require.NoError(t, err)
	for {
		ev, err := w.Recv()
		require.NoError(t, err)
		if ev.GetKind() == v1.WatchEventKind_WATCH_EVENT_KIND_SYNC {
			break
		}
	}
	_, err = n.flows.DeleteFlows(c, &v1.DeleteFlowsRequest{Ids: []string{"acl-0", "acl-1"}})
	require.NoError(t, err)
	promoted := map[string]bool{}
	for len(promoted) < 2 {
		ev, err := w.Recv()
		require.NoError(t, err)
		if ev.GetKind() == v1.WatchEventKind_WATCH_EVENT_KIND_UPSERT && ev.GetStatus().GetState() == v1.FlowState_FLOW_STATE_HARDWARE {
			promoted[ev.GetStatus().GetFlow().GetId()] = true
		}
	}
	assert.Equal(t, map[string]bool{"acl-4": true, "acl-5": true}, promoted)
	list, err := n.flows.ListFlows(c, &v1.ListFlowsRequest{State: v1.FlowState_FLOW_STATE_SOFTWARE})
	require.NoError(t, err)
	assert.Empty(t, list.GetFlows())
}

// TestE2EAtomicBatchWithOneBadFlowChangesNothing checks the error detail and
// that nothing was applied.
func TestE2EAtomicBatchWithOneBadFlowChangesNothing(t *testing.T) {
	n := startNode(t, nil)
	c := ctx(t)
	_, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{aclFlow("keep", 1, 1)}})
	require.NoError(t, err)
	bad := aclFlow("bad", 3, 3)
	bad.Match.Ipv4Dst = "10.0.0.0/33"
	_, err = n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Atomic: true,
		Flows: []*v1.Flow{aclFlow("keep", 1, 99), aclFlow("new", 2, 2), bad}})
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	require.Contains(t, fields, "flows[2].match.ipv4_dst: prefix 33 > 32")

	list, err := n.flows.ListFlows(c, &v1.ListFlowsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetFlows(), 1)
	assert.Equal(t, uint32(1), list.GetFlows()[0].GetFlow().GetMatch().GetDstPort())
	assert.Equal(t, uint64(1), list.GetFlows()[0].GetGeneration())
}

// TestE2EWatchSnapshotSyncChanges checks the stream's shape.
func TestE2EWatchSnapshotSyncChanges(t *testing.T) {
	n := startNode(t, nil)
	c := ctx(t)
	_, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{aclFlow("a", 1, 1), aclFlow("b", 2, 2)}})
	require.NoError(t, err)
	w, err := n.flows.WatchFlows(c, &v1.WatchFlowsRequest{})
	require.NoError(t, err)
	var kinds []string
	next := func() *v1.WatchFlowsResponse {
		ev, err := w.Recv()
		require.NoError(t, err)
		kinds = append(kinds, ev.GetKind().String()+" "+ev.GetStatus().GetFlow().GetId())
		return ev
	}
	next()
	next()
	next()
	_, err = n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{aclFlow("a", 1, 5)}})
	require.NoError(t, err)
	ev := next()
	assert.Equal(t, uint64(2), ev.GetStatus().GetGeneration())
	_, err = n.flows.DeleteFlows(c, &v1.DeleteFlowsRequest{Ids: []string{"b"}})
	require.NoError(t, err)
	next()
	assert.Equal(t, []string{
		"WATCH_EVENT_KIND_SNAPSHOT a", "WATCH_EVENT_KIND_SNAPSHOT b", "WATCH_EVENT_KIND_SYNC ",
		"WATCH_EVENT_KIND_UPSERT a", "WATCH_EVENT_KIND_DELETE b"}, kinds)
}

// TestE2ETenThousandFlowsThenTheSameBatch applies 10,000 flows in one
// batch, then the same batch again: nothing changes, generations stay.
func TestE2ETenThousandFlowsThenTheSameBatch(t *testing.T) {
	n := startNode(t, withProfile("mlx5-cx6dx", 0))
	c := ctx(t)
	flows := make([]*v1.Flow, 10000)
	for i := range flows {
		dport := uint32(i%60000 + 1)
		flows[i] = &v1.Flow{Id: fmt.Sprintf("bulk-%05d", i), Port: fmt.Sprintf("pf0vf%d", i%8), Priority: uint32(i%1000 + 1),
			Match:   &v1.Match{EthType: "ipv4", Ipv4Src: fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256), IpProto: "tcp", DstPort: &dport},
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}
	}
	resp, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: flows})
	require.NoError(t, err)
	for _, r := range resp.GetResults() {
		require.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_CREATED, r.GetOutcome(), r.GetId())
		require.Equal(t, v1.FlowState_FLOW_STATE_HARDWARE, r.GetStatus().GetState(), r.GetId())
	}
	resp, err = n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: flows})
	require.NoError(t, err)
	for _, r := range resp.GetResults() {
		require.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_UNCHANGED, r.GetOutcome(), r.GetId())
		require.Equal(t, uint64(1), r.GetStatus().GetGeneration(), r.GetId())
	}
	node, err := n.nodes.GetNode(c, &v1.GetNodeRequest{})
	require.NoError(t, err)
	assert.Equal(t, uint64(10000), node.GetNode().GetNics()[0].GetHardwareTable().GetUsed())
}

// TestE2ENodePortsHealthAndSocket checks the node view, health and the socket mode.
func TestE2ENodePortsHealthAndSocket(t *testing.T) {
	n := startNode(t, nil)
	c := ctx(t)
	fi, err := os.Stat(n.sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	node, err := n.nodes.GetNode(c, &v1.GetNodeRequest{})
	require.NoError(t, err)
	require.Len(t, node.GetNode().GetNics(), 1)
	nicInfo := node.GetNode().GetNics()[0]
	assert.Equal(t, "mlx5_core", nicInfo.GetDriver())
	assert.Equal(t, "mlx5-cx6dx", nicInfo.GetProfile())
	assert.True(t, nicInfo.GetEmulated())
	assert.Equal(t, v1.EswitchMode_ESWITCH_MODE_SWITCHDEV, nicInfo.GetEswitchMode())
	assert.Equal(t, uint32(emulated.DefaultNumVFs), nicInfo.GetNumVfs())

	ports, err := n.nodes.ListPorts(c, &v1.ListPortsRequest{})
	require.NoError(t, err)
	byName := map[string]*v1.Port{}
	for _, p := range ports.GetPorts() {
		byName[p.GetName()] = p
	}
	require.Contains(t, byName, "p0")
	require.Contains(t, byName, "pf0vf7")
	require.Contains(t, byName, "vxlan0")
	rep := byName["pf0vf3"]
	assert.Equal(t, v1.PortKind_PORT_KIND_REPRESENTOR, rep.GetKind())
	assert.Equal(t, "pf0vf3", rep.GetPhysPortName())
	assert.Equal(t, byName["p0"].GetSwitchId(), rep.GetSwitchId())
	vf := byName[rep.GetPeer()]
	require.NotNil(t, vf, "representor's VF %q is listed", rep.GetPeer())
	assert.Equal(t, "pf0vf3", vf.GetPeer())

	h, err := healthpb.NewHealthClient(n.conn).Check(c, &healthpb.HealthCheckRequest{Service: "offloadd.v1.FlowService"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus())

	_, err = n.flows.GetFlow(c, &v1.GetFlowRequest{Id: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err))
}

// TestE2EHardwareOnlyRefusalIsAnError checks the non-atomic per-flow error.
func TestE2EHardwareOnlyRefusalIsAnError(t *testing.T) {
	n := startNode(t, withProfile("ice-e810", 0))
	c := ctx(t)
	f := aclFlow("ct", 1, 1)
	f.Policy = v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY
	f.Actions = []*v1.Action{{Action: &v1.Action_Ct{Ct: &v1.Conntrack{Zone: 1}}}, {Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}
	resp, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{f}})
	require.NoError(t, err)
	r := resp.GetResults()[0]
	assert.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_FAILED, r.GetOutcome())
	assert.Contains(t, r.GetError(), "unsupported-action")
	list, err := n.flows.ListFlows(c, &v1.ListFlowsRequest{})
	require.NoError(t, err)
	assert.Empty(t, list.GetFlows(), "a refused hardware-only flow changes nothing")

	_, err = n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{f}, Atomic: true})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
}

// TestE2EMetrics scrapes /metrics after the demo tenant is applied.
func TestE2EMetrics(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.Metrics = "127.0.0.1:0"
		c.Emulated.HWTableSize = 28
	})
	_, err := n.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: tenant(t)})
	require.NoError(t, err)
	resp, err := http.Get("http://" + n.d.MetricsAddr().String() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(body)
	for _, want := range []string{
		`offloadd_flows{device="p0",state="hardware"} 28`,
		`offloadd_flows{device="p0",state="software"} 12`,
		`offloadd_hardware_table_used_entries{device="p0"} 28`,
		`offloadd_hardware_table_capacity_entries{device="p0"} 28`,
		`offloadd_flows_not_in_hardware{reason="hardware-table-full"} 2`,
		`offloadd_flows_not_in_hardware{reason="earlier-rule-in-software"} 3`,
		`offloadd_flows_not_in_hardware{reason="policy-software-only"} 1`,
		`offloadd_flow_packets_total{device="p0",plane="hardware"} 0`,
		"go_goroutines",
	} {
		assert.Contains(t, text, want)
	}

	problems, err := promlint.New(strings.NewReader(text)).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")

	// Counters only go up: traffic, then delete the flows that counted it.
	dp := v1.NewDatapathServiceClient(n.conn)
	for range 3 {
		_, err := dp.InjectPacket(ctx(t), &v1.InjectPacketRequest{Port: "pf0vf0",
			Packet: &v1.InjectPacketRequest_Spec{Spec: "tcp,eth_src=02:42:0f:01:00:00,src=10.0.0.10,dst=10.0.1.5,dport=22"}})
		require.NoError(t, err)
	}
	require.NoError(t, n.d.Engine().RefreshStats(ctx(t)))
	before := scrapeCounters(t, n)
	require.Positive(t, before[`offloadd_flow_packets_total{device="p0",plane="hardware"}`])
	_, err = n.flows.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: []string{"antispoof-ip-vf0", "acl-ssh-vf0"}})
	require.NoError(t, err)
	after := scrapeCounters(t, n)
	for name, v := range before {
		assert.GreaterOrEqual(t, after[name], v, "%s went down after deletes", name)
	}
}

// scrapeCounters returns every *_total sample of offloadd's metrics.
func scrapeCounters(t *testing.T, n *node) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.d.MetricsAddr().String() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, "offloadd_") || !strings.Contains(name, "_total") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		require.NoError(t, err, line)
		out[name] = v
	}
	return out
}

// TestSocketPathAtRegularFile: --socket naming an existing regular file is
// an error, and the file (which a root daemon could otherwise delete) is
// left as it was, also by the shutdown that follows the failed start.
func TestSocketPathAtRegularFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "important.conf")
	require.NoError(t, os.WriteFile(path, []byte("keep me\n"), 0o644))
	cfg := DefaultConfig()
	cfg.Socket = path
	cfg.StateDir = ""
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	err = d.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a socket")
	d.Shutdown(context.Background())
	data, err := os.ReadFile(path)
	require.NoError(t, err, "the file is still there")
	assert.Equal(t, "keep me\n", string(data))
}

// TestE2ELimits: the configured limits reach the API, and a hit shows in
// offloadd_api_limit_hits_total.
func TestE2ELimits(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.Metrics = "127.0.0.1:0"
		c.Limits.MaxFlowsPerRequest = 2
	})
	flows := tenant(t)[:3]
	_, err := n.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: flows})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "over the limit of 2")
	_, err = n.flows.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: flows[:2]})
	require.NoError(t, err)
	c := scrapeCounters(t, n)
	assert.Equal(t, 1.0, c[`offloadd_api_limit_hits_total{limit="flows_per_request"}`])
	assert.Equal(t, 0.0, c[`offloadd_api_limit_hits_total{limit="connections"}`])
}

func TestLimitsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offloadd.yaml")
	require.NoError(t, os.WriteFile(path, []byte("limits:\n  maxFlowsPerRequest: 500\n  maxConnectionIdle: 5m\n"), 0o600))
	cfg, err := LoadConfig(path)
	require.NoError(t, err)
	l := cfg.Limits.API()
	assert.Equal(t, 500, l.MaxFlowsPerRequest)
	assert.Equal(t, 5*time.Minute, l.MaxConnectionIdle)
	assert.Equal(t, 256, l.MaxConnections, "the others keep their defaults")

	cfg.Limits.MaxWatchers = -1
	assert.ErrorContains(t, cfg.Validate(), "limits.maxWatchers: -1 is negative")
}
