package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestBuildRules(t *testing.T) {
	const n, devs = 2000, 4
	rules := buildRules(n, devs)
	require.Len(t, rules, n)
	type listKey struct {
		port  string
		chain uint32
		prio  uint16
		proto uint16
	}
	ids := map[string]bool{}
	handles := map[uint32]bool{}
	keys := map[string]bool{}
	lists := map[listKey]int{}
	kinds := map[flow.ActionKind]int{}
	for i, r := range rules {
		f := r.f
		assert.Empty(t, flow.Validate(f, nil), "flow %s", f.ID)
		norm := f.Clone()
		flow.Normalize(norm)
		assert.True(t, norm.Equal(f), "flow %s is not normalized", f.ID)
		assert.Equal(t, i%devs, r.dev)
		assert.Equal(t, devName(r.dev), f.Port)
		assert.False(t, ids[f.ID], "duplicate ID %s", f.ID)
		assert.False(t, handles[r.handle], "duplicate handle %d", r.handle)
		ids[f.ID], handles[r.handle] = true, true
		lk := listKey{f.Port, f.Chain, f.Priority, tcflower.Protocol(&f.Match)}
		// cls_flower refuses two filters with one key in one list.
		key := fmt.Sprintf("%v %+v", lk, f.Match)
		assert.False(t, keys[key], "flows share list and key: %s", key)
		keys[key] = true
		lists[lk]++
		kinds[f.Actions[0].Kind]++
	}
	assert.Equal(t, n/2, kinds[flow.ActTunnelEncap], "half the rules are encaps")
	assert.Equal(t, n/4, kinds[flow.ActDrop])
	assert.Equal(t, n/4, kinds[flow.ActAccept])
	// 4 devices x 2 chains x 8 priorities.
	assert.Len(t, lists, devs*2*8)
}

func TestTCLine(t *testing.T) {
	rules := buildRules(8, 2)
	cookie := []byte{0xde, 0xad, 0xbe, 0xef}
	tests := []struct {
		name string
		r    rule
		want string
	}{
		{"tcp acl", rules[0], "filter add dev rep0 ingress prio 1 chain 0 handle 1 protocol ip flower skip_hw ip_proto tcp dst_ip 10.0.0.0 dst_port 1 action gact drop cookie deadbeef\n"},
		{"udp acl", rules[2], "filter add dev rep0 ingress prio 1 chain 0 handle 3 protocol ip flower skip_hw ip_proto udp src_ip 100.64.2.0/24 dst_ip 10.0.0.2 dst_port 53 action gact pass cookie deadbeef\n"},
		{"encap", rules[5], "filter add dev rep1 ingress prio 11 chain 0 handle 6 protocol ip flower skip_hw dst_ip 172.16.0.5 action tunnel_key set src_ip 192.0.2.1 dst_ip 198.51.100.6 id 6 dst_port 4789 cookie deadbeef action mirred egress redirect dev vxlan0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tcLine(tt.r, cookie)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestTCLineRefusesWhatItCannotWrite(t *testing.T) {
	base := buildRules(1, 1)[0]
	tests := []struct {
		name   string
		change func(f *flow.Flow)
	}{
		{"vlan key", func(f *flow.Flow) { f.Match.VLANID = flow.Some[uint16](5) }},
		{"masked port", func(f *flow.Flow) { f.Match.DstPort.Mask = 0xff00 }},
		{"icmp", func(f *flow.Flow) { f.Match.IPProto = flow.ProtoICMP; f.Match.DstPort = flow.Masked16{} }},
		{"arp", func(f *flow.Flow) { f.Match = flow.Match{EthType: flow.EthTypeARP} }},
		{"no actions", func(f *flow.Flow) { f.Actions = nil }},
		{"ct action", func(f *flow.Flow) { f.Actions = []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 1}}} }},
		{"encap ttl", func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 1, TTL: 64}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.f = base.f.Clone()
			tt.change(r.f)
			_, err := tcLine(r, []byte{1})
			assert.Error(t, err)
		})
	}
}

func TestTCBatch(t *testing.T) {
	rules := buildRules(100, 4)
	data, err := tcBatch(rules)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, 100)
	ck := tcflower.CookieFor(rules[42].f.ID)
	assert.Contains(t, lines[42], "handle 43 ")
	assert.Contains(t, lines[42], fmt.Sprintf("cookie %x", ck[:]))
	_, err = tcBatch(nil)
	assert.Error(t, err)
}

func TestSplit(t *testing.T) {
	rules := buildRules(1000, 4)
	tests := []struct{ workers, wantParts int }{{1, 1}, {2, 2}, {3, 3}, {4, 4}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.workers), func(t *testing.T) {
			parts := split(rules, tt.workers)
			require.Len(t, parts, tt.wantParts)
			total := 0
			owner := map[int]int{}
			for w, p := range parts {
				total += len(p)
				for _, r := range p {
					if o, ok := owner[r.dev]; ok {
						assert.Equal(t, o, w, "device %d dealt to two workers", r.dev)
					}
					owner[r.dev] = w
				}
			}
			assert.Equal(t, len(rules), total)
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		assert.Equal(t, tt.want, median(tt.in), "median(%v)", tt.in)
		assert.Equal(t, in, tt.in, "median must not reorder its input")
	}
}

func TestReportRatio(t *testing.T) {
	var rep Report
	rep.ratio("a/c", []float64{13, 30, 14}, []float64{10, 10, 10}, 1.3, "")
	rep.ratio("b/c", []float64{17}, []float64{10}, 1.8, "")
	rep.ratio("b/a", []float64{20, 20}, []float64{10, 40}, 0, "info")
	rep.ratio("none", nil, []float64{10}, 1, "")
	rep.ratio("zero", []float64{0}, []float64{10}, 1, "")
	require.Len(t, rep.Figures, 3, "a ratio with a missing side is left out")
	a, b, info := rep.Figures[0], rep.Figures[1], rep.Figures[2]
	assert.InDelta(t, 1.4, a.Value, 1e-9, "median of the per-round ratios 1.3, 3, 1.4")
	assert.True(t, *a.Met)
	assert.Equal(t, ">= 1.30", a.Target)
	assert.Contains(t, a.Note, "median of rounds 1.30, 3.00, 1.40")
	assert.False(t, *b.Met)
	assert.Nil(t, info.Met, "no target")
	assert.InDelta(t, 1.25, info.Value, 1e-9)

	var w strings.Builder
	require.NoError(t, writeTable(&w, &Report{Machine: map[string]string{}, Figures: rep.Figures}))
	assert.Contains(t, w.String(), "b/c")
	assert.Contains(t, w.String(), "NO")
}
