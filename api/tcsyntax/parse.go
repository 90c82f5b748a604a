package tcsyntax

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/protobuf/proto"
)

// Op is what a rule asks tc to do.
type Op uint8

const (
	// OpAdd is tc filter add: create the flow.
	OpAdd Op = iota + 1
	// OpReplace is tc filter replace: create or replace it.
	OpReplace
	// OpDelete is tc filter del: remove it.
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpAdd:
		return "add"
	case OpReplace:
		return "replace"
	case OpDelete:
		return "del"
	}
	return "unknown"
}

// Rule is one tc command of the input.
type Rule struct {
	Op   Op
	Line int // where the rule starts
	Flow *v1.Flow
}

// Parse reads tc filter commands, one a line (backslash continues a line,
// # starts a comment), and returns their flows. The error is an ErrorList
// with the first error of every bad rule, or a read error.
func Parse(r io.Reader) ([]Rule, error) {
	ls, err := split(r)
	var errs ErrorList
	if err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	out := make([]Rule, 0, len(ls))
	ids := map[string]int{}
	for _, l := range ls {
		p := &parser{toks: l.toks}
		rule, perr := p.rule()
		if perr != nil {
			errs = append(errs, perr)
			continue
		}
		id := l.id
		if id == "" {
			id = derivedID(l.toks)
		}
		rule.Flow.Id = id
		if prev, ok := ids[id]; ok {
			line := l.idLine
			if line == 0 {
				line = l.toks[0].line
			}
			errs = append(errs, &Error{Line: line, Col: 1, Token: id, Msg: fmt.Sprintf("id already used by the rule on line %d", prev)})
			continue
		}
		ids[id] = l.toks[0].line
		out = append(out, rule)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return out, errs
	}
	return out, nil
}

// ParseString parses s; see Parse.
func ParseString(s string) ([]Rule, error) { return Parse(strings.NewReader(s)) }

func sortErrors(errs ErrorList) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Line < errs[j-1].Line; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// parser reads one rule's tokens.
type parser struct {
	toks []token
	i    int
	end  token // where the rule ends, for errors about missing words
}

func (p *parser) more() bool { return p.i < len(p.toks) }

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i].s
	}
	return ""
}

func (p *parser) next() token {
	t := p.toks[p.i]
	p.i++
	return t
}

func (p *parser) errf(t token, format string, args ...any) *Error {
	return &Error{Line: t.line, Col: t.col, Token: t.s, Msg: fmt.Sprintf(format, args...)}
}

// arg returns the word after keyword kw.
func (p *parser) arg(kw token, what string) (token, *Error) {
	if !p.more() {
		last := p.toks[len(p.toks)-1]
		return token{}, &Error{Line: last.line, Col: last.col + len(last.s), Msg: fmt.Sprintf("%s needs %s", kw.s, what)}
	}
	return p.next(), nil
}

// rule parses: [tc] filter add|replace|del dev D [ingress] [chain N]
// [prio P] [handle H] [protocol X] flower [skip_sw|skip_hw] MATCH… ACTION…
func (p *parser) rule() (Rule, *Error) {
	var r Rule
	if p.peek() == "tc" {
		p.next()
	}
	if strings.HasPrefix(p.peek(), "-") {
		t := p.next()
		return r, p.errf(t, "tc options are not supported: offloadd manages the filters of its own node's network namespace, one command at a time")
	}
	if !p.more() {
		return r, p.errf(p.toks[len(p.toks)-1], "want filter")
	}
	t := p.next()
	if t.s != "filter" {
		msg := "want filter: only tc filter commands describe flows"
		if s := suggest(t.s, []string{"filter"}); s != "" {
			msg = "unknown tc object; did you mean filter?"
		}
		return r, p.errf(t, "%s", msg)
	}
	r.Line = t.line
	t, err := p.arg(t, "add, replace or del")
	if err != nil {
		return r, err
	}
	switch t.s {
	case "add":
		r.Op = OpAdd
	case "replace":
		r.Op = OpReplace
	case "del", "delete":
		r.Op = OpDelete
	case "change", "show", "list", "get":
		return r, p.errf(t, "not supported; use add, replace or del")
	default:
		return r, p.errf(t, "want add, replace or del")
	}
	f := &v1.Flow{}
	r.Flow = f
	var (
		protoTok token
		haveDev  bool
		seen     = map[string]bool{}
	)
	for p.more() && p.peek() != "flower" {
		t := p.next()
		if seen[t.s] {
			return r, p.errf(t, "given twice")
		}
		seen[t.s] = true
		switch t.s {
		case "dev":
			v, err := p.arg(t, "a device name")
			if err != nil {
				return r, err
			}
			f.Port, haveDev = v.s, true
		case "ingress":
		case "parent":
			v, err := p.arg(t, "a qdisc handle")
			if err != nil {
				return r, err
			}
			if v.s != "ffff:" && v.s != "ffff:fff1" {
				return r, p.errf(v, "only the ingress hook (parent ffff:) holds offloadd flows")
			}
		case "egress":
			return r, p.errf(t, "offloadd flows match where packets enter a port; egress filters cannot be expressed")
		case "block":
			return r, p.errf(t, "shared blocks are not supported; name the port with dev")
		case "chain":
			_, n, err := p.number(t, 32)
			if err != nil {
				return r, err
			}
			f.Chain = uint32(n)
		case "prio", "pref", "priority":
			v, n, err := p.number(t, 16)
			if err != nil {
				return r, err
			}
			if n == 0 {
				return r, p.errf(v, "prio must be between 1 and 65535")
			}
			f.Priority = uint32(n)
		case "handle":
			// offloadd picks handles itself; one given here is checked
			// and otherwise does not change the flow.
			if _, _, err := p.number(t, 32); err != nil {
				return r, err
			}
		case "protocol":
			v, err := p.arg(t, "a protocol")
			if err != nil {
				return r, err
			}
			protoTok = v
		default:
			msg := "unknown filter option"
			if s := suggest(t.s, []string{"dev", "ingress", "chain", "prio", "pref", "handle", "protocol", "flower"}); s != "" {
				msg += "; did you mean " + s + "?"
			} else if !seen["flower"] {
				msg += "; offloadd reads flower filters only"
			}
			return r, p.errf(t, "%s", msg)
		}
	}
	if !haveDev {
		return r, p.errf(p.toks[0], "no dev: name the port the flow matches on with dev")
	}
	if r.Op == OpDelete && !p.more() {
		return r, nil
	}
	if !p.more() {
		last := p.toks[len(p.toks)-1]
		return r, &Error{Line: last.line, Col: last.col + len(last.s), Msg: "no flower: offloadd reads flower filters only"}
	}
	p.next() // flower
	if f.Priority == 0 {
		return r, p.errf(p.toks[0], "no prio: offloadd orders flows by it; give prio 1 to 65535")
	}
	m := &matcher{p: p, f: f, seen: map[string]token{}}
	if err := m.keys(); err != nil {
		return r, err
	}
	if err := m.protocol(protoTok); err != nil {
		return r, err
	}
	if f.Match != nil && proto.Equal(f.Match, &v1.Match{}) {
		f.Match = nil
	}
	for p.more() {
		if err := p.action(f); err != nil {
			return r, err
		}
	}
	return r, nil
}

// number parses the value after kw as an unsigned integer of bits bits
// (decimal or 0x-hex).
func (p *parser) number(kw token, bits int) (token, uint64, *Error) {
	v, err := p.arg(kw, "a number")
	if err != nil {
		return v, 0, err
	}
	n, perr := parseUint(v.s, bits)
	if perr != nil {
		return v, 0, p.errf(v, "%s %v", kw.s, perr)
	}
	return v, n, nil
}

// parseUint parses decimal or 0x-hex text; a leading zero (octal to C's
// strtoul) is refused so that 010 never means 8.
func parseUint(s string, bits int) (uint64, error) {
	if len(s) > 1 && s[0] == '0' && s[1] != 'x' && s[1] != 'X' {
		return 0, errors.New("has a leading zero, which tc reads as octal; write decimal or 0x-hex")
	}
	if strings.ContainsRune(s, '_') || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, errors.New("is not a number")
	}
	n, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("is more than %d bits", bits)
		}
		return 0, errors.New("is not a number")
	}
	return n, nil
}

// parseMasked parses VALUE[/MASK] of bits bits and returns the value and
// the wire mask: 0 when exact (no mask or an all-ones one).
func parseMasked(s string, bits int) (uint32, uint32, error) {
	vs, ms, hasMask := strings.Cut(s, "/")
	v, err := parseUint(vs, bits)
	if err != nil {
		return 0, 0, fmt.Errorf("value %s", err)
	}
	if !hasMask {
		return uint32(v), 0, nil
	}
	mk, err := parseUint(ms, bits)
	if err != nil {
		return 0, 0, fmt.Errorf("mask %s", err)
	}
	full := uint64(1)<<bits - 1
	switch mk {
	case 0:
		return 0, 0, errors.New("a zero mask matches anything; leave the key out")
	case full:
		mk = 0
	}
	return uint32(v), uint32(mk), nil
}

// matcher parses flower keys into f.Match.
type matcher struct {
	p    *parser
	f    *v1.Flow
	seen map[string]token
	// vlanEth and cvlanEth are vlan_ethtype and cvlan_ethtype as given.
	vlanEth, cvlanEth token
}

var flowerKeys = []string{
	"skip_sw", "skip_hw", "src_mac", "dst_mac", "vlan_id", "vlan_prio", "vlan_ethtype",
	"cvlan_id", "cvlan_prio", "cvlan_ethtype", "ip_proto", "src_ip", "dst_ip", "ip_tos", "ip_ttl",
	"src_port", "dst_port", "tcp_flags", "type", "code", "ip_flags", "enc_key_id", "enc_src_ip",
	"enc_dst_ip", "enc_dst_port", "ct_state", "ct_zone", "ct_mark", "action",
}

// unexpressible are flower keys iproute2 knows and offloadd's model does
// not hold.
var unexpressible = map[string]string{
	"indev":        "the model matches the port the filter sits on (dev), not another input device",
	"mpls_label":   "the model has no MPLS keys",
	"mpls_tc":      "the model has no MPLS keys",
	"mpls_bos":     "the model has no MPLS keys",
	"mpls_ttl":     "the model has no MPLS keys",
	"mpls":         "the model has no MPLS keys",
	"arp_tip":      "the model has no ARP keys",
	"arp_sip":      "the model has no ARP keys",
	"arp_op":       "the model has no ARP keys",
	"arp_tha":      "the model has no ARP keys",
	"arp_sha":      "the model has no ARP keys",
	"enc_tos":      "the model has no outer TOS key",
	"enc_ttl":      "the model has no outer TTL key",
	"enc_src_port": "the model has no outer source port key",
	"geneve_opts":  "the model has no Geneve options",
	"vxlan_opts":   "the model has no VXLAN options",
	"erspan_opts":  "the model has no ERSPAN options",
	"gtp_opts":     "the model has no GTP options",
	"ct_label":     "the model has no conntrack label key",
	"l2_miss":      "the model has no l2_miss key",
	"num_of_vlans": "the model has no num_of_vlans key",
	"pppoe_sid":    "the model has no PPPoE keys",
	"ppp_proto":    "the model has no PPPoE keys",
	"l2tpv3_sid":   "the model has no L2TPv3 key",
	"cfm":          "the model has no CFM keys",
	"spi":          "the model has no IPsec SPI key",
	"classid":      "flows act with actions, not classes",
	"flowid":       "flows act with actions, not classes",
	"hw_tc":        "flows act with actions, not traffic classes",
	"verbose":      "not a property of a flow",
	"enc_flags":    "the model has no tunnel flags key",
}

func (m *matcher) match() *v1.Match {
	if m.f.Match == nil {
		m.f.Match = &v1.Match{}
	}
	return m.f.Match
}

// keys reads flower options and keys up to the first action.
func (m *matcher) keys() *Error {
	p := m.p
	for p.more() && p.peek() != "action" {
		t := p.next()
		if prev, ok := m.seen[t.s]; ok {
			return p.errf(t, "given twice (first at col %d)", prev.col)
		}
		m.seen[t.s] = t
		if err := m.key(t); err != nil {
			return err
		}
	}
	if m.seen["type"].s != "" || m.seen["code"].s != "" {
		switch m.match().GetIpProto() {
		case "icmp", "icmpv6":
		default:
			t := m.seen["type"]
			if t.s == "" {
				t = m.seen["code"]
			}
			return p.errf(t, "needs ip_proto icmp or icmpv6")
		}
	}
	return nil
}

func (m *matcher) key(t token) *Error {
	p := m.p
	switch t.s {
	case "skip_sw", "skip_hw":
		other := "skip_hw"
		pol := v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY
		if t.s == "skip_hw" {
			other, pol = "skip_sw", v1.PlacementPolicy_PLACEMENT_POLICY_SOFTWARE_ONLY
		}
		if _, ok := m.seen[other]; ok {
			return p.errf(t, "with %s the flow could run nowhere", other)
		}
		m.f.Policy = pol
		return nil
	case "action":
		return nil
	}
	if !slices.Contains(flowerKeys, t.s) {
		if why, ok := unexpressible[t.s]; ok {
			return p.errf(t, "cannot be expressed: %s", why)
		}
		msg := "unknown flower key"
		if s := suggest(t.s, flowerKeys); s != "" {
			msg += "; did you mean " + s + "?"
		}
		return p.errf(t, "%s", msg)
	}
	v, err := p.arg(t, "a value")
	if err != nil {
		return err
	}
	mt := m.match()
	bad := func(format string, args ...any) *Error {
		return p.errf(v, "%s "+format, append([]any{t.s}, args...)...)
	}
	switch t.s {
	case "src_mac", "dst_mac":
		addr, mask, e := parseMaskedMAC(v.s)
		if e != nil {
			return bad("%v", e)
		}
		if t.s == "src_mac" {
			mt.EthSrc, mt.EthSrcMask = addr, mask
		} else {
			mt.EthDst, mt.EthDstMask = addr, mask
		}
	case "vlan_id", "cvlan_id":
		n, e := parseUint(v.s, 16)
		if e != nil || n > 4095 {
			return bad("must be 0 to 4095")
		}
		if t.s == "vlan_id" {
			mt.VlanId = proto.Uint32(uint32(n))
		} else {
			mt.CvlanId = proto.Uint32(uint32(n))
		}
	case "vlan_prio", "cvlan_prio":
		n, e := parseUint(v.s, 8)
		if e != nil || n > 7 {
			return bad("must be 0 to 7")
		}
		if t.s == "vlan_prio" {
			mt.VlanPrio = proto.Uint32(uint32(n))
		} else {
			mt.CvlanPrio = proto.Uint32(uint32(n))
		}
	case "vlan_ethtype":
		m.vlanEth = v
	case "cvlan_ethtype":
		m.cvlanEth = v
	case "ip_proto":
		name, e := parseIPProto(v.s)
		if e != nil {
			return bad("%v", e)
		}
		mt.IpProto = name
	case "src_ip", "dst_ip":
		pfx, e := parsePrefix(v.s)
		if e != nil {
			return bad("%v", e)
		}
		s := formatPrefix(pfx)
		switch {
		case t.s == "src_ip" && pfx.Addr().Is4():
			mt.Ipv4Src = s
		case t.s == "src_ip":
			mt.Ipv6Src = s
		case pfx.Addr().Is4():
			mt.Ipv4Dst = s
		default:
			mt.Ipv6Dst = s
		}
	case "ip_tos", "ip_ttl":
		val, mask, e := parseMasked(v.s, 8)
		if e != nil {
			return bad("%v", e)
		}
		if t.s == "ip_tos" {
			mt.Tos, mt.TosMask = proto.Uint32(val), mask
		} else {
			mt.Ttl, mt.TtlMask = proto.Uint32(val), mask
		}
	case "src_port", "dst_port":
		if strings.Contains(v.s, "-") {
			return bad("port ranges cannot be expressed: the model matches a port under a mask (e.g. 0x50/0xfff0)")
		}
		val, mask, e := parseMasked(v.s, 16)
		if e != nil {
			return bad("%v", e)
		}
		if t.s == "src_port" {
			mt.SrcPort, mt.SrcPortMask = proto.Uint32(val), mask
		} else {
			mt.DstPort, mt.DstPortMask = proto.Uint32(val), mask
		}
	case "tcp_flags":
		val, mask, e := parseMasked(v.s, 12)
		if e != nil {
			return bad("%v", e)
		}
		mt.TcpFlags, mt.TcpFlagsMask = proto.Uint32(val), mask
	case "type", "code":
		n, e := parseUint(v.s, 8)
		if e != nil {
			return bad("must be 0 to 255")
		}
		if t.s == "type" {
			mt.IcmpType = proto.Uint32(uint32(n))
		} else {
			mt.IcmpCode = proto.Uint32(uint32(n))
		}
	case "ip_flags":
		fl := &v1.IPFlags{}
		for _, w := range strings.Split(v.s, "/") {
			var (
				dst **bool
				val bool
			)
			switch w {
			case "frag":
				dst, val = &fl.Frag, true
			case "nofrag":
				dst, val = &fl.Frag, false
			case "firstfrag":
				dst, val = &fl.FirstFrag, true
			case "nofirstfrag":
				dst, val = &fl.FirstFrag, false
			default:
				return bad("flag %q: want frag, nofrag, firstfrag or nofirstfrag, joined by /", w)
			}
			if *dst != nil {
				return bad("flag %q given twice", w)
			}
			*dst = proto.Bool(val)
		}
		mt.IpFlags = fl
	case "enc_key_id":
		n, e := parseUint(v.s, 32)
		if e != nil {
			return bad("%v", e)
		}
		m.tunnel().Vni = proto.Uint32(uint32(n))
	case "enc_src_ip", "enc_dst_ip":
		pfx, e := parsePrefix(v.s)
		if e != nil {
			return bad("%v", e)
		}
		if t.s == "enc_src_ip" {
			m.tunnel().Src = formatPrefix(pfx)
		} else {
			m.tunnel().Dst = formatPrefix(pfx)
		}
	case "enc_dst_port":
		n, e := parseUint(v.s, 16)
		if e != nil {
			return bad("%v", e)
		}
		m.tunnel().DstPort = proto.Uint32(uint32(n))
	case "ct_state":
		val, mask, e := parseCTState(v.s)
		if e != nil {
			return bad("%v", e)
		}
		mt.CtState = formatCTState(val, mask)
	case "ct_zone":
		n, e := parseUint(v.s, 16)
		if e != nil {
			return bad("%v", e)
		}
		mt.CtZone = proto.Uint32(uint32(n))
	case "ct_mark":
		val, mask, e := parseMasked(v.s, 32)
		if e != nil {
			return bad("%v", e)
		}
		mt.CtMark, mt.CtMarkMask = proto.Uint32(val), mask
	default:
		return p.errf(t, "no parser for this key") // flowerKeys and this switch disagree
	}
	return nil
}

func (m *matcher) tunnel() *v1.TunnelMatch {
	mt := m.match()
	if mt.Tunnel == nil {
		mt.Tunnel = &v1.TunnelMatch{}
	}
	return mt.Tunnel
}

// protocol sets the match's eth_type from the filter protocol and the
// VLAN keys, as nic/linux/tcflower.Protocol chooses the protocol: 802.1Q
// with VLAN keys (vlan_ethtype the EthType), 802.1ad with inner VLAN keys
// (vlan_ethtype 802.1Q, cvlan_ethtype the EthType).
func (m *matcher) protocol(pt token) *Error {
	p := m.p
	mt := m.f.Match
	has := func(k string) bool { _, ok := m.seen[k]; return ok }
	vlan := has("vlan_id") || has("vlan_prio")
	cvlan := has("cvlan_id") || has("cvlan_prio")
	et := uint16(0)
	if pt.s != "" {
		v, err := parseEtherType(pt.s)
		if err != nil {
			return p.errf(pt, "protocol %v", err)
		}
		et = v
	}
	ethType := func(t token) (string, *Error) {
		v, err := parseEtherType(t.s)
		if err != nil {
			return "", p.errf(t, "%v", err)
		}
		if v == 0 {
			return "", nil
		}
		return formatEtherType(v), nil
	}
	where := pt
	if where.s == "" {
		where = p.toks[0]
	}
	switch et {
	case ethP8021Q:
		if cvlan {
			return p.errf(m.seen[firstOf(m.seen, "cvlan_id", "cvlan_prio")], "inner VLAN keys need protocol 802.1ad")
		}
		if m.cvlanEth.s != "" {
			return p.errf(m.cvlanEth, "needs protocol 802.1ad")
		}
		switch {
		case vlan && m.vlanEth.s != "":
			s, err := ethType(m.vlanEth)
			if err != nil {
				return err
			}
			m.match().EthType = s
		case !vlan && m.vlanEth.s != "":
			return p.errf(m.vlanEth, "without vlan_id or vlan_prio cannot be expressed: the model matches inside a VLAN tag only with one of them")
		case !vlan:
			m.match().EthType = "802.1q"
		}
	case ethP8021AD:
		switch {
		case cvlan && !vlan:
			return p.errf(m.seen[firstOf(m.seen, "cvlan_id", "cvlan_prio")], "needs vlan_id or vlan_prio for the outer tag")
		case vlan && !cvlan:
			return p.errf(where, "protocol 802.1ad with only outer VLAN keys cannot be expressed: the model uses 802.1ad for QinQ (cvlan_id or cvlan_prio) only; use protocol 802.1Q")
		case cvlan:
			if m.vlanEth.s != "" {
				v, err := parseEtherType(m.vlanEth.s)
				if err != nil {
					return p.errf(m.vlanEth, "%v", err)
				}
				if v != ethP8021Q {
					return p.errf(m.vlanEth, "the inner tag of a QinQ match must be 802.1Q")
				}
			}
			if m.cvlanEth.s != "" {
				s, err := ethType(m.cvlanEth)
				if err != nil {
					return err
				}
				m.match().EthType = s
			}
		default:
			if m.vlanEth.s != "" {
				return p.errf(m.vlanEth, "without vlan_id or vlan_prio cannot be expressed: the model matches inside a VLAN tag only with one of them")
			}
			m.match().EthType = "802.1ad"
		}
	default:
		for _, k := range []string{"vlan_id", "vlan_prio", "vlan_ethtype", "cvlan_id", "cvlan_prio", "cvlan_ethtype"} {
			if t, ok := m.seen[k]; ok {
				return p.errf(t, "needs protocol 802.1Q (or 802.1ad for QinQ)")
			}
		}
		if et != 0 {
			m.match().EthType = formatEtherType(et)
		}
	}
	// IP keys must agree with the protocol's family.
	if mt != nil {
		fam := m.f.Match.GetEthType()
		for _, k := range []string{"src_ip", "dst_ip"} {
			t, ok := m.seen[k]
			if !ok {
				continue
			}
			v := p.toks[indexOf(p.toks, t)+1]
			pfx, _ := parsePrefix(v.s)
			switch {
			case fam == "ipv4" && !pfx.Addr().Is4(), fam == "ipv6" && !pfx.Addr().Is6():
				return p.errf(v, "%s family does not match protocol %s", k, pt.s)
			case fam != "ipv4" && fam != "ipv6":
				return p.errf(t, "needs protocol ip or ipv6 (or vlan_ethtype ip or ipv6 under 802.1Q)")
			}
		}
	}
	return nil
}

func firstOf(seen map[string]token, keys ...string) string {
	for _, k := range keys {
		if _, ok := seen[k]; ok {
			return k
		}
	}
	return ""
}

func indexOf(toks []token, t token) int {
	for i, x := range toks {
		if x == t {
			return i
		}
	}
	return -1
}

// parseMaskedMAC parses MAC, MAC/MASK or MAC/LEN into the wire strings;
// the mask is "" when exact.
func parseMaskedMAC(s string) (string, string, error) {
	as, ms, hasMask := strings.Cut(s, "/")
	a, err := net.ParseMAC(as)
	if err != nil || len(a) != 6 {
		return "", "", fmt.Errorf("%q is not a MAC address", as)
	}
	if !hasMask {
		return a.String(), "", nil
	}
	var mk net.HardwareAddr
	if n, err := strconv.Atoi(ms); err == nil && strconv.Itoa(n) == ms {
		if n < 1 || n > 48 {
			return "", "", fmt.Errorf("prefix length %d: want 1 to 48", n)
		}
		mk = make(net.HardwareAddr, 6)
		for i := range n {
			mk[i/8] |= 0x80 >> (i % 8)
		}
	} else if mk, err = net.ParseMAC(ms); err != nil || len(mk) != 6 {
		return "", "", fmt.Errorf("mask %q is neither a MAC nor a prefix length", ms)
	}
	switch mk.String() {
	case "00:00:00:00:00:00":
		return "", "", errors.New("a zero mask matches anything; leave the key out")
	case "ff:ff:ff:ff:ff:ff":
		return a.String(), "", nil
	}
	return a.String(), mk.String(), nil
}

// parsePrefix parses an address or prefix; host bits must be clear, as
// the daemon would otherwise match a different network than written.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a prefix", s)
	}
	if pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: write IPv4 as IPv4, without a zone", s)
	}
	if pfx.Masked() != pfx {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, pfx.Masked())
	}
	return pfx, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write it as IPv4", s)
	}
	return a, nil
}

// formatPrefix prints a host prefix as a bare address, as the daemon does.
func formatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
