package store

import (
	"fmt"
	"net/netip"

	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// testFlows returns n distinct flows, deterministic for a given n, that
// use a spread of match keys and actions: IPv4 and IPv6 prefixes, ports,
// VLANs, tunnel encap, conntrack and policing.
func testFlows(n int) []offload.StoredFlow {
	out := make([]offload.StoredFlow, 0, n)
	for i := range n {
		f := &flow.Flow{
			ID:       fmt.Sprintf("tenant-%d/flow-%05d", i%7, i),
			Port:     fmt.Sprintf("pf0vf%d", i%8),
			Priority: uint16(i%200 + 1),
			Chain:    uint32(i % 3),
			Policy:   flow.Policy(i % 3),
		}
		m := &f.Match
		switch i % 4 {
		case 0:
			m.EthType = flow.EthTypeIPv4
			m.IPDst = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i * 37), byte(i * 91), byte(i)}), 32)
			m.IPProto = flow.ProtoTCP
			m.DstPort = flow.Masked16{Value: uint16(1000 + i), Mask: 0xffff}
			f.Actions = []flow.Action{{Kind: flow.ActRedirect, Port: fmt.Sprintf("pf0vf%d", (i+1)%8)}}
		case 1:
			m.EthType = flow.EthTypeIPv6
			m.IPSrc = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 128)
			m.VLANID = flow.Some(uint16(i%4094 + 1))
			f.Actions = []flow.Action{{Kind: flow.ActDrop}}
		case 2:
			m.EthType = flow.EthTypeIPv4
			m.IPSrc = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), 32)
			f.Actions = []flow.Action{{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: uint32(i + 100),
				Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), DstPort: 4789, TTL: 64}},
				{Kind: flow.ActRedirect, Port: "vxlan0"}}
		case 3:
			m.EthType = flow.EthTypeIPv4
			m.IPProto = flow.ProtoUDP
			m.SrcPort = flow.Masked16{Value: uint16(i), Mask: 0xffff}
			f.Actions = []flow.Action{{Kind: flow.ActPolice, Police: &flow.Police{RateBytes: uint64(i) * 1000, Burst: 65536,
				Conform: flow.VerdictDefault, Exceed: flow.VerdictDefault}}, {Kind: flow.ActRedirect, Port: "p0"}}
		}
		out = append(out, offload.StoredFlow{Flow: f, Generation: uint64(i%5 + 1)})
	}
	return out
}
