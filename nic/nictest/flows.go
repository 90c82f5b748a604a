package nictest

import (
	"fmt"
	"net/netip"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// portSet is the device's ports for flow.Validate and nic.PortKinds.
type portSet map[string]nic.PortKind

func (p portSet) HasPort(name string) bool  { _, ok := p[name]; return ok }
func (p portSet) IsTunnel(name string) bool { return p[name] == nic.PortTunnel }
func (p portSet) kind(name string) nic.PortKind {
	return p[name]
}

// tcpDrop matches IPv4 TCP to 10.<i>/32 port 80 from port in and drops.
func tcpDrop(id, in string, i int) *flow.Flow {
	return &flow.Flow{ID: id, Port: in, Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			IPDst:   netip.PrefixFrom(ipv4(i), 32),
			DstPort: flow.Masked16{Value: 80, Mask: 0xffff}},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
}

// ipv4 returns 10.x.y.z for i.
func ipv4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// hardwareCandidates are plain flows most NICs offload, simplest last, so
// the suite can find one that the profile accepts. i varies the match.
func hardwareCandidates(id, in, out string, i int) []*flow.Flow {
	mac := [6]byte{0x02, 0xaa, 0, byte(i >> 16), byte(i >> 8), byte(i)}
	redirect := tcpDrop(id, in, i)
	redirect.Actions = []flow.Action{{Kind: flow.ActRedirect, Port: out}}
	ipDrop := tcpDrop(id, in, i)
	ipDrop.Match.IPProto, ipDrop.Match.DstPort = 0, flow.Masked16{}
	return []*flow.Flow{
		tcpDrop(id, in, i),
		redirect,
		ipDrop,
		{ID: id, Port: in, Priority: 1,
			Match:   flow.Match{EthDst: flow.MaskedMAC{Addr: mac, Mask: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}},
			Actions: []flow.Action{{Kind: flow.ActDrop}}},
	}
}

// refusalCandidates are valid flows that some hardware does not offload.
// The suite refuses with the first one the profile rejects.
func refusalCandidates(id string, ps portSet, in, out string) []*flow.Flow {
	ct := func(f *flow.Flow) *flow.Flow {
		f.Match.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew | flow.CTEstablished}
		return f
	}
	icmp := tcpDrop(id, in, 1)
	icmp.Match.IPProto, icmp.Match.DstPort = flow.ProtoICMP, flow.Masked16{}
	icmp.Match.ICMPType = flow.Some[uint8](8)
	flags := tcpDrop(id, in, 1)
	flags.Match.TCPFlags = flow.Masked16{Value: 0x02, Mask: 0x12}
	chain := tcpDrop(id, in, 1)
	chain.Chain, chain.Priority = 4000, 65535
	police := tcpDrop(id, in, 1)
	police.Actions = []flow.Action{{Kind: flow.ActPolice, Police: &flow.Police{RateBytes: 1 << 20, Burst: 1 << 16}}, {Kind: flow.ActDrop}}
	out2 := []*flow.Flow{ct(tcpDrop(id, in, 1)), icmp, flags, chain, police}
	for name, k := range ps {
		if k == nic.PortVF {
			out2 = append(out2, tcpDrop(id, name, 1))
			break
		}
	}
	return out2
}

// softwareFlows are valid flows of every kind the model has; a software
// plane takes them all.
func softwareFlows(in, out, tunnel string) []*flow.Flow {
	ip4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	base := func(id string, prio uint16) *flow.Flow {
		return &flow.Flow{ID: "nictest-sw-" + id, Port: in, Priority: prio,
			Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP}}
	}
	redirect := flow.Action{Kind: flow.ActRedirect, Port: out}
	var fs []*flow.Flow

	f := base("ct", 10)
	f.Actions = []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5}}, {Kind: flow.ActGoto, Chain: 1}}
	fs = append(fs, f)

	f = base("ct-new", 10)
	f.Chain = 1
	f.Match.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew | flow.CTEstablished}
	f.Actions = []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5, Commit: true, Mark: flow.Masked32{Value: 1, Mask: 0xff}}}, redirect}
	fs = append(fs, f)

	f = base("ct-est", 11)
	f.Chain = 1
	f.Match.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTEstablished, Mask: flow.CTTracked | flow.CTEstablished}
	f.Match.CTZone = flow.Some[uint16](5)
	f.Match.CTMark = flow.Masked32{Value: 1, Mask: 0xff}
	f.Actions = []flow.Action{redirect}
	fs = append(fs, f)

	f = base("nat", 12)
	f.Match.IPDst = netip.MustParsePrefix("198.51.100.7/32")
	f.Match.DstPort = flow.Masked16{Value: 80, Mask: 0xffff}
	f.Actions = []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 7, Commit: true,
		NAT: flow.NAT{Kind: flow.NATDst, AddrMin: ip4("192.0.2.10"), PortMin: 8080, PortMax: 8080}}}, redirect}
	fs = append(fs, f)

	f = base("icmp", 20)
	f.Match.IPProto = flow.ProtoICMP
	f.Match.ICMPType, f.Match.ICMPCode = flow.Some[uint8](8), flow.Some[uint8](0)
	f.Actions = []flow.Action{{Kind: flow.ActDrop}}
	fs = append(fs, f)

	f = base("tcp-flags", 21)
	f.Match.TCPFlags = flow.Masked16{Value: 0x02, Mask: 0x12}
	f.Match.TOS = flow.Masked8{Value: 0x10, Mask: 0xfc}
	f.Match.TTL = flow.Masked8{Value: 64, Mask: 0xff}
	f.Actions = []flow.Action{{Kind: flow.ActDrop}}
	fs = append(fs, f)

	f = base("vlan-pop", 22)
	f.Match.VLANID, f.Match.VLANPrio = flow.Some[uint16](100), flow.Some[uint8](3)
	f.Actions = []flow.Action{{Kind: flow.ActVLANPop}, redirect}
	fs = append(fs, f)

	f = &flow.Flow{ID: "nictest-sw-vlan-push", Port: in, Priority: 23,
		Match:   flow.Match{EthSrc: flow.MaskedMAC{Addr: [6]byte{0x02, 0, 0, 0, 0x10, 0}, Mask: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0}}},
		Actions: []flow.Action{{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 200, Prio: 1}}, redirect}}
	fs = append(fs, f)

	f = base("rewrite", 24)
	f.Match.IPProto = flow.ProtoUDP
	f.Match.DstPort = flow.Masked16{Value: 53, Mask: 0xffff}
	f.Actions = []flow.Action{
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteIPDst, IP: ip4("192.0.2.53")}},
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteDstPort, Port: 5353}},
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteEthDst, MAC: [6]byte{0x02, 0, 0, 0, 0, 0x53}}},
		{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteTTLDec}},
		redirect}
	fs = append(fs, f)

	f = base("police-mirror", 25)
	f.Actions = []flow.Action{
		{Kind: flow.ActPolice, Police: &flow.Police{RateBytes: 1 << 20, Burst: 1 << 16, Exceed: flow.VerdictDrop}},
		{Kind: flow.ActMirror, Port: out},
		{Kind: flow.ActAccept}}
	fs = append(fs, f)

	f = &flow.Flow{ID: "nictest-sw-ipv6", Port: in, Priority: 26,
		Match: flow.Match{EthType: flow.EthTypeIPv6, IPProto: flow.ProtoUDP,
			IPSrc:   netip.MustParsePrefix("2001:db8:1::/64"),
			SrcPort: flow.Masked16{Value: 0x1000, Mask: 0xf000}},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
	fs = append(fs, f)

	f = base("frag", 27)
	f.Match.IPProto = 0
	f.Match.Frag = flow.Masked32{Value: flow.FragIsFragment, Mask: flow.FragIsFragment}
	f.Actions = []flow.Action{{Kind: flow.ActDrop}}
	fs = append(fs, f)

	f = base("far-chain", 65535)
	f.Chain = 4000
	f.Actions = []flow.Action{{Kind: flow.ActDrop}}
	fs = append(fs, f)

	if tunnel != "" {
		fs = append(fs, &flow.Flow{ID: "nictest-sw-decap", Port: tunnel, Priority: 30,
			Match: flow.Match{EthType: flow.EthTypeIPv4, TunID: flow.Some[uint32](42),
				TunSrc: netip.MustParsePrefix("192.0.2.2/32"), TunDst: netip.MustParsePrefix("192.0.2.1/32"),
				TunDstPort: flow.Some[uint16](4789)},
			Actions: []flow.Action{{Kind: flow.ActTunnelDecap}, {Kind: flow.ActRedirect, Port: in}}})
		fs = append(fs, &flow.Flow{ID: "nictest-sw-encap", Port: in, Priority: 31,
			Match: flow.Match{EthType: flow.EthTypeIPv4, IPDst: netip.MustParsePrefix("10.200.0.0/16")},
			Actions: []flow.Action{
				{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 42, Src: ip4("192.0.2.1"), Dst: ip4("192.0.2.2"), DstPort: 4789, TTL: 64}},
				{Kind: flow.ActRedirect, Port: tunnel}}})
	}
	return fs
}

func idf(prefix string, i int) string { return fmt.Sprintf("nictest-%s-%d", prefix, i) }
