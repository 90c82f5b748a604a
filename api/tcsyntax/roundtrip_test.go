package tcsyntax

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/offloadd/offloadd/api"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	tccorpus "github.com/offloadd/offloadd/hack/tc-corpus"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/testing/protocmp"
)

// gen builds random flows that the daemon accepts (flow.Validate without
// port knowledge), over every key and action of the model.
type gen struct{ r *rand.Rand }

func (g gen) coin() bool      { return g.r.IntN(2) == 0 }
func (g gen) often() bool     { return g.r.IntN(3) != 0 }
func (g gen) sometimes() bool { return g.r.IntN(4) == 0 }

func (g gen) mac() [6]byte {
	var a [6]byte
	for i := range a {
		a[i] = byte(g.r.UintN(256))
	}
	return a
}

func (g gen) maskedMAC() flow.MaskedMAC {
	m := flow.MaskedMAC{Addr: g.mac(), Mask: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	if g.coin() {
		m.Mask = g.mac()
		if m.Mask == [6]byte{} {
			m.Mask[0] = 1
		}
	}
	return m
}

// addr is a unicast host address of the family of v4.
func (g gen) addr(v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{byte(1 + g.r.UintN(200)), byte(g.r.UintN(256)), byte(g.r.UintN(256)), byte(1 + g.r.UintN(250))})
	}
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	for i := 2; i < 16; i++ {
		b[i] = byte(g.r.UintN(256))
	}
	b[15] |= 1
	return netip.AddrFrom16(b)
}

func (g gen) prefix(v4 bool) netip.Prefix {
	a := g.addr(v4)
	bits := a.BitLen()
	if g.coin() {
		bits = 1 + g.r.IntN(a.BitLen())
	}
	return netip.PrefixFrom(a, bits).Masked()
}

func (g gen) m8() flow.Masked8 {
	m := flow.Masked8{Value: uint8(g.r.UintN(256)), Mask: 0xff}
	if g.coin() {
		m.Mask = uint8(1 + g.r.UintN(255))
	}
	return m
}

func (g gen) m16(full uint16) flow.Masked16 {
	m := flow.Masked16{Value: uint16(g.r.UintN(uint(full) + 1)), Mask: full}
	if g.coin() {
		m.Mask = uint16(1 + g.r.UintN(uint(full)))
	}
	return m
}

func (g gen) m32() flow.Masked32 {
	m := flow.Masked32{Value: g.r.Uint32(), Mask: 0xffffffff}
	if g.coin() {
		m.Mask = 1 + g.r.Uint32N(0xfffffffe)
	}
	return m
}

var ctStates = []flow.Masked16{
	{Value: 0, Mask: flow.CTTracked},
	{Value: flow.CTTracked, Mask: flow.CTTracked},
	{Value: flow.CTTracked | flow.CTEstablished, Mask: flow.CTTracked | flow.CTEstablished},
	{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew | flow.CTReply},
	{Value: flow.CTTracked | flow.CTEstablished | flow.CTReply, Mask: flow.CTTracked | flow.CTEstablished | flow.CTReply | flow.CTInvalid},
	{Value: flow.CTTracked | flow.CTInvalid, Mask: flow.CTTracked | flow.CTInvalid},
	{Value: flow.CTTracked | flow.CTRelated, Mask: flow.CTTracked | flow.CTRelated},
}

func (g gen) match(port string) flow.Match {
	var m flow.Match
	ets := []uint16{0, flow.EthTypeIPv4, flow.EthTypeIPv6, flow.EthTypeIPv4, flow.EthTypeIPv6, flow.EthTypeARP, 0x88cc, 0x1234}
	vlan := g.sometimes()
	if !vlan {
		ets = append(ets, flow.EthType8021Q, flow.EthType8021AD)
	}
	m.EthType = ets[g.r.IntN(len(ets))]
	if g.sometimes() {
		m.EthSrc = g.maskedMAC()
	}
	if g.sometimes() {
		m.EthDst = g.maskedMAC()
	}
	if vlan {
		if g.often() {
			m.VLANID = flow.Some(uint16(g.r.UintN(4095)))
		} else {
			m.VLANPrio = flow.Some(uint8(g.r.UintN(8)))
		}
		if g.coin() {
			if g.coin() {
				m.CVLANID = flow.Some(uint16(g.r.UintN(4095)))
			}
			if g.coin() || !m.CVLANID.Set {
				m.CVLANPrio = flow.Some(uint8(g.r.UintN(8)))
			}
		}
	}
	if ip := m.EthType == flow.EthTypeIPv4 || m.EthType == flow.EthTypeIPv6; ip {
		v4 := m.EthType == flow.EthTypeIPv4
		if g.coin() {
			m.IPSrc = g.prefix(v4)
		}
		if g.coin() {
			m.IPDst = g.prefix(v4)
		}
		icmp := uint8(flow.ProtoICMP)
		if !v4 {
			icmp = flow.ProtoICMPv6
		}
		protos := []uint8{0, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP, icmp, 47, 200}
		m.IPProto = protos[g.r.IntN(len(protos))]
		if g.sometimes() {
			m.TOS = g.m8()
		}
		if g.sometimes() {
			m.TTL = g.m8()
		}
		switch m.IPProto {
		case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP:
			if g.coin() {
				m.SrcPort = g.m16(0xffff)
			}
			if g.coin() {
				m.DstPort = g.m16(0xffff)
			}
			if m.IPProto == flow.ProtoTCP && g.coin() {
				m.TCPFlags = g.m16(0xfff)
			}
		case icmp:
			if g.coin() {
				m.ICMPType = flow.Some(uint8(g.r.UintN(256)))
			}
			if g.coin() {
				m.ICMPCode = flow.Some(uint8(g.r.UintN(256)))
			}
		}
		if g.sometimes() {
			m.Frag.Mask = uint32(1 + g.r.UintN(3))
			m.Frag.Value = uint32(g.r.UintN(4)) & m.Frag.Mask
		}
		if g.sometimes() {
			m.CTState = ctStates[g.r.IntN(len(ctStates))]
		}
		if g.sometimes() {
			m.CTZone = flow.Some(uint16(g.r.UintN(65536)))
		}
		if g.sometimes() {
			m.CTMark = g.m32()
		}
	}
	if port == "vxlan0" && g.coin() {
		if g.coin() {
			m.TunID = flow.Some(g.r.Uint32N(1 << 24))
		}
		v4 := g.coin()
		if g.coin() {
			m.TunSrc = g.prefix(v4)
		}
		if g.coin() {
			m.TunDst = g.prefix(v4)
		}
		if g.coin() {
			m.TunDstPort = flow.Some(uint16(1 + g.r.UintN(65535)))
		}
	}
	return m
}

func (g gen) verdict(def flow.Verdict) flow.Verdict {
	vs := []flow.Verdict{flow.VerdictDefault, flow.VerdictPipe, flow.VerdictDrop, flow.VerdictAccept, flow.VerdictContinue}
	for {
		// A verdict equal to its default reads back as the default (see doc.go).
		if v := vs[g.r.IntN(len(vs))]; v != def {
			return v
		}
	}
}

func (g gen) action(f *flow.Flow) flow.Action {
	m := &f.Match
	ip := m.EthType == flow.EthTypeIPv4 || m.EthType == flow.EthTypeIPv6
	v4 := m.EthType == flow.EthTypeIPv4
	for {
		switch g.r.IntN(8) {
		case 0:
			return flow.Action{Kind: flow.ActMirror, Port: "peer0", Ingress: g.coin()}
		case 1:
			a := flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: uint16(g.r.UintN(4095)), Prio: uint8(g.r.UintN(8))}}
			if g.coin() {
				a.VLAN.Proto = flow.EthType8021AD
			}
			return a
		case 2:
			if m.VLANID.Set || m.VLANPrio.Set {
				return flow.Action{Kind: flow.ActVLANPop}
			}
		case 3:
			if !ip {
				continue
			}
			ct := &flow.CT{Zone: uint16(g.r.UintN(65536)), Commit: g.coin()}
			if g.sometimes() {
				ct = &flow.CT{Clear: true}
			} else {
				if ct.Commit && g.coin() {
					ct.Mark = g.m32()
				}
				if g.coin() {
					ct.NAT.Kind = flow.NATSrc + flow.NATKind(g.r.IntN(2))
					ct.NAT.AddrMin = g.addr(v4)
					if g.coin() {
						ct.NAT.AddrMax = ct.NAT.AddrMin.Next()
					}
					if g.coin() {
						ct.NAT.PortMin = uint16(g.r.UintN(1000))
						if g.coin() {
							ct.NAT.PortMax = ct.NAT.PortMin + uint16(g.r.UintN(1000))
						}
					}
				}
			}
			return flow.Action{Kind: flow.ActCT, CT: ct}
		case 4:
			r := &flow.Rewrite{}
			switch g.r.IntN(5) {
			case 0:
				r.Field, r.MAC = flow.RewriteEthSrc, g.mac()
			case 1:
				r.Field, r.MAC = flow.RewriteEthDst, g.mac()
			case 2:
				if !ip {
					continue
				}
				r.Field, r.IP = flow.RewriteIPSrc+flow.RewriteField(g.r.IntN(2)), g.addr(v4)
			case 3:
				if !ip {
					continue
				}
				r.Field = flow.RewriteTTLDec
			case 4:
				// SCTP has no pedit header in tc; Format refuses it.
				if m.IPProto != flow.ProtoTCP && m.IPProto != flow.ProtoUDP {
					continue
				}
				r.Field, r.Port = flow.RewriteSrcPort+flow.RewriteField(g.r.IntN(2)), uint16(g.r.UintN(65536))
			}
			return flow.Action{Kind: flow.ActRewrite, Rewrite: r}
		case 5:
			p := &flow.Police{Burst: 1 + g.r.Uint32N(1<<20), Conform: g.verdict(flow.VerdictPipe), Exceed: g.verdict(flow.VerdictDrop)}
			if g.coin() {
				p.RateBytes = 1 + g.r.Uint64N(1<<40)
			} else {
				p.RatePackets = 1 + g.r.Uint64N(1<<30)
			}
			return flow.Action{Kind: flow.ActPolice, Police: p}
		case 6:
			if f.Port == "vxlan0" {
				return flow.Action{Kind: flow.ActTunnelDecap}
			}
		}
	}
}

func (g gen) flow(i int) *flow.Flow {
	ports := []string{"pf0vf0", "p0", "vxlan0"}
	f := &flow.Flow{
		ID:       fmt.Sprintf("f-%d", i),
		Port:     ports[g.r.IntN(len(ports))],
		Priority: uint16(1 + g.r.UintN(65535)),
		Policy:   flow.Policy(g.r.IntN(3)),
	}
	if g.coin() {
		f.Chain = g.r.Uint32N(flow.MaxChain + 1)
	}
	f.Match = g.match(f.Port)
	for range g.r.IntN(4) {
		f.Actions = append(f.Actions, g.action(f))
	}
	switch g.r.IntN(5) {
	case 0:
		f.Actions = append(f.Actions, flow.Action{Kind: flow.ActDrop})
	case 1:
		f.Actions = append(f.Actions, flow.Action{Kind: flow.ActAccept})
	case 2:
		f.Actions = append(f.Actions, flow.Action{Kind: flow.ActRedirect, Port: "peer0", Ingress: g.coin()})
	case 3:
		f.Actions = append(f.Actions, flow.Action{Kind: flow.ActGoto, Chain: f.Chain + 1})
	case 4:
		v4 := g.coin()
		src := g.addr(v4)
		f.Actions = append(f.Actions,
			flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: g.r.Uint32N(1 << 24), Src: src, Dst: src.Next(),
				DstPort: uint16(g.r.UintN(65536)), TTL: uint8(g.r.UintN(256)), TOS: uint8(g.r.UintN(256)), NoCsum: g.coin()}},
			flow.Action{Kind: flow.ActRedirect, Port: "vxlan0"})
	}
	flow.Normalize(f)
	return f
}

// valid returns a random flow the daemon accepts.
func (g gen) valid(t *testing.T, i int) *flow.Flow {
	for range 1000 {
		f := g.flow(i)
		if vs := flow.Validate(f, nil); len(vs) == 0 {
			return f
		}
	}
	t.Fatal("the generator made no valid flow in 1000 tries")
	return nil
}

// TestRoundTripRandomFlows: for random valid flows in the daemon's
// canonical wire form, parse(print(f)) == f, and the daemon reads the
// parsed flow back into the same domain flow.
func TestRoundTripRandomFlows(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(15, 2026))}
	n := 3000
	if testing.Short() {
		n = 300
	}
	seen := map[string]bool{}
	for i := range n {
		f := g.valid(t, i)
		pb := api.FlowToProto(f)
		s, err := Format(pb)
		require.NoError(t, err, "%+v", f)
		for _, w := range strings.Fields(s) {
			seen[w] = true
		}
		rules, err := ParseString("# id: " + f.ID + "\n" + s)
		require.NoError(t, err, s)
		require.Len(t, rules, 1)
		if d := cmp.Diff(pb, rules[0].Flow, protocmp.Transform()); d != "" {
			t.Fatalf("%s\n-printed +parsed:\n%s", s, d)
		}
		back, vs := api.FlowFromProto(rules[0].Flow, "")
		require.Empty(t, vs, s)
		require.True(t, back.Equal(f), "%s\ngot  %+v\nwant %+v", s, back, f)
	}
	// The generator reaches every keyword the printer writes.
	for _, w := range []string{"skip_sw", "skip_hw", "chain", "802.1Q", "802.1ad", "src_mac", "dst_mac", "vlan_id", "vlan_prio",
		"vlan_ethtype", "cvlan_id", "cvlan_prio", "cvlan_ethtype", "ip_proto", "src_ip", "dst_ip", "ip_tos", "ip_ttl",
		"src_port", "dst_port", "tcp_flags", "type", "code", "ip_flags", "enc_key_id", "enc_src_ip", "enc_dst_ip",
		"enc_dst_port", "ct_state", "ct_zone", "ct_mark", "drop", "pass", "redirect", "mirror", "push", "pop", "set",
		"unset", "nocsum", "ct", "commit", "clear", "mark", "nat", "addr", "port", "goto", "pedit", "csum", "hoplimit",
		"ttl", "sport", "dport", "police", "pkts_rate", "rate", "conform-exceed", "0x88cc", "0xc8"} {
		assert.True(t, seen[w], "no printed flow used %q", w)
	}
}

// TestFormatRefuses: flows with no tc spelling fail to print with a
// reason, rather than printing something else.
func TestFormatRefuses(t *testing.T) {
	sctp := &flow.Flow{ID: "s", Port: "p0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoSCTP},
		Actions: []flow.Action{{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteDstPort, Port: 9}}, {Kind: flow.ActDrop}}}
	_, err := Format(api.FlowToProto(sctp))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `flow "s": a port rewrite needs ip_proto tcp or udp`)

	_, err = Format(&v1.Flow{Id: "x", Port: "p0", Priority: 1, Match: &v1.Match{EthType: "nonsense"}})
	assert.ErrorContains(t, err, "eth_type")
}

// FuzzParse: Parse never panics, and every rule it accepts prints to a
// command that parses to the same flow.
func FuzzParse(f *testing.F) {
	f.Add("tc filter add dev p0 ingress prio 1 protocol ip flower skip_sw ip_proto tcp dst_port 0x50/0xfff0 action drop")
	f.Add("# id: a\nfilter replace dev p0 ingress chain 2 prio 7 protocol 802.1ad flower vlan_id 1 vlan_ethtype 802.1Q cvlan_prio 2 cvlan_ethtype ipv6 src_ip 2001:db8::/32 action ct commit zone 3 mark 1/0xf nat dst addr 2001:db8::1-2001:db8::9 port 0-9 pipe action goto chain 3")
	f.Add("tc filter add dev vxlan0 ingress prio 2 protocol ip flower enc_key_id 9 enc_src_ip 192.0.2.0/24 ct_state +trk-est ip_flags frag/nofirstfrag action tunnel_key unset action police rate 1mbit burst 10k conform-exceed pass/continue action pedit ex munge ip ttl add 0xff pipe action csum ip4h pipe action mirred egress redirect dev p1")
	f.Add("tc filter add dev p0 ingress prio 3 protocol ip flower ip_proto udp \\\n action pedit ex munge udp sport set 53 pipe action csum udp pipe action vlan push id 4 priority 2 action tunnel_key set src_ip 10.0.0.1 dst_ip 10.0.0.2 id 5 ttl 3 nocsum action mirred ingress mirror dev x")
	entries, err := tccorpus.Load()
	require.NoError(f, err)
	for _, e := range entries {
		f.Add(corpusLine(e.Args))
	}
	f.Fuzz(func(t *testing.T, in string) {
		rules, _ := ParseString(in)
		for _, r := range rules {
			if r.Op == OpDelete {
				continue
			}
			s, err := Format(r.Flow)
			require.NoError(t, err, "%q", in)
			again, err := ParseString("# id: " + r.Flow.GetId() + "\n" + s)
			require.NoError(t, err, "%q printed as %q", in, s)
			require.Len(t, again, 1)
			if d := cmp.Diff(r.Flow, again[0].Flow, protocmp.Transform()); d != "" {
				t.Fatalf("%q printed as %q:\n%s", in, s, d)
			}
		}
	})
}
