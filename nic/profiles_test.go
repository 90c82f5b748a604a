package nic_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// testPorts is one eswitch: an uplink, two representors, a VF netdev and a
// VXLAN device.
var testPorts = map[string]nic.PortKind{
	"p0": nic.PortUplink, "pf0vf0": nic.PortRepresentor, "pf0vf1": nic.PortRepresentor,
	"vf0": nic.PortVF, "vxlan0": nic.PortTunnel,
}

func portKinds(name string) nic.PortKind { return testPorts[name] }

// Flow builders. Each returns a new, valid flow; tests change copies.

func exact16(v uint16) flow.Masked16 { return flow.Masked16{Value: v, Mask: 0xffff} }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func redirect(port string) flow.Action { return flow.Action{Kind: flow.ActRedirect, Port: port} }

func drop() flow.Action { return flow.Action{Kind: flow.ActDrop} }

func gotoChain(c uint32) flow.Action { return flow.Action{Kind: flow.ActGoto, Chain: c} }

func ct(zone uint16) flow.Action { return flow.Action{Kind: flow.ActCT, CT: &flow.CT{Zone: zone}} }

func rewrite(rw flow.Rewrite) flow.Action { return flow.Action{Kind: flow.ActRewrite, Rewrite: &rw} }

// acl: IPv4 TCP to 10.0.0.2:22 from a VM, dropped.
func acl() *flow.Flow {
	return &flow.Flow{ID: "acl", Port: "pf0vf0", Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			IPDst: pfx("10.0.0.2/32"), DstPort: exact16(22)},
		Actions: []flow.Action{drop()}}
}

// vxlanDecap: VNI 100 to 192.0.2.1:4789 on the tunnel device, decapped
// and sent to a VM.
func vxlanDecap() *flow.Flow {
	return &flow.Flow{ID: "decap", Port: "vxlan0", Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, TunID: flow.Some[uint32](100),
			TunSrc: pfx("192.0.2.2/32"), TunDst: pfx("192.0.2.1/32"), TunDstPort: flow.Some[uint16](4789)},
		Actions: []flow.Action{{Kind: flow.ActTunnelDecap}, redirect("pf0vf0")}}
}

// vxlanEncap: a VM's IPv4 traffic encapsulated in VNI 100.
func vxlanEncap() *flow.Flow {
	return &flow.Flow{ID: "encap", Port: "pf0vf0", Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4},
		Actions: []flow.Action{
			{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 100, Src: addr("192.0.2.1"), Dst: addr("192.0.2.2")}},
			redirect("vxlan0")}}
}

// ctTrack: chain 0, untracked TCP sent through conntrack zone 5, then to
// chain 1 (an OVS/OVN pre_ct rule).
func ctTrack() *flow.Flow {
	return &flow.Flow{ID: "ct-trk", Port: "pf0vf0", Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			CTState: flow.Masked16{Value: 0, Mask: flow.CTTracked}},
		Actions: []flow.Action{ct(5), gotoChain(1)}}
}

// ctState: chain 1, TCP with the given required and forbidden state bits,
// forwarded to the uplink.
func ctState(value, mask uint16) *flow.Flow {
	return &flow.Flow{ID: "ct-state", Port: "pf0vf0", Chain: 1, Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			CTState: flow.Masked16{Value: value, Mask: mask}, CTZone: flow.Some[uint16](5)},
		Actions: []flow.Action{redirect("p0")}}
}

// ctNewCommit: chain 1, +trk+new committed in zone 5 and forwarded.
func ctNewCommit() *flow.Flow {
	f := ctState(flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew)
	f.Actions = []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5, Commit: true}}, redirect("p0")}
	return f
}

// natTrack: ctTrack with destination NAT to 10.0.0.5.
func natTrack(proto uint8) *flow.Flow {
	f := ctTrack()
	f.Match.IPProto = proto
	f.Actions[0].CT.NAT = flow.NAT{Kind: flow.NATDst, AddrMin: addr("10.0.0.5")}
	return f
}

// rewriteFlow: TCP to 10.0.0.2 rewritten to the given fields and forwarded.
func rewriteFlow(rws ...flow.Rewrite) *flow.Flow {
	f := &flow.Flow{ID: "rewrite", Port: "pf0vf0", Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPDst: pfx("10.0.0.2/32")}}
	for _, rw := range rws {
		f.Actions = append(f.Actions, rewrite(rw))
	}
	f.Actions = append(f.Actions, redirect("p0"))
	return f
}

var (
	rwMAC   = flow.Rewrite{Field: flow.RewriteEthDst, MAC: [6]byte{2, 0, 0, 0, 0, 1}}
	rwIPDst = flow.Rewrite{Field: flow.RewriteIPDst, IP: netip.MustParseAddr("10.0.0.9")}
	rwTTL   = flow.Rewrite{Field: flow.RewriteTTLDec}
	rwPort  = flow.Rewrite{Field: flow.RewriteDstPort, Port: 8080}
)

// police: a VM's traffic metered at 1 MB/s, then forwarded.
func police() *flow.Flow {
	return &flow.Flow{ID: "police", Port: "pf0vf0", Priority: 1,
		Actions: []flow.Action{{Kind: flow.ActPolice, Police: &flow.Police{RateBytes: 1 << 20, Burst: 64 << 10}}, redirect("p0")}}
}

// qinq: outer VLAN 100, inner VLAN 200, IPv4.
func qinq() *flow.Flow {
	return &flow.Flow{ID: "qinq", Port: "p0", Priority: 1,
		Match:   flow.Match{EthType: flow.EthTypeIPv4, VLANID: flow.Some[uint16](100), CVLANID: flow.Some[uint16](200)},
		Actions: []flow.Action{{Kind: flow.ActVLANPop}, redirect("pf0vf0")}}
}

// icmpEcho: IPv4 ICMP echo requests dropped.
func icmpEcho() *flow.Flow {
	return &flow.Flow{ID: "icmp", Port: "pf0vf0", Priority: 1,
		Match:   flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoICMP, ICMPType: flow.Some[uint8](8)},
		Actions: []flow.Action{drop()}}
}

// tcpFlags: TCP matching value under mask, dropped.
func tcpFlags(value, mask uint16) *flow.Flow {
	return &flow.Flow{ID: "tcp-flags", Port: "pf0vf0", Priority: 1,
		Match:   flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, TCPFlags: flow.Masked16{Value: value, Mask: mask}},
		Actions: []flow.Action{drop()}}
}

// ipv6: IPv6 from src to dst ("" = not matched), forwarded.
func ipv6(src, dst string) *flow.Flow {
	f := &flow.Flow{ID: "ipv6", Port: "pf0vf0", Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv6}, Actions: []flow.Action{redirect("p0")}}
	if src != "" {
		f.Match.IPSrc = pfx(src)
	}
	if dst != "" {
		f.Match.IPDst = pfx(dst)
	}
	return f
}

func with(f *flow.Flow, fn func(*flow.Flow)) *flow.Flow { fn(f); return f }

// Raw TCP flag bits.
const (
	fin, syn, rst, psh, ack, urg = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
)

type want struct {
	code  nic.ReasonCode
	field string
}

type checkCase struct {
	name string
	f    *flow.Flow
	want []want // nil: offloadable
}

// runChecks checks that every flow is valid on its own (port placement is
// what Check's port rules judge) and that the profile gives
// exactly the wanted reasons, in order, each with a message naming the
// driver.
func runChecks(t *testing.T, p *nic.Profile, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flow.Normalize(tc.f)
			require.Empty(t, flow.Validate(tc.f, nil), "test flow must be valid")
			got := p.Check(tc.f, portKinds)
			if tc.want == nil {
				require.Nil(t, got)
				return
			}
			var gotWant []want
			for _, r := range got {
				gotWant = append(gotWant, want{r.Code, r.Field})
				assert.NotEmpty(t, r.Message, "reason %s has no message", r)
			}
			assert.Equal(t, tc.want, gotWant, "reasons: %v", got)
			assert.Equal(t, got, p.Check(tc.f.Clone(), portKinds), "Check must be deterministic")
		})
	}
}

// mlx5Common are flows every mlx5 profile judges alike.
func mlx5Common() []checkCase {
	return []checkCase{
		{"ACL", acl(), nil},
		{"VXLAN decap", vxlanDecap(), nil},
		{"VXLAN encap", vxlanEncap(), nil},
		{"ct -trk then goto", ctTrack(), nil},
		{"ct +trk+est", ctState(flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished), nil},
		{"ct +trk+est+rpl", ctState(flow.CTTracked|flow.CTEstablished|flow.CTReply, flow.CTTracked|flow.CTEstablished|flow.CTReply), nil},
		{"ct +trk-new-inv: minus bits are fine", ctState(flow.CTTracked, flow.CTTracked|flow.CTNew|flow.CTInvalid), nil},
		{"ct +trk+new commit", ctNewCommit(), []want{{nic.ReasonCTState, "match.ct_state"}}},
		{"ct +trk+inv", with(ctState(flow.CTTracked|flow.CTInvalid, flow.CTTracked|flow.CTInvalid), func(f *flow.Flow) { f.Actions = []flow.Action{drop()} }),
			[]want{{nic.ReasonCTState, "match.ct_state"}}},
		{"ct +trk+rel", ctState(flow.CTTracked|flow.CTRelated, flow.CTTracked|flow.CTRelated),
			[]want{{nic.ReasonCTState, "match.ct_state"}}},
		{"ct NAT tcp", natTrack(flow.ProtoTCP), nil},
		{"ct NAT udp", natTrack(flow.ProtoUDP), nil},
		{"ct NAT icmp", natTrack(flow.ProtoICMP), []want{{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"ct NAT any protocol", with(natTrack(flow.ProtoTCP), func(f *flow.Flow) { f.Match.IPProto = 0 }),
			[]want{{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"rewrite MAC, IP, TTL, port", rewriteFlow(rwMAC, rwIPDst, rwTTL, rwPort), nil},
		{"IP rewrite with icmp", with(rewriteFlow(rwIPDst), func(f *flow.Flow) { f.Match.IPProto = flow.ProtoICMP }), nil},
		{"IP rewrite without ip_proto", with(rewriteFlow(rwMAC, rwIPDst), func(f *flow.Flow) { f.Match.IPProto = 0 }),
			[]want{{nic.ReasonUnsupportedCombination, "actions[1]"}}},
		{"MAC and TTL rewrite without ip_proto", with(rewriteFlow(rwMAC, rwTTL), func(f *flow.Flow) { f.Match.IPProto = 0 }), nil},
		{"port rewrite of sctp", with(rewriteFlow(rwPort), func(f *flow.Flow) { f.Match.IPProto = flow.ProtoSCTP }),
			[]want{{nic.ReasonUnsupportedValue, "actions[0]"}}},
		{"8 rewrites", rewriteFlow(rwMAC, rwMAC, rwMAC, rwMAC, rwIPDst, rwIPDst, rwTTL, rwPort), nil},
		{"9 rewrites", rewriteFlow(rwMAC, rwMAC, rwMAC, rwMAC, rwIPDst, rwIPDst, rwTTL, rwPort, rwMAC),
			[]want{{nic.ReasonUnsupportedCombination, "actions[8]"}}},
		{"rewrite then ct", with(ctTrack(), func(f *flow.Flow) {
			f.Actions = append([]flow.Action{rewrite(rwMAC)}, f.Actions...)
		}), []want{{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"rewrite with ct clear", with(rewriteFlow(rwMAC), func(f *flow.Flow) {
			f.Actions = append([]flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Clear: true}}}, f.Actions...)
		}), nil},
		{"mirror and ct", with(ctTrack(), func(f *flow.Flow) {
			f.Actions = append([]flow.Action{{Kind: flow.ActMirror, Port: "pf0vf1"}}, f.Actions...)
		}), []want{{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"mirror without ct", with(acl(), func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActMirror, Port: "pf0vf1"}, redirect("p0")}
		}), nil},
		{"police", police(), nil},
		{"VLAN push", with(acl(), func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 10}}, redirect("p0")}
		}), nil},
		{"ICMP", icmpEcho(), nil},
		{"TCP flags", tcpFlags(syn, syn|ack), nil},
		{"sctp ports", with(acl(), func(f *flow.Flow) { f.Match.IPProto = flow.ProtoSCTP }),
			[]want{{nic.ReasonUnsupportedValue, "match.dst_port"}}},
		{"sctp src and dst ports", with(acl(), func(f *flow.Flow) {
			f.Match.IPProto, f.Match.SrcPort = flow.ProtoSCTP, exact16(1000)
		}), []want{{nic.ReasonUnsupportedValue, "match.src_port"}, {nic.ReasonUnsupportedValue, "match.dst_port"}}},
		{"is_frag", with(acl(), func(f *flow.Flow) {
			f.Match.IPProto, f.Match.DstPort = 0, flow.Masked16{}
			f.Match.Frag = flow.Masked32{Value: flow.FragIsFragment, Mask: flow.FragIsFragment}
		}), nil},
		{"firstfrag", with(acl(), func(f *flow.Flow) {
			f.Match.IPProto, f.Match.DstPort = 0, flow.Masked16{}
			f.Match.Frag = flow.Masked32{Value: flow.FragIsFragment | flow.FragFirst, Mask: flow.FragIsFragment | flow.FragFirst}
		}), []want{{nic.ReasonUnsupportedValue, "match.ip_flags"}}},
		{"tunnel decap without dst port", with(vxlanDecap(), func(f *flow.Flow) { f.Match.TunDstPort = flow.Opt[uint16]{} }),
			[]want{{nic.ReasonTunnel, "match.tunnel.dst_port"}}},
		{"tunnel keys on a representor", with(vxlanDecap(), func(f *flow.Flow) {
			f.Port, f.Actions = "pf0vf1", []flow.Action{redirect("pf0vf0")}
		}), []want{{nic.ReasonTunnel, "match.tunnel"}}},
		{"rule on a VF netdev", with(acl(), func(f *flow.Flow) { f.Port = "vf0" }), []want{{nic.ReasonPort, "port"}}},
		{"redirect to a VF netdev", with(acl(), func(f *flow.Flow) { f.Actions = []flow.Action{redirect("vf0")} }),
			[]want{{nic.ReasonPort, "actions[0]"}}},
	}
}

func TestMLX5ConnectX6Dx(t *testing.T) {
	cases := append(mlx5Common(),
		checkCase{"QinQ", qinq(), nil},
		checkCase{"goto chain 7", with(ctTrack(), func(f *flow.Flow) { f.Actions[1].Chain = 7 }), nil},
		checkCase{"chain 9 prio 100", with(ctState(flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished), func(f *flow.Flow) {
			f.Chain, f.Priority = 9, 100
		}), nil},
	)
	runChecks(t, nic.MLX5ConnectX6Dx(), cases)
}

func TestMLX5BlueField2(t *testing.T) {
	cases := append(mlx5Common(), checkCase{"QinQ", qinq(), nil},
		checkCase{"goto chain 7", with(ctTrack(), func(f *flow.Flow) { f.Actions[1].Chain = 7 }), nil})
	runChecks(t, nic.MLX5BlueField2(), cases)
}

func TestMLX5ConnectX5(t *testing.T) {
	cases := append(mlx5Common(),
		checkCase{"QinQ", qinq(), []want{{nic.ReasonUnsupportedKey, "match.cvlan_id"}}},
		checkCase{"goto chain 3", with(ctTrack(), func(f *flow.Flow) { f.Actions[1].Chain = 3 }), nil},
		checkCase{"goto chain 4", with(ctTrack(), func(f *flow.Flow) { f.Actions[1].Chain = 4 }),
			[]want{{nic.ReasonChainLimit, "actions[1]"}}},
		checkCase{"rule in chain 4 at prio 17", with(ctState(flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished), func(f *flow.Flow) {
			f.Chain, f.Priority = 4, 17
		}), []want{{nic.ReasonChainLimit, "chain"}, {nic.ReasonPriorityLimit, "priority"}}},
		checkCase{"prio 16", with(acl(), func(f *flow.Flow) { f.Priority = 16 }), nil},
	)
	runChecks(t, nic.MLX5ConnectX5(), cases)
}

func TestNFPAgilioCX(t *testing.T) {
	est := flow.CTTracked | flow.CTEstablished
	runChecks(t, nic.NFPAgilioCX(), []checkCase{
		{"ACL", acl(), nil},
		{"sctp ports", with(acl(), func(f *flow.Flow) { f.Match.IPProto = flow.ProtoSCTP }), nil},
		{"VXLAN decap", vxlanDecap(), nil},
		{"Geneve decap", with(vxlanDecap(), func(f *flow.Flow) { f.Match.TunDstPort.V = 6081 }), nil},
		{"tunnel dst port 8472", with(vxlanDecap(), func(f *flow.Flow) { f.Match.TunDstPort.V = 8472 }),
			[]want{{nic.ReasonTunnel, "match.tunnel.dst_port"}}},
		{"tunnel dst prefix and no dst port", with(vxlanDecap(), func(f *flow.Flow) {
			f.Match.TunDst, f.Match.TunDstPort = pfx("192.0.2.0/24"), flow.Opt[uint16]{}
		}), []want{{nic.ReasonTunnel, "match.tunnel.dst"}, {nic.ReasonTunnel, "match.tunnel.dst_port"}}},
		{"tunnel VNI only", with(vxlanDecap(), func(f *flow.Flow) {
			f.Match.TunSrc, f.Match.TunDst, f.Match.TunDstPort = netip.Prefix{}, netip.Prefix{}, flow.Opt[uint16]{}
		}), []want{{nic.ReasonTunnel, "match.tunnel.dst"}, {nic.ReasonTunnel, "match.tunnel.dst_port"}}},
		{"VXLAN encap", vxlanEncap(), nil},
		{"QinQ", qinq(), nil},
		{"ICMP", icmpEcho(), []want{{nic.ReasonUnsupportedKey, "match.icmp_type"}}},
		{"ARP", &flow.Flow{ID: "arp", Port: "pf0vf0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeARP},
			Actions: []flow.Action{redirect("p0")}}, []want{{nic.ReasonUnsupportedValue, "match.eth_type"}}},
		{"LLDP ethertype", &flow.Flow{ID: "lldp", Port: "p0", Priority: 1, Match: flow.Match{EthType: 0x88cc},
			Actions: []flow.Action{drop()}}, []want{{nic.ReasonUnsupportedValue, "match.eth_type"}}},
		{"TCP flags +syn", tcpFlags(syn, syn|rst|fin), nil},
		{"TCP flags +syn+psh", tcpFlags(syn|psh, syn|psh), nil},
		{"TCP flags +psh alone", tcpFlags(psh, psh|syn|fin|rst), []want{{nic.ReasonUnsupportedValue, "match.tcp_flags"}}},
		{"TCP flags +syn-ack", tcpFlags(syn, syn|ack), []want{{nic.ReasonUnsupportedValue, "match.tcp_flags"}}},
		{"TCP flags +urg-ack", tcpFlags(urg, urg|ack), []want{
			{nic.ReasonUnsupportedValue, "match.tcp_flags"}, {nic.ReasonUnsupportedValue, "match.tcp_flags"}}},
		{"IP fragments", with(acl(), func(f *flow.Flow) {
			f.Match.Frag = flow.Masked32{Value: flow.FragIsFragment, Mask: flow.FragIsFragment}
		}), []want{{nic.ReasonUnsupportedKey, "match.ip_flags"}}},
		{"pre_ct: ct -trk then goto", ctTrack(), nil},
		{"pre_ct with NAT", natTrack(flow.ProtoTCP), nil},
		{"pre_ct with NAT of icmp", natTrack(flow.ProtoICMP), nil},
		{"post_ct +trk+est", ctState(est, est), nil},
		{"post_ct +trk+est+rpl", ctState(est|flow.CTReply, est|flow.CTReply), nil},
		{"chain 1 without ct match", with(acl(), func(f *flow.Flow) { f.Chain = 1 }), nil},
		{"ct +trk+new commit", ctNewCommit(), []want{
			{nic.ReasonCTState, "match.ct_state"},
			{nic.ReasonUnsupportedValue, "actions[0]"},
			{nic.ReasonUnsupportedCombination, "actions[0]"},
			{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"ct +trk+inv", with(ctState(flow.CTTracked|flow.CTInvalid, flow.CTTracked|flow.CTInvalid), func(f *flow.Flow) {
			f.Actions = []flow.Action{drop()}
		}), []want{{nic.ReasonCTState, "match.ct_state"}}},
		{"ct -trk in chain 1", with(ctState(0, flow.CTTracked), func(f *flow.Flow) { f.Actions = []flow.Action{drop()} }),
			[]want{{nic.ReasonCTState, "match.ct_state"}}},
		{"ct without goto", with(ctTrack(), func(f *flow.Flow) { f.Actions = []flow.Action{ct(5), redirect("p0")} }),
			[]want{{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"goto without ct", with(acl(), func(f *flow.Flow) { f.Actions = []flow.Action{gotoChain(2)} }),
			[]want{{nic.ReasonUnsupportedCombination, "actions[0]"}}},
		{"goto chain 200 after ct", with(ctTrack(), func(f *flow.Flow) { f.Actions[1].Chain = 200 }), nil},
		{"rewrite set", rewriteFlow(rwMAC, rwIPDst, rwPort), nil},
		{"rewrite ttl_dec", rewriteFlow(rwMAC, rwTTL), []want{{nic.ReasonUnsupportedValue, "actions[1]"}}},
		{"rewrite then ct", with(ctTrack(), func(f *flow.Flow) {
			f.Actions = append([]flow.Action{rewrite(rwMAC)}, f.Actions...)
		}), nil},
		{"mirror and ct", with(ctTrack(), func(f *flow.Flow) {
			f.Actions = append([]flow.Action{{Kind: flow.ActMirror, Port: "pf0vf1"}}, f.Actions...)
		}), nil},
		{"police", police(), nil},
		{"accept", with(acl(), func(f *flow.Flow) { f.Actions = []flow.Action{{Kind: flow.ActAccept}} }),
			[]want{{nic.ReasonUnsupportedAction, "actions[0]"}}},
		{"IPv6 any/any", ipv6("::/0", ""), nil},
	})
}

func TestICEE810(t *testing.T) {
	runChecks(t, nic.ICEE810(), []checkCase{
		{"ACL", acl(), nil},
		{"ACL redirect", with(acl(), func(f *flow.Flow) { f.Actions = []flow.Action{redirect("p0")} }), nil},
		{"QinQ redirect", with(qinq(), func(f *flow.Flow) { f.Actions = []flow.Action{redirect("pf0vf0")} }), nil},
		{"QinQ with VLAN pop", qinq(), []want{
			{nic.ReasonUnsupportedAction, "actions[0]"}, {nic.ReasonUnsupportedCombination, "actions"}}},
		{"mirror", with(acl(), func(f *flow.Flow) { f.Actions = []flow.Action{{Kind: flow.ActMirror, Port: "pf0vf1"}} }), nil},
		{"mirror then redirect", with(acl(), func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActMirror, Port: "pf0vf1"}, redirect("p0")}
		}), []want{{nic.ReasonUnsupportedCombination, "actions"}}},
		{"VXLAN match and redirect", with(vxlanDecap(), func(f *flow.Flow) {
			f.Match.TunSrc, f.Actions = netip.Prefix{}, []flow.Action{redirect("pf0vf0")}
		}), nil},
		{"VXLAN decap with outer source", vxlanDecap(), []want{
			{nic.ReasonUnsupportedKey, "match.tunnel.src"},
			{nic.ReasonUnsupportedAction, "actions[0]"},
			{nic.ReasonUnsupportedCombination, "actions"}}},
		{"tunnel keys on an uplink", with(vxlanDecap(), func(f *flow.Flow) {
			f.Port, f.Match.TunSrc, f.Actions = "p0", netip.Prefix{}, []flow.Action{redirect("pf0vf0")}
		}), []want{{nic.ReasonTunnel, "match.tunnel"}}},
		{"VXLAN encap", vxlanEncap(), []want{
			{nic.ReasonUnsupportedAction, "actions[0]"}, {nic.ReasonUnsupportedCombination, "actions"}}},
		{"sctp ports", with(acl(), func(f *flow.Flow) { f.Match.IPProto = flow.ProtoSCTP }),
			[]want{{nic.ReasonUnsupportedValue, "match.dst_port"}}},
		{"TCP flags", tcpFlags(syn, syn|ack), []want{{nic.ReasonUnsupportedKey, "match.tcp_flags"}}},
		{"ICMP", icmpEcho(), []want{{nic.ReasonUnsupportedKey, "match.icmp_type"}}},
		{"ct +trk+est", ctState(flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished), []want{
			{nic.ReasonUnsupportedKey, "match.ct_state"}, {nic.ReasonUnsupportedKey, "match.ct_zone"},
			{nic.ReasonChainLimit, "chain"}}},
		{"ct then goto", ctTrack(), []want{
			{nic.ReasonUnsupportedKey, "match.ct_state"},
			{nic.ReasonUnsupportedAction, "actions[0]"}, {nic.ReasonUnsupportedAction, "actions[1]"},
			{nic.ReasonUnsupportedCombination, "actions"}}},
		{"rewrite", rewriteFlow(rwMAC), []want{
			{nic.ReasonUnsupportedAction, "actions[0]"}, {nic.ReasonUnsupportedCombination, "actions"}}},
		{"police", police(), []want{
			{nic.ReasonUnsupportedAction, "actions[0]"}, {nic.ReasonUnsupportedCombination, "actions"}}},
		{"IPv6 to an address", ipv6("", "2001:db8::1/128"), nil},
		{"IPv6 any source to a prefix", ipv6("::/0", "2001:db8::/64"), nil},
		{"IPv6 any/any", ipv6("::/0", "::/0"), []want{{nic.ReasonUnsupportedValue, "match.ipv6_dst"}}},
		{"IPv6 any source only", ipv6("::/0", ""), []want{{nic.ReasonUnsupportedValue, "match.ipv6_src"}}},
		{"IPv6 without addresses", ipv6("", ""), nil},
		{"IPv6 to ::1", ipv6("2001:db8::/64", "::1/128"), []want{{nic.ReasonUnsupportedValue, "match.ipv6_dst"}}},
		{"IPv6 from ::1 to any", ipv6("::1/128", "::/0"), []want{{nic.ReasonUnsupportedValue, "match.ipv6_src"}}},
		{"rule in chain 1", with(acl(), func(f *flow.Flow) { f.Chain = 1 }), []want{{nic.ReasonChainLimit, "chain"}}},
	})
}

func TestGeneric(t *testing.T) {
	runChecks(t, nic.Generic(), []checkCase{
		{"ACL", acl(), nil},
		{"accept", with(acl(), func(f *flow.Flow) { f.Actions = []flow.Action{{Kind: flow.ActAccept}} }), nil},
		{"mirror then redirect", with(acl(), func(f *flow.Flow) {
			f.Actions = []flow.Action{{Kind: flow.ActMirror, Port: "pf0vf1"}, redirect("p0")}
		}), nil},
		{"IPv6 any/any", ipv6("::/0", "::/0"), nil},
		{"TCP flags", tcpFlags(syn, syn), []want{{nic.ReasonUnsupportedKey, "match.tcp_flags"}}},
		{"QinQ with VLAN pop", qinq(), []want{
			{nic.ReasonUnsupportedKey, "match.cvlan_id"}, {nic.ReasonUnsupportedAction, "actions[0]"}}},
		{"VXLAN decap", vxlanDecap(), []want{
			{nic.ReasonUnsupportedKey, "match.tunnel.vni"}, {nic.ReasonUnsupportedKey, "match.tunnel.src"},
			{nic.ReasonUnsupportedKey, "match.tunnel.dst"}, {nic.ReasonUnsupportedKey, "match.tunnel.dst_port"},
			{nic.ReasonUnsupportedAction, "actions[0]"}}},
		{"ct then goto", ctTrack(), []want{
			{nic.ReasonUnsupportedKey, "match.ct_state"},
			{nic.ReasonUnsupportedAction, "actions[0]"}, {nic.ReasonUnsupportedAction, "actions[1]"}}},
		{"rule in chain 2", with(acl(), func(f *flow.Flow) { f.Chain = 2 }), []want{{nic.ReasonChainLimit, "chain"}}},
	})
}

// TestCheckMessages pins the operator-facing wording of a few reasons.
func TestCheckMessages(t *testing.T) {
	tests := []struct {
		name string
		p    *nic.Profile
		f    *flow.Flow
		want []string
	}{
		{"mlx5 +new", nic.MLX5ConnectX6Dx(), ctNewCommit(),
			[]string{"mlx5 offloads ct_state +trk, +est and +rpl only; +new is set up in software"}},
		{"mlx5 +inv", nic.MLX5ConnectX6Dx(), ctState(flow.CTTracked|flow.CTInvalid, flow.CTTracked|flow.CTInvalid),
			[]string{"mlx5 offloads ct_state +trk, +est and +rpl only; +inv is not offloaded"}},
		{"mlx5 +rel+rpl", nic.MLX5ConnectX6Dx(), ctState(flow.CTTracked|flow.CTRelated|flow.CTReply, flow.CTTracked|flow.CTRelated|flow.CTReply),
			[]string{"mlx5 offloads ct_state +trk, +est and +rpl only; +rel is not offloaded"}},
		{"cx5 QinQ", nic.MLX5ConnectX5(), qinq(),
			[]string{"mlx5_core on ConnectX-5 does not offload matching on cvlan_id"}},
		{"cx5 goto", nic.MLX5ConnectX5(), with(ctTrack(), func(f *flow.Flow) { f.Actions[1].Chain = 4 }),
			[]string{"mlx5_core on ConnectX-5 offloads goto to chains 0-3 only, not chain 4"}},
		{"generic chain", nic.Generic(), with(acl(), func(f *flow.Flow) { f.Chain = 2 }),
			[]string{"the generic profile does not offload goto, so a rule in chain 2 is never reached in hardware"}},
		{"mlx5 sctp", nic.MLX5ConnectX6Dx(), with(acl(), func(f *flow.Flow) { f.Match.IPProto = flow.ProtoSCTP }),
			[]string{"mlx5 matches L4 ports of TCP and UDP only, not of sctp"}},
		{"nfp ack", nic.NFPAgilioCX(), tcpFlags(syn, syn|ack|0x80),
			[]string{"nfp matches TCP flags fin, syn, rst, psh and urg only, not ack and cwr"}},
		{"nfp post_ct", nic.NFPAgilioCX(), ctState(flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew),
			[]string{"nfp offloads ct_state matches in post_ct rules, which require +trk+est; +trk+new stays in software"}},
		{"VF ingress", nic.Generic(), with(acl(), func(f *flow.Flow) { f.Port = "vf0" }),
			[]string{"vf0 is a VF netdev, not an eswitch port; install the rule on its representor"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flow.Normalize(tc.f)
			var got []string
			for _, r := range tc.p.Check(tc.f, portKinds) {
				got = append(got, r.Message)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestCheckUnknownPorts: without port kinds, port and tunnel-device checks
// are skipped rather than guessed.
func TestCheckUnknownPorts(t *testing.T) {
	f := with(vxlanDecap(), func(f *flow.Flow) { f.Port = "vf0"; f.Actions = []flow.Action{redirect("vf0")} })
	flow.Normalize(f)
	for _, p := range nic.Builtin() {
		for _, r := range p.Check(f, nil) {
			assert.NotEqual(t, nic.ReasonPort, r.Code, "%s: %s", p.Name, r)
			assert.NotEqual(t, "match.tunnel", r.Field, "%s: %s", p.Name, r)
		}
	}
	assert.Nil(t, nic.MLX5ConnectX6Dx().Check(with(acl(), func(f *flow.Flow) { f.Port = "somewhere" }), nil))
}

// TestProfilesAreData checks the built-in profiles' shape: named, driver
// and PCI data set, rules named, notes present, fresh values every call.
func TestProfilesAreData(t *testing.T) {
	for _, p := range nic.Builtin() {
		t.Run(p.Name, func(t *testing.T) {
			require.NotEmpty(t, p.Name)
			assert.NotEmpty(t, p.Model)
			assert.NotEmpty(t, p.Notes)
			assert.NotZero(t, p.MatchKeys)
			assert.NotZero(t, p.Actions)
			if p.Name != nic.ProfileGeneric {
				assert.NotEmpty(t, p.Driver)
				assert.NotEmpty(t, p.Vendor)
				assert.Len(t, p.PCIVendor, 4)
				assert.NotEmpty(t, p.PCIDevices)
				assert.Positive(t, p.HWTableSize)
			}
			names := map[string]bool{}
			for _, r := range p.Rules {
				require.NotNil(t, r.Check, "rule %q", r.Name)
				assert.NotEmpty(t, r.Name)
				assert.False(t, names[r.Name], "rule %q twice", r.Name)
				names[r.Name] = true
			}
			for _, n := range p.Notes {
				assert.True(t, strings.HasSuffix(n, "."), "note %q should be a sentence", n)
			}
		})
	}

	a := nic.MLX5ConnectX6Dx()
	a.Notes[0], a.PCIDevices[0], a.HWTableSize = "changed", "ffff", 1
	a.MatchKeys = 0
	b := nic.MLX5ConnectX6Dx()
	assert.NotEqual(t, "changed", b.Notes[0])
	assert.Equal(t, []string{"101d"}, b.PCIDevices)
	assert.Equal(t, 4<<20, b.HWTableSize)
	assert.NotZero(t, b.MatchKeys)
}

func TestProfileFacts(t *testing.T) {
	tests := []struct {
		p                   *nic.Profile
		name, vendor        string
		devices             []string
		maxChain            uint32
		maxPrio             uint16
		insertRate, hwTable int
	}{
		{nic.MLX5ConnectX5(), "mlx5-cx5", "15b3", []string{"1017", "1019"}, 3, 16, 5000, 4 << 20},
		{nic.MLX5ConnectX6Dx(), "mlx5-cx6dx", "15b3", []string{"101d"}, 0, 0, 33000, 4 << 20},
		{nic.MLX5BlueField2(), "mlx5-bf2", "15b3", []string{"a2d6"}, 0, 0, 33000, 4 << 20},
		{nic.NFPAgilioCX(), "nfp-agilio-cx", "19ee", []string{"4000"}, 0, 0, 0, 1 << 17},
		{nic.ICEE810(), "ice-e810", "8086", []string{"159b", "1593", "1592"}, 0, 0, 0, 1 << 15},
		{nic.Generic(), "generic", "", nil, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.name, tc.p.Name)
			assert.Equal(t, tc.vendor, tc.p.PCIVendor)
			assert.Equal(t, tc.devices, tc.p.PCIDevices)
			assert.Equal(t, tc.maxChain, tc.p.MaxChain)
			assert.Equal(t, tc.maxPrio, tc.p.MaxPriority)
			assert.Equal(t, tc.insertRate, tc.p.InsertRate)
			assert.Equal(t, tc.hwTable, tc.p.HWTableSize)
		})
	}
}
