package api

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/protobuf/proto"
)

// FlowFromProto converts a wire flow into a normalized domain flow and
// checks it with flow.Validate (without port knowledge). path is p's
// position from the request root ("flows[3]", "flow"; "" for none) and
// prefixes every violation's Field, which names the wire field
// ("flows[3].match.ipv4_dst", "flows[3].actions[1].redirect.port").
// Every problem is reported, not just the first. The flow is returned even
// when there are violations, with the unparsable fields left unset.
func FlowFromProto(p *v1.Flow, path string) (*flow.Flow, []flow.Violation) {
	c := &conv{}
	f := &flow.Flow{
		ID:    p.GetId(),
		Port:  p.GetPort(),
		Chain: p.GetChain(),
	}
	if pr := p.GetPriority(); pr > math.MaxUint16 {
		c.add("priority", "%d > 65535", pr)
	} else {
		f.Priority = uint16(pr)
	}
	switch pol := p.GetPolicy(); pol {
	case v1.PlacementPolicy_PLACEMENT_POLICY_AUTO:
		f.Policy = flow.PolicyAuto
	case v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY:
		f.Policy = flow.PolicyHardwareOnly
	case v1.PlacementPolicy_PLACEMENT_POLICY_SOFTWARE_ONLY:
		f.Policy = flow.PolicySoftwareOnly
	default:
		c.add("policy", "unknown placement policy %d", int32(pol))
	}
	if m := p.GetMatch(); m != nil {
		c.match(&f.Match, m)
	}
	if as := p.GetActions(); len(as) > 0 {
		f.Actions = make([]flow.Action, len(as))
		for i, a := range as {
			c.scope = flow.ActionPath(i)
			f.Actions[i] = c.action(a)
		}
		c.scope = ""
	}
	flow.Normalize(f)
	vs := flow.Validate(f, nil)
	if len(c.out) == 0 {
		for i := range vs {
			vs[i].Field = WireField(f, vs[i].Field)
		}
		return f, prefixViolations(path, vs)
	}
	// Parse failures leave fields unset. Validate must not report those
	// fields again ("a remote tunnel endpoint address is required"), nor
	// report other fields for needing an eth_type or ip_proto that was
	// given but could not be parsed.
	seen := make(map[string]bool, len(c.out))
	for _, v := range c.out {
		seen[v.Field] = true
	}
	for _, v := range vs {
		v.Field = WireField(f, v.Field)
		switch {
		case seen[v.Field]:
		case seen["match.eth_type"] && strings.Contains(v.Reason, "eth_type"):
		case seen["match.ip_proto"] && strings.Contains(v.Reason, "ip_proto"):
		default:
			c.out = append(c.out, v)
		}
	}
	return f, prefixViolations(path, c.out)
}

// prefixViolations puts path in front of every Field.
func prefixViolations(path string, vs []flow.Violation) []flow.Violation {
	if path == "" {
		return vs
	}
	for i := range vs {
		vs[i].Field = joinPath(path, vs[i].Field)
	}
	return vs
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}

// WireField translates a field path of the domain flow f (as flow.Validate
// and the engine report them, "actions[1].port") into the path of the wire
// field ("actions[1].redirect.port"). Paths with no wire counterpart of
// their own name the enclosing message.
func WireField(f *flow.Flow, field string) string {
	if !strings.HasPrefix(field, "actions[") {
		return field
	}
	end := strings.IndexByte(field, ']')
	if end < 0 {
		return field
	}
	i, err := strconv.Atoi(field[len("actions["):end])
	if err != nil || i < 0 || i >= len(f.Actions) {
		return field
	}
	head, rest := field[:end+1], strings.TrimPrefix(field[end+1:], ".")
	a := &f.Actions[i]
	first, sub, _ := strings.Cut(rest, ".")
	var out string
	switch {
	case rest == "" || first == "kind":
		return head
	case (a.Kind == flow.ActRedirect || a.Kind == flow.ActMirror) && first == "port":
		out = a.Kind.String() + ".port"
	case a.Kind == flow.ActVLANPush && first == "vlan":
		out = joinPath("vlan_push", sub)
	case a.Kind == flow.ActTunnelEncap && first == "encap":
		out = joinPath("tunnel_encap", sub)
	case a.Kind == flow.ActGoto && first == "chain":
		out = "goto.chain"
	case a.Kind == flow.ActRewrite && first == "rewrite":
		out = "rewrite"
		if a.Rewrite != nil && (sub == "ip" || sub == "field") {
			if n := rewriteWireName(a.Rewrite); n != "" {
				out += "." + n
			}
		}
	case a.Kind == flow.ActPolice && first == "police":
		out = "police"
		if sub != "rate" && sub != "" {
			out += "." + sub
		}
	default:
		out = rest
	}
	return head + "." + out
}

// rewriteWireName is the Rewrite oneof member that holds r.
func rewriteWireName(r *flow.Rewrite) string {
	switch r.Field {
	case flow.RewriteEthSrc:
		return "eth_src"
	case flow.RewriteEthDst:
		return "eth_dst"
	case flow.RewriteIPSrc:
		if r.IP.Is6() {
			return "ipv6_src"
		}
		return "ipv4_src"
	case flow.RewriteIPDst:
		if r.IP.Is6() {
			return "ipv6_dst"
		}
		return "ipv4_dst"
	case flow.RewriteTTLDec:
		return "ttl_dec"
	case flow.RewriteSrcPort:
		return "src_port"
	case flow.RewriteDstPort:
		return "dst_port"
	}
	return ""
}

// conv collects violations with paths relative to the flow. Inside an
// action, fields are relative to scope ("actions[2]"), so that paths are
// only built for violations.
type conv struct {
	out   []flow.Violation
	scope string
}

func (c *conv) add(field, format string, args ...any) {
	c.out = append(c.out, flow.Violation{Field: joinPath(c.scope, field), Reason: fmt.Sprintf(format, args...)})
}

func (c *conv) err(field string, err error) { c.add(field, "%s", err.Error()) }

// uint narrows v to at most max, reporting a violation otherwise.
func (c *conv) uint(field string, v uint32, max uint32) (uint32, bool) {
	if v > max {
		c.add(field, "%d > %d", v, max)
		return 0, false
	}
	return v, true
}

func optU16(c *conv, field string, p *uint32, max uint32) flow.Opt[uint16] {
	if p == nil {
		return flow.Opt[uint16]{}
	}
	v, ok := c.uint(field, *p, max)
	return flow.Opt[uint16]{V: uint16(v), Set: ok}
}

func optU8(c *conv, field string, p *uint32, max uint32) flow.Opt[uint8] {
	if p == nil {
		return flow.Opt[uint8]{}
	}
	v, ok := c.uint(field, *p, max)
	return flow.Opt[uint8]{V: uint8(v), Set: ok}
}

// masked parses an optional value with its mask (0 meaning all of width
// bits) and returns value and mask; both are 0 when the key is unset.
func (c *conv) masked(field string, val *uint32, mask uint32, width uint) (uint32, uint32) {
	full := uint32(1<<width - 1)
	if width == 32 {
		full = math.MaxUint32
	}
	if val == nil {
		if mask != 0 {
			c.add(field+"_mask", "set without %s", field[strings.LastIndexByte(field, '.')+1:])
		}
		return 0, 0
	}
	ok := true
	if *val > full {
		c.add(field, "%d > %d", *val, full)
		ok = false
	}
	if mask > full {
		c.add(field+"_mask", "0x%x wider than %d bits", mask, width)
		ok = false
	}
	if !ok {
		return 0, 0
	}
	if mask == 0 {
		mask = full
	}
	return *val, mask
}

func (c *conv) mac(field, addr, mask string) flow.MaskedMAC {
	var m flow.MaskedMAC
	if addr == "" {
		if mask != "" {
			c.add(field+"_mask", "set without %s", field[strings.LastIndexByte(field, '.')+1:])
		}
		return m
	}
	a, err := parseMAC(addr)
	if err != nil {
		c.err(field, err)
		return m
	}
	m.Addr = a
	m.Mask = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if mask != "" {
		mk, err := parseMAC(mask)
		switch {
		case err != nil:
			c.err(field+"_mask", err)
			return flow.MaskedMAC{}
		case mk == [6]byte{}:
			c.add(field+"_mask", "an all-zero mask matches anything; leave %s unset instead", field[strings.LastIndexByte(field, '.')+1:])
			return flow.MaskedMAC{}
		}
		m.Mask = mk
	}
	return m
}

func (c *conv) prefix(field, s string, fam family) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	p, err := parsePrefix(s, fam)
	if err != nil {
		c.err(field, err)
		return netip.Prefix{}
	}
	return p
}

func (c *conv) addr(field, s string, fam family) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := parseAddr(s, fam)
	if err != nil {
		c.err(field, err)
		return netip.Addr{}
	}
	return a
}

func (c *conv) match(m *flow.Match, p *v1.Match) {
	m.EthSrc = c.mac("match.eth_src", p.GetEthSrc(), p.GetEthSrcMask())
	m.EthDst = c.mac("match.eth_dst", p.GetEthDst(), p.GetEthDstMask())
	if s := p.GetEthType(); s != "" {
		if v, err := parseEtherType(s); err != nil {
			c.err("match.eth_type", err)
		} else {
			m.EthType = v
		}
	}
	m.VLANID = optU16(c, "match.vlan_id", p.VlanId, 4095)
	m.VLANPrio = optU8(c, "match.vlan_prio", p.VlanPrio, 7)
	m.CVLANID = optU16(c, "match.cvlan_id", p.CvlanId, 4095)
	m.CVLANPrio = optU8(c, "match.cvlan_prio", p.CvlanPrio, 7)

	if p.GetIpv4Src() != "" && p.GetIpv6Src() != "" {
		c.add("match.ipv6_src", "set only one of ipv4_src and ipv6_src")
	} else if p.GetIpv6Src() != "" {
		m.IPSrc = c.prefix("match.ipv6_src", p.GetIpv6Src(), ipv6)
	} else {
		m.IPSrc = c.prefix("match.ipv4_src", p.GetIpv4Src(), ipv4)
	}
	if p.GetIpv4Dst() != "" && p.GetIpv6Dst() != "" {
		c.add("match.ipv6_dst", "set only one of ipv4_dst and ipv6_dst")
	} else if p.GetIpv6Dst() != "" {
		m.IPDst = c.prefix("match.ipv6_dst", p.GetIpv6Dst(), ipv6)
	} else {
		m.IPDst = c.prefix("match.ipv4_dst", p.GetIpv4Dst(), ipv4)
	}
	if s := p.GetIpProto(); s != "" {
		if v, err := parseIPProto(s); err != nil {
			c.err("match.ip_proto", err)
		} else {
			m.IPProto = v
		}
	}
	v, mk := c.masked("match.tos", p.Tos, p.GetTosMask(), 8)
	m.TOS = flow.Masked8{Value: uint8(v), Mask: uint8(mk)}
	v, mk = c.masked("match.ttl", p.Ttl, p.GetTtlMask(), 8)
	m.TTL = flow.Masked8{Value: uint8(v), Mask: uint8(mk)}
	v, mk = c.masked("match.src_port", p.SrcPort, p.GetSrcPortMask(), 16)
	m.SrcPort = flow.Masked16{Value: uint16(v), Mask: uint16(mk)}
	v, mk = c.masked("match.dst_port", p.DstPort, p.GetDstPortMask(), 16)
	m.DstPort = flow.Masked16{Value: uint16(v), Mask: uint16(mk)}
	v, mk = c.masked("match.tcp_flags", p.TcpFlags, p.GetTcpFlagsMask(), 12)
	m.TCPFlags = flow.Masked16{Value: uint16(v), Mask: uint16(mk)}
	m.ICMPType = optU8(c, "match.icmp_type", p.IcmpType, 255)
	m.ICMPCode = optU8(c, "match.icmp_code", p.IcmpCode, 255)
	if fl := p.GetIpFlags(); fl != nil {
		for _, b := range []struct {
			p   *bool
			bit uint32
		}{{fl.Frag, flow.FragIsFragment}, {fl.FirstFrag, flow.FragFirst}} {
			if b.p != nil {
				m.Frag.Mask |= b.bit
				if *b.p {
					m.Frag.Value |= b.bit
				}
			}
		}
	}
	if t := p.GetTunnel(); t != nil {
		if t.Vni != nil {
			m.TunID = flow.Some(*t.Vni)
		}
		m.TunSrc = c.prefix("match.tunnel.src", t.GetSrc(), anyFamily)
		m.TunDst = c.prefix("match.tunnel.dst", t.GetDst(), anyFamily)
		m.TunDstPort = optU16(c, "match.tunnel.dst_port", t.DstPort, math.MaxUint16)
	}
	if s := p.GetCtState(); s != "" {
		st, errs := parseCTState(s)
		for _, e := range errs {
			c.add("match.ct_state", "%s", e)
		}
		if len(errs) == 0 {
			m.CTState = st
		}
	}
	m.CTZone = optU16(c, "match.ct_zone", p.CtZone, math.MaxUint16)
	v, mk = c.masked("match.ct_mark", p.CtMark, p.GetCtMarkMask(), 32)
	m.CTMark = flow.Masked32{Value: v, Mask: mk}
}

func (c *conv) action(p *v1.Action) flow.Action {
	var a flow.Action
	switch x := p.GetAction().(type) {
	case *v1.Action_Drop:
		a.Kind = flow.ActDrop
	case *v1.Action_Accept:
		a.Kind = flow.ActAccept
	case *v1.Action_Redirect:
		a.Kind = flow.ActRedirect
		a.Port, a.Ingress = x.Redirect.GetPort(), x.Redirect.GetIngress()
	case *v1.Action_Mirror:
		a.Kind = flow.ActMirror
		a.Port, a.Ingress = x.Mirror.GetPort(), x.Mirror.GetIngress()
	case *v1.Action_VlanPush:
		a.Kind = flow.ActVLANPush
		q := x.VlanPush
		if id, ok := c.uint("vlan_push.id", q.GetId(), 4095); ok {
			a.VLAN.ID = uint16(id)
		}
		if pr, ok := c.uint("vlan_push.prio", q.GetPrio(), 7); ok {
			a.VLAN.Prio = uint8(pr)
		}
		if s := q.GetProto(); s != "" {
			if v, err := parseEtherType(s); err != nil {
				c.err("vlan_push.proto", err)
			} else {
				a.VLAN.Proto = v
			}
		}
	case *v1.Action_VlanPop:
		a.Kind = flow.ActVLANPop
	case *v1.Action_TunnelEncap:
		a.Kind = flow.ActTunnelEncap
		a.Encap = c.encap(x.TunnelEncap)
	case *v1.Action_TunnelDecap:
		a.Kind = flow.ActTunnelDecap
	case *v1.Action_Ct:
		a.Kind = flow.ActCT
		a.CT = c.ct(x.Ct)
	case *v1.Action_Goto:
		a.Kind = flow.ActGoto
		a.Chain = x.Goto.GetChain()
	case *v1.Action_Rewrite:
		a.Kind = flow.ActRewrite
		a.Rewrite = c.rewrite(x.Rewrite)
	case *v1.Action_Police:
		a.Kind = flow.ActPolice
		a.Police = c.police(x.Police)
	default:
		c.add("", "no action set; set exactly one of drop, accept, redirect, mirror, vlan_push, vlan_pop, tunnel_encap, tunnel_decap, ct, goto, rewrite, police")
	}
	return a
}

func (c *conv) encap(p *v1.TunnelEncap) *flow.TunnelEncap {
	e := &flow.TunnelEncap{
		VNI:    p.GetVni(),
		Src:    c.addr("tunnel_encap.src", p.GetSrc(), anyFamily),
		Dst:    c.addr("tunnel_encap.dst", p.GetDst(), anyFamily),
		NoCsum: p.GetNoCsum(),
	}
	if v, ok := c.uint("tunnel_encap.dst_port", p.GetDstPort(), math.MaxUint16); ok {
		e.DstPort = uint16(v)
	}
	if v, ok := c.uint("tunnel_encap.ttl", p.GetTtl(), 255); ok {
		e.TTL = uint8(v)
	}
	if v, ok := c.uint("tunnel_encap.tos", p.GetTos(), 255); ok {
		e.TOS = uint8(v)
	}
	return e
}

func (c *conv) ct(p *v1.Conntrack) *flow.CT {
	ct := &flow.CT{Commit: p.GetCommit(), Clear: p.GetClear()}
	if v, ok := c.uint("ct.zone", p.GetZone(), math.MaxUint16); ok {
		ct.Zone = uint16(v)
	}
	v, mk := c.masked("ct.mark", p.Mark, p.GetMarkMask(), 32)
	ct.Mark = flow.Masked32{Value: v, Mask: mk}
	if n := p.GetNat(); n != nil {
		switch n.GetKind() {
		case v1.NatKind_NAT_KIND_UNSPECIFIED:
			ct.NAT.Kind = flow.NATNone
		case v1.NatKind_NAT_KIND_SRC:
			ct.NAT.Kind = flow.NATSrc
		case v1.NatKind_NAT_KIND_DST:
			ct.NAT.Kind = flow.NATDst
		default:
			c.add("ct.nat.kind", "unknown NAT kind %d", int32(n.GetKind()))
		}
		ct.NAT.AddrMin = c.addr("ct.nat.addr_min", n.GetAddrMin(), anyFamily)
		ct.NAT.AddrMax = c.addr("ct.nat.addr_max", n.GetAddrMax(), anyFamily)
		if v, ok := c.uint("ct.nat.port_min", n.GetPortMin(), math.MaxUint16); ok {
			ct.NAT.PortMin = uint16(v)
		}
		if v, ok := c.uint("ct.nat.port_max", n.GetPortMax(), math.MaxUint16); ok {
			ct.NAT.PortMax = uint16(v)
		}
		if n.GetKind() == v1.NatKind_NAT_KIND_UNSPECIFIED && (n.GetAddrMin() != "" || n.GetAddrMax() != "" || n.GetPortMin() != 0 || n.GetPortMax() != 0) {
			c.add("ct.nat.kind", "a NAT range needs kind NAT_KIND_SRC or NAT_KIND_DST")
		}
	}
	return ct
}

func (c *conv) rewrite(p *v1.Rewrite) *flow.Rewrite {
	r := &flow.Rewrite{}
	var err error
	switch x := p.GetField().(type) {
	case *v1.Rewrite_EthSrc:
		r.Field = flow.RewriteEthSrc
		if r.MAC, err = parseMAC(x.EthSrc); err != nil {
			c.err("rewrite.eth_src", err)
		}
	case *v1.Rewrite_EthDst:
		r.Field = flow.RewriteEthDst
		if r.MAC, err = parseMAC(x.EthDst); err != nil {
			c.err("rewrite.eth_dst", err)
		}
	case *v1.Rewrite_Ipv4Src:
		r.Field, r.IP = flow.RewriteIPSrc, c.reqAddr("rewrite.ipv4_src", x.Ipv4Src, ipv4)
	case *v1.Rewrite_Ipv4Dst:
		r.Field, r.IP = flow.RewriteIPDst, c.reqAddr("rewrite.ipv4_dst", x.Ipv4Dst, ipv4)
	case *v1.Rewrite_Ipv6Src:
		r.Field, r.IP = flow.RewriteIPSrc, c.reqAddr("rewrite.ipv6_src", x.Ipv6Src, ipv6)
	case *v1.Rewrite_Ipv6Dst:
		r.Field, r.IP = flow.RewriteIPDst, c.reqAddr("rewrite.ipv6_dst", x.Ipv6Dst, ipv6)
	case *v1.Rewrite_TtlDec:
		r.Field = flow.RewriteTTLDec
		if !x.TtlDec {
			c.add("rewrite.ttl_dec", "must be true; set another field to rewrite something else")
		}
	case *v1.Rewrite_SrcPort:
		r.Field = flow.RewriteSrcPort
		if v, ok := c.uint("rewrite.src_port", x.SrcPort, math.MaxUint16); ok {
			r.Port = uint16(v)
		}
	case *v1.Rewrite_DstPort:
		r.Field = flow.RewriteDstPort
		if v, ok := c.uint("rewrite.dst_port", x.DstPort, math.MaxUint16); ok {
			r.Port = uint16(v)
		}
	default:
		c.add("rewrite", "no field set; set exactly one of eth_src, eth_dst, ipv4_src, ipv4_dst, ipv6_src, ipv6_dst, ttl_dec, src_port, dst_port")
		return nil
	}
	return r
}

// reqAddr parses a required address; an empty one is a violation. On
// failure it returns the unspecified address of fam, so that the flow
// keeps the family the client chose and validation does not report the
// address a second time.
func (c *conv) reqAddr(field, s string, fam family) netip.Addr {
	a := netip.Addr{}
	if s == "" {
		c.add(field, "an address is required")
	} else {
		a = c.addr(field, s, fam)
	}
	if !a.IsValid() {
		if fam == ipv6 {
			return netip.IPv6Unspecified()
		}
		return netip.IPv4Unspecified()
	}
	return a
}

func (c *conv) police(p *v1.Police) *flow.Police {
	pl := &flow.Police{
		RateBytes:   p.GetRateBytesPerSec(),
		RatePackets: p.GetRatePktsPerSec(),
		Burst:       p.GetBurst(),
	}
	verdict := func(field string, v v1.PoliceVerdict) flow.Verdict {
		if v < 0 || v > v1.PoliceVerdict_POLICE_VERDICT_CONTINUE {
			c.add(field, "unknown verdict %d", int32(v))
			return flow.VerdictDefault
		}
		// The wire enum and flow.Verdict share their numbering.
		return flow.Verdict(v)
	}
	pl.Conform = verdict("police.conform", p.GetConform())
	pl.Exceed = verdict("police.exceed", p.GetExceed())
	return pl
}

// FlowToProto converts a domain flow into its canonical wire form: bare
// addresses for host prefixes, names for known EtherTypes and IP
// protocols, masks omitted when exact.
func FlowToProto(f *flow.Flow) *v1.Flow {
	if f == nil {
		return nil
	}
	p := &v1.Flow{
		Id:       f.ID,
		Port:     f.Port,
		Chain:    f.Chain,
		Priority: uint32(f.Priority),
	}
	switch f.Policy {
	case flow.PolicyHardwareOnly:
		p.Policy = v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY
	case flow.PolicySoftwareOnly:
		p.Policy = v1.PlacementPolicy_PLACEMENT_POLICY_SOFTWARE_ONLY
	}
	if f.Match != (flow.Match{}) {
		p.Match = matchToProto(&f.Match)
	}
	for i := range f.Actions {
		p.Actions = append(p.Actions, actionToProto(&f.Actions[i]))
	}
	return p
}

func macToProto(m flow.MaskedMAC) (addr, mask string) {
	if !m.Set() {
		return "", ""
	}
	addr = formatMAC(m.Addr)
	if m.Mask != [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		mask = formatMAC(m.Mask)
	}
	return addr, mask
}

func optToProto[T uint8 | uint16 | uint32](o flow.Opt[T]) *uint32 {
	if !o.Set {
		return nil
	}
	return proto.Uint32(uint32(o.V))
}

// maskedToProto returns the value pointer and the mask, 0 when exact.
func maskedToProto(v, mask, full uint32) (*uint32, uint32) {
	if mask == 0 {
		return nil, 0
	}
	if mask == full {
		mask = 0
	}
	return proto.Uint32(v), mask
}

func matchToProto(m *flow.Match) *v1.Match {
	p := &v1.Match{}
	p.EthSrc, p.EthSrcMask = macToProto(m.EthSrc)
	p.EthDst, p.EthDstMask = macToProto(m.EthDst)
	if m.EthType != 0 {
		p.EthType = formatEtherType(m.EthType)
	}
	p.VlanId = optToProto(m.VLANID)
	p.VlanPrio = optToProto(m.VLANPrio)
	p.CvlanId = optToProto(m.CVLANID)
	p.CvlanPrio = optToProto(m.CVLANPrio)
	if m.IPSrc.IsValid() {
		if m.IPSrc.Addr().Is4() {
			p.Ipv4Src = formatPrefix(m.IPSrc)
		} else {
			p.Ipv6Src = formatPrefix(m.IPSrc)
		}
	}
	if m.IPDst.IsValid() {
		if m.IPDst.Addr().Is4() {
			p.Ipv4Dst = formatPrefix(m.IPDst)
		} else {
			p.Ipv6Dst = formatPrefix(m.IPDst)
		}
	}
	if m.IPProto != 0 {
		p.IpProto = formatIPProto(m.IPProto)
	}
	p.Tos, p.TosMask = maskedToProto(uint32(m.TOS.Value), uint32(m.TOS.Mask), 0xff)
	p.Ttl, p.TtlMask = maskedToProto(uint32(m.TTL.Value), uint32(m.TTL.Mask), 0xff)
	p.SrcPort, p.SrcPortMask = maskedToProto(uint32(m.SrcPort.Value), uint32(m.SrcPort.Mask), 0xffff)
	p.DstPort, p.DstPortMask = maskedToProto(uint32(m.DstPort.Value), uint32(m.DstPort.Mask), 0xffff)
	p.TcpFlags, p.TcpFlagsMask = maskedToProto(uint32(m.TCPFlags.Value), uint32(m.TCPFlags.Mask), 0xfff)
	p.IcmpType = optToProto(m.ICMPType)
	p.IcmpCode = optToProto(m.ICMPCode)
	if m.Frag.Set() {
		p.IpFlags = &v1.IPFlags{}
		if m.Frag.Mask&flow.FragIsFragment != 0 {
			p.IpFlags.Frag = proto.Bool(m.Frag.Value&flow.FragIsFragment != 0)
		}
		if m.Frag.Mask&flow.FragFirst != 0 {
			p.IpFlags.FirstFrag = proto.Bool(m.Frag.Value&flow.FragFirst != 0)
		}
	}
	if m.HasTunnelKeys() {
		p.Tunnel = &v1.TunnelMatch{
			Vni:     optToProto(m.TunID),
			Src:     formatPrefix(m.TunSrc),
			Dst:     formatPrefix(m.TunDst),
			DstPort: optToProto(m.TunDstPort),
		}
	}
	if m.CTState.Set() {
		p.CtState = formatCTState(m.CTState)
	}
	p.CtZone = optToProto(m.CTZone)
	p.CtMark, p.CtMarkMask = maskedToProto(m.CTMark.Value, m.CTMark.Mask, math.MaxUint32)
	return p
}

func actionToProto(a *flow.Action) *v1.Action {
	p := &v1.Action{}
	switch a.Kind {
	case flow.ActDrop:
		p.Action = &v1.Action_Drop{Drop: &v1.Drop{}}
	case flow.ActAccept:
		p.Action = &v1.Action_Accept{Accept: &v1.Accept{}}
	case flow.ActRedirect:
		p.Action = &v1.Action_Redirect{Redirect: &v1.Redirect{Port: a.Port, Ingress: a.Ingress}}
	case flow.ActMirror:
		p.Action = &v1.Action_Mirror{Mirror: &v1.Mirror{Port: a.Port, Ingress: a.Ingress}}
	case flow.ActVLANPush:
		q := &v1.VlanPush{Id: uint32(a.VLAN.ID), Prio: uint32(a.VLAN.Prio)}
		if a.VLAN.Proto != 0 {
			q.Proto = formatEtherType(a.VLAN.Proto)
		}
		p.Action = &v1.Action_VlanPush{VlanPush: q}
	case flow.ActVLANPop:
		p.Action = &v1.Action_VlanPop{VlanPop: &v1.VlanPop{}}
	case flow.ActTunnelEncap:
		e := &v1.TunnelEncap{}
		if x := a.Encap; x != nil {
			e = &v1.TunnelEncap{
				Vni: x.VNI, Src: formatAddr(x.Src), Dst: formatAddr(x.Dst),
				DstPort: uint32(x.DstPort), Ttl: uint32(x.TTL), Tos: uint32(x.TOS), NoCsum: x.NoCsum,
			}
		}
		p.Action = &v1.Action_TunnelEncap{TunnelEncap: e}
	case flow.ActTunnelDecap:
		p.Action = &v1.Action_TunnelDecap{TunnelDecap: &v1.TunnelDecap{}}
	case flow.ActCT:
		p.Action = &v1.Action_Ct{Ct: ctToProto(a.CT)}
	case flow.ActGoto:
		p.Action = &v1.Action_Goto{Goto: &v1.Goto{Chain: a.Chain}}
	case flow.ActRewrite:
		p.Action = &v1.Action_Rewrite{Rewrite: rewriteToProto(a.Rewrite)}
	case flow.ActPolice:
		pl := &v1.Police{}
		if x := a.Police; x != nil {
			pl = &v1.Police{
				RateBytesPerSec: x.RateBytes, RatePktsPerSec: x.RatePackets, Burst: x.Burst,
				Conform: v1.PoliceVerdict(x.Conform), Exceed: v1.PoliceVerdict(x.Exceed),
			}
		}
		p.Action = &v1.Action_Police{Police: pl}
	}
	return p
}

func ctToProto(ct *flow.CT) *v1.Conntrack {
	if ct == nil {
		return &v1.Conntrack{}
	}
	p := &v1.Conntrack{Zone: uint32(ct.Zone), Commit: ct.Commit, Clear: ct.Clear}
	p.Mark, p.MarkMask = maskedToProto(ct.Mark.Value, ct.Mark.Mask, math.MaxUint32)
	n := ct.NAT
	if n != (flow.NAT{}) {
		p.Nat = &v1.Nat{
			AddrMin: formatAddr(n.AddrMin), AddrMax: formatAddr(n.AddrMax),
			PortMin: uint32(n.PortMin), PortMax: uint32(n.PortMax),
		}
		switch n.Kind {
		case flow.NATSrc:
			p.Nat.Kind = v1.NatKind_NAT_KIND_SRC
		case flow.NATDst:
			p.Nat.Kind = v1.NatKind_NAT_KIND_DST
		}
	}
	return p
}

func rewriteToProto(r *flow.Rewrite) *v1.Rewrite {
	p := &v1.Rewrite{}
	if r == nil {
		return p
	}
	switch r.Field {
	case flow.RewriteEthSrc:
		p.Field = &v1.Rewrite_EthSrc{EthSrc: formatMAC(r.MAC)}
	case flow.RewriteEthDst:
		p.Field = &v1.Rewrite_EthDst{EthDst: formatMAC(r.MAC)}
	case flow.RewriteIPSrc:
		if r.IP.Is6() {
			p.Field = &v1.Rewrite_Ipv6Src{Ipv6Src: formatAddr(r.IP)}
		} else {
			p.Field = &v1.Rewrite_Ipv4Src{Ipv4Src: formatAddr(r.IP)}
		}
	case flow.RewriteIPDst:
		if r.IP.Is6() {
			p.Field = &v1.Rewrite_Ipv6Dst{Ipv6Dst: formatAddr(r.IP)}
		} else {
			p.Field = &v1.Rewrite_Ipv4Dst{Ipv4Dst: formatAddr(r.IP)}
		}
	case flow.RewriteTTLDec:
		p.Field = &v1.Rewrite_TtlDec{TtlDec: true}
	case flow.RewriteSrcPort:
		p.Field = &v1.Rewrite_SrcPort{SrcPort: uint32(r.Port)}
	case flow.RewriteDstPort:
		p.Field = &v1.Rewrite_DstPort{DstPort: uint32(r.Port)}
	}
	return p
}
