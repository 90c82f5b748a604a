package conntrack

import (
	"fmt"
	"net/netip"
	"strings"
)

// IP protocols the tracker knows.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// Tuple identifies one direction of a connection, as nf_conntrack_tuple.
type Tuple struct {
	Src, Dst netip.Addr
	Proto    uint8
	// SrcPort and DstPort are TCP, UDP or SCTP ports (0 otherwise).
	SrcPort, DstPort uint16
	// ICMPID, ICMPType and ICMPCode identify an ICMP or ICMPv6 query (0 otherwise).
	ICMPID   uint16
	ICMPType uint8
	ICMPCode uint8
}

// HasPorts reports whether the protocol carries ports NAT can map.
func (t Tuple) HasPorts() bool {
	return t.Proto == ProtoTCP || t.Proto == ProtoUDP || t.Proto == ProtoSCTP
}

func (t Tuple) isICMP() bool { return t.Proto == ProtoICMP || t.Proto == ProtoICMPv6 }

// ICMP query types and the type of their reply (nf_conntrack's invmap).
var icmpReply = map[uint8]uint8{8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
var icmp6Reply = map[uint8]uint8{128: 129, 129: 128, 139: 140, 140: 139}

// Reverse returns the tuple of the other direction: addresses and ports
// swapped, an ICMP query type turned into its reply type.
func (t Tuple) Reverse() Tuple {
	r := t
	r.Src, r.Dst = t.Dst, t.Src
	r.SrcPort, r.DstPort = t.DstPort, t.SrcPort
	switch t.Proto {
	case ProtoICMP:
		if rt, ok := icmpReply[t.ICMPType]; ok {
			r.ICMPType = rt
		}
	case ProtoICMPv6:
		if rt, ok := icmp6Reply[t.ICMPType]; ok {
			r.ICMPType = rt
		}
	}
	return r
}

// isQuery reports whether an ICMP tuple's type starts a connection
// (echo, timestamp, information and address-mask requests; ICMPv6 echo
// and node information queries).
func (t Tuple) isQuery() bool {
	switch t.Proto {
	case ProtoICMP:
		return t.ICMPType == 8 || t.ICMPType == 13 || t.ICMPType == 15 || t.ICMPType == 17
	case ProtoICMPv6:
		return t.ICMPType == 128 || t.ICMPType == 139
	}
	return false
}

// Valid reports whether the addresses are set and of one family.
func (t Tuple) Valid() bool {
	return t.Src.IsValid() && t.Dst.IsValid() && t.Src.Is4() == t.Dst.Is4()
}

// String renders the tuple like conntrack -L: "tcp src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=80".
func (t Tuple) String() string {
	var b strings.Builder
	b.WriteString(ProtoName(t.Proto))
	fmt.Fprintf(&b, " src=%s dst=%s", t.Src, t.Dst)
	switch {
	case t.HasPorts():
		fmt.Fprintf(&b, " sport=%d dport=%d", t.SrcPort, t.DstPort)
	case t.isICMP():
		fmt.Fprintf(&b, " type=%d code=%d id=%d", t.ICMPType, t.ICMPCode, t.ICMPID)
	}
	return b.String()
}

// ProtoName names an IP protocol: "tcp", "udp", "icmp", ... or its number.
func ProtoName(p uint8) string {
	switch p {
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMPv6:
		return "icmpv6"
	case ProtoSCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", p)
}
