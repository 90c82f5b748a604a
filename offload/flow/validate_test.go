package flow

import (
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakePorts map[string]bool // name -> is tunnel

func (p fakePorts) HasPort(n string) bool  { _, ok := p[n]; return ok }
func (p fakePorts) IsTunnel(n string) bool { return p[n] }

var ports = fakePorts{"pf0vf0": false, "pf0vf1": false, "p0": false, "vxlan0": true}

func base() *Flow {
	return &Flow{ID: "f1", Port: "pf0vf0", Priority: 10, Actions: []Action{{Kind: ActDrop}}}
}

func TestValidate(t *testing.T) {
	v4 := netip.MustParsePrefix
	tests := []struct {
		name string
		mod  func(f *Flow)
		want []Violation
	}{
		{"minimal drop", func(*Flow) {}, nil},
		{"acl tcp 22", func(f *Flow) {
			f.Match = Match{EthType: EthTypeIPv4, IPSrc: v4("10.0.0.0/24"), IPProto: ProtoTCP, DstPort: Masked16{22, 0xffff}}
		}, nil},
		{"empty id and port, prio 0", func(f *Flow) { f.ID, f.Port, f.Priority = "", "", 0 }, []Violation{
			{"id", "must not be empty"}, {"port", "must not be empty"}, {"priority", "must be between 1 and 65535"}}},
		{"id with space", func(f *Flow) { f.ID = "a b" }, []Violation{{"id", "byte 1 is a space; IDs use only A-Z a-z 0-9 and ._:/@+=-"}}},
		{"id with every allowed byte", func(f *Flow) { f.ID = "tenant-a/web_01.v4:80@node+x=y" }, nil},
		{"id with right-to-left override", func(f *Flow) { f.ID = "ab\u202Ecd" },
			[]Violation{{"id", "byte 2 is U+202E; IDs use only A-Z a-z 0-9 and ._:/@+=-"}}},
		{"id with zero-width space", func(f *Flow) { f.ID = "a\u200bb" },
			[]Violation{{"id", "byte 1 is U+200B; IDs use only A-Z a-z 0-9 and ._:/@+=-"}}},
		{"id with newline", func(f *Flow) { f.ID = "a\nb" },
			[]Violation{{"id", "byte 1 is control character U+000A; IDs use only A-Z a-z 0-9 and ._:/@+=-"}}},
		{"id with invalid utf-8", func(f *Flow) { f.ID = "a\xffb" },
			[]Violation{{"id", "byte 1 is a byte that is not UTF-8; IDs use only A-Z a-z 0-9 and ._:/@+=-"}}},
		{"id with comma", func(f *Flow) { f.ID = "a,b" },
			[]Violation{{"id", "byte 1 is ','; IDs use only A-Z a-z 0-9 and ._:/@+=-"}}},
		{"id of 253 bytes", func(f *Flow) { f.ID = strings.Repeat("x", 253) }, nil},
		{"id of 254 bytes", func(f *Flow) { f.ID = strings.Repeat("x", 254) }, []Violation{{"id", "254 bytes, longer than 253"}}},
		{"chain at the kernel's limit", func(f *Flow) { f.Chain = 0x0fffffff }, nil},
		{"chain above the kernel's limit", func(f *Flow) { f.Chain = 0x10000000 },
			[]Violation{{"chain", "268435456 > 268435455 (0x0fffffff): the kernel keeps chain indexes in 28 bits"}}},
		{"goto above the kernel's limit", func(f *Flow) { f.Actions = []Action{{Kind: ActGoto, Chain: 0x10000000}} },
			[]Violation{{"actions[0].chain", "268435456 > 268435455 (0x0fffffff): TC_ACT_GOTO_CHAIN carries the chain in 28 bits"}}},
		{"goto to the highest chain", func(f *Flow) { f.Actions = []Action{{Kind: ActGoto, Chain: 0x0fffffff}} }, nil},
		{"32 actions", func(f *Flow) {
			f.Actions = append(slices.Repeat([]Action{{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteEthSrc}}}, 31), Action{Kind: ActDrop})
		}, nil},
		{"33 actions", func(f *Flow) {
			f.Actions = append(slices.Repeat([]Action{{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteEthSrc}}}, 32), Action{Kind: ActDrop})
		},
			[]Violation{{"actions", "33 actions; the kernel takes at most 32 per filter (TCA_ACT_MAX_PRIO)"}}},
		{"redirect to own egress", func(f *Flow) { f.Actions = []Action{{Kind: ActRedirect, Port: "pf0vf0"}} },
			[]Violation{{"actions[0].port", `redirect to the egress of "pf0vf0", the flow's own port, sends the packet back where it came from: a loop with the sender`}}},
		{"redirect to own ingress", func(f *Flow) { f.Actions = []Action{{Kind: ActRedirect, Port: "pf0vf0", Ingress: true}} },
			[]Violation{{"actions[0].port", `redirect to the ingress of "pf0vf0", the flow's own port, classifies the packet again from chain 0: a loop`}}},
		{"mirror to own ingress", func(f *Flow) { f.Actions = []Action{{Kind: ActMirror, Port: "pf0vf0", Ingress: true}, {Kind: ActDrop}} },
			[]Violation{{"actions[0].port", `mirror to the ingress of "pf0vf0", the flow's own port, classifies the packet again from chain 0: a loop`}}},
		{"redirect to another port's ingress", func(f *Flow) { f.Actions = []Action{{Kind: ActRedirect, Port: "pf0vf1", Ingress: true}} }, nil},
		{"ct_state rpl without trk", func(f *Flow) { f.Match.CTState = Masked16{CTReply, CTReply} },
			[]Violation{{"match.ct_state", "+trk is required when any other state is required"}}},
		{"ct_state est+inv", func(f *Flow) {
			f.Match.CTState = Masked16{CTTracked | CTInvalid | CTEstablished, CTTracked | CTInvalid | CTEstablished}
		}, []Violation{{"match.ct_state", "with +inv only +trk may also be required"}}},
		{"ct_state rel+est", func(f *Flow) {
			f.Match.CTState = Masked16{CTTracked | CTRelated | CTEstablished, CTTracked | CTRelated | CTEstablished}
		}, []Violation{{"match.ct_state", "+rel excludes +new and +est: a packet is in exactly one of these states"}}},
		{"ct_state trk with no state", func(f *Flow) {
			all := CTNew | CTEstablished | CTRelated | CTInvalid
			f.Match.CTState = Masked16{CTTracked, CTTracked | all}
		}, []Violation{{"match.ct_state", "+trk with -new-est-rel-inv matches nothing: a tracked packet is in one of those states"}}},
		{"ct_state trk-new-inv ok", func(f *Flow) { f.Match.CTState = Masked16{CTTracked, CTTracked | CTNew | CTInvalid} }, nil},
		{"ct_state est+rpl ok", func(f *Flow) {
			f.Match.CTState = Masked16{CTTracked | CTEstablished | CTReply, CTTracked | CTEstablished | CTReply}
		}, nil},
		{"vlan 4095 match", func(f *Flow) { f.Match.VLANID = Some[uint16](4095) },
			[]Violation{{"match.vlan_id", "4095 is reserved by 802.1Q; VLAN IDs are 0 (priority tag) to 4094"}}},
		{"vlan 0 match is a priority tag", func(f *Flow) { f.Match.VLANID = Some[uint16](0) }, nil},
		{"cvlan 4095 match", func(f *Flow) { f.Match.VLANID = Some[uint16](5); f.Match.CVLANID = Some[uint16](4095) },
			[]Violation{{"match.cvlan_id", "4095 is reserved by 802.1Q; VLAN IDs are 0 (priority tag) to 4094"}}},
		{"vlan push 4095", func(f *Flow) {
			f.Actions = []Action{{Kind: ActVLANPush, VLAN: VLANPush{ID: 4095}}, {Kind: ActRedirect, Port: "p0"}}
		}, []Violation{{"actions[0].vlan.id", "4095 is reserved by 802.1Q; VLAN IDs are 0 (priority tag) to 4094"}}},
		{"vlan push 0 is a priority tag", func(f *Flow) {
			f.Actions = []Action{{Kind: ActVLANPush, VLAN: VLANPush{ID: 0, Prio: 5}}, {Kind: ActRedirect, Port: "p0"}}
		}, nil},
		{"vlan pop without vlan match", func(f *Flow) { f.Actions = []Action{{Kind: ActVLANPop}, {Kind: ActRedirect, Port: "p0"}} },
			[]Violation{{"actions[0]", "vlan_pop needs the match to require a VLAN tag (vlan_id, vlan_prio or eth_type 802.1Q/802.1ad) or a vlan_push before it"}}},
		{"vlan pop with vlan match", func(f *Flow) {
			f.Match.VLANID = Some[uint16](10)
			f.Actions = []Action{{Kind: ActVLANPop}, {Kind: ActRedirect, Port: "p0"}}
		}, nil},
		{"vlan pop with 802.1Q eth_type", func(f *Flow) {
			f.Match.EthType = EthType8021Q
			f.Actions = []Action{{Kind: ActVLANPop}, {Kind: ActRedirect, Port: "p0"}}
		}, nil},
		{"two pops, one tag", func(f *Flow) {
			f.Match.VLANID = Some[uint16](10)
			f.Actions = []Action{{Kind: ActVLANPop}, {Kind: ActVLANPop}, {Kind: ActRedirect, Port: "p0"}}
		}, []Violation{{"actions[1]", "vlan_pop needs the match to require a VLAN tag (vlan_id, vlan_prio or eth_type 802.1Q/802.1ad) or a vlan_push before it"}}},
		{"pop after push", func(f *Flow) {
			f.Actions = []Action{{Kind: ActVLANPush, VLAN: VLANPush{ID: 7}}, {Kind: ActVLANPop}, {Kind: ActRedirect, Port: "p0"}}
		}, nil},
		{"nat v6 on v4 flow", func(f *Flow) {
			f.Match.EthType = EthTypeIPv4
			f.Actions = []Action{{Kind: ActCT, CT: &CT{Commit: true, NAT: NAT{Kind: NATSrc, AddrMin: netip.MustParseAddr("2001:db8::1")}}}, {Kind: ActGoto, Chain: 1}}
		}, []Violation{{"actions[0].ct.nat.addr_min", "IPv6 address 2001:db8::1 on a flow that matches eth_type ipv4"}}},
		{"nat v4 on v6 flow", func(f *Flow) {
			f.Match.EthType = EthTypeIPv6
			f.Actions = []Action{{Kind: ActCT, CT: &CT{Commit: true, NAT: NAT{Kind: NATDst, AddrMin: netip.MustParseAddr("10.0.0.1")}}}, {Kind: ActGoto, Chain: 1}}
		}, []Violation{{"actions[0].ct.nat.addr_min", "IPv4 address 10.0.0.1 on a flow that matches eth_type ipv6"}}},
		{"nat without eth_type", func(f *Flow) {
			f.Actions = []Action{{Kind: ActCT, CT: &CT{Commit: true, NAT: NAT{Kind: NATDst, AddrMin: netip.MustParseAddr("10.0.0.1")}}}, {Kind: ActGoto, Chain: 1}}
		}, []Violation{{"actions[0].ct.nat.addr_min", "NAT needs the match to require eth_type ipv4 or ipv6"}}},
		{"nat v4 on v4 ok", func(f *Flow) {
			f.Match.EthType = EthTypeIPv4
			f.Actions = []Action{{Kind: ActCT, CT: &CT{Commit: true, NAT: NAT{Kind: NATDst, AddrMin: netip.MustParseAddr("10.0.0.1")}}}, {Kind: ActGoto, Chain: 1}}
		}, nil},
		{"encap to broadcast", encapTo("192.0.2.1", "255.255.255.255"),
			[]Violation{{"actions[0].encap.dst", "255.255.255.255 is the broadcast address: a tunnel endpoint is one unicast host"}}},
		{"encap to ipv4 multicast", encapTo("192.0.2.1", "239.1.1.1"),
			[]Violation{{"actions[0].encap.dst", "239.1.1.1 is a multicast address: a tunnel endpoint is one unicast host"}}},
		{"encap to ipv6 multicast", encapTo("2001:db8::1", "ff02::1"),
			[]Violation{{"actions[0].encap.dst", "ff02::1 is a multicast address: a tunnel endpoint is one unicast host"}}},
		{"encap to ::", encapTo("2001:db8::1", "::"),
			[]Violation{{"actions[0].encap.dst", "a remote tunnel endpoint address is required"}}},
		{"encap to 0.0.0.0", encapTo("192.0.2.1", "0.0.0.0"),
			[]Violation{{"actions[0].encap.dst", "a remote tunnel endpoint address is required"}}},
		{"encap from multicast", encapTo("224.0.0.1", "192.0.2.2"),
			[]Violation{{"actions[0].encap.src", "224.0.0.1 is a multicast address: a tunnel endpoint is one unicast host"}}},
		{"encap to itself", encapTo("192.0.2.1", "192.0.2.1"),
			[]Violation{{"actions[0].encap.dst", "192.0.2.1 is also the source: the tunnel would send to itself"}}},
		{"unknown port", func(f *Flow) { f.Port = "eth9" }, []Violation{{"port", `unknown port "eth9"`}}},
		{"port name too long", func(f *Flow) { f.Port = strings.Repeat("p", 1<<20) },
			[]Violation{{"port", "1048576 bytes, longer than an interface name can be (15, IFNAMSIZ)"}}},
		{"redirect port name too long", func(f *Flow) { f.Actions = []Action{{Kind: ActRedirect, Port: strings.Repeat("p", 16)}} },
			[]Violation{{"actions[0].port", "16 bytes, longer than an interface name can be (15, IFNAMSIZ)"}}},
		{"ipv4 without eth_type", func(f *Flow) { f.Match.IPDst = v4("10.0.0.1/32") },
			[]Violation{{"match.ipv4_dst", "needs eth_type ipv4 (0x0800)"}}},
		{"ipv6 with ipv4 eth_type", func(f *Flow) {
			f.Match.EthType = EthTypeIPv4
			f.Match.IPSrc = v4("2001:db8::/32")
		}, []Violation{{"match.ipv6_src", "needs eth_type ipv6 (0x86dd)"}}},
		{"ports need l4 proto", func(f *Flow) {
			f.Match = Match{EthType: EthTypeIPv4, IPProto: ProtoICMP, SrcPort: Masked16{1, 0xffff}}
		}, []Violation{{"match.src_port", "needs ip_proto tcp, udp or sctp"}}},
		{"ip_proto without ip", func(f *Flow) { f.Match.IPProto = ProtoTCP },
			[]Violation{{"match.ip_proto", "needs eth_type ipv4 (0x0800) or ipv6 (0x86dd)"}}},
		{"tcp flags on udp", func(f *Flow) {
			f.Match = Match{EthType: EthTypeIPv4, IPProto: ProtoUDP, TCPFlags: Masked16{2, 0x12}}
		}, []Violation{{"match.tcp_flags", "needs ip_proto tcp"}}},
		{"icmpv6 type on ipv4", func(f *Flow) {
			f.Match = Match{EthType: EthTypeIPv4, IPProto: ProtoICMPv6, ICMPType: Some[uint8](128)}
		}, []Violation{{"match.icmp_type", "needs ip_proto icmp with ipv4 or icmpv6 with ipv6"}}},
		{"vlan out of range", func(f *Flow) { f.Match.VLANID = Some[uint16](5000) }, []Violation{{"match.vlan_id", "5000 > 4094"}}},
		{"cvlan without vlan", func(f *Flow) { f.Match.CVLANID = Some[uint16](5) },
			[]Violation{{"match.cvlan_id", "an inner VLAN needs an outer vlan_id or vlan_prio"}}},
		{"ct_state without trk", func(f *Flow) { f.Match.CTState = Masked16{CTEstablished, CTEstablished} },
			[]Violation{{"match.ct_state", "+trk is required when any other state is required"}}},
		{"ct_state new+est", func(f *Flow) {
			f.Match.CTState = Masked16{CTTracked | CTNew | CTEstablished, CTTracked | CTNew | CTEstablished}
		}, []Violation{{"match.ct_state", "+new and +est are mutually exclusive"}}},
		{"ct_state -trk ok", func(f *Flow) { f.Match.CTState = Masked16{0, CTTracked} }, nil},
		{"tunnel key on a representor", func(f *Flow) { f.Match.TunID = Some[uint32](5) },
			[]Violation{{"match.tunnel", `tunnel keys match only on a tunnel port, "pf0vf0" is not one`}}},
		{"vni too big", func(f *Flow) { f.Port = "vxlan0"; f.Match.TunID = Some[uint32](1 << 24) },
			[]Violation{{"match.tunnel.vni", "16777216 does not fit in 24 bits"}}},
		{"no actions", func(f *Flow) { f.Actions = nil }, []Violation{{"actions", "at least one action is required"}}},
		{"action after drop", func(f *Flow) { f.Actions = append(f.Actions, Action{Kind: ActAccept}) },
			[]Violation{{"actions[1]", "follows drop, which ends the action list"}}},
		{"encap without redirect", func(f *Flow) {
			f.Actions = []Action{{Kind: ActTunnelEncap, Encap: &TunnelEncap{VNI: 1, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}}}
		}, []Violation{{"actions[0]", "tunnel encap needs a redirect to a tunnel port after it"}}},
		{"encap redirect to non-tunnel", func(f *Flow) {
			f.Actions = []Action{{Kind: ActTunnelEncap, Encap: &TunnelEncap{VNI: 1, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}},
				{Kind: ActRedirect, Port: "p0"}}
		}, []Violation{{"actions[0]", `tunnel encap needs a redirect to a tunnel port after it, "p0" is not one`}}},
		{"encap ok", func(f *Flow) {
			f.Actions = []Action{{Kind: ActTunnelEncap, Encap: &TunnelEncap{VNI: 1, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}},
				{Kind: ActRedirect, Port: "vxlan0"}}
		}, nil},
		{"decap off a tunnel port", func(f *Flow) { f.Actions = []Action{{Kind: ActTunnelDecap}, {Kind: ActRedirect, Port: "pf0vf1"}} },
			[]Violation{{"actions[0]", `tunnel decap runs on a tunnel port, "pf0vf0" is not one`}}},
		{"redirect to unknown port", func(f *Flow) { f.Actions = []Action{{Kind: ActRedirect, Port: "nope"}} },
			[]Violation{{"actions[0].port", `unknown port "nope"`}}},
		{"goto own chain", func(f *Flow) { f.Chain = 2; f.Actions = []Action{{Kind: ActGoto, Chain: 2}} },
			[]Violation{{"actions[0].chain", "goto its own chain 2 loops"}}},
		{"ct nat range reversed", func(f *Flow) {
			f.Match.EthType = EthTypeIPv4
			f.Actions = []Action{{Kind: ActCT, CT: &CT{Zone: 1, Commit: true, NAT: NAT{Kind: NATSrc,
				AddrMin: netip.MustParseAddr("10.0.0.9"), AddrMax: netip.MustParseAddr("10.0.0.1"), PortMin: 100, PortMax: 10}}},
				{Kind: ActGoto, Chain: 1}}
		}, []Violation{{"actions[0].ct.nat.addr_max", "10.0.0.1 is below addr_min 10.0.0.9"}, {"actions[0].ct.nat.port_max", "10 is below port_min 100"}}},
		{"ct mark without commit", func(f *Flow) {
			f.Actions = []Action{{Kind: ActCT, CT: &CT{Mark: Masked32{1, 1}}}, {Kind: ActGoto, Chain: 1}}
		}, []Violation{{"actions[0].ct.mark", "setting a mark needs commit"}}},
		{"rewrite ip needs eth_type", func(f *Flow) {
			f.Actions = []Action{{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteIPDst, IP: netip.MustParseAddr("10.1.1.1")}}, {Kind: ActAccept}}
		}, []Violation{{"actions[0].rewrite.ip", "an IPv4 rewrite needs the match to require eth_type ipv4"}}},
		{"rewrite port needs l4", func(f *Flow) {
			f.Match.EthType = EthTypeIPv4
			f.Actions = []Action{{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteDstPort, Port: 80}}, {Kind: ActAccept}}
		}, []Violation{{"actions[0].rewrite.field", "dst_port needs the match to require ip_proto tcp, udp or sctp"}}},
		{"police without rate", func(f *Flow) {
			f.Actions = []Action{{Kind: ActPolice, Police: &Police{}}, {Kind: ActAccept}}
		}, []Violation{{"actions[0].police.rate", "a byte rate or a packet rate is required"}, {"actions[0].police.burst", "must be greater than 0"}}},
		{"vlan push bad proto", func(f *Flow) {
			f.Actions = []Action{{Kind: ActVLANPush, VLAN: VLANPush{ID: 10, Proto: 0x1234}}, {Kind: ActRedirect, Port: "p0"}}
		}, []Violation{{"actions[0].vlan.proto", "0x1234 is not 802.1Q (0x8100) or 802.1ad (0x88a8)"}}},
		{"unknown action", func(f *Flow) { f.Actions = []Action{{Kind: 99}} }, []Violation{{"actions[0].kind", "unknown action"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			tt.mod(f)
			Normalize(f)
			assert.Equal(t, tt.want, Validate(f, ports))
		})
	}
}

func encapTo(src, dst string) func(f *Flow) {
	return func(f *Flow) {
		f.Actions = []Action{{Kind: ActTunnelEncap, Encap: &TunnelEncap{VNI: 1, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}},
			{Kind: ActRedirect, Port: "vxlan0"}}
	}
}

func TestCheckIDAcceptsExactlyTheDocumentedBytes(t *testing.T) {
	for b := range 256 {
		allowed := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("._:/@+=-", byte(b)) >= 0
		why := CheckID("x" + string([]byte{byte(b)}))
		assert.Equal(t, allowed, why == "", "byte 0x%02x: %s", b, why)
	}
}

func TestValidateWithoutPortsSkipsPortChecks(t *testing.T) {
	f := base()
	f.Port = "unknown"
	f.Match.TunID = Some[uint32](1)
	assert.Empty(t, Validate(f, nil))
}

func TestNormalizeMakesEqualMatchesEqual(t *testing.T) {
	a, b := base(), base()
	a.Match = Match{EthType: EthTypeIPv4, IPSrc: netip.MustParsePrefix("10.0.0.7/24"), TOS: Masked8{0xff, 0xfc}}
	b.Match = Match{EthType: EthTypeIPv4, IPSrc: netip.MustParsePrefix("10.0.0.0/24"), TOS: Masked8{0xfc, 0xfc}}
	require.False(t, a.Equal(b))
	Normalize(a)
	Normalize(b)
	require.True(t, a.Equal(b))
}

func TestCloneIsDeep(t *testing.T) {
	f := base()
	f.Actions = []Action{{Kind: ActCT, CT: &CT{Zone: 3}}, {Kind: ActGoto, Chain: 1}}
	c := f.Clone()
	require.True(t, c.Equal(f))
	c.Actions[0].CT.Zone = 4
	require.Equal(t, uint16(3), f.Actions[0].CT.Zone)
	require.False(t, c.Equal(f))
}

func TestKeys(t *testing.T) {
	m := Match{EthType: EthTypeIPv6, IPDst: netip.MustParsePrefix("2001:db8::/64"), CTState: Masked16{0, CTTracked}, TunID: Some[uint32](0)}
	assert.Equal(t, []Key{KeyEthType, KeyIPv6Dst, KeyTunID, KeyCTState}, m.Keys().Slice())
	assert.Equal(t, "tunnel.vni", KeyTunID.String())
}

// FuzzValidate builds flows from fuzz bytes, gotos, loops and odd chains
// included, and checks that Validate never panics and never passes a
// flow that breaks the limits it promises.
func FuzzValidate(f *testing.F) {
	f.Add([]byte("f1\x00pf0vf0\x00\x00\x00\x00\x07\x0a\x01\x02"), uint32(0), uint8(3))
	f.Add([]byte("a\u202eb\x00p0\x00"), uint32(0x10000000), uint8(40))
	f.Add([]byte("x\x00vxlan0\x00\x09\x09\x09"), uint32(7), uint8(1))
	names := []string{"pf0vf0", "pf0vf1", "p0", "vxlan0", "nope"}
	f.Fuzz(func(t *testing.T, data []byte, chain uint32, nact uint8) {
		id, rest, _ := strings.Cut(string(data), "\x00")
		pi := 0
		if len(rest) > 0 {
			pi = int(rest[0])
		}
		fl := &Flow{ID: id, Port: names[pi%len(names)], Chain: chain, Priority: 1}
		if len(rest) > 1 {
			fl.Match.CTState = Masked16{Value: uint16(rest[1]) & ctAll, Mask: uint16(rest[1]) & ctAll}
		}
		if len(rest) > 2 && rest[2]&1 == 1 {
			fl.Match.VLANID = Some(uint16(rest[2]) << 4)
		}
		for i := range int(nact) {
			b := byte(i)
			if len(rest) > 3 {
				b = rest[3+i%(len(rest)-3)]
			}
			a := Action{Kind: ActionKind(1 + int(b)%12), Port: names[int(b>>4)%len(names)], Ingress: b&0x80 != 0,
				Chain: chain ^ uint32(b)<<20, VLAN: VLANPush{ID: uint16(b) << 4}}
			switch a.Kind {
			case ActTunnelEncap:
				a.Encap = &TunnelEncap{VNI: uint32(b), Src: netip.AddrFrom4([4]byte{192, 0, 2, 1}), Dst: netip.AddrFrom4([4]byte{b, 0, 2, b})}
			case ActCT:
				a.CT = &CT{Commit: true, NAT: NAT{Kind: NATKind(b % 3), AddrMin: netip.AddrFrom4([4]byte{10, 0, 0, b})}}
			case ActRewrite:
				a.Rewrite = &Rewrite{Field: RewriteField(1 + b%7), IP: netip.AddrFrom4([4]byte{10, 0, 0, b}), Port: 80}
			case ActPolice:
				a.Police = &Police{RatePackets: uint64(b), Burst: uint32(b)}
			}
			fl.Actions = append(fl.Actions, a)
		}
		Normalize(fl)
		if len(Validate(fl, ports)) > 0 {
			return
		}
		require.Empty(t, CheckID(fl.ID))
		require.LessOrEqual(t, fl.Chain, uint32(MaxChain))
		require.LessOrEqual(t, len(fl.Actions), MaxActions)
		st := fl.Match.CTState.Value
		require.False(t, st != 0 && st&CTTracked == 0, "ct_state without +trk")
		require.LessOrEqual(t, bits.OnesCount16(st&(CTNew|CTEstablished|CTRelated|CTInvalid)), 1, "ct_state 0x%x", st)
		for _, a := range fl.Actions {
			switch a.Kind {
			case ActGoto:
				require.LessOrEqual(t, a.Chain, uint32(MaxChain))
				require.NotEqual(t, fl.Chain, a.Chain)
			case ActRedirect, ActMirror:
				require.NotEqual(t, fl.Port, a.Port)
			case ActVLANPush:
				require.Less(t, a.VLAN.ID, uint16(VLANReserved))
			case ActTunnelEncap:
				require.NotEqual(t, a.Encap.Src, a.Encap.Dst)
				require.False(t, a.Encap.Dst.IsMulticast())
			}
		}
		// A batch of this flow alone never reports a loop: its only
		// cycle would be a goto to its own chain, refused above.
		require.Empty(t, GotoLoops(nil, []*Flow{fl}))
	})
}
