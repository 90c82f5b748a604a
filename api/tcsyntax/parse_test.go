package tcsyntax

import (
	"strings"
	"testing"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/api/flowfile"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	tccorpus "github.com/offloadd/offloadd/hack/tc-corpus"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"
)

// corpusLine turns a corpus entry into a tc command: placeholders become
// the corpus ports, and the cookies offloadd sets itself are left out.
func corpusLine(args string) string {
	args = strings.NewReplacer("$DEV", tccorpus.DevPort, "$PEER", tccorpus.PeerPort, "$VXLAN", tccorpus.TunnelPort).Replace(args)
	args = strings.ReplaceAll(args, " cookie $COOKIE", "")
	return "tc filter add " + args
}

// TestCorpus parses every line of the iproute2 equivalence corpus, which
// the kernel tier proves installs the same filter as its flow, and wants
// exactly the canonical form of that flow.
func TestCorpus(t *testing.T) {
	entries, err := tccorpus.Load()
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		t.Run(e.Name, func(t *testing.T) {
			line := corpusLine(e.Args)
			// The corpus uses handle 1 where the devices need one.
			rules, err := ParseString("# id: " + e.Name + "\n" + line + "\n")
			require.NoError(t, err, line)
			require.Len(t, rules, 1)
			want := e.Flow.Clone()
			want.Policy = flow.PolicySoftwareOnly // every entry is skip_hw
			wantPB := api.FlowToProto(want)
			assert.Empty(t, cmp.Diff(wantPB, rules[0].Flow, protocmp.Transform()), line)

			// And the domain flow the daemon would build is the corpus flow.
			got, vs := api.FlowFromProto(rules[0].Flow, "")
			assert.Empty(t, vs)
			flow.Normalize(want)
			assert.True(t, got.Equal(want), "%s\ngot  %+v\nwant %+v", line, got, want)

			// Printing it gives a line that parses to the same flow.
			s, err := Format(rules[0].Flow)
			require.NoError(t, err)
			again, err := ParseString("# id: " + e.Name + "\n" + s)
			require.NoError(t, err, s)
			assert.Empty(t, cmp.Diff(wantPB, again[0].Flow, protocmp.Transform()), s)
		})
	}
}

// yamlFlow reads a flow as the YAML/JSON mapping gives it.
func yamlFlow(t *testing.T, js string) *v1.Flow {
	t.Helper()
	f := &v1.Flow{}
	require.NoError(t, protojson.Unmarshal([]byte(js), f))
	return f
}

// TestParseLikeFlowFile pins hand-written iproute2 lines to the flow the
// YAML mapping gives for the same rule.
func TestParseLikeFlowFile(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ssh acl", "# id: acl-ssh\ntc filter add dev pf0vf0 ingress prio 10 protocol ip flower skip_sw \\\n  ip_proto tcp dst_port 22 action drop",
			`{"id":"acl-ssh","port":"pf0vf0","priority":10,"policy":"PLACEMENT_POLICY_HARDWARE_ONLY",
			  "match":{"eth_type":"ipv4","ip_proto":"tcp","dst_port":22},"actions":[{"drop":{}}]}`},
		{"no tc, pref, masked port, chain", "# id: web\nfilter replace dev pf0vf1 ingress chain 2 pref 7 protocol ipv6 flower src_ip 2001:db8::/32 ip_proto tcp dst_port 0x50/0xfff0 tcp_flags 0x2/0x12 action mirred ingress mirror dev pf0vf2 action pass",
			`{"id":"web","port":"pf0vf1","chain":2,"priority":7,
			  "match":{"eth_type":"ipv6","ipv6_src":"2001:db8::/32","ip_proto":"tcp","dst_port":80,"dst_port_mask":65520,"tcp_flags":2,"tcp_flags_mask":18},
			  "actions":[{"mirror":{"port":"pf0vf2","ingress":true}},{"accept":{}}]}`},
		{"l2 with prefix-length mask", "# id: l2\ntc filter add dev p0 ingress prio 1 protocol all flower skip_hw src_mac 02:00:00:00:00:00/24 dst_mac 02:00:00:00:00:01 action gact pass",
			`{"id":"l2","port":"p0","priority":1,"policy":"PLACEMENT_POLICY_SOFTWARE_ONLY",
			  "match":{"eth_src":"02:00:00:00:00:00","eth_src_mask":"ff:ff:ff:00:00:00","eth_dst":"02:00:00:00:00:01"},"actions":[{"accept":{}}]}`},
		{"ct and nat", "# id: snat\ntc filter add dev pf0vf0 ingress chain 1 prio 3 protocol ip flower ct_state +trk+new ct_zone 5 ct_mark 5/0xff action ct commit zone 5 mark 7 nat src addr 198.51.100.1-198.51.100.9 port 1024-2047 pipe action goto chain 2",
			`{"id":"snat","port":"pf0vf0","chain":1,"priority":3,
			  "match":{"eth_type":"ipv4","ct_state":"+trk+new","ct_zone":5,"ct_mark":5,"ct_mark_mask":255},
			  "actions":[{"ct":{"zone":5,"commit":true,"mark":7,"nat":{"kind":"NAT_KIND_SRC","addr_min":"198.51.100.1","addr_max":"198.51.100.9","port_min":1024,"port_max":2047}}},{"goto":{"chain":2}}]}`},
		{"encap and police", "# id: enc\ntc filter add dev pf0vf0 ingress prio 4 protocol ip flower dst_ip 10.0.0.0/8 action police rate 8mbit burst 64k conform-exceed continue/pass action tunnel_key set src_ip 192.0.2.1 dst_ip 192.0.2.2 id 42 dst_port 4789 ttl 64 tos 0x28 nocsum action mirred egress redirect dev vxlan0",
			`{"id":"enc","port":"pf0vf0","priority":4,"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.0/8"},
			  "actions":[{"police":{"rate_bytes_per_sec":1000000,"burst":65536,"conform":"POLICE_VERDICT_ACCEPT","exceed":"POLICE_VERDICT_CONTINUE"}},
			  {"tunnel_encap":{"vni":42,"src":"192.0.2.1","dst":"192.0.2.2","dst_port":4789,"ttl":64,"tos":40,"no_csum":true}},{"redirect":{"port":"vxlan0"}}]}`},
		{"decap, icmp, frag, tos/ttl", "# id: dec\ntc filter add dev vxlan0 ingress prio 2 protocol ip flower enc_key_id 9 enc_dst_ip 192.0.2.1 enc_src_ip 192.0.2.0/24 enc_dst_port 4789 ip_proto icmp type 8 code 0 ip_flags nofrag ip_tos 0x10/0xfc ip_ttl 64 action tunnel_key unset action vlan push id 10 priority 3 protocol 802.1ad action vlan pop action pedit ex munge eth src set 02:AA:bb:cc:dd:ee pipe action ct clear",
			`{"id":"dec","port":"vxlan0","priority":2,"match":{"eth_type":"ipv4","ip_proto":"icmp","tos":16,"tos_mask":252,"ttl":64,"icmp_type":8,"icmp_code":0,
			  "ip_flags":{"frag":false},"tunnel":{"vni":9,"src":"192.0.2.0/24","dst":"192.0.2.1","dst_port":4789}},
			  "actions":[{"tunnel_decap":{}},{"vlan_push":{"id":10,"prio":3,"proto":"802.1ad"}},{"vlan_pop":{}},{"rewrite":{"eth_src":"02:aa:bb:cc:dd:ee"}},{"ct":{"clear":true}}]}`},
		{"qinq", "# id: q\ntc filter add dev p0 ingress prio 11 protocol 802.1ad flower vlan_id 10 vlan_ethtype 802.1Q cvlan_id 20 cvlan_prio 1 cvlan_ethtype ipv6 action drop",
			`{"id":"q","port":"p0","priority":11,"match":{"eth_type":"ipv6","vlan_id":10,"cvlan_id":20,"cvlan_prio":1},"actions":[{"drop":{}}]}`},
		{"pedit with csum, packet police", "# id: nat4\ntc filter add dev p0 ingress prio 9 protocol ip flower ip_proto udp action pedit ex munge udp dport set 5353 pipe action csum udp pipe action police pkts_rate 1000 pkts_burst 100 action pedit ex munge ip ttl add 0xff action csum iph",
			`{"id":"nat4","port":"p0","priority":9,"match":{"eth_type":"ipv4","ip_proto":"udp"},
			  "actions":[{"rewrite":{"dst_port":5353}},{"police":{"rate_pkts_per_sec":1000,"burst":100}},{"rewrite":{"ttl_dec":true}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseString(tt.in)
			require.NoError(t, err)
			require.Len(t, rules, 1)
			want := yamlFlow(t, tt.want)
			assert.Empty(t, cmp.Diff(want, rules[0].Flow, protocmp.Transform()))
			_, vs := api.FlowFromProto(rules[0].Flow, "")
			assert.Empty(t, vs, "the daemon accepts it")
		})
	}
}

func TestParseOps(t *testing.T) {
	rules, err := ParseString(`
# a comment, then a rule without an id
tc filter add dev p0 ingress prio 1 protocol ip flower action drop   # trailing comment
tc filter replace dev p0 ingress prio 2 flower action pass

# id: gone
tc filter del dev p0 ingress prio 3
`)
	require.NoError(t, err)
	require.Len(t, rules, 3)
	assert.Equal(t, []Op{OpAdd, OpReplace, OpDelete}, []Op{rules[0].Op, rules[1].Op, rules[2].Op})
	assert.Equal(t, []int{3, 4, 7}, []int{rules[0].Line, rules[1].Line, rules[2].Line})
	assert.Equal(t, "gone", rules[2].Flow.GetId())
	assert.Nil(t, rules[1].Flow.GetMatch(), "protocol all and no keys is no match")

	// Derived ids are stable and ignore spacing and the leading tc.
	a, err := ParseString("tc filter add dev p0 ingress prio 1 protocol ip flower action drop")
	require.NoError(t, err)
	b, err := ParseString("filter   add dev p0 \\\n ingress prio 1 protocol ip flower action drop")
	require.NoError(t, err)
	assert.Regexp(t, `^tc-[0-9a-f]{12}$`, a[0].Flow.GetId())
	assert.Equal(t, a[0].Flow.GetId(), b[0].Flow.GetId())
	assert.Equal(t, a[0].Flow.GetId(), rules[0].Flow.GetId())
	c, err := ParseString("tc filter add dev p0 ingress prio 2 protocol ip flower action drop")
	require.NoError(t, err)
	assert.NotEqual(t, a[0].Flow.GetId(), c[0].Flow.GetId())
}

func TestParseErrors(t *testing.T) {
	const pre = "tc filter add dev p0 ingress prio 1 protocol ip flower "
	tests := []struct {
		name, in, want string
	}{
		{"typo key", "\n\n" + pre + "ip_proto tcp dst_prot 80 action drop", `line 3 col 69: "dst_prot": unknown flower key; did you mean dst_port?`},
		{"typo action", pre + "action mired egress redirect dev p1", `"mired": unknown action; did you mean mirred?`},
		{"port range", pre + "ip_proto tcp dst_port 80-90 action drop", `"80-90": dst_port port ranges cannot be expressed`},
		{"arp key", "tc filter add dev p0 ingress prio 1 protocol arp flower arp_tip 10.0.0.1 action drop", `"arp_tip": cannot be expressed: the model has no ARP keys`},
		{"egress", "tc filter add dev p0 egress prio 1 flower action drop", `"egress": offloadd flows match where packets enter a port`},
		{"netns", "tc -n ns1 filter add dev p0 ingress prio 1 flower action drop", `"-n": tc options are not supported`},
		{"multi-key pedit", pre + "action pedit ex munge eth src set 02:00:00:00:00:01 munge eth dst set 02:00:00:00:00:02", `several pedit keys in one action cannot be expressed`},
		{"reclassify", pre + "action police rate 1mbit burst 10k conform-exceed reclassify", `verdict "reclassify" cannot be expressed`},
		{"control", pre + "action mirred egress mirror dev p1 continue action drop", `"continue": cannot be expressed`},
		{"cookie", pre + "action drop cookie 0102", `"cookie": cannot be expressed`},
		{"no prio", "tc filter add dev p0 ingress protocol ip flower action drop", "no prio"},
		{"no dev", "tc filter add ingress prio 1 protocol ip flower action drop", "no dev"},
		{"family", pre + "src_ip 2001:db8::1 action drop", `"2001:db8::1": src_ip family does not match protocol ip`},
		{"ip key without ip", "tc filter add dev p0 ingress prio 1 flower dst_ip 10.0.0.1 action drop", `"dst_ip": needs protocol ip or ipv6`},
		{"vlan without 802.1Q", pre + "vlan_id 5 action drop", `"vlan_id": needs protocol 802.1Q`},
		{"decimal ip_proto", pre + "ip_proto 17 action drop", `iproute2 reads ip_proto numbers in hex`},
		{"skip both", pre + "skip_sw skip_hw action drop", `"skip_hw": with skip_sw the flow could run nowhere`},
		{"host bits", pre + "dst_ip 10.0.0.1/24 action drop", `has host bits set; did you mean 10.0.0.0/24?`},
		{"twice", pre + "ip_ttl 3 ip_ttl 4 action drop", `"ip_ttl": given twice (first at col 56)`},
		{"icmp type without icmp", pre + "type 8 action drop", `"type": needs ip_proto icmp or icmpv6`},
		{"pedit port without proto", pre + "action pedit ex munge tcp dport set 80", `pedit of a tcp port needs ip_proto tcp`},
		{"ct nat alone", pre + "action ct nat", `nat needs src or dst`},
		{"csum alone", pre + "action csum iph", `csum only after a pedit`},
		{"octal", "tc filter add dev p0 ingress prio 010 flower action drop", `leading zero`},
		{"unknown id comment", "# id: a\n# id: b\n" + pre + "action drop", `line 2 col 1: "# id: b": a second id comment`},
		{"duplicate id", "# id: a\n" + pre + "action drop\n# id: a\n" + pre + "action pass", `line 3 col 1: "a": id already used by the rule on line 2`},
		{"missing value", pre + "dst_mac", `dst_mac needs a value`},
		{"not filter", "tc qdisc add dev p0 ingress", `"qdisc": want filter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseString(tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			var el ErrorList
			require.ErrorAs(t, err, &el)
			assert.Positive(t, el[0].Line)
			assert.Positive(t, el[0].Col)
		})
	}
}

// TestParseReportsEveryBadRule keeps going after a bad rule and reports
// each.
func TestParseReportsEveryBadRule(t *testing.T) {
	rules, err := ParseString(`tc filter add dev p0 ingress prio 1 protocol ip flower dst_prot 1 action drop
tc filter add dev p0 ingress prio 2 protocol ip flower action drop
tc filter add dev p0 ingress prio 3 protocol ip flower action dorp`)
	var el ErrorList
	require.ErrorAs(t, err, &el)
	require.Len(t, el, 2)
	assert.Equal(t, []int{1, 3}, []int{el[0].Line, el[1].Line})
	assert.Len(t, rules, 1)
	assert.Contains(t, el[1].Error(), "did you mean drop?")
}

func TestFormatMatchAndActions(t *testing.T) {
	rules, err := ParseString("tc filter add dev p0 ingress prio 1 protocol 802.1Q flower vlan_id 5 vlan_ethtype ipv6 ip_proto udp action vlan pop action mirred egress mirror dev p1 action pass")
	require.NoError(t, err)
	m, err := FormatMatch(rules[0].Flow)
	require.NoError(t, err)
	assert.Equal(t, "protocol 802.1Q vlan_id 5 vlan_ethtype ipv6 ip_proto udp", m)
	a, err := FormatActions(rules[0].Flow)
	require.NoError(t, err)
	assert.Equal(t, "vlan pop, mirred egress mirror dev p1, pass", a)

	rules, err = ParseString("tc filter add dev p0 ingress prio 1 flower action drop")
	require.NoError(t, err)
	m, err = FormatMatch(rules[0].Flow)
	require.NoError(t, err)
	assert.Empty(t, m, "protocol all and no keys")
}

// TestUnknownKeyLast: a typo at the end of a rule is named as a typo, not
// as a key without a value.
func TestUnknownKeyLast(t *testing.T) {
	_, err := ParseString("tc filter add dev p0 ingress prio 1 protocol ip flower skip_sww")
	assert.ErrorContains(t, err, `"skip_sww": unknown flower key; did you mean skip_sw?`)
	_, err = ParseString("tc filter add dev p0 ingress prio 1 protocol arp flower arp_op")
	assert.ErrorContains(t, err, `"arp_op": cannot be expressed`)
}

// TestReadmeExample: the README's tc lines and its YAML file are the same
// flows, read by api/flowfile.
func TestReadmeExample(t *testing.T) {
	yml := `flows:
- id: acl-ssh-vf0
  port: pf0vf0
  chain: 1
  priority: 10
  match: {eth_type: ipv4, ip_proto: tcp, dst_port: 22}
  actions: [{drop: {}}]
- id: overlay-vf0
  port: pf0vf0
  priority: 20
  match: {eth_type: ipv4, ipv4_dst: 10.0.1.0/24}
  actions:
  - tunnel_encap: {vni: 100, src: 192.0.2.1, dst: 198.51.100.10}
  - redirect: {port: vxlan0}
`
	tc := `# id: acl-ssh-vf0
tc filter add dev pf0vf0 ingress chain 1 prio 10 protocol ip flower \
    ip_proto tcp dst_port 22 action drop
# id: overlay-vf0
tc filter add dev pf0vf0 ingress prio 20 protocol ip flower dst_ip 10.0.1.0/24 \
    action tunnel_key set src_ip 192.0.2.1 dst_ip 198.51.100.10 id 100 \
    action mirred egress redirect dev vxlan0
`
	want, err := flowfile.Read(strings.NewReader(yml), "readme.yaml")
	require.NoError(t, err)
	rules, err := ParseString(tc)
	require.NoError(t, err)
	require.Len(t, rules, len(want))
	for i := range want {
		assert.Empty(t, cmp.Diff(want[i], rules[i].Flow, protocmp.Transform()))
	}
}
