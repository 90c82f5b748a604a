package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/offload/flow"
)

// The test bed's device names: rules sit on rep0..repN-1 (veths standing
// in for representors) and encap rules redirect to the VXLAN device.
const (
	tunnelDev = "vxlan0"
	vxlanPort = 4789
)

func devName(k int) string { return fmt.Sprintf("rep%d", k) }

// rule is one benchmark rule: the flow, the filter handle every method
// gives it, and the index of its device.
type rule struct {
	f      *flow.Flow
	handle uint32
	dev    int
}

// buildRules returns n distinct rules spread like a real ruleset: round
// robin over devs devices; per device, half ACLs (TCP drop by destination
// and port, UDP pass by source /24, destination and port: two masks in
// one filter list) and half VXLAN encaps (tunnel_key set + redirect to
// the VXLAN device); over chains 0 and 1 and, per chain, ACL priorities
// 1-4 and encap priorities 11-14. Every rule has its own destination
// address, so no two share a key, and its own handle (i+1), unique over
// all filter lists as nic/linux allocates them.
func buildRules(n, devs int) []rule {
	out := make([]rule, n)
	for i := range out {
		dev := i % devs
		j := i / devs
		chain := uint32(j / 4 % 2)
		prio := uint16(1 + j/8%4)
		f := &flow.Flow{Port: devName(dev), Chain: chain}
		switch j % 4 {
		case 0:
			f.ID = fmt.Sprintf("acl-tcp-%07d", i)
			f.Priority = prio
			f.Match = flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
				IPDst:   host(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})),
				DstPort: flow.Masked16{Value: uint16(1 + i%1024), Mask: 0xffff}}
			f.Actions = []flow.Action{{Kind: flow.ActDrop}}
		case 1:
			f.ID = fmt.Sprintf("acl-udp-%07d", i)
			f.Priority = prio
			f.Match = flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoUDP,
				IPSrc:   netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i % 256), 0}), 24),
				IPDst:   host(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})),
				DstPort: flow.Masked16{Value: 53, Mask: 0xffff}}
			f.Actions = []flow.Action{{Kind: flow.ActAccept}}
		default:
			f.ID = fmt.Sprintf("encap-%07d", i)
			f.Priority = 10 + prio
			f.Match = flow.Match{EthType: flow.EthTypeIPv4,
				IPDst: host(netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)}))}
			f.Actions = []flow.Action{
				{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: uint32(1 + i%4096),
					Src: netip.AddrFrom4([4]byte{192, 0, 2, 1}), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%250)}),
					DstPort: vxlanPort}},
				{Kind: flow.ActRedirect, Port: tunnelDev},
			}
		}
		out[i] = rule{f: f, handle: uint32(i + 1), dev: dev}
	}
	return out
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// tcKeys are the match fields tcLine can write.
func tcKeys(m flow.Match) flow.Match {
	return flow.Match{EthType: m.EthType, IPProto: m.IPProto, IPSrc: m.IPSrc, IPDst: m.IPDst,
		SrcPort: m.SrcPort, DstPort: m.DstPort}
}

// tcLine returns the `tc -b` line that installs r in the software plane
// with the given first-action cookie. It covers the fields buildRules
// uses and fails on any other.
// Equivalent to: tc filter add dev DEV ingress prio P chain C handle H
// protocol ip flower skip_hw MATCH action … cookie COOKIE.
func tcLine(r rule, cookie []byte) (string, error) {
	f := r.f
	m := f.Match
	if m != tcKeys(m) {
		return "", fmt.Errorf("tc line for flow %s: match has keys beyond eth_type, ip_proto, IPs and ports", f.ID)
	}
	var proto string
	switch m.EthType {
	case flow.EthTypeIPv4:
		proto = "ip"
	case flow.EthTypeIPv6:
		proto = "ipv6"
	default:
		return "", fmt.Errorf("tc line for flow %s: eth_type %#04x is neither IPv4 nor IPv6", f.ID, m.EthType)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "filter add dev %s ingress prio %d chain %d handle %d protocol %s flower skip_hw",
		f.Port, f.Priority, f.Chain, r.handle, proto)
	if m.IPProto != 0 {
		switch m.IPProto {
		case flow.ProtoTCP:
			b.WriteString(" ip_proto tcp")
		case flow.ProtoUDP:
			b.WriteString(" ip_proto udp")
		default:
			return "", fmt.Errorf("tc line for flow %s: ip_proto %d is neither tcp nor udp", f.ID, m.IPProto)
		}
	}
	for _, k := range []struct {
		name string
		p    netip.Prefix
	}{{"src_ip", m.IPSrc}, {"dst_ip", m.IPDst}} {
		if !k.p.IsValid() {
			continue
		}
		if k.p.IsSingleIP() {
			fmt.Fprintf(&b, " %s %s", k.name, k.p.Addr())
		} else {
			fmt.Fprintf(&b, " %s %s", k.name, k.p)
		}
	}
	for _, k := range []struct {
		name string
		p    flow.Masked16
	}{{"src_port", m.SrcPort}, {"dst_port", m.DstPort}} {
		switch k.p.Mask {
		case 0:
		case 0xffff:
			fmt.Fprintf(&b, " %s %d", k.name, k.p.Value)
		default:
			return "", fmt.Errorf("tc line for flow %s: %s mask %#x is not exact", f.ID, k.name, k.p.Mask)
		}
	}
	if len(f.Actions) == 0 {
		return "", fmt.Errorf("tc line for flow %s: no actions", f.ID)
	}
	for i, a := range f.Actions {
		switch a.Kind {
		case flow.ActDrop:
			b.WriteString(" action gact drop")
		case flow.ActAccept:
			b.WriteString(" action gact pass")
		case flow.ActRedirect:
			if a.Ingress {
				return "", fmt.Errorf("tc line for flow %s: actions[%d]: ingress redirect", f.ID, i)
			}
			fmt.Fprintf(&b, " action mirred egress redirect dev %s", a.Port)
		case flow.ActTunnelEncap:
			t := a.Encap
			if t == nil || t.TTL != 0 || t.TOS != 0 || t.NoCsum {
				return "", fmt.Errorf("tc line for flow %s: actions[%d]: encap needs addresses and no ttl, tos or nocsum", f.ID, i)
			}
			fmt.Fprintf(&b, " action tunnel_key set src_ip %s dst_ip %s id %d", t.Src, t.Dst, t.VNI)
			if t.DstPort != 0 {
				fmt.Fprintf(&b, " dst_port %d", t.DstPort)
			}
		default:
			return "", fmt.Errorf("tc line for flow %s: actions[%d]: %s not supported", f.ID, i, a.Kind)
		}
		if i == 0 {
			b.WriteString(" cookie ")
			b.WriteString(hex.EncodeToString(cookie))
		}
	}
	b.WriteByte('\n')
	return b.String(), nil
}

// tcBatch returns the `tc -b` input that installs rules, with the
// cookies offloadd writes.
func tcBatch(rules []rule) ([]byte, error) {
	var b strings.Builder
	for _, r := range rules {
		ck := tcflower.CookieFor(r.f.ID)
		line, err := tcLine(r, ck[:])
		if err != nil {
			return nil, err
		}
		b.WriteString(line)
	}
	if b.Len() == 0 {
		return nil, errors.New("tc batch: no rules")
	}
	return []byte(b.String()), nil
}

// split deals rules to w workers by device (device k to worker k mod w),
// so that no two workers add filters to one device's filter block.
func split(rules []rule, w int) [][]rule {
	out := make([][]rule, w)
	for _, r := range rules {
		out[r.dev%w] = append(out[r.dev%w], r)
	}
	return out
}
