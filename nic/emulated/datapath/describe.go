package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gopacket/gopacket/layers"

	"github.com/offloadd/offloadd/offload/flow"
)

// Describe summarises a frame on one line, like tcpdump -e:
// "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.10 > 10.0.1.5 ttl 64, tcp 40000 > 80 [S]".
// A VXLAN frame's inner frame follows in brackets.
func Describe(frame []byte) string {
	var ps parser
	return ps.describe(frame, 0)
}

func (ps *parser) describe(frame []byte, depth int) string {
	var k key
	if !ps.parse(frame, &k) {
		return fmt.Sprintf("runt frame of %d bytes", len(frame))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s > %s", hw(k.ethSrc), hw(k.ethDst))
	for i := range k.nTags {
		name := "vlan"
		if k.tpid[i] == flow.EthType8021AD {
			name = "802.1ad"
		}
		fmt.Fprintf(&b, ", %s %d", name, k.tci[i]&0x0fff)
		if prio := k.tci[i] >> 13; prio != 0 {
			fmt.Fprintf(&b, " prio %d", prio)
		}
	}
	switch {
	case k.ipv4 || k.ipv6:
		fam := "ipv4"
		if k.ipv6 {
			fam = "ipv6"
		}
		fmt.Fprintf(&b, ", %s %s > %s ttl %d", fam, k.srcAddr(), k.dstAddr(), k.ttl)
		if k.tos != 0 {
			fmt.Fprintf(&b, " tos 0x%x", k.tos)
		}
		if k.frag&flow.FragIsFragment != 0 {
			b.WriteString(" frag")
			if k.frag&flow.FragFirst != 0 {
				b.WriteString(" first")
			}
		}
		ps.describeL4(&b, frame, &k, depth)
	case k.l3Type() == flow.EthTypeARP:
		var a layers.ARP
		if a.DecodeFromBytes(frame[k.l3:], nilFeedback) == nil && len(a.SourceProtAddress) == 4 && len(a.DstProtAddress) == 4 {
			spa, _ := netip.AddrFromSlice(a.SourceProtAddress)
			tpa, _ := netip.AddrFromSlice(a.DstProtAddress)
			if a.Operation == layers.ARPRequest {
				fmt.Fprintf(&b, ", arp who-has %s tell %s", tpa, spa)
			} else {
				fmt.Fprintf(&b, ", arp reply %s is-at %s", spa, net.HardwareAddr(a.SourceHwAddress))
			}
		} else {
			b.WriteString(", arp")
		}
	default:
		fmt.Fprintf(&b, ", ethertype 0x%04x", k.l3Type())
	}
	return b.String()
}

func (ps *parser) describeL4(b *strings.Builder, frame []byte, k *key, depth int) {
	switch {
	case k.l4 < 0:
		fmt.Fprintf(b, ", %s", protoName(k.proto))
	case k.proto == flow.ProtoTCP:
		fmt.Fprintf(b, ", tcp %d > %d [%s]", k.sport, k.dport, tcpFlagText(k.tcpFlags))
	case k.proto == flow.ProtoUDP:
		fmt.Fprintf(b, ", udp %d > %d", k.sport, k.dport)
		vx := k.l4 + 8
		var h layers.VXLAN
		if depth == 0 && vx+vxlanHeaderLen+14 <= k.ipEnd && h.DecodeFromBytes(frame[vx:k.ipEnd], nilFeedback) == nil &&
			h.ValidIDFlag && h.GBPGroupPolicyID == 0 && frame[vx]&^vxlanFlagI == 0 {
			fmt.Fprintf(b, ", vxlan vni %d [%s]", h.VNI, ps.describe(h.Payload, depth+1))
		}
	case k.proto == flow.ProtoSCTP:
		fmt.Fprintf(b, ", sctp %d > %d", k.sport, k.dport)
	case k.isICMP():
		name := "icmp"
		if k.ipv6 {
			name = "icmpv6"
		}
		fmt.Fprintf(b, ", %s %s", name, icmpText(k))
	default:
		fmt.Fprintf(b, ", %s", protoName(k.proto))
	}
}

func hw(v uint64) string {
	m := macBytes(v)
	return net.HardwareAddr(m[:]).String()
}

func protoName(p uint8) string {
	switch p {
	case flow.ProtoTCP:
		return "tcp"
	case flow.ProtoUDP:
		return "udp"
	case flow.ProtoSCTP:
		return "sctp"
	case flow.ProtoICMP:
		return "icmp"
	case flow.ProtoICMPv6:
		return "icmpv6"
	}
	return fmt.Sprintf("ip_proto %d", p)
}

// tcpFlagText renders flags like tcpdump: S, S., F., R, P., ".", "none".
func tcpFlagText(f uint16) string {
	var s []byte
	for _, x := range []struct {
		bit uint16
		c   byte
	}{{0x02, 'S'}, {0x01, 'F'}, {0x04, 'R'}, {0x08, 'P'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}} {
		if f&x.bit != 0 {
			s = append(s, x.c)
		}
	}
	if f&0x10 != 0 {
		s = append(s, '.')
	}
	if len(s) == 0 {
		return "none"
	}
	return string(s)
}

func icmpText(k *key) string {
	if k.ipv4 {
		switch k.icmpType {
		case 8:
			return fmt.Sprintf("echo request id %d", k.icmpID)
		case 0:
			return fmt.Sprintf("echo reply id %d", k.icmpID)
		case 3:
			return fmt.Sprintf("unreachable code %d", k.icmpCode)
		case 11:
			return fmt.Sprintf("time exceeded code %d", k.icmpCode)
		}
	} else {
		switch k.icmpType {
		case 128:
			return fmt.Sprintf("echo request id %d", k.icmpID)
		case 129:
			return fmt.Sprintf("echo reply id %d", k.icmpID)
		case 135:
			return "neighbor solicitation"
		case 136:
			return "neighbor advertisement"
		case 1:
			return fmt.Sprintf("unreachable code %d", k.icmpCode)
		}
	}
	return fmt.Sprintf("type %d code %d", k.icmpType, k.icmpCode)
}
