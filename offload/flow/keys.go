package flow

import "math/bits"

// Key names one match key. Profiles state which keys a driver offloads.
type Key uint8

// Match keys, named like the API fields.
const (
	KeyEthSrc Key = iota
	KeyEthDst
	KeyEthType
	KeyVLANID
	KeyVLANPrio
	KeyCVLANID
	KeyCVLANPrio
	KeyIPv4Src
	KeyIPv4Dst
	KeyIPv6Src
	KeyIPv6Dst
	KeyIPProto
	KeyTOS
	KeyTTL
	KeySrcPort
	KeyDstPort
	KeyTCPFlags
	KeyICMPType
	KeyICMPCode
	KeyFrag
	KeyTunID
	KeyTunSrc
	KeyTunDst
	KeyTunDstPort
	KeyCTState
	KeyCTZone
	KeyCTMark
	numKeys
)

var keyNames = [numKeys]string{
	"eth_src", "eth_dst", "eth_type", "vlan_id", "vlan_prio", "cvlan_id", "cvlan_prio",
	"ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "ip_proto", "tos", "ttl",
	"src_port", "dst_port", "tcp_flags", "icmp_type", "icmp_code", "ip_flags",
	"tunnel.vni", "tunnel.src", "tunnel.dst", "tunnel.dst_port",
	"ct_state", "ct_zone", "ct_mark",
}

func (k Key) String() string {
	if k < numKeys {
		return keyNames[k]
	}
	return "unknown"
}

// KeySet is a set of keys.
type KeySet uint64

// Keys builds a set.
func Keys(ks ...Key) KeySet {
	var s KeySet
	for _, k := range ks {
		s |= 1 << k
	}
	return s
}

// AllKeys holds every key.
const AllKeys KeySet = 1<<numKeys - 1

// Has reports whether k is in s.
func (s KeySet) Has(k Key) bool { return s&(1<<k) != 0 }

// Each calls fn for each key in s, in order.
func (s KeySet) Each(fn func(Key)) {
	for s != 0 {
		k := Key(bits.TrailingZeros64(uint64(s)))
		fn(k)
		s &^= 1 << k
	}
}

// Slice lists the keys in s.
func (s KeySet) Slice() []Key {
	var out []Key
	s.Each(func(k Key) { out = append(out, k) })
	return out
}

// Keys returns the set of keys the match uses.
func (m *Match) Keys() KeySet {
	var s KeySet
	add := func(ok bool, k Key) {
		if ok {
			s |= 1 << k
		}
	}
	add(m.EthSrc.Set(), KeyEthSrc)
	add(m.EthDst.Set(), KeyEthDst)
	add(m.EthType != 0, KeyEthType)
	add(m.VLANID.Set, KeyVLANID)
	add(m.VLANPrio.Set, KeyVLANPrio)
	add(m.CVLANID.Set, KeyCVLANID)
	add(m.CVLANPrio.Set, KeyCVLANPrio)
	if m.IPSrc.IsValid() {
		add(m.IPSrc.Addr().Is4(), KeyIPv4Src)
		add(!m.IPSrc.Addr().Is4(), KeyIPv6Src)
	}
	if m.IPDst.IsValid() {
		add(m.IPDst.Addr().Is4(), KeyIPv4Dst)
		add(!m.IPDst.Addr().Is4(), KeyIPv6Dst)
	}
	add(m.IPProto != 0, KeyIPProto)
	add(m.TOS.Set(), KeyTOS)
	add(m.TTL.Set(), KeyTTL)
	add(m.SrcPort.Set(), KeySrcPort)
	add(m.DstPort.Set(), KeyDstPort)
	add(m.TCPFlags.Set(), KeyTCPFlags)
	add(m.ICMPType.Set, KeyICMPType)
	add(m.ICMPCode.Set, KeyICMPCode)
	add(m.Frag.Set(), KeyFrag)
	add(m.TunID.Set, KeyTunID)
	add(m.TunSrc.IsValid(), KeyTunSrc)
	add(m.TunDst.IsValid(), KeyTunDst)
	add(m.TunDstPort.Set, KeyTunDstPort)
	add(m.CTState.Set(), KeyCTState)
	add(m.CTZone.Set, KeyCTZone)
	add(m.CTMark.Set(), KeyCTMark)
	return s
}

// HasTunnelKeys reports whether the match uses any outer tunnel key.
func (m *Match) HasTunnelKeys() bool {
	return m.Keys()&Keys(KeyTunID, KeyTunSrc, KeyTunDst, KeyTunDstPort) != 0
}

// ActionSet is a set of action kinds.
type ActionSet uint32

// Actions builds a set.
func Actions(ks ...ActionKind) ActionSet {
	var s ActionSet
	for _, k := range ks {
		s |= 1 << k
	}
	return s
}

// Has reports whether k is in s.
func (s ActionSet) Has(k ActionKind) bool { return s&(1<<k) != 0 }

// ActionKinds returns the set of action kinds the flow uses.
func (f *Flow) ActionKinds() ActionSet {
	var s ActionSet
	for i := range f.Actions {
		s |= 1 << f.Actions[i].Kind
	}
	return s
}
