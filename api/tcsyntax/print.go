package tcsyntax

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// Print writes each flow as "# id: ID" and the tc command that creates it.
func Print(w io.Writer, flows []*v1.Flow) error {
	for _, f := range flows {
		s, err := Format(f)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "# id: %s\n%s\n", f.GetId(), s); err != nil {
			return err
		}
	}
	return nil
}

// Format returns the tc command that creates f:
//
//	tc filter add dev PORT ingress [chain N] prio P protocol X flower [skip_sw|skip_hw] MATCH… action …
//
// It fails on a flow whose fields do not parse (an unknown eth_type, an
// address that is not one), which the daemon never returns.
func Format(f *v1.Flow) (string, error) {
	s, err := formatRule(f)
	if err != nil {
		return "", fmt.Errorf("flow %q: %w", f.GetId(), err)
	}
	return s, nil
}

// FormatMatch returns the filter protocol (left out when all) and the
// flower keys of f, for one-line views of flows; "" when f matches every
// packet.
func FormatMatch(f *v1.Flow) (string, error) {
	var b builder
	if p := b.protocol(f.GetMatch()); p != "all" {
		b.w("protocol", p)
	}
	b.match(f.GetMatch())
	return b.String(), b.err
}

// FormatActions returns the actions of f as tc writes them, without the
// leading "action" of each.
func FormatActions(f *v1.Flow) (string, error) {
	var b builder
	b.actions(f, false)
	return b.String(), b.err
}

func formatRule(f *v1.Flow) (string, error) {
	var b builder
	b.w("tc filter add dev", f.GetPort(), "ingress")
	if f.GetChain() != 0 {
		b.w("chain", strconv.FormatUint(uint64(f.GetChain()), 10))
	}
	b.w("prio", strconv.FormatUint(uint64(f.GetPriority()), 10))
	b.w("protocol", b.protocol(f.GetMatch()), "flower")
	switch f.GetPolicy() {
	case v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY:
		b.w("skip_sw")
	case v1.PlacementPolicy_PLACEMENT_POLICY_SOFTWARE_ONLY:
		b.w("skip_hw")
	}
	b.match(f.GetMatch())
	b.actions(f, true)
	return b.String(), b.err
}

// builder joins words with spaces and keeps the first error.
type builder struct {
	strings.Builder
	err error
}

func (b *builder) w(words ...string) {
	for _, s := range words {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
}

func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

func (b *builder) ethType(s string) uint16 {
	if s == "" {
		return 0
	}
	v, err := parseEtherType(s)
	if err != nil {
		b.fail("eth_type: %v", err)
	}
	return v
}

func hasVLAN(m *v1.Match) bool  { return m != nil && (m.VlanId != nil || m.VlanPrio != nil) }
func hasCVLAN(m *v1.Match) bool { return m != nil && (m.CvlanId != nil || m.CvlanPrio != nil) }

// protocol is the filter protocol: 802.1ad with inner VLAN keys, 802.1Q
// with VLAN keys, else the EtherType (all for none).
func (b *builder) protocol(m *v1.Match) string {
	switch {
	case hasCVLAN(m):
		return "802.1ad"
	case hasVLAN(m):
		return "802.1Q"
	}
	return tcEtherType(b.ethType(m.GetEthType()))
}

func u(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// masked prints an exact value in decimal, a masked one as 0xV/0xM.
func masked(v, mask uint32) string {
	if mask == 0 {
		return u(v)
	}
	return fmt.Sprintf("0x%x/0x%x", v, mask)
}

func (b *builder) mac(key, addr, mask string) {
	if addr == "" {
		return
	}
	a, err := net.ParseMAC(addr)
	if err != nil {
		b.fail("%s: %q is not a MAC address", key, addr)
		return
	}
	s := a.String()
	if mask != "" {
		mk, err := net.ParseMAC(mask)
		if err != nil {
			b.fail("%s mask: %q is not a MAC address", key, mask)
			return
		}
		s += "/" + mk.String()
	}
	b.w(key, s)
}

func (b *builder) prefix(key, s string) {
	if s == "" {
		return
	}
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			b.fail("%s: %q is not a prefix", key, s)
			return
		}
	} else if _, err := netip.ParseAddr(s); err != nil {
		b.fail("%s: %q is not an address", key, s)
		return
	}
	b.w(key, s)
}

func (b *builder) match(m *v1.Match) {
	if m == nil {
		return
	}
	b.mac("dst_mac", m.GetEthDst(), m.GetEthDstMask())
	b.mac("src_mac", m.GetEthSrc(), m.GetEthSrcMask())
	vlan, cvlan := hasVLAN(m), hasCVLAN(m)
	if vlan || cvlan {
		if m.VlanId != nil {
			b.w("vlan_id", u(m.GetVlanId()))
		}
		if m.VlanPrio != nil {
			b.w("vlan_prio", u(m.GetVlanPrio()))
		}
		et := b.ethType(m.GetEthType())
		if cvlan {
			b.w("vlan_ethtype", "802.1Q")
			if m.CvlanId != nil {
				b.w("cvlan_id", u(m.GetCvlanId()))
			}
			if m.CvlanPrio != nil {
				b.w("cvlan_prio", u(m.GetCvlanPrio()))
			}
			if et != 0 {
				b.w("cvlan_ethtype", tcEtherType(et))
			}
		} else if et != 0 {
			b.w("vlan_ethtype", tcEtherType(et))
		}
	}
	if s := m.GetIpProto(); s != "" {
		v, err := ipProtoNumber(s, false)
		if err != nil {
			b.fail("ip_proto: %v", err)
		}
		b.w("ip_proto", tcIPProto(v))
	}
	b.prefix("src_ip", m.GetIpv4Src()+m.GetIpv6Src())
	b.prefix("dst_ip", m.GetIpv4Dst()+m.GetIpv6Dst())
	if m.Tos != nil {
		b.w("ip_tos", masked(m.GetTos(), m.GetTosMask()))
	}
	if m.Ttl != nil {
		b.w("ip_ttl", masked(m.GetTtl(), m.GetTtlMask()))
	}
	if m.SrcPort != nil {
		b.w("src_port", masked(m.GetSrcPort(), m.GetSrcPortMask()))
	}
	if m.DstPort != nil {
		b.w("dst_port", masked(m.GetDstPort(), m.GetDstPortMask()))
	}
	if m.TcpFlags != nil {
		mask := m.GetTcpFlagsMask()
		if mask == 0 {
			b.w("tcp_flags", fmt.Sprintf("0x%x", m.GetTcpFlags()))
		} else {
			b.w("tcp_flags", fmt.Sprintf("0x%x/0x%x", m.GetTcpFlags(), mask))
		}
	}
	if m.IcmpType != nil {
		b.w("type", u(m.GetIcmpType()))
	}
	if m.IcmpCode != nil {
		b.w("code", u(m.GetIcmpCode()))
	}
	if fl := m.GetIpFlags(); fl != nil && (fl.Frag != nil || fl.FirstFrag != nil) {
		var ws []string
		if fl.Frag != nil {
			ws = append(ws, map[bool]string{true: "frag", false: "nofrag"}[fl.GetFrag()])
		}
		if fl.FirstFrag != nil {
			ws = append(ws, map[bool]string{true: "firstfrag", false: "nofirstfrag"}[fl.GetFirstFrag()])
		}
		b.w("ip_flags", strings.Join(ws, "/"))
	}
	if t := m.GetTunnel(); t != nil {
		if t.Vni != nil {
			b.w("enc_key_id", u(t.GetVni()))
		}
		b.prefix("enc_src_ip", t.GetSrc())
		b.prefix("enc_dst_ip", t.GetDst())
		if t.DstPort != nil {
			b.w("enc_dst_port", u(t.GetDstPort()))
		}
	}
	if s := m.GetCtState(); s != "" {
		v, mk, err := parseCTState(s)
		if err != nil {
			b.fail("ct_state: %v", err)
		}
		b.w("ct_state", formatCTState(v, mk))
	}
	if m.CtZone != nil {
		b.w("ct_zone", u(m.GetCtZone()))
	}
	if m.CtMark != nil {
		b.w("ct_mark", masked(m.GetCtMark(), m.GetCtMarkMask()))
	}
}

func (b *builder) actions(f *v1.Flow, keyword bool) {
	for i, a := range f.GetActions() {
		if keyword {
			b.w("action")
		} else if i > 0 {
			b.WriteString(",")
		}
		b.action(f.GetMatch(), a)
	}
}

func (b *builder) action(m *v1.Match, a *v1.Action) {
	switch x := a.GetAction().(type) {
	case *v1.Action_Drop:
		b.w("drop")
	case *v1.Action_Accept:
		b.w("pass")
	case *v1.Action_Redirect:
		b.w("mirred", dir(x.Redirect.GetIngress()), "redirect dev", x.Redirect.GetPort())
	case *v1.Action_Mirror:
		b.w("mirred", dir(x.Mirror.GetIngress()), "mirror dev", x.Mirror.GetPort())
	case *v1.Action_VlanPush:
		q := x.VlanPush
		b.w("vlan push id", u(q.GetId()))
		if q.GetPrio() != 0 {
			b.w("priority", u(q.GetPrio()))
		}
		if et := b.ethType(q.GetProto()); et != 0 && et != ethP8021Q {
			b.w("protocol", tcEtherType(et))
		}
	case *v1.Action_VlanPop:
		b.w("vlan pop")
	case *v1.Action_TunnelEncap:
		e := x.TunnelEncap
		b.w("tunnel_key set")
		if e.GetSrc() != "" {
			b.w("src_ip", e.GetSrc())
		}
		if e.GetDst() != "" {
			b.w("dst_ip", e.GetDst())
		}
		b.w("id", u(e.GetVni()))
		if e.GetDstPort() != 0 {
			b.w("dst_port", u(e.GetDstPort()))
		}
		if e.GetTtl() != 0 {
			b.w("ttl", u(e.GetTtl()))
		}
		if e.GetTos() != 0 {
			b.w("tos", u(e.GetTos()))
		}
		if e.GetNoCsum() {
			b.w("nocsum")
		}
	case *v1.Action_TunnelDecap:
		b.w("tunnel_key unset")
	case *v1.Action_Ct:
		b.ct(x.Ct)
	case *v1.Action_Goto:
		b.w("goto chain", u(x.Goto.GetChain()))
	case *v1.Action_Rewrite:
		b.rewrite(m, x.Rewrite)
	case *v1.Action_Police:
		b.police(x.Police)
	default:
		b.fail("an action with nothing set")
	}
}

func dir(ingress bool) string {
	if ingress {
		return "ingress"
	}
	return "egress"
}

func (b *builder) ct(c *v1.Conntrack) {
	b.w("ct")
	if c.GetClear() {
		b.w("clear")
		return
	}
	if c.GetCommit() {
		b.w("commit")
	}
	if c.GetZone() != 0 {
		b.w("zone", u(c.GetZone()))
	}
	if c.Mark != nil {
		b.w("mark", masked(c.GetMark(), c.GetMarkMask()))
	}
	if n := c.GetNat(); n != nil {
		switch n.GetKind() {
		case v1.NatKind_NAT_KIND_SRC:
			b.w("nat src")
		case v1.NatKind_NAT_KIND_DST:
			b.w("nat dst")
		default:
			b.fail("ct nat without a kind")
			return
		}
		if n.GetAddrMin() != "" {
			s := n.GetAddrMin()
			if n.GetAddrMax() != "" {
				s += "-" + n.GetAddrMax()
			}
			b.w("addr", s)
		}
		if n.GetPortMin() != 0 || n.GetPortMax() != 0 {
			s := u(n.GetPortMin())
			if n.GetPortMax() != 0 {
				s += "-" + u(n.GetPortMax())
			}
			b.w("port", s)
		}
	}
	b.w("pipe")
}

// l4 is the match's transport protocol for csum: tcp, udp or "".
func l4(m *v1.Match) string {
	v, _ := ipProtoNumber(m.GetIpProto(), false)
	switch v {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return ""
}

// rewrite prints one pedit key and the csum the codec adds after it (see
// nic/linux/tcflower's doc).
func (b *builder) rewrite(m *v1.Match, r *v1.Rewrite) {
	var csum []string
	switch x := r.GetField().(type) {
	case *v1.Rewrite_EthSrc:
		b.w("pedit ex munge eth src set", x.EthSrc)
	case *v1.Rewrite_EthDst:
		b.w("pedit ex munge eth dst set", x.EthDst)
	case *v1.Rewrite_Ipv4Src:
		b.w("pedit ex munge ip src set", x.Ipv4Src)
		csum = []string{"ip4h"}
	case *v1.Rewrite_Ipv4Dst:
		b.w("pedit ex munge ip dst set", x.Ipv4Dst)
		csum = []string{"ip4h"}
	case *v1.Rewrite_Ipv6Src:
		b.w("pedit ex munge ip6 src set", x.Ipv6Src)
	case *v1.Rewrite_Ipv6Dst:
		b.w("pedit ex munge ip6 dst set", x.Ipv6Dst)
	case *v1.Rewrite_TtlDec:
		if b.ethType(m.GetEthType()) == ethPIPv6 {
			b.w("pedit ex munge ip6 hoplimit add 0xff")
		} else {
			b.w("pedit ex munge ip ttl add 0xff")
			csum = []string{"ip4h"}
		}
	case *v1.Rewrite_SrcPort, *v1.Rewrite_DstPort:
		proto := l4(m)
		if proto == "" {
			b.fail("a port rewrite needs ip_proto tcp or udp")
			return
		}
		if y, ok := x.(*v1.Rewrite_SrcPort); ok {
			b.w("pedit ex munge", proto, "sport set", u(y.SrcPort))
		} else {
			b.w("pedit ex munge", proto, "dport set", u(r.GetDstPort()))
		}
	default:
		b.fail("a rewrite with no field set")
		return
	}
	b.w("pipe")
	switch r.GetField().(type) {
	case *v1.Rewrite_Ipv4Src, *v1.Rewrite_Ipv4Dst, *v1.Rewrite_Ipv6Src, *v1.Rewrite_Ipv6Dst, *v1.Rewrite_SrcPort, *v1.Rewrite_DstPort:
		if p := l4(m); p != "" {
			csum = append(csum, p)
		}
	}
	if len(csum) > 0 {
		b.w("action csum", strings.Join(csum, " and "), "pipe")
	}
}

var verdictNames = map[v1.PoliceVerdict]string{
	v1.PoliceVerdict_POLICE_VERDICT_PIPE:     "pipe",
	v1.PoliceVerdict_POLICE_VERDICT_DROP:     "drop",
	v1.PoliceVerdict_POLICE_VERDICT_ACCEPT:   "pass",
	v1.PoliceVerdict_POLICE_VERDICT_CONTINUE: "continue",
}

func (b *builder) police(p *v1.Police) {
	b.w("police")
	if p.GetRatePktsPerSec() != 0 && p.GetRateBytesPerSec() == 0 {
		b.w("pkts_rate", strconv.FormatUint(p.GetRatePktsPerSec(), 10), "pkts_burst", u(p.GetBurst()))
	} else {
		b.w("rate", strconv.FormatUint(p.GetRateBytesPerSec(), 10)+"bps", "burst", u(p.GetBurst()))
	}
	ex, cf := p.GetExceed(), p.GetConform()
	if ex == v1.PoliceVerdict_POLICE_VERDICT_UNSPECIFIED {
		ex = v1.PoliceVerdict_POLICE_VERDICT_DROP
	}
	if cf == v1.PoliceVerdict_POLICE_VERDICT_UNSPECIFIED {
		cf = v1.PoliceVerdict_POLICE_VERDICT_PIPE
	}
	en, ok1 := verdictNames[ex]
	cn, ok2 := verdictNames[cf]
	if !ok1 || !ok2 {
		b.fail("unknown police verdict")
		return
	}
	b.w("conform-exceed", en+"/"+cn)
}
