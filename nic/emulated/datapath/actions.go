package datapath

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload/flow"
)

// Header rewrites change bytes in place and fix the checksums that cover
// them incrementally (RFC 1624), as NIC rewrite engines and tc's csum
// action do: the IPv4 header checksum, and TCP, UDP and ICMPv6 checksums
// through the pseudo-header; SCTP's CRC32c is recomputed.

func vlanText(k *key) string {
	if k.nTags == 0 {
		return "none"
	}
	s := ""
	for i := range k.nTags {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%d", k.tci[i]&0x0fff)
		if prio := k.tci[i] >> 13; prio != 0 {
			s += fmt.Sprintf("/prio %d", prio)
		}
		if k.tpid[i] == flow.EthType8021AD {
			s += "(802.1ad)"
		}
	}
	return s
}

// pushVLAN inserts an outermost tag.
// Equivalent to: tc ... action vlan push id ID priority PRIO protocol PROTO
func (dp *Datapath) pushVLAN(p *pkt, v flow.VLANPush) Change {
	before := vlanText(&p.k)
	proto := v.Proto
	if proto == 0 {
		proto = flow.EthType8021Q
	}
	var tag [4]byte
	binary.BigEndian.PutUint16(tag[0:2], proto)
	binary.BigEndian.PutUint16(tag[2:4], uint16(v.Prio&7)<<13|v.ID&0x0fff)
	p.buf = slices.Insert(p.buf, 12, tag[:]...)
	dp.ps.parse(p.buf, &p.k)
	return Change{Field: "vlan", Before: before, After: vlanText(&p.k)}
}

// popVLAN removes the outermost tag; an untagged frame is left alone, as
// act_vlan does.
func (dp *Datapath) popVLAN(p *pkt) Change {
	before := vlanText(&p.k)
	if p.k.nTags > 0 {
		p.buf = slices.Delete(p.buf, 12, 16)
		dp.ps.parse(p.buf, &p.k)
	}
	return Change{Field: "vlan", Before: before, After: vlanText(&p.k)}
}

// rewrite applies one pedit field change.
func (dp *Datapath) rewrite(p *pkt, rw *flow.Rewrite) Change {
	k := &p.k
	var c Change
	switch rw.Field {
	case flow.RewriteEthSrc, flow.RewriteEthDst:
		off := 6
		c.Field = "eth_src"
		if rw.Field == flow.RewriteEthDst {
			off, c.Field = 0, "eth_dst"
		}
		c.Before = net.HardwareAddr(p.buf[off : off+6]).String()
		copy(p.buf[off:off+6], rw.MAC[:])
		c.After = net.HardwareAddr(rw.MAC[:]).String()
	case flow.RewriteIPSrc, flow.RewriteIPDst:
		src := rw.Field == flow.RewriteIPSrc
		c.Field = "ip_dst"
		if src {
			c.Field = "ip_src"
		}
		old, ok := dp.setAddr(p, src, rw.IP)
		if !ok {
			return Change{Field: c.Field, Before: "-", After: "(not an " + family(rw.IP) + " packet: unchanged)"}
		}
		c.Before, c.After = old.String(), rw.IP.String()
	case flow.RewriteTTLDec:
		c.Field = "ttl"
		if !k.ipv4 && !k.ipv6 {
			return Change{Field: c.Field, Before: "-", After: "(not IP: unchanged)"}
		}
		c.Before = strconv.Itoa(int(k.ttl))
		dp.decTTL(p)
		c.After = strconv.Itoa(int(k.ttl))
	case flow.RewriteSrcPort, flow.RewriteDstPort:
		src := rw.Field == flow.RewriteSrcPort
		c.Field = "dst_port"
		if src {
			c.Field = "src_port"
		}
		old, ok := dp.setPort(p, src, rw.Port)
		if !ok {
			return Change{Field: c.Field, Before: "-", After: "(no TCP, UDP or SCTP header: unchanged)"}
		}
		c.Before, c.After = strconv.Itoa(int(old)), strconv.Itoa(int(rw.Port))
	default:
		return Change{Field: rw.Field.String(), Before: "-", After: "(unknown field)"}
	}
	dp.ps.parse(p.buf, &p.k)
	return c
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// l4Csum returns the offset of the L4 checksum covered by the IP
// pseudo-header, or -1; zero reports a UDP checksum that may be 0 (IPv4).
func l4Csum(k *key) (off int, udp bool) {
	if k.l4 < 0 {
		return -1, false
	}
	switch k.proto {
	case flow.ProtoTCP:
		return k.l4 + 16, false
	case flow.ProtoUDP:
		return k.l4 + 6, true
	case flow.ProtoICMPv6:
		if k.ipv6 {
			return k.l4 + 2, false
		}
	}
	return -1, false
}

// setAddr writes a source or destination address of the packet's family.
func (dp *Datapath) setAddr(p *pkt, src bool, a netip.Addr) (netip.Addr, bool) {
	k := &p.k
	var field []byte
	switch {
	case k.ipv4 && a.Is4():
		off := k.l3 + 16
		if src {
			off = k.l3 + 12
		}
		field = p.buf[off : off+4]
	case k.ipv6 && !a.Is4():
		off := k.l3 + 24
		if src {
			off = k.l3 + 8
		}
		field = p.buf[off : off+16]
	default:
		return netip.Addr{}, false
	}
	old, _ := netip.AddrFromSlice(field)
	nw := a.AsSlice()
	if k.ipv4 {
		updateCsum(p.buf, k.l3+10, field, nw)
	}
	if off, udp := l4Csum(k); off >= 0 && off+2 <= k.ipEnd {
		updateL4Csum(p.buf, off, udp && k.ipv4, field, nw)
	}
	copy(field, nw)
	return old, true
}

// setPort writes a TCP, UDP or SCTP port.
func (dp *Datapath) setPort(p *pkt, src bool, port uint16) (uint16, bool) {
	k := &p.k
	if !k.hasPorts() {
		return 0, false
	}
	off := k.l4 + 2
	if src {
		off = k.l4
	}
	field := p.buf[off : off+2]
	old := binary.BigEndian.Uint16(field)
	var nw [2]byte
	binary.BigEndian.PutUint16(nw[:], port)
	if k.proto == flow.ProtoSCTP {
		copy(field, nw[:])
		sctpCRC(p.buf[k.l4:k.ipEnd])
		return old, true
	}
	if c, udp := l4Csum(k); c >= 0 && c+2 <= k.ipEnd {
		updateL4Csum(p.buf, c, udp && k.ipv4, field, nw[:])
	}
	copy(field, nw[:])
	return old, true
}

// decTTL decrements the IPv4 TTL or IPv6 hop limit by one (wrapping, as a
// pedit add of 0xff does).
func (dp *Datapath) decTTL(p *pkt) {
	k := &p.k
	if k.ipv4 {
		word := p.buf[k.l3+8 : k.l3+10] // TTL and protocol
		old := [2]byte{word[0], word[1]}
		word[0]--
		updateCsum(p.buf, k.l3+10, old[:], word)
	} else {
		p.buf[k.l3+7]--
	}
	dp.ps.parse(p.buf, &p.k)
}

// natTo rewrites the packet's addresses and ports to t (a ct NAT).
func (dp *Datapath) natTo(p *pkt, t conntrack.Tuple) []Change {
	k := &p.k
	var cs []Change
	if s := k.srcAddr(); s != t.Src {
		dp.setAddr(p, true, t.Src)
		cs = append(cs, Change{Field: "ip_src", Before: s.String(), After: t.Src.String()})
	}
	if d := k.dstAddr(); d != t.Dst {
		dp.setAddr(p, false, t.Dst)
		cs = append(cs, Change{Field: "ip_dst", Before: d.String(), After: t.Dst.String()})
	}
	if t.HasPorts() && k.hasPorts() {
		if k.sport != t.SrcPort {
			cs = append(cs, Change{Field: "src_port", Before: strconv.Itoa(int(k.sport)), After: strconv.Itoa(int(t.SrcPort))})
			dp.setPort(p, true, t.SrcPort)
		}
		if k.dport != t.DstPort {
			cs = append(cs, Change{Field: "dst_port", Before: strconv.Itoa(int(k.dport)), After: strconv.Itoa(int(t.DstPort))})
			dp.setPort(p, false, t.DstPort)
		}
	}
	if len(cs) > 0 {
		dp.ps.parse(p.buf, &p.k)
	}
	return cs
}

// natQuoted rewrites the packet an ICMP error quotes to t and recomputes
// the quoted IPv4 header checksum and the ICMP checksum.
func (dp *Datapath) natQuoted(p *pkt, t conntrack.Tuple) []Change {
	k := &p.k
	q := k.innerL3
	if q < 0 {
		return nil
	}
	var cs []Change
	v4 := k.ipv4
	srcOff, dstOff, n := q+8, q+24, 16
	if v4 {
		srcOff, dstOff, n = q+12, q+16, 4
	}
	set := func(name string, off int, a netip.Addr) {
		if old, _ := netip.AddrFromSlice(p.buf[off : off+n]); old != a && a.IsValid() {
			copy(p.buf[off:off+n], a.AsSlice())
			cs = append(cs, Change{Field: name, Before: old.String(), After: a.String()})
		}
	}
	set("quoted ip_src", srcOff, t.Src)
	set("quoted ip_dst", dstOff, t.Dst)
	if l4 := k.innerL4; l4 >= 0 && t.HasPorts() {
		for i, port := range []uint16{t.SrcPort, t.DstPort} {
			off := l4 + 2*i
			if old := binary.BigEndian.Uint16(p.buf[off:]); old != port {
				binary.BigEndian.PutUint16(p.buf[off:], port)
				cs = append(cs, Change{Field: []string{"quoted src_port", "quoted dst_port"}[i], Before: strconv.Itoa(int(old)), After: strconv.Itoa(int(port))})
			}
		}
	}
	if len(cs) == 0 {
		return nil
	}
	if v4 {
		ihl := int(p.buf[q]&0x0f) * 4
		p.buf[q+10], p.buf[q+11] = 0, 0
		binary.BigEndian.PutUint16(p.buf[q+10:], checksum(p.buf[q:q+ihl], 0))
	}
	icmp := p.buf[k.l4:k.ipEnd]
	icmp[2], icmp[3] = 0, 0
	var sum uint32
	if k.ipv6 {
		sum = pseudoSum6(p.buf[k.l3+8:k.l3+24], p.buf[k.l3+24:k.l3+40], uint32(len(icmp)), flow.ProtoICMPv6)
	}
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, sum))
	dp.ps.parse(p.buf, &p.k)
	return cs
}

// updateCsum folds the change of old to nw into the 16-bit checksum at off.
func updateCsum(buf []byte, off int, old, nw []byte) {
	sum := binary.BigEndian.Uint16(buf[off:])
	binary.BigEndian.PutUint16(buf[off:], csumReplace(sum, old, nw))
}

// updateL4Csum is updateCsum for an L4 checksum; an IPv4 UDP checksum of 0
// means none and stays 0, and a computed 0 is sent as 0xffff.
func updateL4Csum(buf []byte, off int, udp4 bool, old, nw []byte) {
	sum := binary.BigEndian.Uint16(buf[off:])
	if udp4 && sum == 0 {
		return
	}
	sum = csumReplace(sum, old, nw)
	if udp4 && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(buf[off:], sum)
}

// csumReplace is RFC 1624's HC' = ~(~HC + ~m + m') over 16-bit words.
func csumReplace(sum uint16, old, nw []byte) uint16 {
	s := uint32(^sum)
	for i := 0; i+1 < len(old); i += 2 {
		s += uint32(^binary.BigEndian.Uint16(old[i:]))
		s += uint32(binary.BigEndian.Uint16(nw[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// checksum is the Internet checksum of b added to an initial sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func pseudoSum6(src, dst []byte, length uint32, proto uint8) uint32 {
	var sum uint32
	for _, a := range [][]byte{src, dst} {
		for i := 0; i < 16; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(a[i:]))
		}
	}
	return sum + length>>16 + length&0xffff + uint32(proto)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sctpCRC recomputes an SCTP packet's CRC32c checksum.
func sctpCRC(b []byte) {
	if len(b) < 12 {
		return
	}
	binary.LittleEndian.PutUint32(b[8:12], 0)
	binary.LittleEndian.PutUint32(b[8:12], crc32.Checksum(b, castagnoli))
}
