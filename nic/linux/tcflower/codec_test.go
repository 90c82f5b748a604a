package tcflower_test

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	tccorpus "github.com/offloadd/offloadd/hack/tc-corpus"
	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/offload/flow"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var ifindexes = map[string]int32{tccorpus.DevPort: 7, tccorpus.PeerPort: 8, tccorpus.TunnelPort: 9}

func resolve(name string) (int32, error) {
	if i, ok := ifindexes[name]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("no port %q", name)
}

func name(ifindex int32) string {
	for n, i := range ifindexes {
		if i == ifindex {
			return n
		}
	}
	return ""
}

// extraFlows cover model features the iproute2 corpus leaves out (masked
// ports, partial MAC masks with VLAN prio only, hardware plane).
func extraFlows() map[string]*flow.Flow {
	return map[string]*flow.Flow{
		"x-masked-ports": {ID: "x-masked-ports", Port: tccorpus.DevPort, Priority: 100,
			Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
				SrcPort: flow.Masked16{Value: 0x0400, Mask: 0xfc00}, DstPort: flow.Masked16{Value: 443, Mask: 0xffff}},
			Actions: []flow.Action{{Kind: flow.ActDrop}}},
		"x-vlan-prio-any-inner": {ID: "x-vlan-prio-any-inner", Port: tccorpus.DevPort, Priority: 101,
			Match:   flow.Match{VLANPrio: flow.Some[uint8](6)},
			Actions: []flow.Action{{Kind: flow.ActAccept}}},
		"x-police-continue": {ID: "x-police-continue", Port: tccorpus.DevPort, Priority: 102,
			Match: flow.Match{EthType: flow.EthTypeIPv6, IPDst: netip.MustParsePrefix("fd00::/8")},
			Actions: []flow.Action{{Kind: flow.ActPolice, Police: &flow.Police{RateBytes: 1 << 20, Burst: 65536,
				Conform: flow.VerdictContinue, Exceed: flow.VerdictAccept}}, {Kind: flow.ActDrop}}},
		"x-sctp-masked-ttl": {ID: "x-sctp-masked-ttl", Port: tccorpus.DevPort, Priority: 103,
			Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoSCTP, TTL: flow.Masked8{Value: 0x40, Mask: 0xf0},
				SrcPort: flow.Masked16{Value: 9, Mask: 0xffff}, CTZone: flow.Some[uint16](3)},
			Actions: []flow.Action{{Kind: flow.ActGoto, Chain: 9}}},
	}
}

type tcase struct {
	name  string
	flow  *flow.Flow
	plane flow.Plane
}

func cases(t testing.TB) []tcase {
	entries, err := tccorpus.Load()
	require.NoError(t, err)
	var out []tcase
	for _, e := range entries {
		out = append(out, tcase{e.Name, e.Flow, flow.Software})
	}
	for n, f := range extraFlows() {
		out = append(out, tcase{n, f, flow.Software})
	}
	hw := entries[0].Flow.Clone()
	hw.ID = "x-hardware"
	out = append(out, tcase{"x-hardware", hw, flow.Hardware})
	return out
}

func params(c tcase) tcflower.Params {
	return tcflower.Params{Ifindex: ifindexes[c.flow.Port], Plane: c.plane, Handle: 1, Resolve: resolve}
}

func TestCorpusFlowsAreValid(t *testing.T) {
	for _, c := range cases(t) {
		f := c.flow.Clone()
		flow.Normalize(f)
		assert.Equal(t, c.flow, f, "%s is not normalized", c.name)
		assert.Empty(t, flow.Validate(f, nil), c.name)
	}
}

func TestEncodeGolden(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			b, err := tcflower.Encode(c.flow, params(c))
			require.NoError(t, err)
			got := hex.Dump(b)
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -update once to create it")
			assert.Equal(t, string(want), got)
		})
	}
}

// TestEncodeLayoutByHand checks one message against the uapi layout
// written out by hand: struct tcmsg, TCA_KIND, TCA_CHAIN, TCA_OPTIONS with
// the first flower keys, for
// tc filter add dev if7 ingress prio 10 handle 1 protocol ip flower skip_hw
// src_ip 10.0.0.0/24 dst_ip 10.1.2.3 ip_proto tcp dst_port 80 action drop.
func TestEncodeLayoutByHand(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("hand layout is written for little-endian hosts")
	}
	entries, err := tccorpus.Load()
	require.NoError(t, err)
	b, err := tcflower.Encode(entries[0].Flow, tcflower.Params{Ifindex: 7, Plane: flow.Software, Handle: 1, Resolve: resolve})
	require.NoError(t, err)
	want := []byte{
		// struct tcmsg: family 0, pad; ifindex 7; handle 1; parent 0xfffffff2 (ingress);
		// info = prio 10 << 16 | htons(ETH_P_IP) -> bytes 08 00 0a 00.
		0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0xf2, 0xff, 0xff, 0xff, 0x08, 0x00, 0x0a, 0x00,
		// TCA_KIND (1), len 11, "flower\0" padded to 12.
		11, 0, 1, 0, 'f', 'l', 'o', 'w', 'e', 'r', 0, 0,
		// TCA_CHAIN (11), u32 0.
		8, 0, 11, 0, 0, 0, 0, 0,
	}
	require.Greater(t, len(b), len(want)+4)
	assert.Equal(t, want, b[:len(want)])
	opts := b[len(want):]
	assert.Equal(t, uint16(len(opts)), binary.NativeEndian.Uint16(opts), "TCA_OPTIONS spans the rest")
	assert.Equal(t, uint16(2), binary.NativeEndian.Uint16(opts[2:]), "TCA_OPTIONS type")
	keys := []byte{
		// TCA_FLOWER_KEY_ETH_TYPE (8), be16 0x0800.
		6, 0, 8, 0, 0x08, 0x00, 0, 0,
		// TCA_FLOWER_KEY_IP_PROTO (9), u8 6.
		5, 0, 9, 0, 6, 0, 0, 0,
		// TCA_FLOWER_KEY_IPV4_SRC (10) 10.0.0.0, _MASK (11) 255.255.255.0.
		8, 0, 10, 0, 10, 0, 0, 0, 8, 0, 11, 0, 255, 255, 255, 0,
		// TCA_FLOWER_KEY_IPV4_DST (12) 10.1.2.3, _MASK (13) /32.
		8, 0, 12, 0, 10, 1, 2, 3, 8, 0, 13, 0, 255, 255, 255, 255,
		// TCA_FLOWER_KEY_TCP_DST (19) be16 80, TCA_FLOWER_KEY_TCP_DST_MASK (36) 0xffff.
		6, 0, 19, 0, 0, 80, 0, 0, 6, 0, 36, 0, 0xff, 0xff, 0, 0,
		// TCA_FLOWER_FLAGS (22), u32 TCA_CLS_FLAGS_SKIP_HW.
		8, 0, 22, 0, 1, 0, 0, 0,
	}
	assert.Equal(t, keys, opts[4:4+len(keys)])
	acts := opts[4+len(keys):]
	assert.Equal(t, uint16(3), binary.NativeEndian.Uint16(acts[2:]), "TCA_FLOWER_ACT")
	act1 := []byte{
		// action 1: nested, TCA_ACT_KIND "gact\0" (len 9, padded to 12), TCA_ACT_OPTIONS { TCA_GACT_PARMS tc_gen with action TC_ACT_SHOT (2) }.
		9, 0, 1, 0, 'g', 'a', 'c', 't', 0, 0, 0, 0,
		28, 0, 2, 0x80, 24, 0, 2, 0, // TCA_ACT_OPTIONS with NLA_F_NESTED, as act_ct requires
		0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		// TCA_ACT_COOKIE (6): "oFLD" + 12 bytes.
		20, 0, 6, 0, 'o', 'F', 'L', 'D',
	}
	assert.Equal(t, uint16(1), binary.NativeEndian.Uint16(acts[6:]), "first action has prio 1")
	assert.Equal(t, act1, acts[8:8+len(act1)])
}

// TestPeditLayoutByHand checks the pedit keys of `pedit ex munge eth src
// set 02:aa:bb:cc:dd:ee` and `pedit ex munge ip ttl add 0xff` against what
// iproute2's pack_mac/pack_key8 compute.
func TestPeditLayoutByHand(t *testing.T) {
	find := func(b []byte, needle []byte) bool { return bytesIndex(b, needle) >= 0 }
	src := &flow.Flow{ID: "m", Port: "dev0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4}, Actions: []flow.Action{
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteEthSrc, MAC: [6]byte{2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}}},
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteTTLDec}}}}
	b, err := tcflower.Encode(src, tcflower.Params{Ifindex: 7, Resolve: resolve})
	require.NoError(t, err)
	le := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	// key 1: mask ff ff 00 00 keeps the dst MAC tail, val 00 00 02 aa at off 4.
	k1 := append([]byte{0xff, 0xff, 0, 0, 0, 0, 0x02, 0xaa}, le(4)...)
	// key 2: mask 0, val bb cc dd ee at off 8.
	k2 := append([]byte{0, 0, 0, 0, 0xbb, 0xcc, 0xdd, 0xee}, le(8)...)
	// ttl: mask 00 ff ff ff, val ff 00 00 00 at off 8 with cmd add.
	k3 := append([]byte{0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0}, le(8)...)
	assert.True(t, find(b, k1), "eth src first key")
	assert.True(t, find(b, k2), "eth src second key")
	assert.True(t, find(b, k3), "ttl key")
}

func bytesIndex(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

func TestRoundTrip(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			b, err := tcflower.Encode(c.flow, params(c))
			require.NoError(t, err)
			got, err := tcflower.Decode(b, name)
			require.NoError(t, err)
			got.Flow.ID = c.flow.ID
			got.Flow.Policy = c.flow.Policy
			assert.True(t, c.flow.Equal(got.Flow), "decoded flow differs:\nwant %+v\n got %+v", c.flow, got.Flow)
			for i := range min(len(c.flow.Actions), len(got.Flow.Actions)) {
				assert.True(t, c.flow.Actions[i].Equal(&got.Flow.Actions[i]), "action %d: want %+v got %+v", i,
					deref(c.flow.Actions[i]), deref(got.Flow.Actions[i]))
			}
			assert.Equal(t, uint32(1), got.Handle)
			assert.Equal(t, c.flow.Chain, got.Chain)
			assert.Equal(t, c.flow.Priority, got.Priority)
			assert.Equal(t, tcflower.Protocol(&c.flow.Match), got.Protocol)
			assert.Equal(t, c.plane, got.Plane())
			ck := tcflower.CookieFor(c.flow.ID)
			assert.Equal(t, ck[:], got.Cookie)
		})
	}
}

func deref(a flow.Action) string {
	s := fmt.Sprintf("%+v", a)
	if a.Police != nil {
		s += fmt.Sprintf(" police=%+v", *a.Police)
	}
	if a.CT != nil {
		s += fmt.Sprintf(" ct=%+v", *a.CT)
	}
	if a.Rewrite != nil {
		s += fmt.Sprintf(" rewrite=%+v", *a.Rewrite)
	}
	if a.Encap != nil {
		s += fmt.Sprintf(" encap=%+v", *a.Encap)
	}
	return s
}

func TestEncodeErrors(t *testing.T) {
	base := func() *flow.Flow {
		return &flow.Flow{ID: "e", Port: "dev0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoSCTP},
			Actions: []flow.Action{{Kind: flow.ActDrop}}}
	}
	tests := []struct {
		name string
		mod  func(f *flow.Flow)
		p    tcflower.Params
		want string
	}{
		{"priority 0", func(f *flow.Flow) { f.Priority = 0 }, tcflower.Params{}, "priority 0"},
		{"unknown port", func(f *flow.Flow) { f.Actions = []flow.Action{{Kind: flow.ActRedirect, Port: "nope"}} },
			tcflower.Params{Resolve: resolve}, `resolve port "nope"`},
		{"no resolver", func(f *flow.Flow) { f.Actions = []flow.Action{{Kind: flow.ActMirror, Port: "peer0"}} },
			tcflower.Params{}, "no port resolver"},
		{"sctp port rewrite", func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteDstPort, Port: 1}}}
		}, tcflower.Params{}, "no header type"},
		{"too many actions", func(f *flow.Flow) {
			f.Actions = nil
			for range 33 {
				f.Actions = append(f.Actions, flow.Action{Kind: flow.ActVLANPop})
			}
		}, tcflower.Params{}, "more than 32"},
		{"police without rate", func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActPolice, Police: &flow.Police{Burst: 1}}}
		}, tcflower.Params{}, "rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			tt.mod(f)
			var e tcflower.Encoder
			ok, err := e.Filter(base(), tcflower.Params{})
			require.NoError(t, err)
			okCopy := append([]byte(nil), ok...)
			_, err = e.Filter(f, tt.p)
			require.ErrorContains(t, err, tt.want)
			next, err := e.Filter(base(), tcflower.Params{})
			require.NoError(t, err)
			assert.Equal(t, okCopy, next, "a failed encode leaves nothing behind")
		})
	}
}

func TestCookie(t *testing.T) {
	c := tcflower.CookieFor("vm1/port3/acl-7")
	assert.Equal(t, "oFLD", string(c[:4]))
	h, ok := tcflower.ParseCookie(c[:])
	require.True(t, ok)
	assert.Equal(t, c[4:], h[:])
	assert.NotEqual(t, c, tcflower.CookieFor("vm1/port3/acl-8"))
	_, ok = tcflower.ParseCookie([]byte("ovs-cookie-12345"))
	assert.False(t, ok)
	_, ok = tcflower.ParseCookie(c[:15])
	assert.False(t, ok)
}

func TestDecodeRejects(t *testing.T) {
	entries, err := tccorpus.Load()
	require.NoError(t, err)
	b, err := tcflower.Encode(entries[0].Flow, tcflower.Params{Ifindex: 7, Resolve: resolve})
	require.NoError(t, err)
	_, err = tcflower.Decode(b[:10], nil)
	assert.Error(t, err)
	bad := append([]byte(nil), b...)
	copy(bad[24:], "u32\x00\x00\x00\x00") // TCA_KIND payload
	_, err = tcflower.Decode(bad, nil)
	assert.ErrorContains(t, err, "not flower")
	_, err = tcflower.Decode(b[:len(b)-3], nil)
	assert.Error(t, err, "a truncated attribute is an error")
}

func FuzzDecode(f *testing.F) {
	for _, c := range cases(f) {
		b, err := tcflower.Encode(c.flow, params(c))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := tcflower.Decode(b, name)
		if err == nil && fl.Flow == nil {
			t.Fatal("nil flow without error")
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	entries, err := tccorpus.Load()
	require.NoError(b, err)
	var f *flow.Flow
	for _, e := range entries {
		if e.Name == "vxlan-encap" {
			f = e.Flow
		}
	}
	p := tcflower.Params{Ifindex: 7, Handle: 1, Resolve: resolve}
	var e tcflower.Encoder
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		if _, err := e.Filter(f, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	entries, err := tccorpus.Load()
	require.NoError(b, err)
	msg, err := tcflower.Encode(entries[0].Flow, tcflower.Params{Ifindex: 7, Handle: 1, Resolve: resolve})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tcflower.Decode(msg, name); err != nil {
			b.Fatal(err)
		}
	}
}
