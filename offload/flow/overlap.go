package flow

import "net/netip"

// Overlap reports whether some packet could match both a and b. It is
// conservative: false only when a key both set proves the two disjoint
// (different ethertypes, protocols, VLANs, disjoint prefixes, values
// that differ under both masks, …). Placement uses it to keep a rule in
// hardware from shadowing an earlier rule that runs only in software.
func Overlap(a, b *Match) bool {
	return !(a.EthType != 0 && b.EthType != 0 && a.EthType != b.EthType ||
		a.IPProto != 0 && b.IPProto != 0 && a.IPProto != b.IPProto ||
		disjointMAC(a.EthSrc, b.EthSrc) || disjointMAC(a.EthDst, b.EthDst) ||
		disjointOpt(a.VLANID, b.VLANID) || disjointOpt(a.VLANPrio, b.VLANPrio) ||
		disjointOpt(a.CVLANID, b.CVLANID) || disjointOpt(a.CVLANPrio, b.CVLANPrio) ||
		disjointPrefix(a.IPSrc, b.IPSrc) || disjointPrefix(a.IPDst, b.IPDst) ||
		disjoint8(a.TOS, b.TOS) || disjoint8(a.TTL, b.TTL) ||
		disjoint16(a.SrcPort, b.SrcPort) || disjoint16(a.DstPort, b.DstPort) ||
		disjoint16(a.TCPFlags, b.TCPFlags) ||
		disjointOpt(a.ICMPType, b.ICMPType) || disjointOpt(a.ICMPCode, b.ICMPCode) ||
		a.Frag.Set() && b.Frag.Set() && (a.Frag.Value^b.Frag.Value)&a.Frag.Mask&b.Frag.Mask != 0 ||
		disjointOpt(a.TunID, b.TunID) || disjointPrefix(a.TunSrc, b.TunSrc) ||
		disjointPrefix(a.TunDst, b.TunDst) || disjointOpt(a.TunDstPort, b.TunDstPort) ||
		disjoint16(a.CTState, b.CTState) || disjointCT(a.CTState, b.CTState) || disjointOpt(a.CTZone, b.CTZone) ||
		a.CTMark.Set() && b.CTMark.Set() && (a.CTMark.Value^b.CTMark.Value)&a.CTMark.Mask&b.CTMark.Mask != 0)
}

// ctExclusive are the conntrack states no packet has two of: conntrack
// gives a tracked packet one of new, established, related or invalid.
const ctExclusive = CTNew | CTEstablished | CTRelated | CTInvalid

// disjointCT reports whether a and b require two different exclusive states.
func disjointCT(a, b Masked16) bool {
	x, y := a.Value&a.Mask&ctExclusive, b.Value&b.Mask&ctExclusive
	return x != 0 && y != 0 && x != y
}

func disjointMAC(a, b MaskedMAC) bool {
	for i := range a.Addr {
		if (a.Addr[i]^b.Addr[i])&a.Mask[i]&b.Mask[i] != 0 {
			return true
		}
	}
	return false
}

func disjointOpt[T comparable](a, b Opt[T]) bool { return a.Set && b.Set && a.V != b.V }

func disjointPrefix(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Addr().Is4() == b.Addr().Is4() && !a.Overlaps(b)
}

func disjoint8(a, b Masked8) bool { return (a.Value^b.Value)&a.Mask&b.Mask != 0 }

func disjoint16(a, b Masked16) bool { return (a.Value^b.Value)&a.Mask&b.Mask != 0 }
