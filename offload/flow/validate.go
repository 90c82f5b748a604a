package flow

import (
	"fmt"
	"net/netip"
)

// Violation is one reason a flow is invalid. Field is a path inside the
// flow ("match.ipv4_dst", "actions[1].encap.vni"); callers prefix the
// batch position ("flows[3].").
type Violation struct {
	Field  string
	Reason string
}

func (v Violation) String() string { return v.Field + ": " + v.Reason }

// Ports tells validation which ports exist and which are tunnel devices.
type Ports interface {
	HasPort(name string) bool
	IsTunnel(name string) bool
}

// EtherTypes used by validation.
const (
	EthTypeIPv4   = 0x0800
	EthTypeIPv6   = 0x86dd
	EthTypeARP    = 0x0806
	EthType8021Q  = 0x8100
	EthType8021AD = 0x88a8
)

// IP protocols used by validation.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoSCTP   = 132
	ProtoICMPv6 = 58
)

// MaxIDLen is the longest flow ID accepted.
const MaxIDLen = 256

// Normalize clears value bits outside their masks and host bits of prefixes,
// so equal matches compare equal. Validate expects a normalized flow.
func Normalize(f *Flow) {
	m := &f.Match
	for i := range 6 {
		m.EthSrc.Addr[i] &= m.EthSrc.Mask[i]
		m.EthDst.Addr[i] &= m.EthDst.Mask[i]
	}
	for _, p := range []*netip.Prefix{&m.IPSrc, &m.IPDst, &m.TunSrc, &m.TunDst} {
		if p.IsValid() { // Masked of an invalid prefix allocates an error
			*p = p.Masked()
		}
	}
	m.TOS.Value &= m.TOS.Mask
	m.TTL.Value &= m.TTL.Mask
	m.SrcPort.Value &= m.SrcPort.Mask
	m.DstPort.Value &= m.DstPort.Mask
	m.TCPFlags.Value &= m.TCPFlags.Mask
	m.Frag.Value &= m.Frag.Mask
	m.CTState.Value &= m.CTState.Mask
	m.CTMark.Value &= m.CTMark.Mask
}

// Normalized returns f when it is already normalized and a normalized
// copy otherwise, so that devices keep a caller's flow without copying it.
func Normalized(f *Flow) *Flow {
	probe := Flow{Match: f.Match}
	Normalize(&probe)
	if probe.Match == f.Match {
		return f
	}
	c := f.Clone()
	Normalize(c)
	return c
}

type checker struct{ out []Violation }

func (c *checker) add(field, format string, args ...any) {
	c.out = append(c.out, Violation{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Validate checks one normalized flow on its own. With ports non-nil it also
// checks that named ports exist and that tunnel rules sit on tunnel ports.
// It returns every violation found, nil when the flow is valid.
func Validate(f *Flow, ports Ports) []Violation {
	c := &checker{}
	switch {
	case f.ID == "":
		c.add("id", "must not be empty")
	case len(f.ID) > MaxIDLen:
		c.add("id", "longer than %d bytes", MaxIDLen)
	default:
		for _, r := range f.ID {
			if r <= ' ' || r == 0x7f {
				c.add("id", "contains a space or control character")
				break
			}
		}
	}
	if f.Port == "" {
		c.add("port", "must not be empty")
	} else if ports != nil && !ports.HasPort(f.Port) {
		c.add("port", "unknown port %q", f.Port)
	}
	if f.Priority == 0 {
		c.add("priority", "must be between 1 and 65535")
	}
	if f.Policy > PolicySoftwareOnly {
		c.add("policy", "unknown placement policy")
	}
	c.match(f, ports)
	c.actions(f, ports)
	return c.out
}

func isIP(et uint16) bool { return et == EthTypeIPv4 || et == EthTypeIPv6 }

func (c *checker) match(f *Flow, ports Ports) {
	m := &f.Match
	et := m.EthType
	if m.VLANID.Set && m.VLANID.V > 4095 {
		c.add("match.vlan_id", "%d > 4095", m.VLANID.V)
	}
	if m.VLANPrio.Set && m.VLANPrio.V > 7 {
		c.add("match.vlan_prio", "%d > 7", m.VLANPrio.V)
	}
	if m.CVLANID.Set && m.CVLANID.V > 4095 {
		c.add("match.cvlan_id", "%d > 4095", m.CVLANID.V)
	}
	if m.CVLANPrio.Set && m.CVLANPrio.V > 7 {
		c.add("match.cvlan_prio", "%d > 7", m.CVLANPrio.V)
	}
	if (m.CVLANID.Set || m.CVLANPrio.Set) && !m.VLANID.Set && !m.VLANPrio.Set {
		c.add("match.cvlan_id", "an inner VLAN needs an outer vlan_id or vlan_prio")
	}
	if (m.VLANID.Set || m.VLANPrio.Set) && (et == EthType8021Q || et == EthType8021AD) && !(m.CVLANID.Set || m.CVLANPrio.Set) {
		c.add("match.eth_type", "with a VLAN match, eth_type is the ethertype inside the tag, not 0x%04x", et)
	}
	c.prefix("match.ipv4_src", "match.ipv6_src", m.IPSrc, et)
	c.prefix("match.ipv4_dst", "match.ipv6_dst", m.IPDst, et)
	ipKeys := m.IPProto != 0 || m.TOS.Set() || m.TTL.Set() || m.Frag.Set()
	if ipKeys && !isIP(et) {
		for _, k := range []struct {
			set  bool
			name string
		}{{m.IPProto != 0, "ip_proto"}, {m.TOS.Set(), "tos"}, {m.TTL.Set(), "ttl"}, {m.Frag.Set(), "ip_flags"}} {
			if k.set {
				c.add("match."+k.name, "needs eth_type ipv4 (0x0800) or ipv6 (0x86dd)")
			}
		}
	}
	if m.Frag.Mask&^(FragIsFragment|FragFirst) != 0 {
		c.add("match.ip_flags", "unknown fragment bits 0x%x", m.Frag.Mask&^(FragIsFragment|FragFirst))
	}
	l4 := m.IPProto == ProtoTCP || m.IPProto == ProtoUDP || m.IPProto == ProtoSCTP
	if m.SrcPort.Set() && !l4 {
		c.add("match.src_port", "needs ip_proto tcp, udp or sctp")
	}
	if m.DstPort.Set() && !l4 {
		c.add("match.dst_port", "needs ip_proto tcp, udp or sctp")
	}
	if m.TCPFlags.Set() {
		if m.IPProto != ProtoTCP {
			c.add("match.tcp_flags", "needs ip_proto tcp")
		}
		if m.TCPFlags.Mask > 0xfff {
			c.add("match.tcp_flags", "mask 0x%x wider than the 12 TCP flag bits", m.TCPFlags.Mask)
		}
	}
	if m.ICMPType.Set || m.ICMPCode.Set {
		field := "match.icmp_type"
		if !m.ICMPType.Set {
			field = "match.icmp_code"
		}
		switch {
		case m.IPProto == ProtoICMP && et == EthTypeIPv4, m.IPProto == ProtoICMPv6 && et == EthTypeIPv6:
		default:
			c.add(field, "needs ip_proto icmp with ipv4 or icmpv6 with ipv6")
		}
	}
	tunnel := m.TunID.Set || m.TunSrc.IsValid() || m.TunDst.IsValid() || m.TunDstPort.Set
	if m.TunID.Set && m.TunID.V > 0xffffff {
		c.add("match.tunnel.vni", "%d does not fit in 24 bits", m.TunID.V)
	}
	if m.TunSrc.IsValid() && m.TunDst.IsValid() && m.TunSrc.Addr().Is4() != m.TunDst.Addr().Is4() {
		c.add("match.tunnel.dst", "outer source and destination are of different IP families")
	}
	if m.TunDstPort.Set && m.TunDstPort.V == 0 {
		c.add("match.tunnel.dst_port", "must not be 0")
	}
	if tunnel && ports != nil && f.Port != "" && ports.HasPort(f.Port) && !ports.IsTunnel(f.Port) {
		c.add("match.tunnel", "tunnel keys match only on a tunnel port, %q is not one", f.Port)
	}
	if m.CTState.Mask&^ctAll != 0 {
		c.add("match.ct_state", "unknown state bits 0x%x", m.CTState.Mask&^ctAll)
	}
	if st := m.CTState.Value; st != 0 {
		switch {
		case st&CTTracked == 0:
			c.add("match.ct_state", "+trk is required when any other state is required")
		case st&CTNew != 0 && st&CTEstablished != 0:
			c.add("match.ct_state", "+new and +est are mutually exclusive")
		case st&CTNew != 0 && st&CTReply != 0:
			c.add("match.ct_state", "+new and +rpl are mutually exclusive")
		case st&CTInvalid != 0 && st&^(CTTracked|CTInvalid) != 0:
			c.add("match.ct_state", "with +inv only +trk may also be required")
		}
	}
}

func (c *checker) prefix(f4, f6 string, p netip.Prefix, et uint16) {
	if !p.IsValid() {
		return
	}
	if p.Addr().Is4() {
		if et != EthTypeIPv4 {
			c.add(f4, "needs eth_type ipv4 (0x0800)")
		}
		return
	}
	if p.Addr().Zone() != "" {
		c.add(f6, "zoned addresses cannot be matched")
	}
	if et != EthTypeIPv6 {
		c.add(f6, "needs eth_type ipv6 (0x86dd)")
	}
}

func terminal(k ActionKind) bool {
	return k == ActDrop || k == ActAccept || k == ActRedirect || k == ActGoto
}

func (c *checker) actions(f *Flow, ports Ports) {
	if len(f.Actions) == 0 {
		c.add("actions", "at least one action is required")
		return
	}
	m := &f.Match
	for i := range f.Actions {
		a := &f.Actions[i]
		p := ActionPath(i)
		if i > 0 && terminal(f.Actions[i-1].Kind) {
			c.add(p, "follows %s, which ends the action list", f.Actions[i-1].Kind)
		}
		switch a.Kind {
		case ActDrop, ActAccept, ActVLANPop:
		case ActRedirect, ActMirror:
			if a.Port == "" {
				c.add(p+".port", "%s needs a target port", a.Kind)
			} else if ports != nil && !ports.HasPort(a.Port) {
				c.add(p+".port", "unknown port %q", a.Port)
			}
		case ActVLANPush:
			if a.VLAN.ID > 4095 {
				c.add(p+".vlan.id", "%d > 4095", a.VLAN.ID)
			}
			if a.VLAN.Prio > 7 {
				c.add(p+".vlan.prio", "%d > 7", a.VLAN.Prio)
			}
			if a.VLAN.Proto != 0 && a.VLAN.Proto != EthType8021Q && a.VLAN.Proto != EthType8021AD {
				c.add(p+".vlan.proto", "0x%04x is not 802.1Q (0x8100) or 802.1ad (0x88a8)", a.VLAN.Proto)
			}
		case ActTunnelEncap:
			c.encap(f, i, p, ports)
		case ActTunnelDecap:
			if ports != nil && f.Port != "" && ports.HasPort(f.Port) && !ports.IsTunnel(f.Port) {
				c.add(p, "tunnel decap runs on a tunnel port, %q is not one", f.Port)
			}
		case ActCT:
			c.ct(a.CT, p)
		case ActGoto:
			if a.Chain == f.Chain {
				c.add(p+".chain", "goto its own chain %d loops", a.Chain)
			}
		case ActRewrite:
			c.rewrite(m, a.Rewrite, p)
		case ActPolice:
			c.police(a.Police, p)
		default:
			c.add(p+".kind", "unknown action")
		}
	}
}

// actionPaths avoids formatting a path for every action of every flow.
var actionPaths = func() (p [16]string) {
	for i := range p {
		p[i] = fmt.Sprintf("actions[%d]", i)
	}
	return p
}()

// ActionPath is the field path of the i-th action: "actions[i]".
func ActionPath(i int) string {
	if i < len(actionPaths) {
		return actionPaths[i]
	}
	return fmt.Sprintf("actions[%d]", i)
}

func (c *checker) encap(f *Flow, i int, p string, ports Ports) {
	e := f.Actions[i].Encap
	if e == nil {
		c.add(p+".encap", "missing tunnel parameters")
		return
	}
	if e.VNI > 0xffffff {
		c.add(p+".encap.vni", "%d does not fit in 24 bits", e.VNI)
	}
	if !e.Dst.IsValid() || e.Dst.IsUnspecified() {
		c.add(p+".encap.dst", "a remote tunnel endpoint address is required")
	}
	if !e.Src.IsValid() || e.Src.IsUnspecified() {
		c.add(p+".encap.src", "a local tunnel endpoint address is required")
	}
	if e.Src.IsValid() && e.Dst.IsValid() && e.Src.Is4() != e.Dst.Is4() {
		c.add(p+".encap.dst", "source and destination are of different IP families")
	}
	for j := i + 1; j < len(f.Actions); j++ {
		b := &f.Actions[j]
		if b.Kind == ActRedirect || b.Kind == ActMirror {
			if ports != nil && b.Port != "" && ports.HasPort(b.Port) && !ports.IsTunnel(b.Port) {
				c.add(p, "tunnel encap needs a redirect to a tunnel port after it, %q is not one", b.Port)
			}
			return
		}
	}
	c.add(p, "tunnel encap needs a redirect to a tunnel port after it")
}

func (c *checker) ct(ct *CT, p string) {
	if ct == nil {
		c.add(p+".ct", "missing ct parameters")
		return
	}
	if ct.Clear {
		if ct.Commit || ct.Zone != 0 || ct.Mark.Set() || ct.NAT.Kind != NATNone {
			c.add(p+".ct.clear", "ct clear takes no other parameter")
		}
		return
	}
	if ct.Mark.Set() && !ct.Commit {
		c.add(p+".ct.mark", "setting a mark needs commit")
	}
	n := ct.NAT
	switch n.Kind {
	case NATNone:
		if n.AddrMin.IsValid() || n.PortMin != 0 {
			c.add(p+".ct.nat.kind", "a NAT range needs kind src or dst")
		}
	case NATSrc, NATDst:
		if !n.AddrMin.IsValid() {
			c.add(p+".ct.nat.addr_min", "an address is required")
			break
		}
		if n.AddrMax.IsValid() {
			if n.AddrMax.Is4() != n.AddrMin.Is4() {
				c.add(p+".ct.nat.addr_max", "of a different IP family than addr_min")
			} else if n.AddrMax.Less(n.AddrMin) {
				c.add(p+".ct.nat.addr_max", "%s is below addr_min %s", n.AddrMax, n.AddrMin)
			}
		}
		if n.PortMax != 0 && n.PortMax < n.PortMin {
			c.add(p+".ct.nat.port_max", "%d is below port_min %d", n.PortMax, n.PortMin)
		}
	default:
		c.add(p+".ct.nat.kind", "unknown NAT kind")
	}
}

func (c *checker) rewrite(m *Match, r *Rewrite, p string) {
	if r == nil {
		c.add(p+".rewrite", "missing rewrite parameters")
		return
	}
	switch r.Field {
	case RewriteEthSrc, RewriteEthDst:
	case RewriteIPSrc, RewriteIPDst:
		switch {
		case !r.IP.IsValid():
			c.add(p+".rewrite.ip", "an address is required")
		case r.IP.Is4() && m.EthType != EthTypeIPv4:
			c.add(p+".rewrite.ip", "an IPv4 rewrite needs the match to require eth_type ipv4")
		case !r.IP.Is4() && m.EthType != EthTypeIPv6:
			c.add(p+".rewrite.ip", "an IPv6 rewrite needs the match to require eth_type ipv6")
		}
	case RewriteTTLDec:
		if !isIP(m.EthType) {
			c.add(p+".rewrite.field", "ttl_dec needs the match to require eth_type ipv4 or ipv6")
		}
	case RewriteSrcPort, RewriteDstPort:
		if m.IPProto != ProtoTCP && m.IPProto != ProtoUDP && m.IPProto != ProtoSCTP {
			c.add(p+".rewrite.field", "%s needs the match to require ip_proto tcp, udp or sctp", r.Field)
		}
	default:
		c.add(p+".rewrite.field", "unknown field")
	}
}

func (c *checker) police(pl *Police, p string) {
	if pl == nil {
		c.add(p+".police", "missing police parameters")
		return
	}
	switch {
	case pl.RateBytes == 0 && pl.RatePackets == 0:
		c.add(p+".police.rate", "a byte rate or a packet rate is required")
	case pl.RateBytes != 0 && pl.RatePackets != 0:
		c.add(p+".police.rate", "give a byte rate or a packet rate, not both")
	}
	if pl.Burst == 0 {
		c.add(p+".police.burst", "must be greater than 0")
	}
	if pl.Conform > VerdictContinue {
		c.add(p+".police.conform", "unknown verdict")
	}
	if pl.Exceed > VerdictContinue {
		c.add(p+".police.exceed", "unknown verdict")
	}
}
