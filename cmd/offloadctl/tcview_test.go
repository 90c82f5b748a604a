package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/api/tcsyntax"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const tcFlows = `# id: acl-ssh
tc filter add dev pf0vf0 ingress prio 10 protocol ip flower skip_sw \
    ip_proto tcp dst_port 22 action drop
# no id: one is derived from the line
tc filter replace dev pf0vf0 ingress chain 1 prio 20 protocol ip flower ct_state +trk+est action mirred egress redirect dev pf0vf1
`

func writeTC(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flows.tc")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func okApply(req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
	resp := &v1.ApplyFlowsResponse{}
	for _, f := range req.GetFlows() {
		resp.Results = append(resp.Results, &v1.ApplyResult{Id: f.GetId(), Outcome: v1.ApplyOutcome_APPLY_OUTCOME_CREATED,
			Status: &v1.FlowStatus{Flow: f, State: v1.FlowState_FLOW_STATE_HARDWARE, Generation: 1}})
	}
	return resp, nil
}

func TestApplyTC(t *testing.T) {
	want, err := tcsyntax.ParseString(tcFlows)
	require.NoError(t, err)
	ssh := must(t, &v1.Flow{}, `{"id":"acl-ssh","port":"pf0vf0","priority":10,"policy":"PLACEMENT_POLICY_HARDWARE_ONLY",
		"match":{"eth_type":"ipv4","ip_proto":"tcp","dst_port":22},"actions":[{"drop":{}}]}`)

	for _, stdin := range []bool{false, true} {
		fs := &fakeServer{applyFn: okApply}
		sock := serve(t, fs)
		args := []string{"--socket", sock, "flows", "apply", "--batch-size", "1", "--tc"}
		in := ""
		if stdin {
			args, in = append(args, "-"), tcFlows
		} else {
			args = append(args, writeTC(t, tcFlows))
		}
		r := runCLI(t, context.Background(), nil, in, args...)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "acl-ssh")
		require.Len(t, fs.applied, 2, "--batch-size 1 sends one request a flow")
		assert.True(t, proto.Equal(ssh, fs.applied[0].GetFlows()[0]), "%v", fs.applied[0].GetFlows()[0])
		assert.True(t, proto.Equal(want[1].Flow, fs.applied[1].GetFlows()[0]))
		assert.Regexp(t, `^tc-[0-9a-f]{12}$`, fs.applied[1].GetFlows()[0].GetId())
	}
}

func TestApplyTCErrors(t *testing.T) {
	fs := &fakeServer{applyFn: okApply}
	sock := serve(t, fs)
	tests := []struct {
		name, content string
		args          []string
		want          string
	}{
		{"typo", "\ntc filter add dev p0 ingress prio 1 protocol ip flower ip_proto tcp dst_prot 80 action drop\n", nil,
			`line 2 col 69: "dst_prot": unknown flower key; did you mean dst_port?`},
		{"del", "tc filter del dev p0 ingress prio 1\n", nil, "line 1: tc filter del: apply creates and replaces flows"},
		{"both", tcFlows, []string{"-f", "x.yaml"}, "give -f FILE or --tc FILE, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--socket", sock, "flows", "apply", "--tc", writeTC(t, tt.content)}, tt.args...)
			r := runCLI(t, context.Background(), nil, "", args...)
			assert.Equal(t, exitUsage, r.code)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
	assert.Empty(t, fs.applied, "nothing is sent when the file does not parse")
}

func TestExplainTC(t *testing.T) {
	fs := &fakeServer{}
	sock := serve(t, fs)
	r := runCLI(t, context.Background(), nil, tcFlows, "--socket", sock, "flows", "explain", "--tc", "-")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "acl-ssh: ct-state: +new stays in software")
	require.Len(t, fs.explains, 2)
	assert.Equal(t, "acl-ssh", fs.explains[0].GetFlow().GetId())
	assert.Equal(t, "tcp", fs.explains[0].GetFlow().GetMatch().GetIpProto())
}

// TestListAndGetTC: -o tc prints commands that parse back to the flows the
// daemon returned, so the output can be applied with --tc.
func TestListAndGetTC(t *testing.T) {
	a := must(t, &v1.FlowStatus{}, `{"flow":{"id":"a","port":"pf0vf0","chain":1,"priority":10,"policy":"PLACEMENT_POLICY_SOFTWARE_ONLY",
		"match":{"eth_type":"ipv4","ipv4_src":"10.0.0.0/24","ip_proto":"udp","dst_port":53},
		"actions":[{"police":{"rate_bytes_per_sec":125000,"burst":10240}},{"redirect":{"port":"pf0vf1"}}]},"state":"FLOW_STATE_SOFTWARE"}`)
	b := statusJSON(t, "b", "FLOW_STATE_HARDWARE")
	fs := &fakeServer{pages: []*v1.ListFlowsResponse{{Flows: []*v1.FlowStatus{a, b}}},
		flows: map[string]*v1.FlowStatus{"a": a}}
	sock := serve(t, fs)

	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "tc", "flows", "list")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "# id: a\ntc filter add dev pf0vf0 ingress chain 1 prio 10 protocol ip flower skip_hw ip_proto udp src_ip 10.0.0.0/24 dst_port 53 action police rate 125000bps burst 10240 conform-exceed drop/pipe action mirred egress redirect dev pf0vf1\n")
	rules, err := tcsyntax.ParseString(r.stdout)
	require.NoError(t, err)
	require.Len(t, rules, 2)
	assert.True(t, proto.Equal(a.GetFlow(), rules[0].Flow), "%v", rules[0].Flow)
	assert.True(t, proto.Equal(b.GetFlow(), rules[1].Flow), "%v", rules[1].Flow)

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "tc", "flows", "get", "a")
	require.Equal(t, exitOK, r.code, r.stderr)
	rules, err = tcsyntax.ParseString(r.stdout)
	require.NoError(t, err)
	require.Len(t, rules, 1)
	assert.True(t, proto.Equal(a.GetFlow(), rules[0].Flow))

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "tc", "node")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "-o tc: only flows list and flows get print tc commands")
}

func TestDump(t *testing.T) {
	now := time.Now()
	hw := must(t, &v1.FlowStatus{}, `{"flow":{"id":"acl-ssh","port":"pf0vf0","priority":10,
		"match":{"eth_type":"ipv4","ip_proto":"tcp","dst_port":22},"actions":[{"drop":{}}]},"state":"FLOW_STATE_HARDWARE",
		"hardware":{"packets":"5","bytes":"300"},"software":{"packets":"1","bytes":"60"}}`)
	hw.Hardware.LastUsed = timestamppb.New(now.Add(-3 * time.Second))
	hw.Software.LastUsed = timestamppb.New(now.Add(-time.Hour))
	sw := statusJSON(t, "b", "FLOW_STATE_SOFTWARE")
	fs := &fakeServer{pages: []*v1.ListFlowsResponse{{Flows: []*v1.FlowStatus{hw, sw}}, {Flows: []*v1.FlowStatus{hw}}}}
	sock := serve(t, fs)

	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "dump")
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	assert.Regexp(t, `^dev pf0vf0 chain 0 prio 10 id acl-ssh: match protocol ip ip_proto tcp dst_port 22 actions drop `+
		`packets:6 bytes:360 hw_packets:5 sw_packets:1 used:3\.\ds plane:hardware in_hw_count:1$`, lines[0])
	assert.Equal(t, "dev pf0vf0 chain 0 prio 1 id b: match any actions drop packets:0 bytes:0 hw_packets:0 sw_packets:0 used:never plane:software in_hw_count:0", lines[1])
	assert.Equal(t, v1.FlowState_FLOW_STATE_UNSPECIFIED, fs.lists[0].GetState())

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "dump", "--offloaded")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, v1.FlowState_FLOW_STATE_HARDWARE, fs.lists[1].GetState())

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "dump", "--offloaded", "--software")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "not both")
}

func TestDeleteTC(t *testing.T) {
	fs := &fakeServer{flows: map[string]*v1.FlowStatus{"acl-ssh": {}}}
	sock := serve(t, fs)
	in := tcFlows + "# id: old\ntc filter del dev pf0vf0 ingress prio 30\n"
	r := runCLI(t, context.Background(), nil, in, "--socket", sock, "flows", "delete", "--tc", "-")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Len(t, fs.deleted, 1)
	ids := fs.deleted[0].GetIds()
	require.Len(t, ids, 3)
	assert.Equal(t, "acl-ssh", ids[0])
	assert.Regexp(t, `^tc-[0-9a-f]{12}$`, ids[1])
	assert.Equal(t, "old", ids[2])

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "flows", "delete", "a", "--tc", "x")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "only one of them")
}
