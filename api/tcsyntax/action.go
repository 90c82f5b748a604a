package tcsyntax

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/protobuf/proto"
)

var actionKinds = []string{"drop", "pass", "ok", "gact", "mirred", "vlan", "tunnel_key", "ct", "goto", "pedit", "police", "csum"}

// action parses "action KIND ARGS… [pipe]" and appends it to f.
func (p *parser) action(f *v1.Flow) *Error {
	kw := p.next()
	if kw.s != "action" {
		msg := "want action"
		if s := suggest(kw.s, append(flowerKeys, "action")); s != "" && s != "action" {
			msg = "flower keys come before the first action; did you mean " + s + "?"
		}
		return p.errf(kw, "%s", msg)
	}
	t, err := p.arg(kw, "an action: drop, pass, mirred, vlan, tunnel_key, ct, goto, pedit or police")
	if err != nil {
		return err
	}
	if t.s == "gact" {
		if t, err = p.arg(t, "drop or pass"); err != nil {
			return err
		}
	}
	a := &v1.Action{}
	switch t.s {
	case "drop", "shot":
		a.Action = &v1.Action_Drop{Drop: &v1.Drop{}}
	case "pass", "ok":
		a.Action = &v1.Action_Accept{Accept: &v1.Accept{}}
	case "mirred":
		err = p.mirred(t, a)
	case "vlan":
		err = p.vlan(t, a)
	case "tunnel_key":
		err = p.tunnelKey(t, a)
	case "ct":
		err = p.ct(t, a)
	case "goto":
		c, e := p.arg(t, "chain N")
		if e != nil {
			return e
		}
		if c.s != "chain" {
			return p.errf(c, "want chain N")
		}
		_, n, e := p.number(c, 32)
		if e != nil {
			return e
		}
		a.Action = &v1.Action_Goto{Goto: &v1.Goto{Chain: uint32(n)}}
	case "pedit":
		err = p.pedit(t, a, f.GetMatch())
	case "police":
		err = p.police(t, a)
	case "csum":
		return p.errf(t, "csum only after a pedit: offloadd fixes checksums of the field a pedit rewrites")
	case "reclassify", "continue", "trap", "jump", "sample", "skbedit", "nat", "connmark", "mpls", "skbmod", "tunnel", "bpf", "simple", "xt", "ife", "gate", "mirror", "redirect":
		return p.errf(t, "action cannot be expressed in offloadd's flow model")
	default:
		msg := "unknown action"
		if s := suggest(t.s, actionKinds); s != "" {
			msg += "; did you mean " + s + "?"
		}
		return p.errf(t, "%s", msg)
	}
	if err != nil {
		return err
	}
	f.Actions = append(f.Actions, a)
	return p.control(a)
}

// control reads what may follow an action's arguments: pipe (offloadd's
// only control between actions) and, after a pedit, the csum action that
// fixes the checksums it breaks.
func (p *parser) control(a *v1.Action) *Error {
	if p.peek() == "pipe" {
		p.next()
	}
	if _, ok := a.Action.(*v1.Action_Rewrite); ok && p.peek() == "action" && p.i+1 < len(p.toks) && p.toks[p.i+1].s == "csum" {
		p.i += 2
		n := 0
		for p.more() && p.peek() != "action" && p.peek() != "pipe" {
			t := p.next()
			switch t.s {
			case "ip4h", "iph", "ip", "tcp", "udp", "sctp", "icmp", "igmp", "udplite", "and":
				n++
			default:
				return p.errf(t, "want csum targets: iph, tcp, udp, joined by and")
			}
		}
		if n == 0 {
			return p.errf(p.toks[p.i-1], "csum needs what to fix: iph, tcp or udp")
		}
		if p.peek() == "pipe" {
			p.next()
		}
	}
	if p.more() && p.peek() != "action" {
		t := p.next()
		switch t.s {
		case "index", "cookie", "no_percpu", "hw_stats", "skip_hw", "skip_sw", "continue", "reclassify", "drop", "pass", "ok", "jump", "goto":
			return p.errf(t, "cannot be expressed: offloadd gives its own cookies and indexes, and chains actions with pipe only")
		}
		return p.errf(t, "unexpected after the action; want the next action")
	}
	return nil
}

func (p *parser) mirred(kw token, a *v1.Action) *Error {
	dir, err := p.arg(kw, "egress or ingress")
	if err != nil {
		return err
	}
	if dir.s != "egress" && dir.s != "ingress" {
		return p.errf(dir, "want egress or ingress")
	}
	what, err := p.arg(dir, "redirect or mirror")
	if err != nil {
		return err
	}
	if what.s != "redirect" && what.s != "mirror" {
		return p.errf(what, "want redirect or mirror")
	}
	dev, err := p.arg(what, "dev DEVICE")
	if err != nil {
		return err
	}
	if dev.s != "dev" {
		return p.errf(dev, "want dev DEVICE")
	}
	port, err := p.arg(dev, "a device name")
	if err != nil {
		return err
	}
	in := dir.s == "ingress"
	if what.s == "redirect" {
		a.Action = &v1.Action_Redirect{Redirect: &v1.Redirect{Port: port.s, Ingress: in}}
	} else {
		a.Action = &v1.Action_Mirror{Mirror: &v1.Mirror{Port: port.s, Ingress: in}}
	}
	return nil
}

func (p *parser) vlan(kw token, a *v1.Action) *Error {
	op, err := p.arg(kw, "push or pop")
	if err != nil {
		return err
	}
	switch op.s {
	case "pop":
		a.Action = &v1.Action_VlanPop{VlanPop: &v1.VlanPop{}}
		return nil
	case "push":
	case "modify", "pop_eth", "push_eth":
		return p.errf(op, "cannot be expressed: the model pushes and pops VLAN tags only")
	default:
		return p.errf(op, "want push or pop")
	}
	q := &v1.VlanPush{}
	seen := map[string]bool{}
	for p.more() && p.peek() != "action" && p.peek() != "pipe" {
		t := p.next()
		if seen[t.s] {
			return p.errf(t, "given twice")
		}
		seen[t.s] = true
		switch t.s {
		case "id":
			v, n, err := p.number(t, 16)
			if err != nil {
				return err
			}
			if n > 4095 {
				return p.errf(v, "id must be 0 to 4095")
			}
			q.Id = uint32(n)
		case "priority":
			v, n, err := p.number(t, 8)
			if err != nil {
				return err
			}
			if n > 7 {
				return p.errf(v, "priority must be 0 to 7")
			}
			q.Prio = uint32(n)
		case "protocol":
			v, err := p.arg(t, "802.1Q or 802.1ad")
			if err != nil {
				return err
			}
			et, e := parseEtherType(v.s)
			if e != nil {
				return p.errf(v, "%v", e)
			}
			// 802.1Q is the default; the codec keeps no difference.
			if et != ethP8021Q {
				q.Proto = formatEtherType(et)
			}
		default:
			return p.errf(t, "unknown vlan push option; want id, priority or protocol")
		}
	}
	if !seen["id"] {
		return p.errf(op, "vlan push needs id")
	}
	a.Action = &v1.Action_VlanPush{VlanPush: q}
	return nil
}

func (p *parser) tunnelKey(kw token, a *v1.Action) *Error {
	op, err := p.arg(kw, "set or unset")
	if err != nil {
		return err
	}
	switch op.s {
	case "unset":
		a.Action = &v1.Action_TunnelDecap{TunnelDecap: &v1.TunnelDecap{}}
		return nil
	case "set":
	default:
		return p.errf(op, "want set or unset")
	}
	e := &v1.TunnelEncap{}
	seen := map[string]bool{}
	for p.more() && p.peek() != "action" && p.peek() != "pipe" {
		t := p.next()
		if seen[t.s] {
			return p.errf(t, "given twice")
		}
		seen[t.s] = true
		switch t.s {
		case "src_ip", "dst_ip":
			v, err := p.arg(t, "an address")
			if err != nil {
				return err
			}
			addr, perr := parseAddr(v.s)
			if perr != nil {
				return p.errf(v, "%v", perr)
			}
			if t.s == "src_ip" {
				e.Src = addr.String()
			} else {
				e.Dst = addr.String()
			}
		case "id":
			_, n, err := p.number(t, 32)
			if err != nil {
				return err
			}
			e.Vni = uint32(n)
		case "dst_port":
			_, n, err := p.number(t, 16)
			if err != nil {
				return err
			}
			e.DstPort = uint32(n)
		case "ttl", "tos":
			_, n, err := p.number(t, 8)
			if err != nil {
				return err
			}
			if t.s == "ttl" {
				e.Ttl = uint32(n)
			} else {
				e.Tos = uint32(n)
			}
		case "nocsum":
			if seen["csum"] {
				return p.errf(t, "with csum")
			}
			e.NoCsum = true
		case "csum":
			if seen["nocsum"] {
				return p.errf(t, "with nocsum")
			}
		case "geneve_opts", "vxlan_opts", "erspan_opts", "gtp_opts", "no_percpu":
			return p.errf(t, "cannot be expressed: the model encapsulates in plain VXLAN")
		default:
			msg := "unknown tunnel_key set option"
			if s := suggest(t.s, []string{"src_ip", "dst_ip", "id", "dst_port", "ttl", "tos", "nocsum", "csum"}); s != "" {
				msg += "; did you mean " + s + "?"
			}
			return p.errf(t, "%s", msg)
		}
	}
	a.Action = &v1.Action_TunnelEncap{TunnelEncap: e}
	return nil
}

func (p *parser) ct(kw token, a *v1.Action) *Error {
	c := &v1.Conntrack{}
	seen := map[string]token{}
	for p.more() && p.peek() != "action" && p.peek() != "pipe" {
		t := p.next()
		if _, ok := seen[t.s]; ok {
			return p.errf(t, "given twice")
		}
		seen[t.s] = t
		switch t.s {
		case "zone":
			_, n, err := p.number(t, 16)
			if err != nil {
				return err
			}
			c.Zone = uint32(n)
		case "commit":
			c.Commit = true
		case "clear":
			c.Clear = true
		case "mark":
			v, err := p.arg(t, "MARK[/MASK]")
			if err != nil {
				return err
			}
			val, mask, e := parseMasked(v.s, 32)
			if e != nil {
				return p.errf(v, "mark %v", e)
			}
			c.Mark, c.MarkMask = proto.Uint32(val), mask
		case "nat":
			if err := p.nat(t, c); err != nil {
				return err
			}
		case "label", "helper", "force", "index":
			return p.errf(t, "cannot be expressed: the model's ct has zone, commit, mark, nat and clear")
		default:
			return p.errf(t, "unknown ct option; want zone, commit, mark, nat or clear")
		}
	}
	if t, ok := seen["clear"]; ok && len(seen) > 1 {
		return p.errf(t, "ct clear takes no other option")
	}
	a.Action = &v1.Action_Ct{Ct: c}
	return nil
}

func (p *parser) nat(kw token, c *v1.Conntrack) *Error {
	kind, err := p.arg(kw, "src or dst")
	if err != nil {
		return err
	}
	n := &v1.Nat{}
	switch kind.s {
	case "src":
		n.Kind = v1.NatKind_NAT_KIND_SRC
	case "dst":
		n.Kind = v1.NatKind_NAT_KIND_DST
	default:
		return p.errf(kind, "nat without src or dst cannot be expressed: the model sets up a NAT mapping, it does not only apply an existing one")
	}
	seenPort := false
	for p.peek() == "addr" || p.peek() == "port" {
		t := p.next()
		v, err := p.arg(t, "a value or a range A-B")
		if err != nil {
			return err
		}
		lo, hi, hasHi := strings.Cut(v.s, "-")
		if t.s == "addr" {
			if n.AddrMin != "" {
				return p.errf(t, "given twice")
			}
			a, e := parseAddr(lo)
			if e != nil {
				return p.errf(v, "addr %v", e)
			}
			n.AddrMin = a.String()
			if hasHi {
				b, e := parseAddr(hi)
				if e != nil {
					return p.errf(v, "addr %v", e)
				}
				n.AddrMax = b.String()
			}
			continue
		}
		if seenPort {
			return p.errf(t, "given twice")
		}
		seenPort = true
		x, e := parseUint(lo, 16)
		if e != nil {
			return p.errf(v, "port %v", e)
		}
		n.PortMin = uint32(x)
		if hasHi {
			y, e := parseUint(hi, 16)
			if e != nil {
				return p.errf(v, "port %v", e)
			}
			n.PortMax = uint32(y)
		}
	}
	c.Nat = n
	return nil
}

// pedit parses "pedit ex munge HEADER FIELD set VALUE" (or "… add 0xff"
// for the TTL and hop limit), one key: the model rewrites one field per
// action.
func (p *parser) pedit(kw token, a *v1.Action, m *v1.Match) *Error {
	ex, err := p.arg(kw, "ex munge")
	if err != nil {
		return err
	}
	if ex.s != "ex" {
		return p.errf(ex, "only extended pedit (pedit ex munge …) can be expressed")
	}
	mg, err := p.arg(ex, "munge")
	if err != nil {
		return err
	}
	if mg.s != "munge" {
		return p.errf(mg, "want munge")
	}
	hdr, err := p.arg(mg, "a header: eth, ip, ip6, tcp or udp")
	if err != nil {
		return err
	}
	field, err := p.arg(hdr, "a field")
	if err != nil {
		return err
	}
	op, err := p.arg(field, "set or add")
	if err != nil {
		return err
	}
	r := &v1.Rewrite{}
	key := hdr.s + " " + field.s
	if op.s != "set" {
		if op.s == "add" && (key == "ip ttl" || key == "ip6 hoplimit") {
			v, err := p.arg(op, "0xff")
			if err != nil {
				return err
			}
			if n, e := parseUint(v.s, 8); e != nil || n != 0xff {
				return p.errf(v, "only add 0xff (a decrement by one) can be expressed")
			}
			r.Field = &v1.Rewrite_TtlDec{TtlDec: true}
			a.Action = &v1.Action_Rewrite{Rewrite: r}
			return p.noMoreMunge()
		}
		if op.s == "dec" && (key == "ip ttl" || key == "ip6 hoplimit") {
			r.Field = &v1.Rewrite_TtlDec{TtlDec: true}
			a.Action = &v1.Action_Rewrite{Rewrite: r}
			return p.noMoreMunge()
		}
		return p.errf(op, "only set can be expressed here (and ip ttl add 0xff, a decrement)")
	}
	v, err := p.arg(op, "a value")
	if err != nil {
		return err
	}
	switch key {
	case "eth src", "eth dst":
		mac, e := net.ParseMAC(v.s)
		if e != nil || len(mac) != 6 {
			return p.errf(v, "%q is not a MAC address", v.s)
		}
		if field.s == "src" {
			r.Field = &v1.Rewrite_EthSrc{EthSrc: mac.String()}
		} else {
			r.Field = &v1.Rewrite_EthDst{EthDst: mac.String()}
		}
	case "ip src", "ip dst", "ip6 src", "ip6 dst":
		addr, e := parseAddr(v.s)
		if e != nil {
			return p.errf(v, "%v", e)
		}
		if addr.Is4() != (hdr.s == "ip") {
			return p.errf(v, "%s needs an %s address", hdr.s, map[bool]string{true: "IPv4", false: "IPv6"}[hdr.s == "ip"])
		}
		s := addr.String()
		switch key {
		case "ip src":
			r.Field = &v1.Rewrite_Ipv4Src{Ipv4Src: s}
		case "ip dst":
			r.Field = &v1.Rewrite_Ipv4Dst{Ipv4Dst: s}
		case "ip6 src":
			r.Field = &v1.Rewrite_Ipv6Src{Ipv6Src: s}
		default:
			r.Field = &v1.Rewrite_Ipv6Dst{Ipv6Dst: s}
		}
	case "tcp sport", "udp sport", "tcp dport", "udp dport":
		if l4(m) != hdr.s {
			return p.errf(hdr, "pedit of a %s port needs ip_proto %s in the match: the model rewrites the port of the matched protocol", hdr.s, hdr.s)
		}
		n, e := parseUint(v.s, 16)
		if e != nil {
			return p.errf(v, "port %v", e)
		}
		if field.s == "sport" {
			r.Field = &v1.Rewrite_SrcPort{SrcPort: uint32(n)}
		} else {
			r.Field = &v1.Rewrite_DstPort{DstPort: uint32(n)}
		}
	default:
		return p.errf(field, "pedit of %s cannot be expressed; the model rewrites eth src/dst, ip/ip6 src/dst, ip ttl, ip6 hoplimit and tcp/udp sport/dport", key)
	}
	a.Action = &v1.Action_Rewrite{Rewrite: r}
	return p.noMoreMunge()
}

func (p *parser) noMoreMunge() *Error {
	if p.peek() == "munge" {
		return p.errf(p.toks[p.i], "several pedit keys in one action cannot be expressed; write one action pedit ex munge … per field")
	}
	return nil
}

// police parses "police rate R burst B [conform-exceed E[/C]]" or
// "police pkts_rate N pkts_burst N [conform-exceed E[/C]]".
func (p *parser) police(kw token, a *v1.Action) *Error {
	pl := &v1.Police{}
	seen := map[string]token{}
	for p.more() && p.peek() != "action" && p.peek() != "pipe" {
		t := p.next()
		if _, ok := seen[t.s]; ok {
			return p.errf(t, "given twice")
		}
		seen[t.s] = t
		v, err := p.arg(t, "a value")
		if err != nil {
			return err
		}
		switch t.s {
		case "rate":
			r, e := parseRate(v.s)
			if e != nil {
				return p.errf(v, "rate %v", e)
			}
			pl.RateBytesPerSec = r
		case "burst", "buffer", "maxburst":
			b, e := parseSize(v.s)
			if e != nil {
				return p.errf(v, "burst %v", e)
			}
			pl.Burst = b
		case "pkts_rate":
			n, e := parseUint(v.s, 64)
			if e != nil {
				return p.errf(v, "pkts_rate %v", e)
			}
			if n == 0 {
				return p.errf(v, "pkts_rate must be positive")
			}
			pl.RatePktsPerSec = n
		case "pkts_burst":
			n, e := parseUint(v.s, 32)
			if e != nil {
				return p.errf(v, "pkts_burst %v", e)
			}
			pl.Burst = uint32(n)
		case "conform-exceed":
			ex, cf, hasCf := strings.Cut(v.s, "/")
			var e *Error
			if pl.Exceed, e = p.verdict(v, ex, v1.PoliceVerdict_POLICE_VERDICT_DROP); e != nil {
				return e
			}
			if hasCf {
				if pl.Conform, e = p.verdict(v, cf, v1.PoliceVerdict_POLICE_VERDICT_PIPE); e != nil {
					return e
				}
			}
		case "mtu", "peakrate", "overhead", "linklayer", "avrate", "estimator", "index":
			return p.errf(t, "cannot be expressed: the model's police has a rate, a burst and two verdicts")
		default:
			return p.errf(t, "unknown police option; want rate, burst, pkts_rate, pkts_burst or conform-exceed")
		}
	}
	_, bytes := seen["rate"]
	_, pkts := seen["pkts_rate"]
	_, burst := seen["burst"]
	_, pburst := seen["pkts_burst"]
	switch {
	case bytes && pkts:
		return p.errf(seen["pkts_rate"], "with rate: give a byte rate or a packet rate")
	case pkts && burst:
		return p.errf(seen["burst"], "with pkts_rate: use pkts_burst")
	case bytes && pburst:
		return p.errf(seen["pkts_burst"], "with rate: use burst")
	case !bytes && !pkts:
		return p.errf(kw, "police needs rate or pkts_rate")
	}
	a.Action = &v1.Action_Police{Police: pl}
	return nil
}

// verdict reads a tc control as a police verdict; the default reads as
// unspecified, as the codec decodes it.
func (p *parser) verdict(at token, s string, def v1.PoliceVerdict) (v1.PoliceVerdict, *Error) {
	var v v1.PoliceVerdict
	switch s {
	case "drop", "shot":
		v = v1.PoliceVerdict_POLICE_VERDICT_DROP
	case "pipe":
		v = v1.PoliceVerdict_POLICE_VERDICT_PIPE
	case "ok", "pass":
		v = v1.PoliceVerdict_POLICE_VERDICT_ACCEPT
	case "continue":
		v = v1.PoliceVerdict_POLICE_VERDICT_CONTINUE
	case "reclassify", "jump", "goto":
		return 0, p.errf(at, "verdict %q cannot be expressed; want drop, pipe, pass or continue", s)
	default:
		return 0, p.errf(at, "unknown verdict %q; want drop, pipe, pass or continue", s)
	}
	if v == def {
		return v1.PoliceVerdict_POLICE_VERDICT_UNSPECIFIED, nil
	}
	return v, nil
}

// rateUnits are tc(8)'s rate suffixes in bits per second; "bps" units are
// bytes. A bare number is bits per second, as tc reads it.
var rateUnits = []struct {
	suffix string
	bits   uint64
}{
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3},
	{"tibit", 1 << 40}, {"gibit", 1 << 30}, {"mibit", 1 << 20}, {"kibit", 1 << 10},
	{"tbps", 8e12}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3},
	{"tibps", 8 << 40}, {"gibps", 8 << 30}, {"mibps", 8 << 20}, {"kibps", 8 << 10},
	{"bps", 8}, {"bit", 1},
}

// parseRate reads a tc rate into bytes per second; it must be whole bytes.
func parseRate(s string) (uint64, error) {
	l := strings.ToLower(s)
	mult := uint64(1)
	for _, u := range rateUnits {
		if n, ok := strings.CutSuffix(l, u.suffix); ok && n != "" && n[len(n)-1] >= '0' && n[len(n)-1] <= '9' {
			l, mult = n, u.bits
			break
		}
	}
	n, err := strconv.ParseUint(l, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a whole number with a unit (bit, kbit, mbit, gbit, bps, kbps, …)", s)
	}
	bits := n * mult
	if mult != 0 && bits/mult != n {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if bits%8 != 0 {
		return 0, fmt.Errorf("%q is not a whole number of bytes per second", s)
	}
	if bits == 0 {
		return 0, fmt.Errorf("%q: a rate must be positive", s)
	}
	return bits / 8, nil
}

// parseSize reads a tc size into bytes: a bare number or b, k/kb, m/mb,
// g/gb (powers of 1024) and kbit, mbit, gbit.
func parseSize(s string) (uint32, error) {
	l := strings.ToLower(s)
	mult, div := uint64(1), uint64(1)
	for _, u := range []struct {
		suffix    string
		mult, div uint64
	}{
		{"kbit", 1024, 8}, {"mbit", 1 << 20, 8}, {"gbit", 1 << 30, 8},
		{"kb", 1024, 1}, {"mb", 1 << 20, 1}, {"gb", 1 << 30, 1},
		{"k", 1024, 1}, {"m", 1 << 20, 1}, {"g", 1 << 30, 1}, {"b", 1, 1},
	} {
		if n, ok := strings.CutSuffix(l, u.suffix); ok && n != "" {
			l, mult, div = n, u.mult, u.div
			break
		}
	}
	n, err := strconv.ParseUint(l, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: want a whole number of bytes, or with k, m or g", s)
	}
	b := n * mult
	if b%div != 0 || b/div > 1<<32-1 {
		return 0, fmt.Errorf("%q is not a whole number of bytes below 4 GiB", s)
	}
	return uint32(b / div), nil
}
