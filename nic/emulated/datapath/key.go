package datapath

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload/flow"
)

// maxTags is how many VLAN tags the key holds, as flower matches vlan and cvlan.
const maxTags = 2

// key is a frame parsed once into the fields flows match on, with the
// offsets actions need to change the bytes in place (like OVS's miniflow).
type key struct {
	ethDst, ethSrc uint64 // 48-bit MACs
	nTags          int
	tpid, tci      [maxTags]uint16
	// types[i] is the EtherType after i tags: types[0] is the frame's
	// outermost type, types[nTags] the one L3 is parsed from.
	types [maxTags + 1]uint16
	l3    int // offset of the L3 header (after the tags)

	ipv4, ipv6 bool
	src, dst   [16]byte // IPv4 in the first four bytes
	proto      uint8
	tos, ttl   uint8
	frag       uint32 // flow.Frag* bits
	ipEnd      int    // end of the IP packet (frames may carry padding)

	l4               int // offset of the L4 header, -1 when there is none
	sport, dport     uint16
	tcpFlags         uint16 // the 12 flag bits flower matches
	icmpType         uint8
	icmpCode         uint8
	icmpID           uint16
	icmpErr          bool
	inner            conntrack.Tuple // an ICMP error's quoted packet
	innerL3, innerL4 int             // offsets of the quoted headers, -1 when absent
}

func mac48(b []byte) uint64 {
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

func macBytes(v uint64) [6]byte {
	return [6]byte{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// l3Type is the EtherType L3 was parsed from.
func (k *key) l3Type() uint16 { return k.types[k.nTags] }

func (k *key) srcAddr() netip.Addr { return k.addr(k.src) }
func (k *key) dstAddr() netip.Addr { return k.addr(k.dst) }

func (k *key) addr(b [16]byte) netip.Addr {
	switch {
	case k.ipv4:
		return netip.AddrFrom4([4]byte(b[:4]))
	case k.ipv6:
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

func (k *key) hasPorts() bool {
	return k.l4 >= 0 && (k.proto == flow.ProtoTCP || k.proto == flow.ProtoUDP || k.proto == flow.ProtoSCTP)
}

func (k *key) isICMP() bool {
	return k.l4 >= 0 && (k.ipv4 && k.proto == flow.ProtoICMP || k.ipv6 && k.proto == flow.ProtoICMPv6)
}

// parser holds gopacket's decoders so that parsing allocates nothing.
// It is not safe for concurrent use.
type parser struct {
	eth  layers.Ethernet
	dot  layers.Dot1Q
	ip4  layers.IPv4
	ip6  layers.IPv6
	tcp  layers.TCP
	udp  layers.UDP
	ic4  layers.ICMPv4
	ic6  layers.ICMPv6
	sctp layers.SCTP
}

var nilFeedback = gopacket.NilDecodeFeedback

// parse fills k from frame. A frame too short for Ethernet returns false;
// anything after Ethernet that does not parse leaves those fields unset,
// as a flow dissector stops where it cannot go on.
func (ps *parser) parse(frame []byte, k *key) bool {
	*k = key{l4: -1, innerL3: -1, innerL4: -1}
	if len(frame) < 14 {
		return false
	}
	k.ethDst, k.ethSrc = mac48(frame[0:6]), mac48(frame[6:12])
	typ := binary.BigEndian.Uint16(frame[12:14])
	k.types[0] = typ
	off := 14
	for k.nTags < maxTags && (typ == flow.EthType8021Q || typ == flow.EthType8021AD) {
		if ps.dot.DecodeFromBytes(frame[off:], nilFeedback) != nil {
			break
		}
		k.tpid[k.nTags] = typ
		k.tci[k.nTags] = binary.BigEndian.Uint16(frame[off : off+2])
		typ = uint16(ps.dot.Type)
		k.nTags++
		k.types[k.nTags] = typ
		off += 4
	}
	k.l3 = off
	switch typ {
	case flow.EthTypeIPv4:
		ps.parseIPv4(frame, off, k)
	case flow.EthTypeIPv6:
		ps.parseIPv6(frame, off, k)
	}
	return true
}

func (ps *parser) parseIPv4(frame []byte, off int, k *key) {
	ip := &ps.ip4
	if ip.DecodeFromBytes(frame[off:], nilFeedback) != nil || ip.Version != 4 {
		return
	}
	k.ipv4 = true
	copy(k.src[:4], ip.SrcIP.To4())
	copy(k.dst[:4], ip.DstIP.To4())
	k.proto, k.tos, k.ttl = uint8(ip.Protocol), ip.TOS, ip.TTL
	k.ipEnd = min(off+int(ip.Length), len(frame))
	if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
		k.frag = flow.FragIsFragment
		if ip.FragOffset == 0 {
			k.frag |= flow.FragFirst
		}
	}
	if ip.FragOffset != 0 {
		return // no L4 header in a later fragment
	}
	ps.parseL4(frame, off+int(ip.IHL)*4, k)
}

// IPv6 extension headers the parser walks over.
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6DestOpts = 60
)

func (ps *parser) parseIPv6(frame []byte, off int, k *key) {
	ip := &ps.ip6
	if ip.DecodeFromBytes(frame[off:], nilFeedback) != nil || ip.Version != 6 {
		return
	}
	k.ipv6 = true
	copy(k.src[:], ip.SrcIP)
	copy(k.dst[:], ip.DstIP)
	k.tos, k.ttl = ip.TrafficClass, ip.HopLimit
	k.ipEnd = min(off+40+int(ip.Length), len(frame))
	next := uint8(frame[off+6])
	p := off + 40
	for {
		switch next {
		case ip6HopByHop, ip6Routing, ip6DestOpts:
			if p+8 > k.ipEnd {
				k.proto = next
				return
			}
			next, p = frame[p], p+8+int(frame[p+1])*8
			continue
		case ip6Fragment:
			if p+8 > k.ipEnd {
				k.proto = next
				return
			}
			fo := binary.BigEndian.Uint16(frame[p+2:p+4]) >> 3
			more := frame[p+3]&1 != 0
			next, p = frame[p], p+8
			if fo != 0 || more {
				k.frag = flow.FragIsFragment
				if fo == 0 {
					k.frag |= flow.FragFirst
				}
			}
			if fo != 0 {
				k.proto = next
				return
			}
			continue
		}
		break
	}
	k.proto = next
	ps.parseL4(frame, p, k)
}

func (ps *parser) parseL4(frame []byte, off int, k *key) {
	if off > k.ipEnd {
		return
	}
	data := frame[off:k.ipEnd]
	switch k.proto {
	case flow.ProtoTCP:
		if ps.tcp.DecodeFromBytes(data, nilFeedback) != nil {
			return
		}
		k.sport, k.dport = uint16(ps.tcp.SrcPort), uint16(ps.tcp.DstPort)
		k.tcpFlags = uint16(data[12]&0x0f)<<8 | uint16(data[13])
	case flow.ProtoUDP:
		if ps.udp.DecodeFromBytes(data, nilFeedback) != nil {
			return
		}
		k.sport, k.dport = uint16(ps.udp.SrcPort), uint16(ps.udp.DstPort)
	case flow.ProtoSCTP:
		if ps.sctp.DecodeFromBytes(data, nilFeedback) != nil {
			return
		}
		k.sport, k.dport = uint16(ps.sctp.SrcPort), uint16(ps.sctp.DstPort)
	case flow.ProtoICMP:
		if !k.ipv4 || ps.ic4.DecodeFromBytes(data, nilFeedback) != nil {
			return
		}
		k.icmpType, k.icmpCode = ps.ic4.TypeCode.Type(), ps.ic4.TypeCode.Code()
		k.icmpID = ps.ic4.Id
		switch k.icmpType {
		case 3, 4, 5, 11, 12: // unreachable, source quench, redirect, time exceeded, parameter problem
			k.icmpErr = true
		}
	case flow.ProtoICMPv6:
		if !k.ipv6 || ps.ic6.DecodeFromBytes(data, nilFeedback) != nil {
			return
		}
		k.icmpType, k.icmpCode = ps.ic6.TypeCode.Type(), ps.ic6.TypeCode.Code()
		if len(data) >= 6 {
			k.icmpID = binary.BigEndian.Uint16(data[4:6])
		}
		k.icmpErr = k.icmpType >= 1 && k.icmpType <= 4
	default:
		return
	}
	k.l4 = off
	if k.icmpErr {
		k.parseQuoted(frame, off+8)
	}
}

// parseQuoted reads the IP header and first L4 bytes an ICMP error quotes.
func (k *key) parseQuoted(frame []byte, off int) {
	end := k.ipEnd
	t := &k.inner
	var l4 int
	switch {
	case k.ipv4 && off+20 <= end && frame[off]>>4 == 4:
		ihl := int(frame[off]&0x0f) * 4
		t.Src = netip.AddrFrom4([4]byte(frame[off+12 : off+16]))
		t.Dst = netip.AddrFrom4([4]byte(frame[off+16 : off+20]))
		t.Proto = frame[off+9]
		l4 = off + ihl
	case k.ipv6 && off+40 <= end && frame[off]>>4 == 6:
		t.Src = netip.AddrFrom16([16]byte(frame[off+8 : off+24]))
		t.Dst = netip.AddrFrom16([16]byte(frame[off+24 : off+40]))
		t.Proto = frame[off+6]
		l4 = off + 40
	default:
		return
	}
	k.innerL3 = off
	if l4+8 > end {
		return
	}
	k.innerL4 = l4
	b := frame[l4:]
	switch t.Proto {
	case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP:
		t.SrcPort, t.DstPort = binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
	case flow.ProtoICMP, flow.ProtoICMPv6:
		t.ICMPType, t.ICMPCode, t.ICMPID = b[0], b[1], binary.BigEndian.Uint16(b[4:6])
	}
}

// tuple is the packet's conntrack tuple.
func (k *key) tuple() conntrack.Tuple {
	t := conntrack.Tuple{Src: k.srcAddr(), Dst: k.dstAddr(), Proto: k.proto}
	switch {
	case k.hasPorts():
		t.SrcPort, t.DstPort = k.sport, k.dport
	case k.isICMP() && !k.icmpErr:
		t.ICMPType, t.ICMPCode, t.ICMPID = k.icmpType, k.icmpCode, k.icmpID
	}
	return t
}

// ctPacket is what conntrack needs to know about the packet.
func (k *key) ctPacket() conntrack.Packet {
	p := conntrack.Packet{Tuple: k.tuple(), ICMPError: k.icmpErr && k.innerL3 >= 0, Inner: k.inner,
		Fragment: k.frag&flow.FragIsFragment != 0 && k.frag&flow.FragFirst == 0}
	if k.proto == flow.ProtoTCP && k.l4 >= 0 {
		p.TCPFlags = uint8(k.tcpFlags)
	}
	return p
}
