package flow

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
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

// Limits of a flow, as strict as the kernel's.
const (
	// MaxIDLen is the longest flow ID accepted, in bytes: a DNS name's
	// length, so that an ID can carry one.
	MaxIDLen = 253
	// MaxChain is the highest chain index. TC_ACT_GOTO_CHAIN keeps the
	// target in the low 28 bits of the control action
	// (TC_ACT_EXT_VAL_MASK in include/uapi/linux/pkt_cls.h) and tc refuses
	// a filter in a chain above it ("Specified chain index exceeds upper
	// limit"), so a chain above it can be neither filled nor jumped to.
	MaxChain = 0x0fffffff
	// MaxPortLen is the longest port name: a Linux interface name is at
	// most IFNAMSIZ-1 bytes. Longer names are refused without echoing
	// them back.
	MaxPortLen = 15
	// MaxActions is the most actions one flow may carry: the kernel's
	// TCA_ACT_MAX_PRIO.
	MaxActions = 32
	// VLANReserved is the VLAN ID 802.1Q reserves; it may be neither
	// matched nor pushed. VID 0 (a priority tag) is allowed in both.
	VLANReserved = 4095
)

// IDChars lists the bytes a flow ID may contain, besides ASCII letters
// and digits. IDs travel in logs, tc cookies, file names and terminals:
// no spaces, no control characters, nothing outside ASCII (so no
// right-to-left overrides such as U+202E and no zero-width characters
// that make two IDs look alike).
const IDChars = "._:/@+=-"

// validIDByte reports whether b may appear in a flow ID.
func validIDByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte(IDChars, b) >= 0
}

// CheckID returns why id is not a valid flow ID, "" when it is one.
// A valid ID is 1 to MaxIDLen bytes of A-Z a-z 0-9 and IDChars.
func CheckID(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > MaxIDLen:
		return fmt.Sprintf("%d bytes, longer than %d", len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if validIDByte(id[i]) {
			continue
		}
		r, _ := utf8.DecodeRuneInString(id[i:])
		what := fmt.Sprintf("%U", r)
		switch {
		case r == ' ':
			what = "a space"
		case r == utf8.RuneError:
			what = "a byte that is not UTF-8"
		case r < ' ' || r == 0x7f:
			what = fmt.Sprintf("control character %U", r)
		case r < utf8.RuneSelf:
			what = fmt.Sprintf("%q", r)
		}
		return fmt.Sprintf("byte %d is %s; IDs use only A-Z a-z 0-9 and %s", i, what, IDChars)
	}
	return ""
}

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
	if why := CheckID(f.ID); why != "" {
		c.add("id", "%s", why)
	}
	switch {
	case f.Port == "":
		c.add("port", "must not be empty")
	case len(f.Port) > MaxPortLen:
		c.add("port", "%d bytes, longer than an interface name can be (%d, IFNAMSIZ)", len(f.Port), MaxPortLen)
	case ports != nil && !ports.HasPort(f.Port):
		c.add("port", "unknown port %q", f.Port)
	}
	if f.Chain > MaxChain {
		c.add("chain", "%d > %d (0x%08x): the kernel keeps chain indexes in 28 bits", f.Chain, MaxChain, MaxChain)
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
	c.vlanID("match.vlan_id", m.VLANID)
	if m.VLANPrio.Set && m.VLANPrio.V > 7 {
		c.add("match.vlan_prio", "%d > 7", m.VLANPrio.V)
	}
	c.vlanID("match.cvlan_id", m.CVLANID)
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
		// cls_flower gives a tracked packet exactly one of new, est and
		// rel (fl_ct_info_to_flower_map in net/sched/cls_flower.c maps
		// each ctinfo to one of them); the kernel accepts +rel with +new
		// or +est, but no packet ever matches it.
		case st&CTRelated != 0 && st&(CTNew|CTEstablished) != 0:
			c.add("match.ct_state", "+rel excludes +new and +est: a packet is in exactly one of these states")
		}
	}
	// +trk in chain 0 with no ct before it is not refused: a packet that
	// a flow on another port sent through ct and then redirected to this
	// port's ingress arrives tracked (mirred keeps the skb's conntrack),
	// so whether it can match depends on the other ports' flows, which
	// one flow's validation does not see.
	//
	// A tracked packet is in one of new, est, rel or inv: requiring +trk
	// and the absence of all four matches nothing.
	if st, mk := m.CTState.Value, m.CTState.Mask; st&CTTracked != 0 {
		if all := CTNew | CTEstablished | CTRelated | CTInvalid; mk&all == all && st&all == 0 {
			c.add("match.ct_state", "+trk with -new-est-rel-inv matches nothing: a tracked packet is in one of those states")
		}
	}
}

func (c *checker) vlanID(field string, id Opt[uint16]) {
	switch {
	case !id.Set:
	case id.V > VLANReserved:
		c.add(field, "%d > 4094", id.V)
	case id.V == VLANReserved:
		c.add(field, "4095 is reserved by 802.1Q; VLAN IDs are 0 (priority tag) to 4094")
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
	if len(f.Actions) > MaxActions {
		c.add("actions", "%d actions; the kernel takes at most %d per filter (TCA_ACT_MAX_PRIO)", len(f.Actions), MaxActions)
	}
	// A packet carries a tag for vlan_pop when the match requires one or
	// an earlier vlan_push added one.
	tags := 0
	if m.VLANID.Set || m.VLANPrio.Set || m.EthType == EthType8021Q || m.EthType == EthType8021AD {
		tags = 1
		if m.CVLANID.Set || m.CVLANPrio.Set {
			tags = 2
		}
	}
	for i := range f.Actions {
		a := &f.Actions[i]
		p := ActionPath(i)
		if i > 0 && terminal(f.Actions[i-1].Kind) {
			c.add(p, "follows %s, which ends the action list", f.Actions[i-1].Kind)
		}
		switch a.Kind {
		case ActDrop, ActAccept:
		case ActVLANPop:
			if tags == 0 {
				c.add(p, "vlan_pop needs the match to require a VLAN tag (vlan_id, vlan_prio or eth_type 802.1Q/802.1ad) or a vlan_push before it")
			} else {
				tags--
			}
		case ActRedirect, ActMirror:
			switch {
			case a.Port == "":
				c.add(p+".port", "%s needs a target port", a.Kind)
			case a.Port == f.Port && a.Ingress:
				c.add(p+".port", "%s to the ingress of %q, the flow's own port, classifies the packet again from chain 0: a loop", a.Kind, a.Port)
			case a.Port == f.Port:
				c.add(p+".port", "%s to the egress of %q, the flow's own port, sends the packet back where it came from: a loop with the sender", a.Kind, a.Port)
			case len(a.Port) > MaxPortLen:
				c.add(p+".port", "%d bytes, longer than an interface name can be (%d, IFNAMSIZ)", len(a.Port), MaxPortLen)
			case ports != nil && !ports.HasPort(a.Port):
				c.add(p+".port", "unknown port %q", a.Port)
			}
		case ActVLANPush:
			tags++
			if a.VLAN.ID >= VLANReserved {
				c.vlanID(p+".vlan.id", Some(a.VLAN.ID))
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
			c.ct(m, a.CT, p)
		case ActGoto:
			switch {
			case a.Chain > MaxChain:
				c.add(p+".chain", "%d > %d (0x%08x): TC_ACT_GOTO_CHAIN carries the chain in 28 bits", a.Chain, MaxChain, MaxChain)
			case a.Chain == f.Chain:
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
	} else if why := notUnicast(e.Dst); why != "" {
		c.add(p+".encap.dst", "%s is %s: a tunnel endpoint is one unicast host", e.Dst, why)
	}
	if !e.Src.IsValid() || e.Src.IsUnspecified() {
		c.add(p+".encap.src", "a local tunnel endpoint address is required")
	} else if why := notUnicast(e.Src); why != "" {
		c.add(p+".encap.src", "%s is %s: a tunnel endpoint is one unicast host", e.Src, why)
	}
	if e.Src.IsValid() && e.Src == e.Dst && !e.Src.IsUnspecified() {
		c.add(p+".encap.dst", "%s is also the source: the tunnel would send to itself", e.Dst)
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

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// notUnicast says why a is not a unicast address, "" when it is one.
func notUnicast(a netip.Addr) string {
	switch {
	case a.Unmap() == limitedBroadcast:
		return "the broadcast address"
	case a.IsMulticast():
		return "a multicast address"
	}
	return ""
}

func (c *checker) ct(m *Match, ct *CT, p string) {
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
		c.natFamily(m, n.AddrMin, p+".ct.nat.addr_min")
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

// natFamily checks that a NAT address is of the family the match
// requires: conntrack cannot put an IPv6 address in an IPv4 header.
func (c *checker) natFamily(m *Match, a netip.Addr, field string) {
	switch {
	case a.Is4() && m.EthType == EthTypeIPv6:
		c.add(field, "IPv4 address %s on a flow that matches eth_type ipv6", a)
	case a.Is6() && m.EthType == EthTypeIPv4:
		c.add(field, "IPv6 address %s on a flow that matches eth_type ipv4", a)
	case !isIP(m.EthType):
		c.add(field, "NAT needs the match to require eth_type ipv4 or ipv6")
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
