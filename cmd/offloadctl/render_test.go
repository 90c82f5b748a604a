package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// must decodes a protojson literal.
func must[M proto.Message](t *testing.T, m M, js string) M {
	t.Helper()
	require.NoError(t, protojson.Unmarshal([]byte(js), m), js)
	return m
}

// lines trims the common indentation of a raw-string expectation.
func lines(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimPrefix(s, "\n"), "\n") {
		out = append(out, strings.TrimPrefix(l, "\t\t"))
	}
	return strings.Join(out, "\n")
}

func TestFirstReason(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		reasons []*v1.Reason
		width   int
		want    string
	}{
		{"none", nil, 40, ""},
		{"one", []*v1.Reason{{Code: "ct-state", Message: "+new stays in software"}}, 40, "ct-state: +new stays in software"},
		{"truncated", []*v1.Reason{{Code: "c", Message: long}}, 20, "c: xxxxxxxxxxxxxxxx…"},
		{"more", []*v1.Reason{{Code: "a", Message: "one"}, {Code: "b"}, {Code: "c"}}, 40, "a: one (+2 more)"},
		{"more truncated", []*v1.Reason{{Code: "a", Message: long}, {Code: "b"}}, 30, "a: xxxxxxxxxxxxxxxx… (+1 more)"},
		{"multi-line kernel message", []*v1.Reason{{Code: "hardware-refused", Message: "Operation\n  not supported"}}, 60,
			"hardware-refused: Operation not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := firstReason(tt.reasons, tt.width)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, len([]rune(got)), tt.width)
		})
	}
}

func TestEnumWord(t *testing.T) {
	for e, want := range map[protoEnum]string{
		v1.FlowState_FLOW_STATE_HARDWARE:                  "hardware",
		v1.FlowState_FLOW_STATE_UNSPECIFIED:               "unspecified",
		v1.ApplyOutcome_APPLY_OUTCOME_UNCHANGED:           "unchanged",
		v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY: "hardware-only",
		v1.EswitchMode_ESWITCH_MODE_SWITCHDEV:             "switchdev",
		v1.WatchEventKind_WATCH_EVENT_KIND_DELETE:         "delete",
		v1.PortKind_PORT_KIND_REPRESENTOR:                 "representor",
		v1.FlowState(99):                                  "99",
	} {
		assert.Equal(t, want, enumWord(e))
	}
}

func TestRenderFlows(t *testing.T) {
	flows := []*v1.FlowStatus{
		must(t, &v1.FlowStatus{}, `{"flow":{"id":"acl-1","port":"pf0vf0","chain":1,"priority":10,"actions":[{"drop":{}}]},
			"state":"FLOW_STATE_HARDWARE","generation":"3","hardware":{"packets":"1200"},"software":{"packets":"4"}}`),
		must(t, &v1.FlowStatus{}, `{"flow":{"id":"fw-new","port":"p0","priority":5,"actions":[{"drop":{}}]},
			"state":"FLOW_STATE_SOFTWARE","generation":"1",
			"reasons":[{"code":"ct-state","field":"match.ct_state","message":"mlx5 offloads ct_state +trk, +est and +rpl only; +new is set up in software"}]}`),
		must(t, &v1.FlowStatus{}, `{"flow":{"id":"hw-only","port":"p0","priority":6,"actions":[{"drop":{}}]},
			"state":"FLOW_STATE_FAILED","generation":"1",
			"reasons":[{"code":"hardware-refused","message":"no"},{"code":"x","message":"y"}]}`),
	}
	var b bytes.Buffer
	renderFlows(&b, flows)
	assert.Equal(t, lines(`
		ID       PORT    CHAIN  PRIO  STATE     HW-PKTS  SW-PKTS  GEN  REASON
		acl-1    pf0vf0  1      10    hardware  1200     4        3    -
		fw-new   p0      0      5     software  0        0        1    ct-state: mlx5 offloads ct_state +trk, +est and +rpl only; +new is set …
		hw-only  p0      0      6     failed    0        0        1    hardware-refused: no (+1 more)
		3 flows: 1 hardware, 1 software, 1 failed
		`), b.String())

	b.Reset()
	renderFlows(&b, nil)
	assert.Equal(t, "ID  PORT  CHAIN  PRIO  STATE  HW-PKTS  SW-PKTS  GEN  REASON\n0 flows\n", b.String())
}

func TestRenderFlow(t *testing.T) {
	st := must(t, &v1.FlowStatus{}, `{"flow":{"id":"ct","port":"pf0vf4","chain":2,"priority":10,"policy":"PLACEMENT_POLICY_HARDWARE_ONLY",
		"match":{"eth_src":"02:00:00:00:00:01","eth_src_mask":"ff:ff:ff:00:00:00","eth_type":"ipv4","ipv4_dst":"10.0.0.0/24","ip_proto":"tcp",
			"src_port":1024,"src_port_mask":64512,"dst_port":0,"ip_flags":{"frag":false},"tunnel":{"vni":7},"ct_state":"+trk+est"},
		"actions":[{"ct":{"zone":5,"commit":true,"mark":1,"mark_mask":255,"nat":{"kind":"NAT_KIND_SRC","addr_min":"192.0.2.1"}}},
			{"police":{"rate_bytes_per_sec":"1000","burst":10,"exceed":"POLICE_VERDICT_DROP"}},
			{"vlan_pop":{}},{"goto":{"chain":0}}]},
		"state":"FLOW_STATE_HARDWARE","generation":"2","device":"p0",
		"hardware":{"packets":"10","bytes":"600","last_used":"2026-03-01T12:00:05Z"},"software":{},
		"updated":"2026-03-01T12:00:00Z",
		"reasons":[{"code":"ct-state","field":"match.ct_state","message":"m"}]}`)
	var b bytes.Buffer
	renderFlow(&b, st)
	assert.Equal(t, lines(`
		ID:          ct
		Port:        pf0vf4
		Device:      p0
		Chain:       2
		Priority:    10
		Policy:      hardware-only
		Match:       eth_src=02:00:00:00:00:01/ff:ff:ff:00:00:00 eth_type=ipv4 ipv4_dst=10.0.0.0/24 ip_proto=tcp src_port=1024/0xfc00 dst_port=0 ip_flags.frag=false tunnel.vni=7 ct_state=+trk+est
		Actions:     ct(zone=5 commit mark=1/0xff nat.kind=src nat.addr_min=192.0.2.1), police(rate_bytes_per_sec=1000 burst=10 exceed=drop), vlan_pop, goto(chain=0)
		State:       hardware
		Generation:  2
		Updated:     2026-03-01T12:00:00Z
		Hardware:    10 packets, 600 bytes, last used 2026-03-01T12:00:05Z
		Software:    0 packets, 0 bytes
		Reasons:
		  ct-state: match.ct_state: m
		`), b.String())
}

func TestRenderApply(t *testing.T) {
	resp := must(t, &v1.ApplyFlowsResponse{}, `{"results":[
		{"id":"a","outcome":"APPLY_OUTCOME_CREATED","status":{"flow":{"id":"a"},"state":"FLOW_STATE_HARDWARE","generation":"1"}},
		{"id":"b","outcome":"APPLY_OUTCOME_UNCHANGED","status":{"flow":{"id":"b"},"state":"FLOW_STATE_SOFTWARE","generation":"4",
			"reasons":[{"code":"policy-software-only","message":"the flow asks for software only"}]}},
		{"id":"c","outcome":"APPLY_OUTCOME_INVALID","violations":[
			{"field":"flows[2].match.ipv4_dst","description":"prefix 33 > 32"},{"field":"flows[2].match.ip_proto","description":"unknown ip_proto \"tcpp\""}]},
		{"id":"d","outcome":"APPLY_OUTCOME_FAILED","error":"flow d cannot be placed: unsupported-value: mlx5 matches L4 ports of TCP and UDP only"},
		{"id":"e","outcome":"APPLY_OUTCOME_ABORTED"}]}`)
	var b bytes.Buffer
	bad := renderApply(&b, resp)
	assert.Equal(t, 2, bad)
	assert.Equal(t, lines(`
		ID  OUTCOME    STATE     GEN  REASON
		a   created    hardware  1    -
		b   unchanged  software  4    policy-software-only: the flow asks for software only
		c   invalid    -         -    2 violation(s)
		d   failed     -         -    flow d cannot be placed: unsupported-value: mlx5 matches L4 ports of TC…
		e   aborted    -         -    -
		flows[2] c: invalid: flows[2].match.ipv4_dst: prefix 33 > 32
		flows[2] c: invalid: flows[2].match.ip_proto: unknown ip_proto "tcpp"
		flows[3] d: failed: flow d cannot be placed: unsupported-value: mlx5 matches L4 ports of TCP and UDP only
		`), b.String())
}

func TestRenderDelete(t *testing.T) {
	resp := must(t, &v1.DeleteFlowsResponse{}, `{"results":[{"id":"a","found":true},{"id":"b"},{"id":"c","found":true,"error":"delete c from hardware plane: busy"}]}`)
	var b bytes.Buffer
	assert.Equal(t, 1, renderDelete(&b, resp))
	assert.Equal(t, lines(`
		ID  RESULT
		a   deleted
		b   not found
		c   error: delete c from hardware plane: busy
		`), b.String())
}

func TestRenderExplain(t *testing.T) {
	xs := []explained{
		{"new", must(t, &v1.ExplainFlowResponse{}, `{"state":"FLOW_STATE_HARDWARE","changed":true}`)},
		{"same", must(t, &v1.ExplainFlowResponse{}, `{"state":"FLOW_STATE_SOFTWARE","installed":{"flow":{"id":"same"},"state":"FLOW_STATE_SOFTWARE"},
			"reasons":[{"code":"ct-state","field":"match.ct_state","message":"+new stays in software"}]}`)},
		{"moved", must(t, &v1.ExplainFlowResponse{}, `{"state":"FLOW_STATE_HARDWARE","changed":true,"installed":{"flow":{"id":"moved"},"state":"FLOW_STATE_SOFTWARE"}}`)},
		{"bad", must(t, &v1.ExplainFlowResponse{}, `{"state":"FLOW_STATE_FAILED","changed":true,"violations":[{"field":"flow.port","description":"unknown port \"x\""}]}`)},
	}
	var b bytes.Buffer
	renderExplain(&b, xs)
	assert.Equal(t, lines(`
		ID     WOULD-RUN  INSTALLED  CHANGE  REASON
		new    hardware   -          create  -
		same   software   software   none    ct-state: +new stays in software
		moved  hardware   software   update  -
		bad    failed     -          create  invalid: 1 violation(s)
		same: ct-state: match.ct_state: +new stays in software
		bad: invalid: flow.port: unknown port "x"
		`), b.String())
}

func TestRenderNode(t *testing.T) {
	n := must(t, &v1.Node{}, `{"hostname":"node-1","version":"v1.2.3","nics":[
		{"name":"p0","driver":"mlx5_core","model":"ConnectX-6 Dx","profile":"mlx5-cx6dx","pci_address":"0000:3b:00.0",
		 "firmware_version":"22.39","emulated":true,"eswitch_mode":"ESWITCH_MODE_SWITCHDEV","num_vfs":4,"total_vfs":8,
		 "hardware_table":{"used":"10","total":"40"},
		 "capabilities":{"match_keys":["eth_src","ct_state"],"actions":["drop","ct"],"max_chain":3,"max_priority":16,
		   "rules":["ct-state-trk-est-rpl"],"notes":["Conntrack: +new stays in software."]}},
		{"name":"ens1","driver":"ice","eswitch_mode":"ESWITCH_MODE_LEGACY","hardware_table":{"used":"0"}}]}`)
	var b bytes.Buffer
	renderNode(&b, n)
	assert.Equal(t, lines(`
		Hostname: node-1
		Version:  v1.2.3

		NIC   DRIVER     MODEL          PROFILE     PCI           FIRMWARE  ESWITCH    VFS  HW-TABLE     EMULATED
		p0    mlx5_core  ConnectX-6 Dx  mlx5-cx6dx  0000:3b:00.0  22.39     switchdev  4/8  10/40 (25%)  yes
		ens1  ice        -              -           -             -         legacy     0/0  0/?          no

		p0 offloads (profile mlx5-cx6dx):
		  Match keys:  eth_src ct_state
		  Actions:     drop ct
		  Chains:      0-3
		  Priorities:  1-16
		  Checks:      ct-state-trk-est-rpl
		  Note: Conntrack: +new stays in software.
		`), b.String())

	b.Reset()
	renderNode(&b, &v1.Node{})
	assert.Equal(t, "Hostname: -\nVersion:  -\nNo NICs.\n", b.String())
}

func TestRenderPorts(t *testing.T) {
	ports := must(t, &v1.ListPortsResponse{}, `{"ports":[
		{"name":"p0","kind":"PORT_KIND_UPLINK","phys_port_name":"p0","pci_address":"0000:3b:00.0","mac":"02:00:00:00:00:01","mtu":9000,"up":true,"device":"p0"},
		{"name":"pf0vf1","kind":"PORT_KIND_REPRESENTOR","phys_port_name":"pf0vf1","vf":1,"mtu":1500,"peer":"p0v1","device":"p0"},
		{"name":"vxlan0","kind":"PORT_KIND_TUNNEL","vf":0,"mtu":1450,"up":true,"device":"p0","tunnel_dst_port":4789}]}`).GetPorts()
	ports[2].Vf = nil
	var b bytes.Buffer
	renderPorts(&b, ports)
	assert.Equal(t, lines(`
		NAME    KIND               DEVICE  PHYS-PORT  PF  VF  PCI           MAC                MTU   LINK  PEER
		p0      uplink             p0      p0         0   -   0000:3b:00.0  02:00:00:00:00:01  9000  up    -
		pf0vf1  representor        p0      pf0vf1     0   1   -             -                  1500  down  p0v1
		vxlan0  tunnel (udp/4789)  p0      -          0   -   -             -                  1450  up    -
		`), b.String())
}

func TestRenderWatch(t *testing.T) {
	var b bytes.Buffer
	renderWatchHeader(&b)
	renderWatchEvent(&b, must(t, &v1.WatchFlowsResponse{}, `{"kind":"WATCH_EVENT_KIND_SNAPSHOT","status":{"flow":{"id":"a","port":"p0","priority":1},"state":"FLOW_STATE_HARDWARE","generation":"1"}}`))
	renderWatchEvent(&b, &v1.WatchFlowsResponse{Kind: v1.WatchEventKind_WATCH_EVENT_KIND_SYNC})
	renderWatchEvent(&b, must(t, &v1.WatchFlowsResponse{}, `{"kind":"WATCH_EVENT_KIND_UPSERT","status":{"flow":{"id":"a","port":"p0","chain":2,"priority":1},"state":"FLOW_STATE_SOFTWARE","generation":"1",
		"reasons":[{"code":"hardware-table-full","message":"full"}]}}`))
	assert.Equal(t, lines(`
		EVENT    STATE      GEN       FLOW
		snapshot hardware   1         a on p0 chain 0 prio 1
		-- synced: changes follow --
		upsert   software   1         a on p0 chain 2 prio 1: hardware-table-full: full
		`), b.String())
}

func TestFormatTime(t *testing.T) {
	assert.Equal(t, "-", formatTime(nil))
	assert.Equal(t, "2026-03-01T12:00:00.5Z", formatTime(timestamppb.New(time.Date(2026, 3, 1, 13, 0, 0, 5e8, time.FixedZone("x", 3600)))))
}

type protoEnum = protoreflect.Enum
