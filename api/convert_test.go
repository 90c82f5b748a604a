package api

import (
	"net/netip"
	"testing"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func wireFlow(t *testing.T, js string) *v1.Flow {
	t.Helper()
	p := &v1.Flow{}
	require.NoError(t, protojson.Unmarshal([]byte(js), p), js)
	return p
}

// canonicalFlows are valid flows in the form FlowToProto prints.
var canonicalFlows = map[string]string{
	"minimal": `{"id":"a","port":"pf0vf0","priority":1,"actions":[{"drop":{}}]}`,
	"l2": `{"id":"l2","port":"p0","priority":10,
		"match":{"eth_src":"02:00:00:00:00:01","eth_dst":"02:00:00:00:00:00","eth_dst_mask":"ff:ff:ff:00:00:00",
		"eth_type":"arp","vlan_id":100,"vlan_prio":3},
		"actions":[{"redirect":{"port":"pf0vf1"}}]}`,
	"qinq": `{"id":"qinq","port":"p0","priority":2,
		"match":{"eth_type":"ipv4","vlan_id":100,"cvlan_id":200,"cvlan_prio":5},
		"actions":[{"vlan_pop":{}},{"vlan_pop":{}},{"redirect":{"port":"pf0vf2","ingress":true}}]}`,
	"ipv4 five-tuple": `{"id":"t5","port":"pf0vf0","chain":2,"priority":100,"policy":"PLACEMENT_POLICY_HARDWARE_ONLY",
		"match":{"eth_type":"ipv4","ipv4_src":"10.0.0.0/24","ipv4_dst":"10.1.2.3","ip_proto":"tcp",
		"src_port":1024,"src_port_mask":64512,"dst_port":80,"tcp_flags":2,"tcp_flags_mask":18,
		"tos":16,"tos_mask":252,"ttl":64},
		"actions":[{"mirror":{"port":"pf0vf3"}},{"redirect":{"port":"p0"}}]}`,
	"ipv6 icmp": `{"id":"v6","port":"pf0vf0","priority":5,
		"match":{"eth_type":"ipv6","ipv6_src":"2001:db8::/64","ipv6_dst":"2001:db8:1::1","ip_proto":"icmpv6",
		"icmp_type":128,"icmp_code":0,"ip_flags":{"frag":false}},
		"actions":[{"accept":{}}]}`,
	"fragments": `{"id":"frag","port":"pf0vf0","priority":5,
		"match":{"eth_type":"ipv4","ip_flags":{"frag":true,"first_frag":false}},
		"actions":[{"drop":{}}]}`,
	"tunnel decap": `{"id":"decap","port":"vxlan0","priority":1,
		"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.5","tunnel":{"vni":42,"src":"192.0.2.1","dst":"192.0.2.0/24","dst_port":4789}},
		"actions":[{"tunnel_decap":{}},{"redirect":{"port":"pf0vf1"}}]}`,
	"tunnel ipv6 outer": `{"id":"decap6","port":"vxlan0","priority":1,
		"match":{"tunnel":{"src":"2001:db8::1","dst":"2001:db8::2"}},
		"actions":[{"tunnel_decap":{}},{"redirect":{"port":"pf0vf1"}}]}`,
	"tunnel encap": `{"id":"encap","port":"pf0vf1","priority":1,
		"match":{"eth_dst":"02:00:00:00:00:09"},
		"actions":[{"tunnel_encap":{"vni":42,"src":"192.0.2.1","dst":"192.0.2.9","dst_port":4789,"ttl":64,"tos":4,"no_csum":true}},
		{"redirect":{"port":"vxlan0"}}]}`,
	"conntrack nat": `{"id":"ct","port":"pf0vf0","priority":3,
		"match":{"eth_type":"ipv4","ip_proto":"udp","ct_state":"+trk+est-new","ct_zone":5,"ct_mark":16,"ct_mark_mask":240},
		"actions":[{"ct":{"zone":5,"commit":true,"mark":1,"mark_mask":255,
		"nat":{"kind":"NAT_KIND_SRC","addr_min":"198.51.100.1","addr_max":"198.51.100.9","port_min":1000,"port_max":2000}}},
		{"goto":{"chain":1}}]}`,
	"conntrack plain": `{"id":"ct2","port":"pf0vf0","priority":3,
		"match":{"eth_type":"ipv6","ct_state":"-trk"},
		"actions":[{"ct":{"zone":7}},{"goto":{"chain":4}}]}`,
	"ct clear": `{"id":"ctc","port":"pf0vf0","chain":1,"priority":3,"policy":"PLACEMENT_POLICY_SOFTWARE_ONLY",
		"match":{"eth_type":"ipv4","ct_state":"+trk+inv"},
		"actions":[{"ct":{"clear":true}},{"goto":{"chain":0}}]}`,
	"rewrites v4": `{"id":"rw4","port":"pf0vf0","priority":9,
		"match":{"eth_type":"ipv4","ip_proto":"tcp"},
		"actions":[{"rewrite":{"eth_src":"02:00:00:00:00:aa"}},{"rewrite":{"eth_dst":"02:00:00:00:00:bb"}},
		{"rewrite":{"ipv4_src":"10.9.9.9"}},{"rewrite":{"ipv4_dst":"10.8.8.8"}},{"rewrite":{"ttl_dec":true}},
		{"rewrite":{"src_port":0}},{"rewrite":{"dst_port":8080}},{"redirect":{"port":"p0"}}]}`,
	"rewrites v6": `{"id":"rw6","port":"pf0vf0","priority":9,
		"match":{"eth_type":"ipv6","ip_proto":"sctp","dst_port":5000},
		"actions":[{"rewrite":{"ipv6_src":"2001:db8::9"}},{"rewrite":{"ipv6_dst":"2001:db8::8"}},{"redirect":{"port":"p0"}}]}`,
	"police": `{"id":"pol","port":"pf0vf0","priority":4,
		"actions":[{"police":{"rate_bytes_per_sec":"125000000","burst":65536,"conform":"POLICE_VERDICT_PIPE","exceed":"POLICE_VERDICT_DROP"}},
		{"police":{"rate_pkts_per_sec":"10000","burst":100,"exceed":"POLICE_VERDICT_CONTINUE"}},{"accept":{}}]}`,
	"vlan push": `{"id":"push","port":"pf0vf0","priority":4,
		"match":{"eth_type":"0x1234"},
		"actions":[{"vlan_push":{"id":10,"prio":3,"proto":"802.1ad"}},{"vlan_push":{"id":20}},{"redirect":{"port":"p0"}}]}`,
	"numeric proto": `{"id":"l2tp","port":"pf0vf0","priority":4,
		"match":{"eth_type":"ipv4","ip_proto":"115","ttl":1,"ttl_mask":1},
		"actions":[{"drop":{}}]}`,
}

func TestFlowRoundTrip(t *testing.T) {
	for name, js := range canonicalFlows {
		t.Run(name, func(t *testing.T) {
			in := wireFlow(t, js)
			f, vs := FlowFromProto(in, "flows[0]")
			require.Empty(t, vs)
			out := FlowToProto(f)
			assert.Empty(t, cmpDiff(in, out), "proto -> flow -> proto")

			f2, vs := FlowFromProto(out, "")
			require.Empty(t, vs)
			assert.True(t, f.Equal(f2), "flow -> proto -> flow")
		})
	}
}

func cmpDiff(a, b proto.Message) string {
	if proto.Equal(a, b) {
		return ""
	}
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	return "want " + string(ja) + "\n got " + string(jb)
}

func TestFlowCanonicalForm(t *testing.T) {
	const pre = `{"id":"x","port":"p","priority":1,"actions":[{"drop":{}}],"match":`
	tests := []struct {
		name, in, want string
	}{
		{"host prefix is bare", `{"eth_type":"ipv4","ipv4_dst":"10.1.2.3/32"}`, `{"eth_type":"ipv4","ipv4_dst":"10.1.2.3"}`},
		{"host bits cleared", `{"eth_type":"ipv4","ipv4_src":"10.1.2.3/24"}`, `{"eth_type":"ipv4","ipv4_src":"10.1.2.0/24"}`},
		{"ipv6 host prefix", `{"eth_type":"ipv6","ipv6_src":"2001:DB8::1/128"}`, `{"eth_type":"ipv6","ipv6_src":"2001:db8::1"}`},
		{"ip_proto number", `{"eth_type":"ipv4","ip_proto":"6"}`, `{"eth_type":"ipv4","ip_proto":"tcp"}`},
		{"ip_proto upper case", `{"eth_type":"ipv6","ip_proto":"UDP"}`, `{"eth_type":"ipv6","ip_proto":"udp"}`},
		{"eth_type hex", `{"eth_type":"0x0800"}`, `{"eth_type":"ipv4"}`},
		{"eth_type decimal", `{"eth_type":"34525"}`, `{"eth_type":"ipv6"}`},
		{"eth_type alias", `{"eth_type":"ip"}`, `{"eth_type":"ipv4"}`},
		{"eth_type unknown number", `{"eth_type":"0X88B5"}`, `{"eth_type":"0x88b5"}`},
		{"exact mask omitted", `{"eth_type":"ipv4","tos":8,"tos_mask":255}`, `{"eth_type":"ipv4","tos":8}`},
		{"value cleared outside mask", `{"eth_type":"ipv4","ip_proto":"tcp","src_port":1025,"src_port_mask":64512}`,
			`{"eth_type":"ipv4","ip_proto":"tcp","src_port":1024,"src_port_mask":64512}`},
		{"mac lower case and exact mask", `{"eth_src":"02:AA:BB:CC:DD:EE","eth_src_mask":"ff:ff:ff:ff:ff:ff"}`, `{"eth_src":"02:aa:bb:cc:dd:ee"}`},
		{"mac dashes", `{"eth_dst":"02-00-00-00-00-01"}`, `{"eth_dst":"02:00:00:00:00:01"}`},
		{"mac bits outside mask", `{"eth_dst":"02:00:00:00:00:ff","eth_dst_mask":"ff:ff:ff:ff:ff:00"}`,
			`{"eth_dst":"02:00:00:00:00:00","eth_dst_mask":"ff:ff:ff:ff:ff:00"}`},
		{"ct_state order", `{"ct_state":"-new+trk +est"}`, `{"ct_state":"+trk+est-new"}`},
		{"ct_state long names", `{"ct_state":"+tracked+established,-related"}`, `{"ct_state":"+trk+est-rel"}`},
		{"ct_state repeated flag", `{"ct_state":"+trk+trk"}`, `{"ct_state":"+trk"}`},
		{"exact ct mark mask", `{"ct_mark":7,"ct_mark_mask":4294967295}`, `{"ct_mark":7}`},
		{"tunnel host prefix", `{"tunnel":{"dst":"192.0.2.1/32"}}`, `{"tunnel":{"dst":"192.0.2.1"}}`},
		{"tcp flags exact", `{"eth_type":"ipv4","ip_proto":"tcp","tcp_flags":18,"tcp_flags_mask":4095}`,
			`{"eth_type":"ipv4","ip_proto":"tcp","tcp_flags":18}`},
		{"empty match", `{}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wireFlow(t, pre+tt.in+"}")
			wantJS := pre + tt.want + "}"
			if tt.want == "" {
				wantJS = `{"id":"x","port":"p","priority":1,"actions":[{"drop":{}}]}`
			}
			f, vs := FlowFromProto(in, "")
			require.Empty(t, vs)
			assert.Empty(t, cmpDiff(wireFlow(t, wantJS), FlowToProto(f)))
		})
	}
}

func TestFlowCanonicalActions(t *testing.T) {
	in := wireFlow(t, `{"id":"x","port":"p","priority":1,"match":{"eth_type":"ipv4"},"actions":[
		{"vlan_push":{"id":1,"proto":"0x8100"}},
		{"ct":{"commit":true,"mark":5,"mark_mask":4294967295,"nat":{"kind":"NAT_KIND_DST","addr_min":"10.0.0.1"}}},
		{"rewrite":{"eth_src":"02:AA:00:00:00:01"}},
		{"tunnel_encap":{"src":"2001:DB8::1","dst":"2001:db8::2"}},
		{"redirect":{"port":"vx"}}]}`)
	want := wireFlow(t, `{"id":"x","port":"p","priority":1,"match":{"eth_type":"ipv4"},"actions":[
		{"vlan_push":{"id":1,"proto":"802.1q"}},
		{"ct":{"commit":true,"mark":5,"nat":{"kind":"NAT_KIND_DST","addr_min":"10.0.0.1"}}},
		{"rewrite":{"eth_src":"02:aa:00:00:00:01"}},
		{"tunnel_encap":{"src":"2001:db8::1","dst":"2001:db8::2"}},
		{"redirect":{"port":"vx"}}]}`)
	f, vs := FlowFromProto(in, "")
	require.Empty(t, vs)
	assert.Empty(t, cmpDiff(want, FlowToProto(f)))
}

func TestFlowFromProtoDomain(t *testing.T) {
	in := wireFlow(t, canonicalFlows["conntrack nat"])
	f, vs := FlowFromProto(in, "")
	require.Empty(t, vs)
	want := &flow.Flow{
		ID: "ct", Port: "pf0vf0", Priority: 3,
		Match: flow.Match{
			EthType: flow.EthTypeIPv4, IPProto: flow.ProtoUDP,
			CTState: flow.Masked16{Value: flow.CTTracked | flow.CTEstablished, Mask: flow.CTTracked | flow.CTEstablished | flow.CTNew},
			CTZone:  flow.Some[uint16](5),
			CTMark:  flow.Masked32{Value: 16, Mask: 240},
		},
		Actions: []flow.Action{
			{Kind: flow.ActCT, CT: &flow.CT{Zone: 5, Commit: true, Mark: flow.Masked32{Value: 1, Mask: 255},
				NAT: flow.NAT{Kind: flow.NATSrc, AddrMin: netip.MustParseAddr("198.51.100.1"),
					AddrMax: netip.MustParseAddr("198.51.100.9"), PortMin: 1000, PortMax: 2000}}},
			{Kind: flow.ActGoto, Chain: 1},
		},
	}
	assert.True(t, want.Equal(f), "got %+v", f)

	in = wireFlow(t, canonicalFlows["ipv4 five-tuple"])
	f, vs = FlowFromProto(in, "")
	require.Empty(t, vs)
	assert.Equal(t, flow.PolicyHardwareOnly, f.Policy)
	assert.Equal(t, netip.MustParsePrefix("10.1.2.3/32"), f.Match.IPDst)
	assert.Equal(t, flow.Masked16{Value: 1024, Mask: 0xfc00}, f.Match.SrcPort)
	assert.Equal(t, flow.Masked16{Value: 80, Mask: 0xffff}, f.Match.DstPort)
	assert.Equal(t, flow.Masked8{Value: 64, Mask: 0xff}, f.Match.TTL)

	in = wireFlow(t, canonicalFlows["fragments"])
	f, vs = FlowFromProto(in, "")
	require.Empty(t, vs)
	assert.Equal(t, flow.Masked32{Value: flow.FragIsFragment, Mask: flow.FragIsFragment | flow.FragFirst}, f.Match.Frag)
}

func TestPoliceVerdictNumbering(t *testing.T) {
	for v, want := range map[v1.PoliceVerdict]flow.Verdict{
		v1.PoliceVerdict_POLICE_VERDICT_UNSPECIFIED: flow.VerdictDefault,
		v1.PoliceVerdict_POLICE_VERDICT_PIPE:        flow.VerdictPipe,
		v1.PoliceVerdict_POLICE_VERDICT_DROP:        flow.VerdictDrop,
		v1.PoliceVerdict_POLICE_VERDICT_ACCEPT:      flow.VerdictAccept,
		v1.PoliceVerdict_POLICE_VERDICT_CONTINUE:    flow.VerdictContinue,
	} {
		assert.Equal(t, want, flow.Verdict(v), v.String())
	}
	assert.Len(t, v1.PoliceVerdict_name, 5, "a new wire verdict needs a flow.Verdict")
}

func TestFlowViolations(t *testing.T) {
	const ok = `"id":"x","port":"p","priority":1`
	const drop = `"actions":[{"drop":{}}]`
	tests := []struct {
		name string
		in   string
		want [][2]string
	}{
		{"prefix too long", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.0/33"}}`,
			[][2]string{{"flows[2].match.ipv4_dst", "prefix 33 > 32"}}},
		{"ipv6 in ipv4 field", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ipv4_src":"2001:db8::1"}}`,
			[][2]string{{"flows[2].match.ipv4_src", `"2001:db8::1" is not an IPv4 address`}}},
		{"ipv4 in ipv6 field", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv6","ipv6_dst":"10.0.0.1/8"}}`,
			[][2]string{{"flows[2].match.ipv6_dst", `"10.0.0.1" is not an IPv6 address`}}},
		{"bad prefix length", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.0/x"}}`,
			[][2]string{{"flows[2].match.ipv4_dst", `bad prefix length "x"`}}},
		{"zoned address", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv6","ipv6_dst":"fe80::1%eth0"}}`,
			[][2]string{{"flows[2].match.ipv6_dst", `"fe80::1%eth0" has a zone; zoned addresses cannot be used`}}},
		{"both families", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ipv4_src":"10.0.0.1","ipv6_src":"::1"}}`,
			[][2]string{{"flows[2].match.ipv6_src", "set only one of ipv4_src and ipv6_src"}}},
		{"unknown ip_proto", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ip_proto":"tcpp","dst_port":80}}`,
			[][2]string{{"flows[2].match.ip_proto", `unknown ip_proto "tcpp"`}}},
		{"ip_proto zero", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ip_proto":"0"}}`,
			[][2]string{{"flows[2].match.ip_proto", "0 is not an IP protocol"}}},
		{"ip_proto range", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ip_proto":"256"}}`,
			[][2]string{{"flows[2].match.ip_proto", "256 > 255"}}},
		{"unknown eth_type hides its dependents", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv44","ipv4_dst":"10.0.0.1","ip_proto":"tcp"}}`,
			[][2]string{{"flows[2].match.eth_type", `unknown EtherType "ipv44"`}}},
		{"ct_state flags", `{` + ok + `,` + drop + `,"match":{"ct_state":"+trk+foo trk-est+est"}}`,
			[][2]string{
				{"flows[2].match.ct_state", `unknown ct_state flag "+foo"`},
				{"flows[2].match.ct_state", `ct_state flag "trk" needs a + or - sign`},
				{"flows[2].match.ct_state", `ct_state flag "est" is both required and forbidden`},
			}},
		{"ct_state semantics", `{` + ok + `,` + drop + `,"match":{"ct_state":"+est"}}`,
			[][2]string{{"flows[2].match.ct_state", "+trk is required when any other state is required"}}},
		{"value ranges", `{` + ok + `,` + drop + `,"match":{"vlan_id":5000,"vlan_prio":8,"eth_type":"ipv4","tos":256,"ip_proto":"tcp","dst_port":70000,"ct_zone":65536}}`,
			[][2]string{
				{"flows[2].match.vlan_id", "5000 > 4095"},
				{"flows[2].match.vlan_prio", "8 > 7"},
				{"flows[2].match.tos", "256 > 255"},
				{"flows[2].match.dst_port", "70000 > 65535"},
				{"flows[2].match.ct_zone", "65536 > 65535"},
			}},
		{"mask without value", `{` + ok + `,` + drop + `,"match":{"tos_mask":3,"eth_src_mask":"ff:ff:ff:ff:ff:ff"}}`,
			[][2]string{
				{"flows[2].match.eth_src_mask", "set without eth_src"},
				{"flows[2].match.tos_mask", "set without tos"},
			}},
		{"mask too wide", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","ip_proto":"tcp","tcp_flags":1,"tcp_flags_mask":8191}}`,
			[][2]string{{"flows[2].match.tcp_flags_mask", "0x1fff wider than 12 bits"}}},
		{"bad mac", `{` + ok + `,` + drop + `,"match":{"eth_src":"02:00:00:00:00","eth_dst":"02:00:00:00:00:01","eth_dst_mask":"00:00:00:00:00:00"}}`,
			[][2]string{
				{"flows[2].match.eth_src", `"02:00:00:00:00" is not a MAC address`},
				{"flows[2].match.eth_dst_mask", "an all-zero mask matches anything; leave eth_dst unset instead"},
			}},
		{"l4 port needs protocol", `{` + ok + `,` + drop + `,"match":{"eth_type":"ipv4","dst_port":80}}`,
			[][2]string{{"flows[2].match.dst_port", "needs ip_proto tcp, udp or sctp"}}},
		{"ids and priority", `{"priority":70000,"policy":9,"actions":[]}`,
			[][2]string{
				{"flows[2].priority", "70000 > 65535"},
				{"flows[2].policy", "unknown placement policy 9"},
				{"flows[2].id", "must not be empty"},
				{"flows[2].port", "must not be empty"},
				{"flows[2].actions", "at least one action is required"},
			}},
		{"empty action", `{` + ok + `,"actions":[{}]}`,
			[][2]string{{"flows[2].actions[0]", "no action set; set exactly one of drop, accept, redirect, mirror, vlan_push, vlan_pop, tunnel_encap, tunnel_decap, ct, goto, rewrite, police"}}},
		{"action after terminal", `{` + ok + `,"actions":[{"drop":{}},{"accept":{}}]}`,
			[][2]string{{"flows[2].actions[1]", "follows drop, which ends the action list"}}},
		{"redirect without port", `{` + ok + `,"actions":[{"mirror":{"port":"x"}},{"redirect":{}}]}`,
			[][2]string{{"flows[2].actions[1].redirect.port", "redirect needs a target port"}}},
		{"vlan push ranges", `{` + ok + `,"actions":[{"vlan_push":{"id":4096,"prio":9,"proto":"ipv4"}},{"drop":{}}]}`,
			[][2]string{
				{"flows[2].actions[0].vlan_push.id", "4096 > 4095"},
				{"flows[2].actions[0].vlan_push.prio", "9 > 7"},
				{"flows[2].actions[0].vlan_push.proto", "0x0800 is not 802.1Q (0x8100) or 802.1ad (0x88a8)"},
			}},
		{"encap", `{` + ok + `,"actions":[{"tunnel_encap":{"vni":16777216,"src":"10.0.0.1","dst":"bogus","dst_port":65536}}]}`,
			[][2]string{
				{"flows[2].actions[0].tunnel_encap.dst", `"bogus" is not an IP address`},
				{"flows[2].actions[0].tunnel_encap.dst_port", "65536 > 65535"},
				{"flows[2].actions[0].tunnel_encap.vni", "16777216 does not fit in 24 bits"},
				{"flows[2].actions[0]", "tunnel encap needs a redirect to a tunnel port after it"},
			}},
		{"ct", `{` + ok + `,"actions":[{"ct":{"mark":1,"nat":{"addr_min":"10.0.0.2","addr_max":"10.0.0.1"}}},{"drop":{}}]}`,
			[][2]string{
				{"flows[2].actions[0].ct.nat.kind", "a NAT range needs kind NAT_KIND_SRC or NAT_KIND_DST"},
				{"flows[2].actions[0].ct.mark", "setting a mark needs commit"},
			}},
		{"ct nat range", `{` + ok + `,"match":{"eth_type":"ipv4"},"actions":[{"ct":{"commit":true,"nat":{"kind":"NAT_KIND_SRC","addr_min":"10.0.0.2","addr_max":"10.0.0.1","port_min":9,"port_max":8}}},{"drop":{}}]}`,
			[][2]string{
				{"flows[2].actions[0].ct.nat.addr_max", "10.0.0.1 is below addr_min 10.0.0.2"},
				{"flows[2].actions[0].ct.nat.port_max", "8 is below port_min 9"},
			}},
		{"ct nat without address", `{` + ok + `,"actions":[{"ct":{"commit":true,"nat":{"kind":"NAT_KIND_DST","addr_min":"nope"}}},{"drop":{}}]}`,
			[][2]string{{"flows[2].actions[0].ct.nat.addr_min", `"nope" is not an IP address`}}},
		{"rewrites", `{` + ok + `,"match":{"eth_type":"ipv4"},"actions":[{"rewrite":{}},{"rewrite":{"ipv6_src":"::1"}},{"rewrite":{"ipv4_dst":"10.0.0.300"}},
			{"rewrite":{"ttl_dec":false}},{"rewrite":{"src_port":1}},{"rewrite":{"eth_dst":"zz"}},{"drop":{}}]}`,
			[][2]string{
				{"flows[2].actions[0].rewrite", "no field set; set exactly one of eth_src, eth_dst, ipv4_src, ipv4_dst, ipv6_src, ipv6_dst, ttl_dec, src_port, dst_port"},
				{"flows[2].actions[2].rewrite.ipv4_dst", `"10.0.0.300" is not an IPv4 address`},
				{"flows[2].actions[3].rewrite.ttl_dec", "must be true; set another field to rewrite something else"},
				{"flows[2].actions[5].rewrite.eth_dst", `"zz" is not a MAC address`},
				{"flows[2].actions[1].rewrite.ipv6_src", "an IPv6 rewrite needs the match to require eth_type ipv6"},
				{"flows[2].actions[4].rewrite.src_port", "src_port needs the match to require ip_proto tcp, udp or sctp"},
			}},
		{"police", `{` + ok + `,"actions":[{"police":{"rate_bytes_per_sec":"1","rate_pkts_per_sec":"1","conform":7}},{"drop":{}}]}`,
			[][2]string{
				{"flows[2].actions[0].police.conform", "unknown verdict 7"},
				{"flows[2].actions[0].police", "give a byte rate or a packet rate, not both"},
				{"flows[2].actions[0].police.burst", "must be greater than 0"},
			}},
		{"goto own chain", `{` + ok + `,"chain":3,"actions":[{"goto":{"chain":3}}]}`,
			[][2]string{{"flows[2].actions[0].goto.chain", "goto its own chain 3 loops"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, vs := FlowFromProto(wireFlow(t, tt.in), "flows[2]")
			var want []flow.Violation
			for _, w := range tt.want {
				want = append(want, flow.Violation{Field: w[0], Reason: w[1]})
			}
			assert.Equal(t, want, vs)
		})
	}
}

func TestFlowFromProtoNil(t *testing.T) {
	f, vs := FlowFromProto(nil, "flow")
	require.NotNil(t, f)
	assert.Contains(t, vs, flow.Violation{Field: "flow.id", Reason: "must not be empty"})
	assert.Nil(t, FlowToProto(nil))
}

func TestWireField(t *testing.T) {
	f := &flow.Flow{Actions: []flow.Action{
		{Kind: flow.ActRedirect},
		{Kind: flow.ActMirror},
		{Kind: flow.ActVLANPush},
		{Kind: flow.ActTunnelEncap},
		{Kind: flow.ActGoto},
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteIPDst, IP: netip.MustParseAddr("::1")}},
		{Kind: flow.ActPolice},
		{Kind: flow.ActCT},
	}}
	for in, want := range map[string]string{
		"port":                    "port",
		"match.ipv4_dst":          "match.ipv4_dst",
		"actions[0].port":         "actions[0].redirect.port",
		"actions[1].port":         "actions[1].mirror.port",
		"actions[2].vlan.prio":    "actions[2].vlan_push.prio",
		"actions[3].encap.vni":    "actions[3].tunnel_encap.vni",
		"actions[3].encap":        "actions[3].tunnel_encap",
		"actions[3]":              "actions[3]",
		"actions[4].chain":        "actions[4].goto.chain",
		"actions[5].rewrite":      "actions[5].rewrite",
		"actions[5].rewrite.ip":   "actions[5].rewrite.ipv6_dst",
		"actions[6].police.rate":  "actions[6].police",
		"actions[6].police.burst": "actions[6].police.burst",
		"actions[7].ct.nat.kind":  "actions[7].ct.nat.kind",
		"actions[0].kind":         "actions[0]",
		"actions[9].port":         "actions[9].port",
		"actions[x].port":         "actions[x].port",
	} {
		assert.Equal(t, want, WireField(f, in), in)
	}
}
