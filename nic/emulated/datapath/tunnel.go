package datapath

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// VXLAN constants.
const (
	vxlanHeaderLen = 8
	vxlanFlagI     = 0x08
	// DefaultVXLANPort is the IANA VXLAN port, used when neither the encap
	// action nor the tunnel device names one.
	DefaultVXLANPort = 4789
	// defaultTTL is the kernel's ip_default_ttl, used when tunnel_key set
	// gives no TTL.
	defaultTTL = 64
	// The source port range of encapsulated packets: the kernel's default
	// ip_local_port_range, which udp_flow_src_port uses for VXLAN.
	srcPortMin = 32768
	srcPortMax = 60999
)

// vxlanInner decapsulates a VXLAN frame sent to tunnel device tp's UDP
// port and returns the inner packet with received tunnel metadata.
func (dp *Datapath) vxlanInner(tp nic.Port, p *pkt) (*pkt, bool) {
	k := &p.k
	if !(k.ipv4 || k.ipv6) || k.proto != flow.ProtoUDP || k.l4 < 0 || k.dport != tp.TunnelDstPort {
		return nil, false
	}
	if dp.local != nil && !dp.local[k.dstAddr()] {
		return nil, false
	}
	vx := k.l4 + 8
	if vx+vxlanHeaderLen+14 > k.ipEnd {
		return nil, false
	}
	var h layers.VXLAN
	if h.DecodeFromBytes(p.buf[vx:k.ipEnd], nilFeedback) != nil || !h.ValidIDFlag {
		return nil, false
	}
	in := &pkt{buf: append([]byte(nil), h.Payload...)}
	dp.ps.parse(in.buf, &in.k)
	in.tun = tunMeta{set: true, vni: h.VNI, src: k.srcAddr(), dst: k.dstAddr(), dstPort: k.dport, srcPort: k.sport,
		tos: k.tos, ttl: k.ttl}
	return in, true
}

// vxlanInnerAny finds the tunnel device a frame on an uplink is for and
// decapsulates it.
func (dp *Datapath) vxlanInnerAny(p *pkt) (nic.Port, *pkt, bool) {
	k := &p.k
	if k.proto != flow.ProtoUDP || k.l4 < 0 {
		return nic.Port{}, nil, false
	}
	tp, ok := dp.dev.TunnelPort(k.dport)
	if !ok {
		return nic.Port{}, nil, false
	}
	in, ok := dp.vxlanInner(tp, p)
	return tp, in, ok
}

// tunnelOut encapsulates p with its transmit tunnel metadata and sends the
// frame out of the uplink, as a VXLAN device in external (collect_md) mode
// does: outer source MAC the uplink's, destination MAC the next hop's.
func (r *run) tunnelOut(tp nic.Port, p *pkt, plane flow.Plane, b branch) {
	dp := r.dp
	t := &p.tun
	if !t.set || !t.tx {
		r.drop(tp, plane, b, fmt.Sprintf("%s has no tunnel metadata to send with: tunnel_encap must come first", tp.Name))
		return
	}
	up, ok := dp.dev.Port(dp.uplink)
	if !ok {
		r.drop(tp, plane, b, "no uplink to send tunnel traffic out of")
		return
	}
	nh, mac, ok := dp.nextHop(t.dst)
	if !ok {
		if req := dp.solicit(up, t.src, nh); req != nil {
			st := dp.portStats(up.Name)
			st.TxPackets++
			st.TxBytes += uint64(len(req.buf))
			r.output(up.Name, OutputWire, plane, req, branch{depth: b.depth}, fmt.Sprintf("%s: neighbour solicitation for %s", up.Name, nh))
		}
		r.drop(tp, plane, b, fmt.Sprintf("no neighbour entry for %s: the kernel queues the packet while it resolves the address; the emulator drops it", nh))
		return
	}
	dport := t.dstPort
	if dport == 0 {
		dport = tp.TunnelDstPort
	}
	if dport == 0 {
		dport = DefaultVXLANPort
	}
	sport := dp.sourcePort(&p.k)
	frame, err := buildVXLAN(up.MAC, mac, t, sport, dport, p.buf)
	if err != nil {
		r.drop(tp, plane, b, fmt.Sprintf("encapsulate: %v", err))
		return
	}
	st := dp.portStats(tp.Name)
	st.TxPackets++
	st.TxBytes += uint64(len(p.buf))
	if r.steps {
		r.step(Step{Kind: StepAction, Depth: b.depth, Plane: plane, Port: tp.Name,
			Action: fmt.Sprintf("%s: vxlan encap vni %d", tp.Name, t.vni),
			Changes: []Change{
				{Field: "outer eth", After: fmt.Sprintf("%s > %s", net.HardwareAddr(up.MAC[:]), net.HardwareAddr(mac[:]))},
				{Field: "outer ip", After: fmt.Sprintf("%s > %s ttl %d tos 0x%x", t.src, t.dst, ttlOr(t.ttl), t.tos)},
				{Field: "outer udp", After: fmt.Sprintf("%d > %d", sport, dport)},
			}})
	}
	out := &pkt{buf: frame}
	ust := dp.portStats(up.Name)
	ust.TxPackets++
	ust.TxBytes += uint64(len(frame))
	r.output(up.Name, OutputWire, plane, out, b, fmt.Sprintf("%s: to the wire", up.Name))
	r.finish(b, VerdictForwarded, plane, "")
}

func ttlOr(t uint8) uint8 {
	if t == 0 {
		return defaultTTL
	}
	return t
}

// buildVXLAN builds the outer Ethernet, IP, UDP and VXLAN headers around
// inner. The outer IPv4 header has ID 0 and no DF, as a tunnel_key set
// without "df" gives; the UDP checksum is set unless NoCsum.
func buildVXLAN(srcMAC, dstMAC [6]byte, t *tunMeta, sport, dport uint16, inner []byte) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:])}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	var ip gopacket.NetworkLayer
	if t.dst.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, IHL: 5, TOS: t.tos, TTL: ttlOr(t.ttl), Protocol: layers.IPProtocolUDP,
			SrcIP: t.src.AsSlice(), DstIP: t.dst.AsSlice()}
		ip = v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, TrafficClass: t.tos, HopLimit: ttlOr(t.ttl), NextHeader: layers.IPProtocolUDP,
			SrcIP: t.src.AsSlice(), DstIP: t.dst.AsSlice()}
	}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	vx := &layers.VXLAN{ValidIDFlag: true, VNI: t.vni}
	buf := gopacket.NewSerializeBufferExpectedSize(14+40+8+vxlanHeaderLen, len(inner))
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip.(gopacket.SerializableLayer), udp, vx, gopacket.Payload(inner)); err != nil {
		return nil, err
	}
	frame := buf.Bytes()
	if t.noCsum {
		l4 := 14 + 20
		if !t.dst.Is4() {
			l4 = 14 + 40
		}
		frame[l4+6], frame[l4+7] = 0, 0
	}
	return frame, nil
}

// sourcePort picks the outer UDP source port from a hash of the inner
// flow as udp_flow_src_port does: the hash scaled into the local port
// range after folding its low half into its high half.
func (dp *Datapath) sourcePort(k *key) uint16 {
	h := dp.flowHash(k)
	h ^= h << 16
	return uint16(uint64(h)*uint64(srcPortMax-srcPortMin)>>32) + srcPortMin
}

// flowHash hashes the inner flow's addresses, ports and protocol (or its
// MACs when it is not IP) with jhash, like skb_get_hash.
func (dp *Datapath) flowHash(k *key) uint32 {
	if !k.ipv4 && !k.ipv6 {
		return jhash3(uint32(k.ethDst>>16), uint32(k.ethDst)<<16|uint32(k.ethSrc>>32), uint32(k.ethSrc), dp.seed^uint32(k.types[0]))
	}
	fold := func(a [16]byte) uint32 {
		return binary.BigEndian.Uint32(a[0:]) ^ binary.BigEndian.Uint32(a[4:]) ^ binary.BigEndian.Uint32(a[8:]) ^ binary.BigEndian.Uint32(a[12:])
	}
	var ports uint32
	if k.hasPorts() {
		ports = uint32(k.sport)<<16 | uint32(k.dport)
	}
	return jhash3(fold(k.src), fold(k.dst), ports, dp.seed^uint32(k.proto))
}

// jhash3 is the kernel's jhash_3words (Bob Jenkins' lookup3 final mix).
func jhash3(a, b, c, initval uint32) uint32 {
	const jhashInitval = 0xdeadbeef
	initval += jhashInitval + 3<<2
	a += initval
	b += initval
	c += initval
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// solicit builds the ARP request (IPv4) or neighbour solicitation (IPv6)
// the kernel sends for an unresolved next hop.
func (dp *Datapath) solicit(up nic.Port, src, target netip.Addr) *pkt {
	if !src.IsValid() || src.Is4() != target.Is4() {
		return nil
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if target.Is4() {
		err = gopacket.SerializeLayers(buf, opts,
			&layers.Ethernet{SrcMAC: up.MAC[:], DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPRequest, SourceHwAddress: up.MAC[:], SourceProtAddress: src.AsSlice(),
				DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()})
	} else {
		t := target.As16()
		snm := netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
		s := snm.As16()
		ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: snm.AsSlice()}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		if err = icmp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil
		}
		err = gopacket.SerializeLayers(buf, opts,
			&layers.Ethernet{SrcMAC: up.MAC[:], DstMAC: net.HardwareAddr{0x33, 0x33, s[12], s[13], s[14], s[15]}, EthernetType: layers.EthernetTypeIPv6},
			ip, icmp,
			&layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(),
				Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: up.MAC[:]}}})
	}
	if err != nil {
		return nil
	}
	p := &pkt{buf: buf.Bytes()}
	dp.ps.parse(p.buf, &p.k)
	return p
}

// learnFrom learns a neighbour from an ARP packet's sender or an IPv6
// neighbour advertisement that reached an uplink's host stack. Called
// with dp.mu held.
func (dp *Datapath) learnFrom(p *pkt) {
	if !dp.learn {
		return
	}
	k := &p.k
	switch {
	case k.l3Type() == flow.EthTypeARP:
		var a layers.ARP
		if a.DecodeFromBytes(p.buf[k.l3:], nilFeedback) != nil || a.ProtAddressSize != 4 || a.HwAddressSize != 6 {
			return
		}
		ip := netip.AddrFrom4([4]byte(a.SourceProtAddress))
		if ip.IsUnspecified() {
			return
		}
		dp.learnNeighbour(ip, [6]byte(a.SourceHwAddress))
	case k.isICMP() && k.ipv6 && (k.icmpType == uint8(layers.ICMPv6TypeNeighborAdvertisement) || k.icmpType == uint8(layers.ICMPv6TypeNeighborSolicitation)):
		if k.icmpType == uint8(layers.ICMPv6TypeNeighborSolicitation) {
			if src := k.srcAddr(); !src.IsUnspecified() {
				dp.learnNeighbour(src, macBytes(k.ethSrc))
			}
			return
		}
		var na layers.ICMPv6NeighborAdvertisement
		if na.DecodeFromBytes(p.buf[k.l4+4:k.ipEnd], nilFeedback) != nil {
			return
		}
		mac := macBytes(k.ethSrc)
		for _, o := range na.Options {
			if o.Type == layers.ICMPv6OptTargetAddress && len(o.Data) == 6 {
				mac = [6]byte(o.Data)
			}
		}
		if ip, ok := netip.AddrFromSlice(na.TargetAddress); ok {
			dp.learnNeighbour(ip, mac)
		}
	}
}

func (dp *Datapath) learnNeighbour(ip netip.Addr, mac [6]byte) {
	ip = ip.Unmap()
	if n, ok := dp.neigh[ip]; ok && !n.Learned {
		return // static entries win
	}
	dp.neigh[ip] = Neighbour{IP: ip, MAC: mac, Learned: true}
}
