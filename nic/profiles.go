package nic

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/offloadd/offloadd/offload/flow"
)

// Names of the built-in profiles.
const (
	ProfileMLX5ConnectX5   = "mlx5-cx5"
	ProfileMLX5ConnectX6Dx = "mlx5-cx6dx"
	ProfileMLX5BlueField2  = "mlx5-bf2"
	ProfileNFPAgilioCX     = "nfp-agilio-cx"
	ProfileICEE810         = "ice-e810"
	ProfileGeneric         = "generic"
)

// Kernel drivers the built-in profiles are for.
const (
	DriverMLX5 = "mlx5_core"
	DriverNFP  = "nfp"
	DriverICE  = "ice"
)

// Builtin returns fresh copies of the built-in profiles. For each driver the
// first one listed is its default (see Registry.ForDevice).
func Builtin() []*Profile {
	return []*Profile{
		MLX5ConnectX6Dx(), MLX5BlueField2(), MLX5ConnectX5(),
		NFPAgilioCX(), ICEE810(), Generic(),
	}
}

// mlx5MaxRewrites caps header rewrites per flow on mlx5. The firmware's
// modify-header limit (max_modify_header_actions) differs by model and
// firmware; 8 whole-field rewrites is a conservative value for all of them.
const mlx5MaxRewrites = 8

// MLX5ConnectX6Dx is NVIDIA ConnectX-6 Dx with software steering.
func MLX5ConnectX6Dx() *Profile {
	p := mlx5(ProfileMLX5ConnectX6Dx, "ConnectX-6 Dx", "101d")
	// second VLAN (QinQ): ~ firmware capability, which ConnectX-6 Dx has.
	p.MatchKeys |= flow.Keys(flow.KeyCVLANID, flow.KeyCVLANPrio)
	// goto chain: firmware ignore_flow_level, so no chain or priority limit.
	// Insertion: ~33k rules/s with software steering.
	p.InsertRate = 33000
	p.Notes = append(p.Notes,
		"QinQ: the second VLAN tag (cvlan) is matched in hardware.",
		"The firmware supports ignore_flow_level: any chain and priority is offloaded.",
		"Software steering inserts about 33,000 rules/s.")
	return p
}

// MLX5BlueField2 is the NVIDIA BlueField-2 DPU, whose eswitch is a
// ConnectX-6 Dx: the same offloads.
func MLX5BlueField2() *Profile {
	p := MLX5ConnectX6Dx()
	p.Name, p.Model, p.PCIDevices = ProfileMLX5BlueField2, "BlueField-2", []string{"a2d6"}
	p.Notes = append(p.Notes, "BlueField-2's eswitch is a ConnectX-6 Dx and offloads the same.")
	return p
}

// MLX5ConnectX5 is NVIDIA ConnectX-5 with firmware steering and without
// ignore_flow_level.
func MLX5ConnectX5() *Profile {
	// 1017: ConnectX-5, 1019: ConnectX-5 Ex.
	p := mlx5(ProfileMLX5ConnectX5, "ConnectX-5", "1017", "1019")
	// second VLAN (QinQ): ~ firmware capability, which ConnectX-5 lacks.
	// goto chain without firmware ignore_flow_level: chains 0-3, prio <= 16
	// (FDB_TC_MAX_CHAIN, FDB_TC_MAX_PRIO).
	p.MaxChain, p.MaxPriority = 3, 16
	// Insertion: ~5k rules/s with firmware steering.
	p.InsertRate = 5000
	p.Notes = append(p.Notes,
		"QinQ: the firmware cannot match a second VLAN tag (cvlan).",
		"Without firmware ignore_flow_level only chains 0-3 and priorities 1-16 are offloaded.",
		"Firmware steering inserts about 5,000 rules/s.")
	return p
}

// mlx5 is the mlx5 column of CAPABILITIES.md; the model constructors add
// what depends on the firmware.
func mlx5(name, model string, pciDevices ...string) *Profile {
	return &Profile{
		Name: name, Driver: DriverMLX5, Vendor: "NVIDIA (Mellanox)", Model: model,
		PCIVendor: "15b3", PCIDevices: pciDevices,
		MatchKeys: flow.Keys(
			// eth src/dst, ethertype, VLAN id/prio: Y
			flow.KeyEthSrc, flow.KeyEthDst, flow.KeyEthType, flow.KeyVLANID, flow.KeyVLANPrio,
			// IPv4/IPv6 src/dst, tos, ttl: Y (ttl needs a capability ConnectX-5 and later have)
			flow.KeyIPv4Src, flow.KeyIPv4Dst, flow.KeyIPv6Src, flow.KeyIPv6Dst, flow.KeyIPProto,
			flow.KeyTOS, flow.KeyTTL,
			// L4 ports: TCP/UDP only (rule)
			flow.KeySrcPort, flow.KeyDstPort,
			// TCP flags / ICMP: Y / Y
			flow.KeyTCPFlags, flow.KeyICMPType, flow.KeyICMPCode,
			// IP fragments: is_frag only (rule)
			flow.KeyFrag,
			// tunnel keys: VXLAN, Geneve, GRE; outer dst port exact only (rule)
			flow.KeyTunID, flow.KeyTunSrc, flow.KeyTunDst, flow.KeyTunDstPort,
			// ct_state / zone / mark: ~ +trk +est +rpl only (rule)
			flow.KeyCTState, flow.KeyCTZone, flow.KeyCTMark,
		),
		Actions: flow.Actions(
			// drop, accept, redirect to port: Y
			flow.ActDrop, flow.ActAccept, flow.ActRedirect,
			// mirror: ~ not together with ct (rule)
			flow.ActMirror,
			// VLAN push / pop: Y
			flow.ActVLANPush, flow.ActVLANPop,
			// tunnel encap / decap: Y
			flow.ActTunnelEncap, flow.ActTunnelDecap,
			// header rewrite: ~ (rules)
			flow.ActRewrite,
			// ct action, ct NAT: Y (NAT for TCP/UDP tuples only, rule)
			flow.ActCT,
			// police: Y
			flow.ActPolice,
			// goto chain: Y (chain limits depend on firmware)
			flow.ActGoto,
		),
		// The FDB's largest flow-table pool (ESW_POOLS) holds 4M entries;
		// emulator configs usually set far less.
		HWTableSize: 4 << 20,
		Rules: []Rule{
			l4PortsOnly("mlx5", flow.ProtoTCP, flow.ProtoUDP),
			mlx5FragIsFragOnly(),
			tunnelOnTunnelPort("mlx5"),
			mlx5TunnelDstPortExact(),
			mlx5CTState(),
			mlx5MirrorWithoutCT(),
			mlx5RewriteCount(mlx5MaxRewrites),
			mlx5RewriteNeedsL4(),
			mlx5RewriteWithoutCT(),
			mlx5CTNATTCPUDP(),
		},
		Notes: []string{
			"Conntrack: only ct_state +trk, +est and +rpl can be required; +new, +rel and +inv stay in software, " +
				"so new connections are set up in software and established ones run in hardware.",
			"L4 ports are matched for TCP and UDP only; IP fragments by frag/nofrag only, not firstfrag.",
			"Tunnel rules sit on the tunnel device and match the outer UDP dst port exactly.",
			"mirror is not offloaded in a flow with a ct action.",
			fmt.Sprintf("Header rewrites: at most %d per flow in this profile (the firmware's modify-header limit "+
				"varies); IP address rewrites need ip_proto tcp, udp or icmp in the match; "+
				"no rewrite in a flow with a ct action.", mlx5MaxRewrites),
			"ct NAT is offloaded for TCP and UDP connections only.",
		},
	}
}

// NFPAgilioCX is the Corigine (Netronome) Agilio CX with the flower firmware.
func NFPAgilioCX() *Profile {
	return &Profile{
		Name: ProfileNFPAgilioCX, Driver: DriverNFP, Vendor: "Corigine (Netronome)", Model: "Agilio CX",
		PCIVendor: "19ee", PCIDevices: []string{"4000"},
		MatchKeys: flow.Keys(
			// eth src/dst, ethertype, VLAN id/prio: Y (ethertype IP or MPLS, rule)
			flow.KeyEthSrc, flow.KeyEthDst, flow.KeyEthType, flow.KeyVLANID, flow.KeyVLANPrio,
			// second VLAN (QinQ): ~ firmware feature, taken as present
			flow.KeyCVLANID, flow.KeyCVLANPrio,
			// IPv4/IPv6 src/dst, tos, ttl: Y
			flow.KeyIPv4Src, flow.KeyIPv4Dst, flow.KeyIPv6Src, flow.KeyIPv6Dst, flow.KeyIPProto,
			flow.KeyTOS, flow.KeyTTL,
			// L4 ports: Y (TCP, UDP, SCTP)
			flow.KeySrcPort, flow.KeyDstPort,
			// TCP flags: ~ FIN SYN RST PSH URG (rule); ICMP: N; IP fragments: —
			flow.KeyTCPFlags,
			// tunnel keys: VXLAN, Geneve, GRE; outer dst IP and dst port exact (rule)
			flow.KeyTunID, flow.KeyTunSrc, flow.KeyTunDst, flow.KeyTunDstPort,
			// ct_state / zone / mark: ~ via pre_ct/post_ct merge; zone exact or wildcard (rules)
			flow.KeyCTState, flow.KeyCTZone, flow.KeyCTMark,
		),
		Actions: flow.Actions(
			// drop, redirect to port: Y
			flow.ActDrop, flow.ActRedirect,
			// mirror: Y
			flow.ActMirror,
			// VLAN push / pop: Y
			flow.ActVLANPush, flow.ActVLANPop,
			// tunnel encap (needs a neighbour entry) / decap: Y
			flow.ActTunnelEncap, flow.ActTunnelDecap,
			// header rewrite: ~ set only (rule)
			flow.ActRewrite,
			// ct action, ct NAT: Y in pre_ct rules (rule)
			flow.ActCT,
			// police: ~ firmware feature, taken as present
			flow.ActPolice,
			// goto chain: only for ct pre_ct rules (rule)
			flow.ActGoto,
		),
		// The driver's host context count when the firmware does not state
		// one (CONFIG_FC_HOST_CTX_COUNT).
		HWTableSize: 1 << 17,
		Rules: []Rule{
			nfpEthType(),
			nfpTCPFlags(),
			tunnelOnTunnelPort("nfp"),
			nfpTunnelExact(),
			nfpCTState(),
			nfpCTPreCT(),
			nfpGotoOnlyWithCT(),
			nfpRewriteSetOnly(),
		},
		Notes: []string{
			"eth_type is matched for IPv4, IPv6, MPLS and VLAN only; ARP is never offloaded, it must reach the host.",
			"TCP flags: FIN, SYN, RST, PSH and URG only (no ACK, ECE, CWR); PSH and URG only together with FIN, SYN or RST.",
			"Tunnel rules match an exact outer destination IP and UDP dst port 4789 (VXLAN) or 6081 (Geneve).",
			"Tunnel encap needs a neighbour entry for the remote endpoint; until the driver has one, packets take the software path.",
			"Conntrack is offloaded by merging pre_ct rules (chain 0: ct or ct nat, then goto) with post_ct rules " +
				"(ct_state +trk+est) in the driver; ct commit and other states stay in software.",
			"Header rewrites are pedit set only; ttl_dec (an add) is not offloaded.",
			"QinQ, VLAN priority and police (meters) are firmware features; this profile takes them as present.",
		},
	}
}

// ICEE810 is the Intel E810 in switchdev mode.
func ICEE810() *Profile {
	return &Profile{
		Name: ProfileICEE810, Driver: DriverICE, Vendor: "Intel", Model: "E810",
		// 1592: E810-C QSFP, 1593: E810-C SFP, 159b: E810-XXV SFP.
		PCIVendor: "8086", PCIDevices: []string{"159b", "1593", "1592"},
		MatchKeys: flow.Keys(
			// eth src/dst, ethertype, VLAN id/prio: Y
			flow.KeyEthSrc, flow.KeyEthDst, flow.KeyEthType, flow.KeyVLANID, flow.KeyVLANPrio,
			// second VLAN (QinQ): Y
			flow.KeyCVLANID, flow.KeyCVLANPrio,
			// IPv4/IPv6 src/dst, tos, ttl: Y (rejects ::1 and any/any, rule)
			flow.KeyIPv4Src, flow.KeyIPv4Dst, flow.KeyIPv6Src, flow.KeyIPv6Dst, flow.KeyIPProto,
			flow.KeyTOS, flow.KeyTTL,
			// L4 ports: TCP/UDP (rule)
			flow.KeySrcPort, flow.KeyDstPort,
			// TCP flags / ICMP / MPLS: N; IP fragments: —
			// tunnel keys: VXLAN, Geneve, GRE, GTP; key id exact; no outer source
			flow.KeyTunID, flow.KeyTunDst, flow.KeyTunDstPort,
			// ct_state / zone / mark: N
		),
		Actions: flow.Actions(
			// drop, redirect to port: Y; mirror: Y (newer kernels)
			flow.ActDrop, flow.ActRedirect, flow.ActMirror,
			// VLAN push / pop, encap, rewrite, ct, police: N; goto: — (not offloaded)
		),
		// No published tc flower figure; an estimate of the E810 switch
		// table that emulator configs should override.
		HWTableSize: 1 << 15,
		Rules: []Rule{
			l4PortsOnly("ice", flow.ProtoTCP, flow.ProtoUDP),
			iceIPv6Addrs(),
			tunnelOnTunnelPort("ice"),
			iceOneAction(),
		},
		Notes: []string{
			"Actions: drop, redirect and mirror only, and hardware runs one action per rule (the last).",
			"IPv6 rules must not match ::1 and must not match any source and any destination.",
			"Tunnel rules match the VNI (exact) and the outer destination IP; the outer source is not matched.",
			"Hardware treats all tc priorities alike: overlapping rules must not rely on priority.",
			"QinQ matching needs the firmware's double VLAN mode.",
		},
	}
}

// Generic is basic switchdev offload for a driver without a profile.
func Generic() *Profile {
	return &Profile{
		Name: ProfileGeneric, Model: "switchdev NIC",
		MatchKeys: flow.Keys(
			flow.KeyEthSrc, flow.KeyEthDst, flow.KeyEthType, flow.KeyVLANID, flow.KeyVLANPrio,
			flow.KeyIPv4Src, flow.KeyIPv4Dst, flow.KeyIPv6Src, flow.KeyIPv6Dst, flow.KeyIPProto,
			flow.KeySrcPort, flow.KeyDstPort,
		),
		Actions: flow.Actions(flow.ActDrop, flow.ActAccept, flow.ActRedirect, flow.ActMirror),
		Notes: []string{
			"No profile for this driver: only basic switchdev offload (eth, VLAN, IP, L4 ports; " +
				"drop, accept, redirect, mirror) is assumed. The kernel's answer decides.",
		},
	}
}

// Rules shared by several drivers.

// l4PortsOnly: L4 ports are matched for the given IP protocols only.
func l4PortsOnly(driver string, protos ...uint8) Rule {
	names := make([]string, len(protos))
	for i, p := range protos {
		names[i] = strings.ToUpper(protoName(p))
	}
	return Rule{Name: "l4-ports-" + strings.ToLower(strings.Join(names, "-")), Check: func(f *flow.Flow, _ PortKinds) []Reason {
		m := &f.Match
		if slices.Contains(protos, m.IPProto) {
			return nil
		}
		var out []Reason
		for _, k := range []struct {
			set   bool
			field string
		}{{m.SrcPort.Set(), "match.src_port"}, {m.DstPort.Set(), "match.dst_port"}} {
			if k.set {
				out = append(out, Reason{Code: ReasonUnsupportedValue, Field: k.field,
					Message: fmt.Sprintf("%s matches L4 ports of %s only, not of %s", driver, joinAnd(names), protoName(m.IPProto))})
			}
		}
		return out
	}}
}

// tunnelOnTunnelPort: tunnel keys are matched only on a tunnel device.
func tunnelOnTunnelPort(driver string) Rule {
	return Rule{Name: "tunnel-on-tunnel-port", Check: func(f *flow.Flow, ports PortKinds) []Reason {
		if ports == nil || !f.Match.HasTunnelKeys() {
			return nil
		}
		if k := ports(f.Port); k != 0 && k != PortTunnel {
			return []Reason{{Code: ReasonTunnel, Field: "match.tunnel",
				Message: fmt.Sprintf("%s matches tunnel keys only on a tunnel device; %s is not one (%s)", driver, f.Port, k)}}
		}
		return nil
	}}
}

// mlx5 rules.

func mlx5FragIsFragOnly() Rule {
	return Rule{Name: "ip-flags-frag-only", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		if f.Match.Frag.Mask&flow.FragFirst == 0 {
			return nil
		}
		return []Reason{{Code: ReasonUnsupportedValue, Field: "match.ip_flags",
			Message: "mlx5 matches ip_flags frag/nofrag only, not firstfrag"}}
	}}
}

// mlx5TunnelDstPortExact: a UDP tunnel rule must match enc_dst_port fully.
// It applies to rules with tunnel keys, a decap action or a tunnel ingress.
func mlx5TunnelDstPortExact() Rule {
	return Rule{Name: "tunnel-dst-port-exact", Check: func(f *flow.Flow, ports PortKinds) []Reason {
		tunnel := f.Match.HasTunnelKeys() || firstAction(f, flow.ActTunnelDecap, nil) >= 0 ||
			(ports != nil && ports(f.Port) == PortTunnel)
		if !tunnel || f.Match.TunDstPort.Set {
			return nil
		}
		return []Reason{{Code: ReasonTunnel, Field: "match.tunnel.dst_port",
			Message: "mlx5 needs an exact outer UDP dst port (enc_dst_port) on VXLAN and Geneve tunnel rules"}}
	}}
}

// mlx5CTState: only +trk, +est and +rpl may be required; "-" bits are fine.
func mlx5CTState() Rule {
	return Rule{Name: "ct-state-trk-est-rpl", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		bad := f.Match.CTState.Value & (flow.CTNew | flow.CTRelated | flow.CTInvalid)
		if bad == 0 {
			return nil
		}
		names := ctStateNames(bad)
		var tail string
		switch {
		case bad == flow.CTNew:
			tail = "+new is set up in software"
		case len(names) == 1:
			tail = names[0] + " is not offloaded"
		default:
			tail = joinAnd(names) + " are not offloaded"
		}
		return []Reason{{Code: ReasonCTState, Field: "match.ct_state",
			Message: "mlx5 offloads ct_state +trk, +est and +rpl only; " + tail}}
	}}
}

func mlx5MirrorWithoutCT() Rule {
	return Rule{Name: "mirror-without-ct", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		ct, m := firstAction(f, flow.ActCT, isCT), firstAction(f, flow.ActMirror, nil)
		if ct < 0 || m < 0 {
			return nil
		}
		return []Reason{{Code: ReasonUnsupportedCombination, Field: actionField(m),
			Message: fmt.Sprintf("mlx5 does not offload mirror in a flow with a ct action (%s)", actionField(ct))}}
	}}
}

// mlx5RewriteCount reports the first rewrite beyond max.
func mlx5RewriteCount(max int) Rule {
	return Rule{Name: "rewrite-count", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		n, over := 0, -1
		for i := range f.Actions {
			if f.Actions[i].Kind == flow.ActRewrite {
				if n++; n == max+1 {
					over = i
				}
			}
		}
		if over < 0 {
			return nil
		}
		return []Reason{{Code: ReasonUnsupportedCombination, Field: actionField(over),
			Message: fmt.Sprintf("mlx5 offloads at most %d header rewrites per flow; this flow has %d", max, n)}}
	}}
}

// mlx5RewriteNeedsL4: IP address rewrites need ip_proto tcp, udp or icmp in
// the match ("can't offload re-write of non TCP/UDP"); port rewrites exist
// for TCP and UDP only.
func mlx5RewriteNeedsL4() Rule {
	return Rule{Name: "rewrite-needs-l4", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		proto := f.Match.IPProto
		var out []Reason
		if i := firstAction(f, flow.ActRewrite, func(a *flow.Action) bool {
			return a.Rewrite != nil && (a.Rewrite.Field == flow.RewriteIPSrc || a.Rewrite.Field == flow.RewriteIPDst)
		}); i >= 0 && proto != flow.ProtoTCP && proto != flow.ProtoUDP && proto != flow.ProtoICMP {
			out = append(out, Reason{Code: ReasonUnsupportedCombination, Field: actionField(i),
				Message: fmt.Sprintf("mlx5 rewrites IP addresses only when the match requires ip_proto tcp, udp or icmp, not %s", protoName(proto))})
		}
		if i := firstAction(f, flow.ActRewrite, func(a *flow.Action) bool {
			return a.Rewrite != nil && (a.Rewrite.Field == flow.RewriteSrcPort || a.Rewrite.Field == flow.RewriteDstPort)
		}); i >= 0 && proto != flow.ProtoTCP && proto != flow.ProtoUDP {
			out = append(out, Reason{Code: ReasonUnsupportedValue, Field: actionField(i),
				Message: fmt.Sprintf("mlx5 rewrites TCP and UDP ports only, not %s ports", protoName(proto))})
		}
		return out
	}}
}

func mlx5RewriteWithoutCT() Rule {
	return Rule{Name: "rewrite-without-ct", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		ct, rw := firstAction(f, flow.ActCT, isCT), firstAction(f, flow.ActRewrite, nil)
		if ct < 0 || rw < 0 {
			return nil
		}
		return []Reason{{Code: ReasonUnsupportedCombination, Field: actionField(rw),
			Message: fmt.Sprintf("mlx5 does not offload a header rewrite in a flow with a ct action (%s)", actionField(ct))}}
	}}
}

func mlx5CTNATTCPUDP() Rule {
	return Rule{Name: "ct-nat-tcp-udp", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		proto := f.Match.IPProto
		if proto == flow.ProtoTCP || proto == flow.ProtoUDP {
			return nil
		}
		var out []Reason
		for i := range f.Actions {
			if a := &f.Actions[i]; a.Kind == flow.ActCT && isCT(a) && a.CT.NAT.Kind != flow.NATNone {
				out = append(out, Reason{Code: ReasonUnsupportedCombination, Field: actionField(i),
					Message: fmt.Sprintf("mlx5 offloads ct NAT for TCP and UDP connections only; the match must require ip_proto tcp or udp, not %s", protoName(proto))})
			}
		}
		return out
	}}
}

// nfp rules.

// nfpEthType: the flower firmware matches these ethertypes only, and never
// ARP, which the host relies on.
func nfpEthType() Rule {
	return Rule{Name: "eth-type-ip-mpls", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		switch et := f.Match.EthType; et {
		case 0, flow.EthTypeIPv4, flow.EthTypeIPv6, ethTypeMPLSUnicast, ethTypeMPLSMulticast,
			flow.EthType8021Q, flow.EthType8021AD:
			return nil
		case flow.EthTypeARP:
			return []Reason{{Code: ReasonUnsupportedValue, Field: "match.eth_type",
				Message: "nfp does not offload ARP: it relies on ARP reaching the host"}}
		default:
			return []Reason{{Code: ReasonUnsupportedValue, Field: "match.eth_type",
				Message: fmt.Sprintf("nfp matches eth_type ipv4, ipv6, mpls and vlan only, not 0x%04x", et)}}
		}
	}}
}

const (
	ethTypeMPLSUnicast   = 0x8847
	ethTypeMPLSMulticast = 0x8848
)

// TCP header flag bits as flower matches them.
const (
	tcpFIN uint16 = 1 << iota
	tcpSYN
	tcpRST
	tcpPSH
	tcpACK
	tcpURG
	tcpECE
	tcpCWR
	tcpNS
)

// nfpTCPFlags: the firmware has FIN, SYN, RST, PSH and URG bits only
// (NFP_FLOWER_SUPPORTED_TCPFLAGS), and PSH/URG only with FIN, SYN or RST.
// The kernel checks the key only; a mask on other flags would be dropped
// silently, so this profile refuses masks outside those bits too.
func nfpTCPFlags() Rule {
	const supported = tcpFIN | tcpSYN | tcpRST | tcpPSH | tcpURG
	return Rule{Name: "tcp-flags-fin-syn-rst-psh-urg", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		fl := f.Match.TCPFlags
		if !fl.Set() {
			return nil
		}
		var out []Reason
		if extra := fl.Mask &^ supported; extra != 0 {
			out = append(out, Reason{Code: ReasonUnsupportedValue, Field: "match.tcp_flags",
				Message: fmt.Sprintf("nfp matches TCP flags fin, syn, rst, psh and urg only, not %s", joinAnd(tcpFlagNames(extra)))})
		}
		if fl.Value&(tcpPSH|tcpURG) != 0 && fl.Value&(tcpFIN|tcpSYN|tcpRST) == 0 {
			out = append(out, Reason{Code: ReasonUnsupportedValue, Field: "match.tcp_flags",
				Message: "nfp matches psh and urg only together with fin, syn or rst"})
		}
		return out
	}}
}

func tcpFlagNames(bits uint16) []string {
	names := [...]string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"}
	var out []string
	for i := range 12 {
		if bits&(1<<i) == 0 {
			continue
		}
		if i < len(names) {
			out = append(out, names[i])
		} else {
			out = append(out, fmt.Sprintf("0x%x", 1<<i))
		}
	}
	return out
}

// nfpTunnelExact: tunnel rules need an exact outer destination IP and an
// exact UDP dst port the firmware knows.
func nfpTunnelExact() Rule {
	return Rule{Name: "tunnel-dst-exact", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		m := &f.Match
		if !m.HasTunnelKeys() {
			return nil
		}
		var out []Reason
		if !m.TunDst.IsValid() || !m.TunDst.IsSingleIP() {
			out = append(out, Reason{Code: ReasonTunnel, Field: "match.tunnel.dst",
				Message: "nfp needs an exact outer destination IP (a /32 or /128) on tunnel rules"})
		}
		switch {
		case !m.TunDstPort.Set:
			out = append(out, Reason{Code: ReasonTunnel, Field: "match.tunnel.dst_port",
				Message: "nfp needs an exact outer UDP dst port on VXLAN and Geneve tunnel rules"})
		case m.TunDstPort.V != 4789 && m.TunDstPort.V != 6081:
			out = append(out, Reason{Code: ReasonTunnel, Field: "match.tunnel.dst_port",
				Message: fmt.Sprintf("nfp knows tunnel dst ports 4789 (VXLAN) and 6081 (Geneve) only, not %d", m.TunDstPort.V)})
		}
		return out
	}}
}

// nfpCTState: a ct_state match is offloaded in a post_ct rule (requires
// +est) or in a chain-0 pre_ct rule that requires no state (such as -trk).
func nfpCTState() Rule {
	return Rule{Name: "ct-state-pre-post-ct", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		st := f.Match.CTState
		if !st.Set() || st.Value&flow.CTEstablished != 0 || (st.Value == 0 && f.Chain == 0) {
			return nil
		}
		msg := fmt.Sprintf("nfp offloads ct_state matches outside chain 0 only in post_ct rules, which require +trk+est; chain %d requires none", f.Chain)
		if st.Value != 0 {
			msg = fmt.Sprintf("nfp offloads ct_state matches in post_ct rules, which require +trk+est; %s stays in software", strings.Join(ctStateNames(st.Value), ""))
		}
		return []Reason{{Code: ReasonCTState, Field: "match.ct_state", Message: msg}}
	}}
}

// nfpCTPreCT: the ct action is offloaded only in a pre_ct rule: chain 0, no
// required ct_state, ct or ct nat without commit, ending in goto.
func nfpCTPreCT() Rule {
	return Rule{Name: "ct-in-pre-ct-rule", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		hasGoto := firstAction(f, flow.ActGoto, nil) >= 0
		var out []Reason
		for i := range f.Actions {
			a := &f.Actions[i]
			if a.Kind != flow.ActCT || !isCT(a) {
				continue
			}
			p := actionField(i)
			if a.CT.Commit {
				out = append(out, Reason{Code: ReasonUnsupportedValue, Field: p,
					Message: "nfp offloads ct and ct nat in pre_ct rules only; ct commit stays in software"})
			}
			if f.Chain != 0 || f.Match.CTState.Value != 0 {
				out = append(out, Reason{Code: ReasonUnsupportedCombination, Field: p,
					Message: "nfp offloads the ct action only in a pre_ct rule: chain 0 with no ct_state required"})
			}
			if !hasGoto {
				out = append(out, Reason{Code: ReasonUnsupportedCombination, Field: p,
					Message: "nfp offloads the ct action only in a pre_ct rule that ends in goto"})
			}
		}
		return out
	}}
}

func nfpGotoOnlyWithCT() Rule {
	return Rule{Name: "goto-only-pre-ct", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		g := firstAction(f, flow.ActGoto, nil)
		if g < 0 || firstAction(f, flow.ActCT, isCT) >= 0 {
			return nil
		}
		return []Reason{{Code: ReasonUnsupportedCombination, Field: actionField(g),
			Message: "nfp offloads goto only in a conntrack pre_ct rule (ct, then goto)"}}
	}}
}

// nfpRewriteSetOnly: pedit set is offloaded, pedit add (ttl_dec) is not.
func nfpRewriteSetOnly() Rule {
	return Rule{Name: "rewrite-set-only", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		var out []Reason
		for i := range f.Actions {
			if a := &f.Actions[i]; a.Kind == flow.ActRewrite && a.Rewrite != nil && a.Rewrite.Field == flow.RewriteTTLDec {
				out = append(out, Reason{Code: ReasonUnsupportedValue, Field: actionField(i),
					Message: "nfp offloads pedit set only; ttl_dec is a pedit add"})
			}
		}
		return out
	}}
}

// ice rules.

// iceIPv6Addrs: ice refuses ::1 and a rule whose IPv6 source and
// destination are both any. Like the driver, it looks only at rules that
// carry IPv6 address keys.
func iceIPv6Addrs() Rule {
	return Rule{Name: "ipv6-no-loopback-no-any-any", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		m := &f.Match
		src, dst := v6(m.IPSrc), v6(m.IPDst)
		if !src.IsValid() && !dst.IsValid() {
			return nil
		}
		var out []Reason
		for _, a := range []struct {
			p     netip.Prefix
			field string
		}{{src, "match.ipv6_src"}, {dst, "match.ipv6_dst"}} {
			if a.p.IsValid() && a.p.Addr() == netip.IPv6Loopback() {
				out = append(out, Reason{Code: ReasonUnsupportedValue, Field: a.field,
					Message: "ice does not offload the IPv6 loopback address ::1"})
			}
		}
		if src.Bits() <= 0 && dst.Bits() <= 0 {
			field := "match.ipv6_dst"
			if !dst.IsValid() {
				field = "match.ipv6_src"
			}
			out = append(out, Reason{Code: ReasonUnsupportedValue, Field: field,
				Message: "ice does not offload an IPv6 rule whose source and destination are both any (::/0); match an address"})
		}
		return out
	}}
}

// v6 returns p when it is an IPv6 prefix, else the zero Prefix.
func v6(p netip.Prefix) netip.Prefix {
	if p.IsValid() && !p.Addr().Is4() {
		return p
	}
	return netip.Prefix{}
}

// iceOneAction: E810 hardware runs one action per rule, the last one.
func iceOneAction() Rule {
	return Rule{Name: "one-action", Check: func(f *flow.Flow, _ PortKinds) []Reason {
		if len(f.Actions) <= 1 {
			return nil
		}
		return []Reason{{Code: ReasonUnsupportedCombination, Field: "actions",
			Message: fmt.Sprintf("ice runs only the last action of a rule in E810 hardware; this flow has %d actions", len(f.Actions))}}
	}}
}
