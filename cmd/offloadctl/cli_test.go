package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// fakeServer answers the API with canned responses and records requests.
type fakeServer struct {
	v1.UnimplementedFlowServiceServer
	v1.UnimplementedNodeServiceServer

	mu       sync.Mutex
	applied  []*v1.ApplyFlowsRequest
	applyFn  func(*v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error)
	lists    []*v1.ListFlowsRequest
	pages    []*v1.ListFlowsResponse
	deleted  []*v1.DeleteFlowsRequest
	flows    map[string]*v1.FlowStatus
	explains []*v1.ExplainFlowRequest
	events   []*v1.WatchFlowsResponse
	watchEnd error
}

func (s *fakeServer) GetNode(context.Context, *v1.GetNodeRequest) (*v1.GetNodeResponse, error) {
	return &v1.GetNodeResponse{Node: &v1.Node{Hostname: "node-1", Nics: []*v1.Nic{{Name: "p0", Driver: "mlx5_core"}}}}, nil
}

func (s *fakeServer) ListPorts(_ context.Context, req *v1.ListPortsRequest) (*v1.ListPortsResponse, error) {
	if req.GetDevice() == "nope" {
		return nil, status.Error(codes.NotFound, `device "nope" not found`)
	}
	return &v1.ListPortsResponse{Ports: []*v1.Port{{Name: "pf0vf0", Kind: v1.PortKind_PORT_KIND_REPRESENTOR, Device: "p0"}}}, nil
}

func (s *fakeServer) ApplyFlows(_ context.Context, req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
	s.mu.Lock()
	s.applied = append(s.applied, req)
	s.mu.Unlock()
	return s.applyFn(req)
}

func (s *fakeServer) ListFlows(_ context.Context, req *v1.ListFlowsRequest) (*v1.ListFlowsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists = append(s.lists, proto.Clone(req).(*v1.ListFlowsRequest))
	return s.pages[len(s.lists)-1], nil
}

func (s *fakeServer) GetFlow(_ context.Context, req *v1.GetFlowRequest) (*v1.GetFlowResponse, error) {
	st, ok := s.flows[req.GetId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "flow %q not found", req.GetId())
	}
	return &v1.GetFlowResponse{Status: st}, nil
}

func (s *fakeServer) DeleteFlows(_ context.Context, req *v1.DeleteFlowsRequest) (*v1.DeleteFlowsResponse, error) {
	s.mu.Lock()
	s.deleted = append(s.deleted, req)
	s.mu.Unlock()
	resp := &v1.DeleteFlowsResponse{}
	for _, id := range req.GetIds() {
		_, ok := s.flows[id]
		resp.Results = append(resp.Results, &v1.DeleteResult{Id: id, Found: ok})
	}
	return resp, nil
}

func (s *fakeServer) ExplainFlow(_ context.Context, req *v1.ExplainFlowRequest) (*v1.ExplainFlowResponse, error) {
	s.mu.Lock()
	s.explains = append(s.explains, req)
	s.mu.Unlock()
	return &v1.ExplainFlowResponse{State: v1.FlowState_FLOW_STATE_SOFTWARE, Changed: true,
		Reasons: []*v1.Reason{{Code: "ct-state", Message: "+new stays in software"}}}, nil
}

// ExplainFlows answers each flow of the batch as ExplainFlow would.
func (s *fakeServer) ExplainFlows(ctx context.Context, req *v1.ExplainFlowsRequest) (*v1.ExplainFlowsResponse, error) {
	out := &v1.ExplainFlowsResponse{}
	for _, f := range req.GetFlows() {
		x, _ := s.ExplainFlow(ctx, &v1.ExplainFlowRequest{Flow: f})
		out.Results = append(out.Results, x)
	}
	return out, nil
}

func (s *fakeServer) WatchFlows(_ *v1.WatchFlowsRequest, stream grpc.ServerStreamingServer[v1.WatchFlowsResponse]) error {
	for _, ev := range s.events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	if s.watchEnd != nil {
		return s.watchEnd
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

// serve starts fs on a unix socket and returns its path.
func serve(t *testing.T, fs *fakeServer) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "octl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	gs := grpc.NewServer()
	v1.RegisterFlowServiceServer(gs, fs)
	v1.RegisterNodeServiceServer(gs, fs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return sock
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, ctx context.Context, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flows.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

const twoFlows = `
- id: a
  port: pf0vf0
  priority: 1
  actions: [{drop: {}}]
- id: b
  port: pf0vf0
  priority: 2
  match: {eth_type: ipv4, ip_proto: 6, dst_port: 22}
  actions: [{drop: {}}]
`

func TestUsageErrors(t *testing.T) {
	fs := &fakeServer{}
	sock := serve(t, fs)
	file := writeFile(t, twoFlows)
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"unknown flag", []string{"flows", "list", "--nope"}, "unknown flag: --nope"},
		{"bad output", []string{"-o", "xml", "node"}, `-o "xml": want table, json, yaml or tc`},
		{"bad state", []string{"flows", "list", "--state", "weird"}, `--state "weird"`},
		{"bad chain", []string{"flows", "list", "--chain", "-1"}, "invalid argument"},
		{"apply without file", []string{"flows", "apply"}, "flows apply needs -f FILE"},
		{"apply missing file", []string{"flows", "apply", "-f", "/nonexistent/flows.yaml"}, "open flow file"},
		{"apply bad file", []string{"flows", "apply", "-f", writeFile(t, "- prio: 1\n")}, `unknown field "prio"`},
		{"get without id", []string{"flows", "get"}, "exactly one flow id"},
		{"delete nothing", []string{"flows", "delete"}, "needs flow ids, -f FILE or --tc FILE"},
		{"delete both", []string{"flows", "delete", "a", "-f", file}, "only one of them"},
		{"explain without file", []string{"flows", "explain"}, "needs -f FILE"},
		{"flows alone", []string{"flows"}, "needs a subcommand"},
		{"extra argument", []string{"node", "x"}, `unexpected argument "x"`},
		{"bad timeout", []string{"--timeout", "0s", "node"}, "--timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), nil, "", append([]string{"--socket", sock}, tt.args...)...)
			assert.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.msg)
			assert.Contains(t, r.stderr, "offloadctl --help")
		})
	}
	assert.Empty(t, fs.applied, "no usage error reaches the daemon")
}

func TestSocketFromEnvironmentAndUnreachable(t *testing.T) {
	sock := serve(t, &fakeServer{})
	r := runCLI(t, context.Background(), map[string]string{socketEnv: sock}, "", "node")
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Hostname: node-1")

	r = runCLI(t, context.Background(), nil, "", "--socket", filepath.Join(t.TempDir(), "none.sock"), "--timeout", "2s", "node")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "get node: Unavailable")
}

func TestPorts(t *testing.T) {
	sock := serve(t, &fakeServer{})
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "ports")
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "pf0vf0  representor")

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "ports", "--device", "nope")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, `list ports: NotFound: device "nope" not found`)

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "json", "ports")
	assert.Equal(t, exitOK, r.code, r.stderr)
	got := &v1.ListPortsResponse{}
	require.NoError(t, protojson.Unmarshal([]byte(r.stdout), got))
	assert.Equal(t, "pf0vf0", got.GetPorts()[0].GetName())
}

func TestApply(t *testing.T) {
	okResp := func(req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
		resp := &v1.ApplyFlowsResponse{}
		for _, f := range req.GetFlows() {
			resp.Results = append(resp.Results, &v1.ApplyResult{Id: f.GetId(), Outcome: v1.ApplyOutcome_APPLY_OUTCOME_CREATED,
				Status: &v1.FlowStatus{Flow: f, State: v1.FlowState_FLOW_STATE_HARDWARE, Generation: 1}})
		}
		return resp, nil
	}
	partial := func(req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
		resp, _ := okResp(req)
		resp.Results[1] = &v1.ApplyResult{Id: "b", Outcome: v1.ApplyOutcome_APPLY_OUTCOME_FAILED, Error: "flow b cannot be placed: hardware-table-full"}
		return resp, nil
	}
	rejected := func(req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
		resp := &v1.ApplyFlowsResponse{Results: []*v1.ApplyResult{
			{Id: "a", Outcome: v1.ApplyOutcome_APPLY_OUTCOME_ABORTED},
			{Id: "b", Outcome: v1.ApplyOutcome_APPLY_OUTCOME_INVALID, Violations: []*v1.FieldViolation{{Field: "flows[1].port", Description: `unknown port "pf0vf0"`}}},
		}}
		st, err := status.New(codes.InvalidArgument, "batch rejected, nothing applied").WithDetails(
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "flows[1].port"}}}, resp)
		require.NoError(t, err)
		return nil, st.Err()
	}
	broken := func(*v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
		return nil, status.Error(codes.Unavailable, "engine closed")
	}
	tests := []struct {
		name    string
		fn      func(*v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error)
		args    []string
		code    int
		stdout  []string
		stderr  string
		atomic  bool
		fromStd bool
	}{
		{"all created", okResp, nil, exitOK, []string{"a   created  hardware  1    -", "b   created  hardware"}, "", false, false},
		{"stdin", okResp, nil, exitOK, []string{"a   created"}, "", false, true},
		{"one failed", partial, nil, exitFailure,
			[]string{"b   failed ", "flows[1] b: failed: flow b cannot be placed: hardware-table-full"}, "apply flows: 1 of 2 flows failed or were invalid", false, false},
		{"atomic rejected", rejected, []string{"--atomic"}, exitFailure,
			[]string{"a   aborted", "b   invalid", `flows[1] b: invalid: flows[1].port: unknown port "pf0vf0"`},
			"apply flows: InvalidArgument: batch rejected, nothing applied: 1 of 2 flows failed or were invalid", true, false},
		{"rpc error", broken, nil, exitFailure, nil, "apply flows: Unavailable: engine closed", false, false},
		{"json", partial, []string{"-o", "json"}, exitFailure, []string{`"outcome": "APPLY_OUTCOME_FAILED"`}, "1 of 2", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeServer{applyFn: tt.fn}
			sock := serve(t, fs)
			file, stdin := writeFile(t, twoFlows), ""
			if tt.fromStd {
				file, stdin = "-", twoFlows
			}
			args := append([]string{"--socket", sock, "flows", "apply", "-f", file}, tt.args...)
			r := runCLI(t, context.Background(), nil, stdin, args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			for _, s := range tt.stdout {
				assert.Contains(t, strings.ReplaceAll(r.stdout, "  \"", " \""), strings.ReplaceAll(s, "  \"", " \""))
			}
			if tt.stderr != "" {
				assert.Contains(t, r.stderr, tt.stderr)
			} else {
				assert.Empty(t, r.stderr)
			}
			require.Len(t, fs.applied, 1)
			req := fs.applied[0]
			assert.Equal(t, tt.atomic, req.GetAtomic())
			require.Len(t, req.GetFlows(), 2)
			assert.Equal(t, "6", req.GetFlows()[1].GetMatch().GetIpProto(), "the file is sent as written; the daemon canonicalizes")
		})
	}
}

func statusJSON(t *testing.T, id, state string) *v1.FlowStatus {
	return must(t, &v1.FlowStatus{}, `{"flow":{"id":"`+id+`","port":"pf0vf0","priority":1,"actions":[{"drop":{}}]},"state":"`+state+`","generation":"1"}`)
}

func TestList(t *testing.T) {
	fs := &fakeServer{pages: []*v1.ListFlowsResponse{
		{Flows: []*v1.FlowStatus{statusJSON(t, "a", "FLOW_STATE_HARDWARE")}, NextPageToken: "tok"},
		{Flows: []*v1.FlowStatus{statusJSON(t, "b", "FLOW_STATE_SOFTWARE")}},
	}}
	sock := serve(t, fs)
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "list", "--port", "pf0vf0", "--state", "software",
		"--id-prefix", "x", "--chain", "0")
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "a   pf0vf0  0      1     hardware")
	assert.Contains(t, r.stdout, "b   pf0vf0  0      1     software")
	assert.Contains(t, r.stdout, "2 flows: 1 hardware, 1 software")
	require.Len(t, fs.lists, 2)
	first := fs.lists[0]
	assert.Equal(t, "pf0vf0", first.GetPort())
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, first.GetState())
	assert.Equal(t, "x", first.GetIdPrefix())
	require.NotNil(t, first.Chain, "--chain 0 is a filter, not absent")
	assert.Equal(t, uint32(0), first.GetChain())
	assert.Empty(t, first.GetPageToken())
	assert.Equal(t, "tok", fs.lists[1].GetPageToken())

	// Without --chain there is no chain filter; yaml output holds every page.
	fs.lists = nil
	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "yaml", "flows", "list")
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Nil(t, fs.lists[0].Chain)
	assert.Contains(t, r.stdout, "id: a")
	assert.Contains(t, r.stdout, "id: b")
	assert.Contains(t, r.stdout, "state: FLOW_STATE_SOFTWARE")
}

func TestGetAndDelete(t *testing.T) {
	fs := &fakeServer{flows: map[string]*v1.FlowStatus{"a": statusJSON(t, "a", "FLOW_STATE_HARDWARE")}}
	sock := serve(t, fs)
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "get", "a")
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "State:       hardware")

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "get", "zz")
	assert.Equal(t, exitFailure, r.code)
	assert.Equal(t, "offloadctl: flow \"zz\" not found\n", r.stderr)

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "delete", "a", "zz")
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "a   deleted")
	assert.Contains(t, r.stdout, "zz  not found")

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "delete", "-f", writeFile(t, twoFlows))
	assert.Equal(t, exitOK, r.code, r.stderr)
	require.Len(t, fs.deleted, 2)
	assert.Equal(t, []string{"a", "b"}, fs.deleted[1].GetIds())
}

func TestExplain(t *testing.T) {
	fs := &fakeServer{}
	sock := serve(t, fs)
	file := writeFile(t, twoFlows)
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "explain", "-f", file)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "a   software   -          create  ct-state: +new stays in software")
	assert.Contains(t, r.stdout, "b: ct-state: +new stays in software")
	require.Len(t, fs.explains, 2)
	assert.Equal(t, "b", fs.explains[1].GetFlow().GetId())

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "json", "flows", "explain", "-f", file)
	assert.Equal(t, exitOK, r.code, r.stderr)
	var items []struct {
		ID          string          `json:"id"`
		Explanation json.RawMessage `json:"explanation"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &items))
	require.Len(t, items, 2)
	assert.Equal(t, "b", items[1].ID)
	x := &v1.ExplainFlowResponse{}
	require.NoError(t, protojson.Unmarshal(items[1].Explanation, x))
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, x.GetState())
}

func TestWatch(t *testing.T) {
	events := []*v1.WatchFlowsResponse{
		{Kind: v1.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT, Status: statusJSON(t, "a", "FLOW_STATE_HARDWARE")},
		{Kind: v1.WatchEventKind_WATCH_EVENT_KIND_SYNC},
		{Kind: v1.WatchEventKind_WATCH_EVENT_KIND_DELETE, Status: statusJSON(t, "a", "FLOW_STATE_HARDWARE")},
	}
	t.Run("lagged", func(t *testing.T) {
		sock := serve(t, &fakeServer{events: events, watchEnd: status.Error(codes.Aborted, "watcher fell behind; watch again")})
		r := runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "watch")
		assert.Equal(t, exitFailure, r.code)
		assert.Equal(t, lines(`
		EVENT    STATE      GEN       FLOW
		snapshot hardware   1         a on pf0vf0 chain 0 prio 1
		-- synced: changes follow --
		delete   hardware   1         a on pf0vf0 chain 0 prio 1
		`), r.stdout)
		assert.Contains(t, r.stderr, "watch flows: Aborted: watcher fell behind")
	})
	t.Run("interrupted", func(t *testing.T) {
		sock := serve(t, &fakeServer{events: events})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		r := runCLI(t, ctx, nil, "", "--socket", sock, "-o", "json", "flows", "watch")
		assert.Equal(t, exitOK, r.code, r.stderr)
		out := strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Len(t, out, 3, "one JSON object per line")
		ev := &v1.WatchFlowsResponse{}
		require.NoError(t, protojson.Unmarshal([]byte(out[2]), ev))
		assert.Equal(t, v1.WatchEventKind_WATCH_EVENT_KIND_DELETE, ev.GetKind())
	})
}

func TestApplyInBatches(t *testing.T) {
	var b strings.Builder
	b.WriteString("flows:\n")
	for i := range 7 {
		fmt.Fprintf(&b, "- id: f%d\n  port: pf0vf0\n  priority: %d\n  actions: [{drop: {}}]\n", i, i+1)
	}
	seven := b.String()
	ok := func(req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
		resp := &v1.ApplyFlowsResponse{}
		for _, f := range req.GetFlows() {
			r := &v1.ApplyResult{Id: f.GetId(), Outcome: v1.ApplyOutcome_APPLY_OUTCOME_CREATED}
			if f.GetId() == "f5" {
				r = &v1.ApplyResult{Id: "f5", Outcome: v1.ApplyOutcome_APPLY_OUTCOME_FAILED, Error: "table full"}
			}
			resp.Results = append(resp.Results, r)
		}
		return resp, nil
	}
	t.Run("batches of 3", func(t *testing.T) {
		fs := &fakeServer{applyFn: ok}
		sock := serve(t, fs)
		r := runCLI(t, context.Background(), nil, seven, "--socket", sock, "flows", "apply", "-f", "-", "--batch-size", "3")
		assert.Equal(t, exitFailure, r.code)
		require.Len(t, fs.applied, 3)
		for i, n := range []int{3, 3, 1} {
			assert.Len(t, fs.applied[i].GetFlows(), n)
		}
		assert.Equal(t, "f3", fs.applied[1].GetFlows()[0].GetId())
		assert.Contains(t, r.stdout, "flows[5] f5: failed: table full", "positions count across batches")
		assert.Equal(t, 1, strings.Count(r.stdout, "OUTCOME"), "one header")
		assert.Contains(t, r.stderr, "apply flows: 1 of 7 flows failed or were invalid")
	})
	t.Run("atomic is one request", func(t *testing.T) {
		fs := &fakeServer{applyFn: ok}
		sock := serve(t, fs)
		runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "apply", "-f", writeFile(t, seven), "--batch-size", "3", "--atomic")
		require.Len(t, fs.applied, 1)
		assert.Len(t, fs.applied[0].GetFlows(), 7)
	})
	t.Run("dry run sends nothing", func(t *testing.T) {
		fs := &fakeServer{applyFn: ok}
		sock := serve(t, fs)
		r := runCLI(t, context.Background(), nil, seven, "--socket", sock, "flows", "apply", "-f", "-", "--dry-run")
		assert.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "stdin: 7 flows parse; nothing sent (--dry-run)")
		assert.Empty(t, fs.applied)
	})
	t.Run("a mistake at the end applies nothing", func(t *testing.T) {
		fs := &fakeServer{applyFn: ok}
		sock := serve(t, fs)
		r := runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "apply", "-f", writeFile(t, seven+"- id: 0x1F\n"), "--batch-size", "3")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, `30:7: flows[7].id: 0x1F reads as a number, not as the text you wrote; quote it: id: "0x1F"`)
		assert.Empty(t, fs.applied)
	})
	t.Run("bad batch size", func(t *testing.T) {
		r := runCLI(t, context.Background(), nil, "", "flows", "apply", "-f", writeFile(t, seven), "--batch-size", "0")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "--batch-size must be at least 1")
	})
}
