package datapath

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/offloadd/offloadd/nic"
)

// SpecDefaults are the MACs a packet spec uses when it names none.
type SpecDefaults struct {
	EthSrc, EthDst [6]byte
	// TunEthSrc and TunEthDst are the outer MACs of a VXLAN-wrapped spec.
	TunEthSrc, TunEthDst [6]byte
}

// RemoteMAC is the default source MAC of frames from the wire: a router
// beyond the uplink.
var RemoteMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}

// Spec defaults for fields a spec leaves out.
var (
	DefaultIPv4Src = netip.MustParseAddr("10.0.0.1")
	DefaultIPv4Dst = netip.MustParseAddr("10.0.0.2")
	DefaultIPv6Src = netip.MustParseAddr("fd00::1")
	DefaultIPv6Dst = netip.MustParseAddr("fd00::2")
)

const (
	defaultSrcPort = 12345
	defaultDstPort = 80
)

// SpecDefaults returns the defaults for frames arriving at port: from a
// representor or VF, the VF's MAC to the uplink's (the VM sends); from an
// uplink or tunnel device, RemoteMAC to the uplink's.
func (dp *Datapath) SpecDefaults(port string) (SpecDefaults, error) {
	p, ok := dp.dev.Port(port)
	if !ok {
		return SpecDefaults{}, fmt.Errorf("packet defaults for %s: %w", port, nic.ErrNotFound)
	}
	up, _ := dp.dev.Port(dp.uplink)
	d := SpecDefaults{EthSrc: RemoteMAC, EthDst: up.MAC, TunEthSrc: RemoteMAC, TunEthDst: up.MAC}
	switch p.Kind {
	case nic.PortRepresentor:
		if vf, ok := dp.dev.Port(p.Peer); ok {
			d.EthSrc = vf.MAC
		}
	case nic.PortVF:
		d.EthSrc = p.MAC
	}
	return d, nil
}

// BuildSpec builds the frame a packet spec describes for injection at port.
func (dp *Datapath) BuildSpec(port, spec string) ([]byte, error) {
	d, err := dp.SpecDefaults(port)
	if err != nil {
		return nil, err
	}
	return BuildFrame(spec, d)
}

// InjectSpec builds a frame from a packet spec and injects it at port.
func (dp *Datapath) InjectSpec(port, spec string) (*Trace, error) {
	frame, err := dp.BuildSpec(port, spec)
	if err != nil {
		return nil, err
	}
	return dp.Inject(port, frame)
}

// BuildFrame builds a frame from a packet spec: comma-separated keywords
// and key=value pairs, in the style of ovs-appctl ofproto/trace.
//
// Keywords pick the packet: tcp, udp, sctp, icmp, icmp6 (or icmpv6), ip
// (ipv4), ipv6, arp; without one (and without eth_type) it is UDP. An
// IPv6 address in src or dst implies ipv6.
//
// Keys (defaults in brackets):
//
//	eth_src, eth_dst    MACs [d.EthSrc, d.EthDst]
//	eth_type            EtherType of a frame that is not IP or ARP (hex or decimal)
//	vlan, vlan_prio     an 802.1Q tag; vlan=10:3 sets the priority too
//	cvlan, cvlan_prio   an inner tag: the outer becomes 802.1ad
//	src, dst            IP addresses [10.0.0.1 > 10.0.0.2, fd00::1 > fd00::2]
//	ttl, tos            [64, 0]
//	proto               IP protocol number of an "ip" or "ipv6" packet
//	frag                first (more fragments, offset 0) or later (offset 8)
//	sport, dport        L4 ports [12345 > 80]
//	flags               TCP flags as letters S F R P A U E C, "." for ACK [S]
//	seq, ack            TCP sequence and acknowledgement numbers [1, 0]
//	type, code, id      ICMP type, code and echo id [echo request, 0, 1]
//	op                  ARP operation: request or reply [request]
//	len, payload        payload: len zero bytes, or payload=0xHEX or text
//	vni                 wrap the frame in VXLAN with this VNI; then:
//	tun_src, tun_dst    outer IP addresses [198.51.100.1 > 192.0.2.1]
//	tun_sport, tun_dport  outer UDP ports [49152 > 4789]
//	tun_ttl             outer TTL [64]
//	tun_eth_src, tun_eth_dst  outer MACs [d.TunEthSrc, d.TunEthDst]
//
// Examples: "tcp,src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80,flags=S",
// "icmp,type=8", "ipv6,udp,dst=fd00::5", "eth_src=02:00:00:00:00:09,vlan=10", "arp".
func BuildFrame(spec string, d SpecDefaults) ([]byte, error) {
	s, err := parseSpec(spec, d)
	if err != nil {
		return nil, fmt.Errorf("packet spec %q: %w", spec, err)
	}
	frame, err := s.build()
	if err != nil {
		return nil, fmt.Errorf("packet spec %q: %w", spec, err)
	}
	return frame, nil
}

type spec struct {
	l4                 string // tcp, udp, sctp, icmp, icmp6, arp, ip, "" (raw)
	v6                 bool
	ip                 bool
	ethSrc, ethDst     [6]byte
	ethType            uint16
	vlan, cvlan        int // -1: none
	vlanPrio, cvlPrio  uint8
	src, dst           netip.Addr
	ttl, tos           uint8
	proto              uint8
	frag               string
	sport, dport       uint16
	flags              string
	seq, ack           uint32
	icmpType, icmpCode int
	icmpID             uint16
	arpOp              uint16
	payload            []byte

	vni                bool
	vniVal             uint32
	tunSrc, tunDst     netip.Addr
	tunSport, tunDport uint16
	tunTTL             uint8
	tunEthSrc          [6]byte
	tunEthDst          [6]byte
}

func parseSpec(str string, d SpecDefaults) (*spec, error) {
	s := &spec{ethSrc: d.EthSrc, ethDst: d.EthDst, vlan: -1, cvlan: -1, ttl: 64, sport: defaultSrcPort,
		dport: defaultDstPort, flags: "S", seq: 1, icmpType: -1, icmpID: 1, arpOp: layers.ARPRequest,
		tunSrc: netip.MustParseAddr("198.51.100.1"), tunDst: netip.MustParseAddr("192.0.2.1"), tunSport: 49152,
		tunDport: DefaultVXLANPort, tunTTL: 64, tunEthSrc: d.TunEthSrc, tunEthDst: d.TunEthDst}
	for _, tok := range strings.Split(str, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		k, v, kv := strings.Cut(tok, "=")
		if !kv {
			if err := s.keyword(strings.ToLower(k)); err != nil {
				return nil, err
			}
			continue
		}
		if err := s.set(strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	if s.src.IsValid() && s.dst.IsValid() && s.src.Is4() != s.dst.Is4() {
		return nil, errors.New("src and dst are of different IP families")
	}
	if s.src.IsValid() && !s.src.Is4() || s.dst.IsValid() && !s.dst.Is4() {
		s.v6 = true
	}
	if s.l4 == "" && !s.ip && !s.v6 && s.ethType == 0 {
		// Nothing says what the packet is: a UDP datagram.
		s.l4 = "udp"
	}
	switch s.l4 {
	case "tcp", "udp", "sctp", "icmp", "icmp6":
		s.ip = true
	case "arp":
		if s.v6 {
			return nil, errors.New("arp carries IPv4 addresses")
		}
	}
	if s.l4 == "icmp" && s.v6 {
		s.l4 = "icmp6"
	}
	if s.l4 == "icmp6" {
		s.v6 = true
	}
	if s.v6 {
		s.ip = true
	}
	if s.ip {
		if !s.src.IsValid() {
			s.src = DefaultIPv4Src
			if s.v6 {
				s.src = DefaultIPv6Src
			}
		}
		if !s.dst.IsValid() {
			s.dst = DefaultIPv4Dst
			if s.v6 {
				s.dst = DefaultIPv6Dst
			}
		}
		if s.src.Is4() == s.v6 {
			return nil, errors.New("an IPv4 address in an IPv6 packet")
		}
	}
	if s.vni && s.tunSrc.Is4() != s.tunDst.Is4() {
		return nil, errors.New("tun_src and tun_dst are of different IP families")
	}
	return s, nil
}

func (s *spec) keyword(k string) error {
	switch k {
	case "tcp", "udp", "sctp", "icmp", "arp":
		s.l4 = k
	case "icmp6", "icmpv6":
		s.l4 = "icmp6"
	case "ip", "ipv4":
		s.ip = true
	case "ipv6":
		s.ip, s.v6 = true, true
	default:
		return fmt.Errorf("unknown keyword %q (want tcp, udp, sctp, icmp, icmp6, arp, ip, ipv6 or key=value)", k)
	}
	return nil
}

func parseUint(v string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(v, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of %d bits", v, bits)
	}
	return n, nil
}

func parseHWAddr(v string) ([6]byte, error) {
	hwa, err := net.ParseMAC(v)
	if err != nil || len(hwa) != 6 {
		return [6]byte{}, fmt.Errorf("%q is not a MAC address", v)
	}
	return [6]byte(hwa), nil
}

func (s *spec) set(k, v string) error {
	var err error
	u := func(bits int) uint64 {
		var n uint64
		if err == nil {
			n, err = parseUint(v, bits)
		}
		return n
	}
	addr := func() netip.Addr {
		a, e := netip.ParseAddr(v)
		if e != nil {
			err = fmt.Errorf("%q is not an IP address", v)
		}
		return a.Unmap()
	}
	switch k {
	case "eth_src", "dl_src":
		s.ethSrc, err = parseHWAddr(v)
	case "eth_dst", "dl_dst":
		s.ethDst, err = parseHWAddr(v)
	case "eth_type", "dl_type":
		s.ethType = uint16(u(16))
	case "vlan", "dl_vlan":
		id, prio, hasPrio := strings.Cut(v, ":")
		n, e := parseUint(id, 12)
		if e != nil || n > 4095 {
			return fmt.Errorf("%q is not a VLAN ID", id)
		}
		s.vlan = int(n)
		if hasPrio {
			p, e := parseUint(prio, 3)
			if e != nil {
				return fmt.Errorf("%q is not a VLAN priority", prio)
			}
			s.vlanPrio = uint8(p)
		}
	case "vlan_prio", "dl_vlan_pcp":
		s.vlanPrio = uint8(u(3))
	case "cvlan":
		n := u(12)
		if err == nil && n > 4095 {
			err = fmt.Errorf("%q is not a VLAN ID", v)
		}
		s.cvlan = int(n)
	case "cvlan_prio":
		s.cvlPrio = uint8(u(3))
	case "src", "nw_src", "ip_src", "ipv6_src":
		s.src = addr()
	case "dst", "nw_dst", "ip_dst", "ipv6_dst":
		s.dst = addr()
	case "ttl", "nw_ttl", "hop_limit":
		s.ttl = uint8(u(8))
	case "tos", "nw_tos":
		s.tos = uint8(u(8))
	case "proto", "nw_proto", "ip_proto":
		s.proto = uint8(u(8))
	case "frag":
		if v != "first" && v != "later" {
			return fmt.Errorf("%q is not first or later", v)
		}
		s.frag = v
	case "sport", "tp_src", "src_port":
		s.sport = uint16(u(16))
	case "dport", "tp_dst", "dst_port":
		s.dport = uint16(u(16))
	case "flags", "tcp_flags":
		if strings.Trim(strings.ToUpper(v), "SFRPAUEC.") != "" {
			return fmt.Errorf("%q: use the letters S F R P A U E C and . for ACK", v)
		}
		s.flags = strings.ToUpper(v)
	case "seq":
		s.seq = uint32(u(32))
	case "ack":
		s.ack = uint32(u(32))
	case "type", "icmp_type":
		s.icmpType = int(u(8))
	case "code", "icmp_code":
		s.icmpCode = int(u(8))
	case "id", "icmp_id":
		s.icmpID = uint16(u(16))
	case "op", "arp_op":
		switch v {
		case "request", "1":
			s.arpOp = layers.ARPRequest
		case "reply", "2":
			s.arpOp = layers.ARPReply
		default:
			return fmt.Errorf("%q is not request or reply", v)
		}
	case "len", "payload_len":
		n := u(16)
		s.payload = make([]byte, n)
	case "payload":
		if h, ok := strings.CutPrefix(v, "0x"); ok {
			b, e := hex.DecodeString(h)
			if e != nil {
				return fmt.Errorf("%q is not hex", v)
			}
			s.payload = b
		} else {
			s.payload = []byte(v)
		}
	case "vni", "tun_id":
		n := u(24)
		s.vni, s.vniVal = true, uint32(n)
	case "tun_src":
		s.tunSrc = addr()
	case "tun_dst":
		s.tunDst = addr()
	case "tun_sport":
		s.tunSport = uint16(u(16))
	case "tun_dport", "tun_dst_port":
		s.tunDport = uint16(u(16))
	case "tun_ttl":
		s.tunTTL = uint8(u(8))
	case "tun_eth_src":
		s.tunEthSrc, err = parseHWAddr(v)
	case "tun_eth_dst":
		s.tunEthDst, err = parseHWAddr(v)
	default:
		return errors.New("unknown key")
	}
	return err
}

func (s *spec) build() ([]byte, error) {
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: s.ethSrc[:], DstMAC: s.ethDst[:]}
	ls = append(ls, eth)
	var inner layers.EthernetType
	switch {
	case s.l4 == "arp":
		inner = layers.EthernetTypeARP
	case s.ip && s.v6:
		inner = layers.EthernetTypeIPv6
	case s.ip:
		inner = layers.EthernetTypeIPv4
	default:
		inner = layers.EthernetType(s.ethType)
	}
	typ := inner
	if s.cvlan >= 0 {
		if s.vlan < 0 {
			return nil, errors.New("cvlan needs an outer vlan")
		}
		eth.EthernetType = layers.EthernetTypeQinQ
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(s.vlan), Priority: s.vlanPrio, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: uint16(s.cvlan), Priority: s.cvlPrio, Type: typ})
	} else if s.vlan >= 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(s.vlan), Priority: s.vlanPrio, Type: typ})
	} else {
		eth.EthernetType = typ
	}
	var nl gopacket.NetworkLayer
	switch {
	case s.l4 == "arp":
		src, dst := s.src, s.dst
		if !src.IsValid() {
			src = DefaultIPv4Src
		}
		if !dst.IsValid() {
			dst = DefaultIPv4Dst
		}
		tha := make([]byte, 6)
		if s.arpOp == layers.ARPReply {
			tha = s.ethDst[:]
		}
		ls = append(ls, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: s.arpOp, SourceHwAddress: s.ethSrc[:],
			SourceProtAddress: src.AsSlice(), DstHwAddress: tha, DstProtAddress: dst.AsSlice()})
	case s.ip:
		proto := s.ipProto()
		if s.v6 {
			ip := &layers.IPv6{Version: 6, TrafficClass: s.tos, HopLimit: s.ttl, NextHeader: proto,
				SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
			nl = ip
			ls = append(ls, ip)
			if s.frag != "" {
				ip.NextHeader = layers.IPProtocolIPv6Fragment
				f := &layers.IPv6Fragment{NextHeader: proto, MoreFragments: s.frag == "first"}
				if s.frag == "later" {
					f.FragmentOffset = 1
				}
				ls = append(ls, f)
			}
		} else {
			ip := &layers.IPv4{Version: 4, IHL: 5, TOS: s.tos, TTL: s.ttl, Protocol: proto,
				SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
			switch s.frag {
			case "first":
				ip.Flags = layers.IPv4MoreFragments
			case "later":
				ip.FragOffset = 1
			}
			nl = ip
			ls = append(ls, ip)
		}
		if s.frag != "later" {
			l4, err := s.l4Layers(nl)
			if err != nil {
				return nil, err
			}
			ls = append(ls, l4...)
		}
	}
	if len(s.payload) > 0 {
		ls = append(ls, gopacket.Payload(s.payload))
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return nil, err
	}
	frame := buf.Bytes()
	if s.l4 == "sctp" && s.frag != "later" {
		// gopacket sums the SCTP header before clearing its checksum field.
		var ps parser
		var k key
		if ps.parse(frame, &k); k.l4 >= 0 {
			sctpCRC(frame[k.l4:k.ipEnd])
		}
	}
	if s.vni {
		return s.wrap(frame)
	}
	return frame, nil
}

func (s *spec) ipProto() layers.IPProtocol {
	switch s.l4 {
	case "tcp":
		return layers.IPProtocolTCP
	case "udp":
		return layers.IPProtocolUDP
	case "sctp":
		return layers.IPProtocolSCTP
	case "icmp":
		return layers.IPProtocolICMPv4
	case "icmp6":
		return layers.IPProtocolICMPv6
	}
	return layers.IPProtocol(s.proto)
}

type checksummer interface {
	SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
}

func (s *spec) l4Layers(nl gopacket.NetworkLayer) ([]gopacket.SerializableLayer, error) {
	var out []gopacket.SerializableLayer
	var cs checksummer
	switch s.l4 {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: s.seq, Ack: s.ack, Window: 64240}
		for _, c := range s.flags {
			switch c {
			case 'S':
				t.SYN = true
			case 'F':
				t.FIN = true
			case 'R':
				t.RST = true
			case 'P':
				t.PSH = true
			case 'A', '.':
				t.ACK = true
			case 'U':
				t.URG = true
			case 'E':
				t.ECE = true
			case 'C':
				t.CWR = true
			}
		}
		cs, out = t, append(out, t)
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
		cs, out = u, append(out, u)
	case "sctp":
		out = append(out, &layers.SCTP{SrcPort: layers.SCTPPort(s.sport), DstPort: layers.SCTPPort(s.dport)})
	case "icmp":
		typ := 8
		if s.icmpType >= 0 {
			typ = s.icmpType
		}
		out = append(out, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8(typ), uint8(s.icmpCode)), Id: s.icmpID, Seq: 1})
	case "icmp6":
		typ := 128
		if s.icmpType >= 0 {
			typ = s.icmpType
		}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(uint8(typ), uint8(s.icmpCode))}
		cs = ic
		out = append(out, ic)
		if typ == 128 || typ == 129 {
			out = append(out, &layers.ICMPv6Echo{Identifier: s.icmpID, SeqNumber: 1})
		}
	}
	if cs != nil {
		if err := cs.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// wrap puts a built frame inside VXLAN, UDP, IP and Ethernet headers.
func (s *spec) wrap(inner []byte) ([]byte, error) {
	t := &tunMeta{set: true, tx: true, vni: s.vniVal, src: s.tunSrc, dst: s.tunDst, ttl: s.tunTTL}
	frame, err := buildVXLAN(s.tunEthSrc, s.tunEthDst, t, s.tunSport, s.tunDport, inner)
	if err != nil {
		return nil, fmt.Errorf("wrap in VXLAN: %w", err)
	}
	return frame, nil
}
