package tcflower

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/offloadd/offloadd/offload/flow"
)

// Filter is a flower filter read back from the kernel.
type Filter struct {
	// Flow is the decoded rule; its ID is empty (the cookie identifies it).
	Flow     *flow.Flow
	Ifindex  int32
	Parent   uint32
	Handle   uint32
	Chain    uint32
	Priority uint16
	// Protocol is the tc filter protocol (host order).
	Protocol uint16
	// Flags are TCA_CLS_FLAGS_* (FlagSkipHW, FlagSkipSW, FlagInHW, FlagNotInHW).
	Flags     uint32
	InHWCount uint32
	// Cookie is the first action's cookie, nil when it has none.
	Cookie  []byte
	Actions []ActionStats
}

// ActionStats are one tc action's counters and timestamps.
type ActionStats struct {
	Kind    string
	Index   uint32
	Packets uint64
	Bytes   uint64
	// HWPackets and HWBytes are the hardware part (TCA_STATS_BASIC_HW), when HasHW.
	HWPackets uint64
	HWBytes   uint64
	HasHW     bool
	// Used is false for an action that never matched; then LastUsed is 0.
	Used bool
	// LastUsed is how long ago the action last ran (tcf_t.lastuse, in
	// USER_HZ ticks of 10 ms).
	LastUsed time.Duration
}

// Plane is where the filter was put: skip_sw is flow.Hardware, skip_hw
// flow.Software, no skip flag flow.Both.
func (f *Filter) Plane() flow.Plane {
	switch {
	case f.Flags&FlagSkipSW != 0:
		return flow.Hardware
	case f.Flags&FlagSkipHW != 0:
		return flow.Software
	}
	return flow.Both
}

// InHW reports the kernel's in_hw flag.
func (f *Filter) InHW() bool { return f.Flags&FlagInHW != 0 }

// Stats returns the first action's counters, which count every packet
// the filter matched.
func (f *Filter) Stats() ActionStats {
	if len(f.Actions) == 0 {
		return ActionStats{}
	}
	return f.Actions[0]
}

// NameFunc maps an ifindex to a port name; "" when unknown.
type NameFunc func(ifindex int32) string

func portName(name NameFunc, ifindex int32) string {
	if name != nil {
		if n := name(ifindex); n != "" {
			return n
		}
	}
	return "if" + strconv.Itoa(int(ifindex))
}

// Decode parses the body (tcmsg and attributes) of an RTM_NEWTFILTER
// message, as a dump or an echo returns it, into a Filter. Ports are named
// with name; unknown ifindexes become "if<N>".
func Decode(b []byte, name NameFunc) (*Filter, error) {
	if len(b) < tcmsgLen {
		return nil, errors.New("decode filter: short tcmsg")
	}
	f := &Filter{
		Ifindex: int32(native.Uint32(b[4:])),
		Handle:  native.Uint32(b[8:]),
		Parent:  native.Uint32(b[12:]),
	}
	info := native.Uint32(b[16:])
	f.Priority = uint16(info >> 16)
	var pb [2]byte
	native.PutUint16(pb[:], uint16(info))
	f.Protocol = binary.BigEndian.Uint16(pb[:])
	var tb [tcaChain + 1][]byte
	if err := parseTable(b[tcmsgLen:], tb[:]); err != nil {
		return nil, fmt.Errorf("decode filter: %w", err)
	}
	if k := cstring(tb[tcaKind]); k != "flower" {
		return nil, fmt.Errorf("decode filter handle %#x: kind %q is not flower", f.Handle, k)
	}
	f.Chain, _ = getU32(tb[tcaChain])
	fl := &flow.Flow{Port: portName(name, f.Ifindex), Chain: f.Chain, Priority: f.Priority}
	f.Flow = fl
	if tb[tcaOptions] == nil {
		// A filter being deleted, or a chain template: no keys.
		return f, nil
	}
	var ft [flowerMax + 1][]byte
	if err := parseTable(tb[tcaOptions], ft[:]); err != nil {
		return nil, fmt.Errorf("decode flower options of handle %#x: %w", f.Handle, err)
	}
	f.Flags, _ = getU32(ft[flowerFlags])
	f.InHWCount, _ = getU32(ft[flowerInHWCount])
	if err := decodeMatch(&fl.Match, f.Protocol, &ft); err != nil {
		return nil, fmt.Errorf("decode flower keys of handle %#x: %w", f.Handle, err)
	}
	if err := f.decodeActions(ft[flowerAct], name); err != nil {
		return nil, fmt.Errorf("decode actions of handle %#x: %w", f.Handle, err)
	}
	return f, nil
}

func isVLAN(t uint16) bool { return t == ethP8021Q || t == ethP8021AD }

func mask8(tb *[flowerMax + 1][]byte, v, m int) flow.Masked8 {
	val, ok := getU8(tb[v])
	if !ok {
		return flow.Masked8{}
	}
	mask, ok := getU8(tb[m])
	if !ok {
		mask = 0xff
	}
	return flow.Masked8{Value: val & mask, Mask: mask}
}

func mask16(tb *[flowerMax + 1][]byte, v, m int, get func([]byte) (uint16, bool)) flow.Masked16 {
	val, ok := get(tb[v])
	if !ok {
		return flow.Masked16{}
	}
	mask, ok := get(tb[m])
	if !ok {
		mask = 0xffff
	}
	return flow.Masked16{Value: val & mask, Mask: mask}
}

func mask32(tb *[flowerMax + 1][]byte, v, m int, get func([]byte) (uint32, bool)) flow.Masked32 {
	val, ok := get(tb[v])
	if !ok {
		return flow.Masked32{}
	}
	mask, ok := get(tb[m])
	if !ok {
		mask = 0xffffffff
	}
	return flow.Masked32{Value: val & mask, Mask: mask}
}

func decodeMAC(tb *[flowerMax + 1][]byte, v, m int) flow.MaskedMAC {
	var r flow.MaskedMAC
	if len(tb[v]) < 6 {
		return r
	}
	copy(r.Addr[:], tb[v])
	r.Mask = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if len(tb[m]) >= 6 {
		copy(r.Mask[:], tb[m])
	}
	for i := range r.Addr {
		r.Addr[i] &= r.Mask[i]
	}
	return r
}

var errNotPrefix = errors.New("address mask is not a prefix")

func maskBits(m []byte) (int, error) {
	n := 0
	for i, c := range m {
		if c == 0xff {
			n += 8
			continue
		}
		n += bits.LeadingZeros8(^c)
		if c<<bits.LeadingZeros8(^c) != 0 {
			return 0, errNotPrefix
		}
		for _, r := range m[i+1:] {
			if r != 0 {
				return 0, errNotPrefix
			}
		}
		break
	}
	return n, nil
}

func decodePrefix(tb *[flowerMax + 1][]byte, t4, m4, t6, m6 int) (netip.Prefix, error) {
	var addr netip.Addr
	var m []byte
	switch {
	case len(tb[t4]) >= 4:
		addr = netip.AddrFrom4([4]byte(tb[t4]))
		m = []byte{0xff, 0xff, 0xff, 0xff}
		if len(tb[m4]) >= 4 {
			m = tb[m4][:4]
		}
	case len(tb[t6]) >= 16:
		addr = netip.AddrFrom16([16]byte(tb[t6]))
		m = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		if len(tb[m6]) >= 16 {
			m = tb[m6][:16]
		}
	default:
		return netip.Prefix{}, nil
	}
	n, err := maskBits(m)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(addr, n).Masked(), nil
}

func decodeMatch(m *flow.Match, proto uint16, tb *[flowerMax + 1][]byte) error {
	m.EthDst = decodeMAC(tb, flowerKeyEthDst, flowerKeyEthDstMask)
	m.EthSrc = decodeMAC(tb, flowerKeyEthSrc, flowerKeyEthSrcMask)
	if v, ok := getU16(tb[flowerKeyVLANID]); ok {
		m.VLANID = flow.Some(v & 0xfff)
	}
	if v, ok := getU8(tb[flowerKeyVLANPrio]); ok {
		m.VLANPrio = flow.Some(v)
	}
	if v, ok := getU16(tb[flowerKeyCVLANID]); ok {
		m.CVLANID = flow.Some(v & 0xfff)
	}
	if v, ok := getU8(tb[flowerKeyCVLANPrio]); ok {
		m.CVLANPrio = flow.Some(v)
	}
	vlanKeys := m.VLANID.Set || m.VLANPrio.Set
	if v, ok := getBE16(tb[flowerKeyCVLANEthType]); ok {
		m.EthType = v
	} else if v, ok := getBE16(tb[flowerKeyVLANEthType]); ok {
		if !isVLAN(v) {
			m.EthType = v
		}
	} else if v, ok := getBE16(tb[flowerKeyEthType]); ok {
		if !(isVLAN(v) && vlanKeys) && v != ethPAll {
			m.EthType = v
		}
	} else if proto != ethPAll && !isVLAN(proto) {
		m.EthType = proto
	}
	m.IPProto, _ = getU8(tb[flowerKeyIPProto])
	var err error
	if m.IPSrc, err = decodePrefix(tb, flowerKeyIPv4Src, flowerKeyIPv4SrcMask, flowerKeyIPv6Src, flowerKeyIPv6SrcMask); err != nil {
		return fmt.Errorf("ip src: %w", err)
	}
	if m.IPDst, err = decodePrefix(tb, flowerKeyIPv4Dst, flowerKeyIPv4DstMask, flowerKeyIPv6Dst, flowerKeyIPv6DstMask); err != nil {
		return fmt.Errorf("ip dst: %w", err)
	}
	m.TOS = mask8(tb, flowerKeyIPTOS, flowerKeyIPTOSMask)
	m.TTL = mask8(tb, flowerKeyIPTTL, flowerKeyIPTTLMask)
	for _, p := range [...][4]int{
		{flowerKeyTCPSrc, flowerKeyTCPSrcMask, flowerKeyTCPDst, flowerKeyTCPDstMask},
		{flowerKeyUDPSrc, flowerKeyUDPSrcMask, flowerKeyUDPDst, flowerKeyUDPDstMask},
		{flowerKeySCTPSrc, flowerKeySCTPSrcMask, flowerKeySCTPDst, flowerKeySCTPDstMask},
	} {
		if s := mask16(tb, p[0], p[1], getBE16); s.Set() {
			m.SrcPort = s
		}
		if d := mask16(tb, p[2], p[3], getBE16); d.Set() {
			m.DstPort = d
		}
	}
	m.TCPFlags = mask16(tb, flowerKeyTCPFlags, flowerKeyTCPFlagsMask, getBE16)
	for _, k := range [...][2]int{{flowerKeyICMPv4Type, flowerKeyICMPv4Code}, {flowerKeyICMPv6Type, flowerKeyICMPv6Code}} {
		if v, ok := getU8(tb[k[0]]); ok {
			m.ICMPType = flow.Some(v)
		}
		if v, ok := getU8(tb[k[1]]); ok {
			m.ICMPCode = flow.Some(v)
		}
	}
	m.Frag = mask32(tb, flowerKeyFlags, flowerKeyFlagsMask, getBE32)
	if v, ok := getBE32(tb[flowerKeyEncKeyID]); ok {
		m.TunID = flow.Some(v)
	}
	if m.TunSrc, err = decodePrefix(tb, flowerKeyEncIPv4Src, flowerKeyEncIPv4SrcM, flowerKeyEncIPv6Src, flowerKeyEncIPv6SrcM); err != nil {
		return fmt.Errorf("enc src: %w", err)
	}
	if m.TunDst, err = decodePrefix(tb, flowerKeyEncIPv4Dst, flowerKeyEncIPv4DstM, flowerKeyEncIPv6Dst, flowerKeyEncIPv6DstM); err != nil {
		return fmt.Errorf("enc dst: %w", err)
	}
	if v, ok := getBE16(tb[flowerKeyEncUDPDst]); ok {
		m.TunDstPort = flow.Some(v)
	}
	m.CTState = mask16(tb, flowerKeyCTState, flowerKeyCTStateMask, getU16)
	if z := mask16(tb, flowerKeyCTZone, flowerKeyCTZoneMask, getU16); z.Set() {
		m.CTZone = flow.Some(z.Value)
	}
	m.CTMark = mask32(tb, flowerKeyCTMark, flowerKeyCTMarkMask, getU32)
	return nil
}

func decodeStats(b []byte, s *ActionStats) error {
	var tb [statsPkt64 + 1][]byte
	if err := parseTable(b, tb[:]); err != nil {
		return err
	}
	if v := tb[statsBasic]; len(v) >= 12 {
		s.Bytes = native.Uint64(v)
		s.Packets = uint64(native.Uint32(v[8:]))
	}
	if v, ok := getU64(tb[statsPkt64]); ok {
		s.Packets = v
	}
	if v := tb[statsBasicHW]; len(v) >= 12 {
		s.HasHW = true
		s.HWBytes = native.Uint64(v)
		s.HWPackets = uint64(native.Uint32(v[8:]))
	}
	return nil
}

// tmAttr is the TCA_<KIND>_TM attribute of each action kind we decode.
func tmAttr(kind string) int {
	switch kind {
	case "ct", "csum":
		return 2
	case "police":
		return policeTM
	}
	return 1
}

// actionTable is big enough for every action kind's attributes we read.
const actionTable = 16

func (f *Filter) decodeActions(b []byte, name NameFunc) error {
	fl := f.Flow
	it := attrIter{b: b}
	prevPedit := false
	for it.next() {
		var at [actMax + 1][]byte
		if err := parseTable(it.data, at[:]); err != nil {
			return err
		}
		kind := cstring(at[actKind])
		st := ActionStats{Kind: kind}
		st.Index, _ = getU32(at[actIndex])
		if at[actStats] != nil {
			if err := decodeStats(at[actStats], &st); err != nil {
				return fmt.Errorf("%s stats: %w", kind, err)
			}
		}
		var ot [actionTable][]byte
		if err := parseTable(at[actOptions], ot[:]); err != nil {
			return fmt.Errorf("%s options: %w", kind, err)
		}
		if tm := ot[tmAttr(kind)]; len(tm) >= tcfTLen {
			if native.Uint64(tm[24:]) != 0 { // firstuse
				st.Used = true
				st.LastUsed = time.Duration(native.Uint64(tm[8:])) * 10 * time.Millisecond
			}
		}
		if len(f.Actions) == 0 && at[actCookie] != nil {
			f.Cookie = append([]byte(nil), at[actCookie]...)
		}
		f.Actions = append(f.Actions, st)
		if kind == "csum" && prevPedit {
			prevPedit = false
			continue
		}
		prevPedit = kind == "pedit"
		a, err := decodeAction(kind, at[actOptions], &ot, name)
		if err != nil {
			return fmt.Errorf("action %d (%s): %w", len(f.Actions), kind, err)
		}
		fl.Actions = append(fl.Actions, a)
	}
	return it.err
}

func parmsAction(p []byte) (int32, bool) {
	if len(p) < tcGenLen {
		return 0, false
	}
	return int32(native.Uint32(p[8:])), true
}

func decodeAction(kind string, opts []byte, ot *[actionTable][]byte, name NameFunc) (flow.Action, error) {
	var a flow.Action
	switch kind {
	case "gact":
		c, ok := parmsAction(ot[gactParms])
		if !ok {
			return a, errTruncated
		}
		switch {
		case c == actShot:
			a.Kind = flow.ActDrop
		case c == actOK:
			a.Kind = flow.ActAccept
		case uint32(c)&actExtMask == actGotoChain:
			a.Kind = flow.ActGoto
			a.Chain = uint32(c) &^ actExtMask
		default:
			return a, fmt.Errorf("gact control %d has no flow action", c)
		}
	case "mirred":
		p := ot[mirredParms]
		if len(p) < tcMirredLen {
			return a, errTruncated
		}
		a.Port = portName(name, int32(native.Uint32(p[24:])))
		switch native.Uint32(p[20:]) {
		case mirredEgressRedir:
			a.Kind = flow.ActRedirect
		case mirredIngressRedir:
			a.Kind, a.Ingress = flow.ActRedirect, true
		case mirredEgressMirror:
			a.Kind = flow.ActMirror
		case mirredIngressMirror:
			a.Kind, a.Ingress = flow.ActMirror, true
		default:
			return a, fmt.Errorf("mirred eaction %d", native.Uint32(p[20:]))
		}
	case "vlan":
		p := ot[vlanParms]
		if len(p) < tcGenLen+4 {
			return a, errTruncated
		}
		switch native.Uint32(p[20:]) {
		case vlanActPop:
			a.Kind = flow.ActVLANPop
		case vlanActPush:
			a.Kind = flow.ActVLANPush
			a.VLAN.ID, _ = getU16(ot[vlanPushID])
			a.VLAN.Prio, _ = getU8(ot[vlanPushPrio])
			a.VLAN.Proto, _ = getBE16(ot[vlanPushProto])
			if a.VLAN.Proto == ethP8021Q {
				a.VLAN.Proto = 0
			}
		default:
			return a, fmt.Errorf("vlan action %d", native.Uint32(p[20:]))
		}
	case "tunnel_key":
		p := ot[tunParms]
		if len(p) < tcGenLen+4 {
			return a, errTruncated
		}
		switch native.Uint32(p[20:]) {
		case tunActRelease:
			a.Kind = flow.ActTunnelDecap
		case tunActSet:
			a.Kind = flow.ActTunnelEncap
			t := &flow.TunnelEncap{}
			t.VNI, _ = getBE32(ot[tunKeyID])
			if len(ot[tunIPv4Src]) >= 4 {
				t.Src = netip.AddrFrom4([4]byte(ot[tunIPv4Src]))
			}
			if len(ot[tunIPv4Dst]) >= 4 {
				t.Dst = netip.AddrFrom4([4]byte(ot[tunIPv4Dst]))
			}
			if len(ot[tunIPv6Src]) >= 16 {
				t.Src = netip.AddrFrom16([16]byte(ot[tunIPv6Src]))
			}
			if len(ot[tunIPv6Dst]) >= 16 {
				t.Dst = netip.AddrFrom16([16]byte(ot[tunIPv6Dst]))
			}
			t.DstPort, _ = getBE16(ot[tunDstPort])
			nc, _ := getU8(ot[tunNoCsum])
			t.NoCsum = nc != 0
			t.TOS, _ = getU8(ot[tunTOS])
			t.TTL, _ = getU8(ot[tunTTL])
			a.Encap = t
		default:
			return a, fmt.Errorf("tunnel_key action %d", native.Uint32(p[20:]))
		}
	case "ct":
		a.Kind = flow.ActCT
		a.CT = decodeCT(ot)
	case "pedit":
		r, err := decodePedit(opts)
		if err != nil {
			return a, err
		}
		a.Kind, a.Rewrite = flow.ActRewrite, r
	case "police":
		p, err := decodePolice(opts)
		if err != nil {
			return a, err
		}
		a.Kind, a.Police = flow.ActPolice, p
	default:
		return a, fmt.Errorf("action kind %q has no flow action", kind)
	}
	return a, nil
}

func decodeCT(ot *[actionTable][]byte) *flow.CT {
	c := &flow.CT{}
	act, _ := getU16(ot[ctAction])
	if act&ctActClear != 0 {
		c.Clear = true
		return c
	}
	c.Commit = act&ctActCommit != 0
	c.Zone, _ = getU16(ot[ctZone])
	if v, ok := getU32(ot[ctMark]); ok {
		mask, ok := getU32(ot[ctMarkMask])
		if !ok {
			mask = 0xffffffff
		}
		c.Mark = flow.Masked32{Value: v & mask, Mask: mask}
	}
	switch {
	case act&ctActNATSrc != 0:
		c.NAT.Kind = flow.NATSrc
	case act&ctActNATDst != 0:
		c.NAT.Kind = flow.NATDst
	default:
		return c
	}
	n := &c.NAT
	switch {
	case len(ot[ctNATIPv4Min]) >= 4:
		n.AddrMin = netip.AddrFrom4([4]byte(ot[ctNATIPv4Min]))
		if len(ot[ctNATIPv4Max]) >= 4 {
			n.AddrMax = netip.AddrFrom4([4]byte(ot[ctNATIPv4Max]))
		}
	case len(ot[ctNATIPv6Min]) >= 16:
		n.AddrMin = netip.AddrFrom16([16]byte(ot[ctNATIPv6Min]))
		if len(ot[ctNATIPv6Max]) >= 16 {
			n.AddrMax = netip.AddrFrom16([16]byte(ot[ctNATIPv6Max]))
		}
	}
	// The kernel stores a single address or port as a range of one.
	if n.AddrMax == n.AddrMin {
		n.AddrMax = netip.Addr{}
	}
	n.PortMin, _ = getBE16(ot[ctNATPortMin])
	n.PortMax, _ = getBE16(ot[ctNATPortMax])
	if n.PortMax == n.PortMin {
		n.PortMax = 0
	}
	return c
}
