package tccorpus

import (
	"bufio"
	_ "embed"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/offloadd/offloadd/offload/flow"
)

// Port names the flows use; a test maps them to its devices.
const (
	DevPort    = "dev0"   // the filter's device ($DEV)
	PeerPort   = "peer0"  // redirect and mirror target ($PEER)
	TunnelPort = "vxlan0" // the VXLAN device ($VXLAN)
)

//go:embed corpus.txt
var corpusTxt string

// Entry is one corpus rule.
type Entry struct {
	Name string
	// Args are `tc filter add` arguments with $DEV, $PEER, $VXLAN and
	// $COOKIE placeholders.
	Args string
	Flow *flow.Flow
}

// Load pairs every corpus.txt line with its flow, in file order. It fails
// when a line has no flow or a flow has no line.
func Load() ([]Entry, error) {
	fs := Flows()
	var out []Entry
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(corpusTxt))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, args, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("corpus.txt:%d: no tab after the name", n)
		}
		f, ok := fs[name]
		if !ok {
			return nil, fmt.Errorf("corpus.txt:%d: no flow for %q", n, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("corpus.txt:%d: %q twice", n, name)
		}
		seen[name] = true
		f.ID = name
		out = append(out, Entry{Name: name, Args: args, Flow: f})
	}
	var missing []string
	for name := range fs {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("flows without a corpus.txt line: %v", missing)
	}
	return out, nil
}

func pfx(s string) netip.Prefix {
	if !strings.Contains(s, "/") {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.MustParsePrefix(s)
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

var (
	drop     = flow.Action{Kind: flow.ActDrop}
	pass     = flow.Action{Kind: flow.ActAccept}
	toPeer   = flow.Action{Kind: flow.ActRedirect, Port: PeerPort}
	toTunnel = flow.Action{Kind: flow.ActRedirect, Port: TunnelPort}
)

func gotoChain(c uint32) flow.Action { return flow.Action{Kind: flow.ActGoto, Chain: c} }

func ct(c flow.CT) flow.Action { return flow.Action{Kind: flow.ActCT, CT: &c} }

func rw(r flow.Rewrite) flow.Action { return flow.Action{Kind: flow.ActRewrite, Rewrite: &r} }

func police(p flow.Police) flow.Action { return flow.Action{Kind: flow.ActPolice, Police: &p} }

func exact16(v uint16) flow.Masked16 { return flow.Masked16{Value: v, Mask: 0xffff} }

const v4, v6 = flow.EthTypeIPv4, flow.EthTypeIPv6

// Flows returns a fresh copy of every corpus flow by name (IDs unset).
func Flows() map[string]*flow.Flow {
	f := func(prio uint16, m flow.Match, acts ...flow.Action) *flow.Flow {
		return &flow.Flow{Port: DevPort, Priority: prio, Match: m, Actions: acts}
	}
	onChain := func(c uint32, fl *flow.Flow) *flow.Flow { fl.Chain = c; return fl }
	onTunnel := func(fl *flow.Flow) *flow.Flow { fl.Port = TunnelPort; return fl }
	return map[string]*flow.Flow{
		"acl-ipv4-tcp-drop": f(10, flow.Match{EthType: v4, IPSrc: pfx("10.0.0.0/24"), IPDst: pfx("10.1.2.3"),
			IPProto: flow.ProtoTCP, DstPort: exact16(80)}, drop),
		"acl-l2-pass": f(1, flow.Match{
			EthDst: flow.MaskedMAC{Addr: [6]byte{2, 0, 0, 0, 0, 1}, Mask: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			EthSrc: flow.MaskedMAC{Addr: [6]byte{2, 0, 0, 0, 0, 0}, Mask: [6]byte{0xff, 0xff, 0xff}}}, pass),
		"acl-udp-redirect": f(2, flow.Match{EthType: v4, IPProto: flow.ProtoUDP, SrcPort: exact16(5000), DstPort: exact16(53)}, toPeer),
		"acl-sctp":         f(3, flow.Match{EthType: v4, IPProto: flow.ProtoSCTP, DstPort: exact16(3868)}, drop),
		"acl-ipv6-tcp-flags": f(4, flow.Match{EthType: v6, IPSrc: pfx("2001:db8::/32"), IPDst: pfx("2001:db8:1::1"),
			IPProto: flow.ProtoTCP, TCPFlags: flow.Masked16{Value: 0x2, Mask: 0x12}}, drop),
		"acl-icmp-echo": f(5, flow.Match{EthType: v4, IPProto: flow.ProtoICMP, ICMPType: flow.Some[uint8](8), ICMPCode: flow.Some[uint8](0)}, drop),
		"acl-icmpv6-ns": f(6, flow.Match{EthType: v6, IPProto: flow.ProtoICMPv6, ICMPType: flow.Some[uint8](135)}, pass),
		"acl-ip-frag": f(7, flow.Match{EthType: v4, Frag: flow.Masked32{Value: flow.FragIsFragment,
			Mask: flow.FragIsFragment | flow.FragFirst}}, drop),
		"acl-tos-ttl": f(8, flow.Match{EthType: v4, TOS: flow.Masked8{Value: 0x10, Mask: 0xfc}, TTL: flow.Masked8{Value: 64, Mask: 0xff}}, drop),
		"vlan-match-pop": f(9, flow.Match{EthType: v4, VLANID: flow.Some[uint16](100), VLANPrio: flow.Some[uint8](3),
			IPDst: pfx("192.168.0.0/16")}, flow.Action{Kind: flow.ActVLANPop}, toPeer),
		"vlan-qinq": f(11, flow.Match{EthType: v4, VLANID: flow.Some[uint16](10), CVLANID: flow.Some[uint16](20),
			CVLANPrio: flow.Some[uint8](1)}, drop),
		"vlan-push": f(12, flow.Match{EthType: v4},
			flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 200, Prio: 5}}, toPeer),
		"vlan-push-8021ad": f(13, flow.Match{EthType: v4},
			flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 300, Proto: flow.EthType8021AD}}, toPeer),
		"vxlan-encap": f(14, flow.Match{EthType: v4, IPDst: pfx("10.10.0.2")},
			flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 42, Src: ip("192.0.2.1"), Dst: ip("192.0.2.2"), DstPort: 4789, TTL: 64}},
			toTunnel),
		"vxlan-encap-ipv6": f(15, flow.Match{EthType: v6},
			flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 7, Src: ip("2001:db8::1"), Dst: ip("2001:db8::2"), TOS: 0x28, NoCsum: true}},
			toTunnel),
		"vxlan-decap": onTunnel(f(16, flow.Match{EthType: v4, TunID: flow.Some[uint32](42), TunSrc: pfx("192.0.2.2"),
			TunDst: pfx("192.0.2.1"), TunDstPort: flow.Some[uint16](4789)}, flow.Action{Kind: flow.ActTunnelDecap}, toPeer)),
		"vxlan-decap-ipv6": onTunnel(f(17, flow.Match{EthType: v4, TunID: flow.Some[uint32](9), TunSrc: pfx("2001:db8::2"),
			TunDst: pfx("2001:db8::1")}, flow.Action{Kind: flow.ActTunnelDecap}, drop)),
		"ct-untracked": f(20, flow.Match{EthType: v4, CTState: flow.Masked16{Value: 0, Mask: flow.CTTracked}},
			ct(flow.CT{Zone: 5}), gotoChain(1)),
		"ct-established": onChain(1, f(21, flow.Match{EthType: v4, CTState: flow.Masked16{Value: flow.CTTracked | flow.CTEstablished,
			Mask: flow.CTTracked | flow.CTEstablished}, CTZone: flow.Some[uint16](5)}, toPeer)),
		"ct-new-commit-mark": onChain(1, f(22, flow.Match{EthType: v4, CTState: flow.Masked16{Value: flow.CTTracked | flow.CTNew,
			Mask: flow.CTTracked | flow.CTNew}}, ct(flow.CT{Zone: 5, Commit: true, Mark: flow.Masked32{Value: 0x10, Mask: 0xff}}), toPeer)),
		"ct-snat-range": onChain(1, f(23, flow.Match{EthType: v4, IPProto: flow.ProtoTCP, CTState: flow.Masked16{Value: flow.CTTracked | flow.CTNew,
			Mask: flow.CTTracked | flow.CTNew}}, ct(flow.CT{Zone: 7, Commit: true, NAT: flow.NAT{Kind: flow.NATSrc,
			AddrMin: ip("198.51.100.1"), AddrMax: ip("198.51.100.10"), PortMin: 1024, PortMax: 2048}}), gotoChain(2))),
		"ct-dnat-ipv6": onChain(1, f(24, flow.Match{EthType: v6, CTState: flow.Masked16{Value: flow.CTTracked | flow.CTNew,
			Mask: flow.CTTracked | flow.CTNew}}, ct(flow.CT{Commit: true, NAT: flow.NAT{Kind: flow.NATDst, AddrMin: ip("2001:db8::10")}}), gotoChain(3))),
		"ct-clear": onChain(2, f(25, flow.Match{EthType: v4, CTState: flow.Masked16{Value: flow.CTTracked | flow.CTReply,
			Mask: flow.CTTracked | flow.CTReply}, CTMark: flow.Masked32{Value: 0x10, Mask: 0xff}}, ct(flow.CT{Clear: true}), gotoChain(4))),
		"pedit-mac": f(30, flow.Match{EthType: v4},
			rw(flow.Rewrite{Field: flow.RewriteEthDst, MAC: [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}}),
			rw(flow.Rewrite{Field: flow.RewriteEthSrc, MAC: [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}}), toPeer),
		"pedit-ipv4-src": f(31, flow.Match{EthType: v4, IPProto: flow.ProtoTCP},
			rw(flow.Rewrite{Field: flow.RewriteIPSrc, IP: ip("203.0.113.5")}), toPeer),
		"pedit-ttl-dec":      f(32, flow.Match{EthType: v4}, rw(flow.Rewrite{Field: flow.RewriteTTLDec}), toPeer),
		"pedit-hoplimit-dec": f(33, flow.Match{EthType: v6}, rw(flow.Rewrite{Field: flow.RewriteTTLDec}), toPeer),
		"pedit-udp-dport": f(34, flow.Match{EthType: v4, IPProto: flow.ProtoUDP},
			rw(flow.Rewrite{Field: flow.RewriteDstPort, Port: 5353}), toPeer),
		"pedit-tcp-sport": f(35, flow.Match{EthType: v4, IPProto: flow.ProtoTCP},
			rw(flow.Rewrite{Field: flow.RewriteSrcPort, Port: 8080}), pass),
		"pedit-ipv6-dst": f(36, flow.Match{EthType: v6, IPProto: flow.ProtoTCP},
			rw(flow.Rewrite{Field: flow.RewriteIPDst, IP: ip("2001:db8::99")}), toPeer),
		"police-bytes":   f(40, flow.Match{EthType: v4}, police(flow.Police{RateBytes: 125000, Burst: 10240}), toPeer),
		"police-packets": f(41, flow.Match{EthType: v4}, police(flow.Police{RatePackets: 1000, Burst: 100}), toPeer),
		"police-rate64":  f(42, flow.Match{}, police(flow.Police{RateBytes: 12_500_000_000, Burst: 800_000}), pass),
		"goto-chain":     onChain(3, f(7, flow.Match{EthType: v4, IPProto: flow.ProtoUDP}, gotoChain(4))),
		"mirror-then-redirect": f(43, flow.Match{EthType: flow.EthTypeARP},
			flow.Action{Kind: flow.ActMirror, Port: PeerPort}, flow.Action{Kind: flow.ActRedirect, Port: PeerPort, Ingress: true}),
	}
}
