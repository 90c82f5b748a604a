package tcflower

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/offloadd/offloadd/offload/flow"
)

// Params places one flow's filter. The flow gives chain, priority, match
// and actions; Params gives what the kernel needs around them.
type Params struct {
	// Ifindex is the device the filter is attached to.
	Ifindex int32
	// Parent is the filter's parent; 0 means ParentIngress.
	Parent uint32
	// Plane selects skip_sw (flow.Hardware), skip_hw (flow.Software) or
	// no skip flag (flow.Both).
	Plane flow.Plane
	// Handle is the filter handle; 0 lets the kernel choose one.
	Handle uint32
	// Resolve maps a redirect or mirror target port to its ifindex.
	Resolve func(port string) (int32, error)
	// Cookie, when non-nil, replaces CookieFor(flow ID) on the first action.
	Cookie []byte
}

// Protocol is the tc filter protocol for a match (host order): 802.1Q
// with VLAN keys, 802.1ad with inner VLAN keys, else the EthType, and
// ETH_P_ALL when that is 0.
func Protocol(m *flow.Match) uint16 {
	switch {
	case m.CVLANID.Set || m.CVLANPrio.Set:
		return ethP8021AD
	case m.VLANID.Set || m.VLANPrio.Set:
		return ethP8021Q
	case m.EthType == 0:
		return ethPAll
	}
	return m.EthType
}

// Encoder builds filter messages into a buffer it reuses. The slices it
// returns stay valid until Reset. An Encoder is not safe for concurrent use.
type Encoder struct {
	w      writer
	prio   int
	cookie []byte
	ck     [CookieLen]byte
}

// Reset forgets every message built so far and keeps the buffer.
func (e *Encoder) Reset() { e.w.b = e.w.b[:0] }

// Encode returns the body (tcmsg and attributes) of an RTM_NEWTFILTER
// message for f. It is a one-shot Encoder.Filter.
func Encode(f *flow.Flow, p Params) ([]byte, error) {
	var e Encoder
	return e.Filter(f, p)
}

func (e *Encoder) tcmsg(ifindex int32, handle, parent uint32, prio uint16, proto uint16) {
	e.w.b = append(e.w.b, 0, 0, 0, 0) // family AF_UNSPEC, pads
	e.w.b = native.AppendUint32(e.w.b, uint32(ifindex))
	e.w.b = native.AppendUint32(e.w.b, handle)
	e.w.b = native.AppendUint32(e.w.b, parent)
	// tcm_info = TC_H_MAKE(prio << 16, htons(protocol)).
	var pb [2]byte
	binary.BigEndian.PutUint16(pb[:], proto)
	e.w.b = native.AppendUint32(e.w.b, uint32(prio)<<16|uint32(native.Uint16(pb[:])))
}

func (e *Encoder) finish(start int) []byte {
	n := len(e.w.b)
	return e.w.b[start:n:n]
}

// Filter appends the body of an RTM_NEWTFILTER message for f and returns
// it. Equivalent to: tc filter add dev DEV ingress prio P chain C handle H
// protocol PROTO flower skip_sw|skip_hw MATCH action … cookie C.
func (e *Encoder) Filter(f *flow.Flow, p Params) (_ []byte, err error) {
	start := len(e.w.b)
	defer func() {
		if err != nil {
			e.w.b = e.w.b[:start]
		}
	}()
	if f.Priority == 0 {
		return nil, errors.New("encode flower filter: priority 0")
	}
	parent := p.Parent
	if parent == 0 {
		parent = ParentIngress
	}
	proto := Protocol(&f.Match)
	e.tcmsg(p.Ifindex, p.Handle, parent, f.Priority, proto)
	e.w.str(tcaKind, "flower")
	e.w.u32(tcaChain, f.Chain)
	opts := e.w.begin(tcaOptions)
	if err := e.match(&f.Match, proto); err != nil {
		return nil, fmt.Errorf("encode match of flow %q: %w", f.ID, err)
	}
	var flags uint32 // flow.Both: no skip flag
	switch p.Plane {
	case flow.Hardware:
		flags = FlagSkipSW
	case flow.Software:
		flags = FlagSkipHW
	}
	e.w.u32(flowerFlags, flags)
	if p.Cookie != nil {
		e.cookie = p.Cookie
	} else {
		e.ck = CookieFor(f.ID)
		e.cookie = e.ck[:]
	}
	if err := e.actions(f, p); err != nil {
		return nil, fmt.Errorf("encode actions of flow %q: %w", f.ID, err)
	}
	e.w.end(opts)
	return e.finish(start), nil
}

// Delete appends the body of an RTM_DELTFILTER message for one filter.
// Equivalent to: tc filter del dev DEV ingress prio P chain C handle H
// protocol PROTO flower.
func (e *Encoder) Delete(ifindex int32, parent, handle, chain uint32, prio, proto uint16) []byte {
	start := len(e.w.b)
	if parent == 0 {
		parent = ParentIngress
	}
	e.tcmsg(ifindex, handle, parent, prio, proto)
	e.w.str(tcaKind, "flower")
	e.w.u32(tcaChain, chain)
	return e.finish(start)
}

// Dump appends the body of an RTM_GETTFILTER dump request for every
// filter under parent on ifindex (all chains). Equivalent to:
// tc filter show dev DEV ingress.
func (e *Encoder) Dump(ifindex int32, parent uint32) []byte {
	start := len(e.w.b)
	if parent == 0 {
		parent = ParentIngress
	}
	e.tcmsg(ifindex, 0, parent, 0, 0)
	return e.finish(start)
}

func mac(w *writer, typ, mtyp uint16, m flow.MaskedMAC) {
	if !m.Set() {
		return
	}
	w.bytes(typ, m.Addr[:])
	w.bytes(mtyp, m.Mask[:])
}

func prefixMask(p netip.Prefix) (b [16]byte) {
	bits := p.Bits()
	for i := 0; bits > 0; i++ {
		if bits >= 8 {
			b[i] = 0xff
			bits -= 8
			continue
		}
		b[i] = byte(0xff << (8 - bits))
		bits = 0
	}
	return b
}

func prefix(w *writer, t4, m4, t6, m6 uint16, p netip.Prefix) {
	if !p.IsValid() {
		return
	}
	mask := prefixMask(p)
	if p.Addr().Is4() {
		a := p.Addr().As4()
		w.bytes(t4, a[:])
		w.bytes(m4, mask[:4])
		return
	}
	a := p.Addr().As16()
	w.bytes(t6, a[:])
	w.bytes(m6, mask[:])
}

func (e *Encoder) match(m *flow.Match, proto uint16) error {
	w := &e.w
	if proto != ethPAll {
		w.be16(flowerKeyEthType, proto)
	}
	mac(w, flowerKeyEthDst, flowerKeyEthDstMask, m.EthDst)
	mac(w, flowerKeyEthSrc, flowerKeyEthSrcMask, m.EthSrc)
	if m.VLANID.Set {
		w.u16(flowerKeyVLANID, m.VLANID.V)
	}
	if m.VLANPrio.Set {
		w.u8(flowerKeyVLANPrio, m.VLANPrio.V)
	}
	switch proto {
	case ethP8021AD:
		w.be16(flowerKeyVLANEthType, ethP8021Q)
		if m.CVLANID.Set {
			w.u16(flowerKeyCVLANID, m.CVLANID.V)
		}
		if m.CVLANPrio.Set {
			w.u8(flowerKeyCVLANPrio, m.CVLANPrio.V)
		}
		if m.EthType != 0 {
			w.be16(flowerKeyCVLANEthType, m.EthType)
		}
	case ethP8021Q:
		if m.EthType != 0 {
			w.be16(flowerKeyVLANEthType, m.EthType)
		}
	}
	if m.IPProto != 0 {
		w.u8(flowerKeyIPProto, m.IPProto)
	}
	prefix(w, flowerKeyIPv4Src, flowerKeyIPv4SrcMask, flowerKeyIPv6Src, flowerKeyIPv6SrcMask, m.IPSrc)
	prefix(w, flowerKeyIPv4Dst, flowerKeyIPv4DstMask, flowerKeyIPv6Dst, flowerKeyIPv6DstMask, m.IPDst)
	if m.TOS.Set() {
		w.u8(flowerKeyIPTOS, m.TOS.Value)
		w.u8(flowerKeyIPTOSMask, m.TOS.Mask)
	}
	if m.TTL.Set() {
		w.u8(flowerKeyIPTTL, m.TTL.Value)
		w.u8(flowerKeyIPTTLMask, m.TTL.Mask)
	}
	if m.SrcPort.Set() || m.DstPort.Set() {
		var src, srcM, dst, dstM uint16
		switch m.IPProto {
		case flow.ProtoTCP:
			src, srcM, dst, dstM = flowerKeyTCPSrc, flowerKeyTCPSrcMask, flowerKeyTCPDst, flowerKeyTCPDstMask
		case flow.ProtoUDP:
			src, srcM, dst, dstM = flowerKeyUDPSrc, flowerKeyUDPSrcMask, flowerKeyUDPDst, flowerKeyUDPDstMask
		case flow.ProtoSCTP:
			src, srcM, dst, dstM = flowerKeySCTPSrc, flowerKeySCTPSrcMask, flowerKeySCTPDst, flowerKeySCTPDstMask
		default:
			return fmt.Errorf("L4 ports need ip_proto tcp, udp or sctp, not %d", m.IPProto)
		}
		if m.SrcPort.Set() {
			w.be16(src, m.SrcPort.Value)
			w.be16(srcM, m.SrcPort.Mask)
		}
		if m.DstPort.Set() {
			w.be16(dst, m.DstPort.Value)
			w.be16(dstM, m.DstPort.Mask)
		}
	}
	if m.TCPFlags.Set() {
		w.be16(flowerKeyTCPFlags, m.TCPFlags.Value)
		w.be16(flowerKeyTCPFlagsMask, m.TCPFlags.Mask)
	}
	if m.ICMPType.Set || m.ICMPCode.Set {
		typ, typM, code, codeM := uint16(flowerKeyICMPv4Type), uint16(flowerKeyICMPv4TypeM), uint16(flowerKeyICMPv4Code), uint16(flowerKeyICMPv4CodeM)
		switch m.IPProto {
		case flow.ProtoICMP:
		case flow.ProtoICMPv6:
			typ, typM, code, codeM = flowerKeyICMPv6Type, flowerKeyICMPv6TypeM, flowerKeyICMPv6Code, flowerKeyICMPv6CodeM
		default:
			return fmt.Errorf("icmp keys need ip_proto icmp or icmpv6, not %d", m.IPProto)
		}
		if m.ICMPType.Set {
			w.u8(typ, m.ICMPType.V)
			w.u8(typM, 0xff)
		}
		if m.ICMPCode.Set {
			w.u8(code, m.ICMPCode.V)
			w.u8(codeM, 0xff)
		}
	}
	if m.Frag.Set() {
		w.be32(flowerKeyFlags, m.Frag.Value)
		w.be32(flowerKeyFlagsMask, m.Frag.Mask)
	}
	if m.TunID.Set {
		w.be32(flowerKeyEncKeyID, m.TunID.V)
	}
	prefix(w, flowerKeyEncIPv4Src, flowerKeyEncIPv4SrcM, flowerKeyEncIPv6Src, flowerKeyEncIPv6SrcM, m.TunSrc)
	prefix(w, flowerKeyEncIPv4Dst, flowerKeyEncIPv4DstM, flowerKeyEncIPv6Dst, flowerKeyEncIPv6DstM, m.TunDst)
	if m.TunDstPort.Set {
		w.be16(flowerKeyEncUDPDst, m.TunDstPort.V)
		w.be16(flowerKeyEncUDPDstM, 0xffff)
	}
	if m.CTState.Set() {
		w.u16(flowerKeyCTState, m.CTState.Value)
		w.u16(flowerKeyCTStateMask, m.CTState.Mask)
	}
	if m.CTZone.Set {
		w.u16(flowerKeyCTZone, m.CTZone.V)
		w.u16(flowerKeyCTZoneMask, 0xffff)
	}
	if m.CTMark.Set() {
		w.u32(flowerKeyCTMark, m.CTMark.Value)
		w.u32(flowerKeyCTMarkMask, m.CTMark.Mask)
	}
	return nil
}

func (e *Encoder) beginAct(kind string) (outer, opts int, err error) {
	if e.prio == tcActMaxPrio {
		return 0, 0, fmt.Errorf("more than %d tc actions", tcActMaxPrio)
	}
	e.prio++
	outer = e.w.begin(uint16(e.prio))
	e.w.str(actKind, kind)
	return outer, e.w.begin(actOptions | nlaFNested), nil
}

func (e *Encoder) endAct(outer, opts int) {
	e.w.end(opts)
	if e.prio == 1 {
		e.w.bytes(actCookie, e.cookie)
	}
	e.w.end(outer)
}

// gact appends a generic action with the given control.
func (e *Encoder) gact(control int32) error {
	o, p, err := e.beginAct("gact")
	if err != nil {
		return err
	}
	e.w.hdr(gactParms, tcGenLen)
	e.w.tcGen(control)
	e.endAct(o, p)
	return nil
}

func (e *Encoder) actions(f *flow.Flow, p Params) error {
	e.prio = 0
	list := e.w.begin(flowerAct)
	for i := range f.Actions {
		a := &f.Actions[i]
		var err error
		switch a.Kind {
		case flow.ActDrop:
			err = e.gact(actShot)
		case flow.ActAccept:
			err = e.gact(actOK)
		case flow.ActGoto:
			if a.Chain >= 1<<28 {
				err = fmt.Errorf("goto chain %d out of range", a.Chain)
				break
			}
			err = e.gact(int32(actGotoChain | a.Chain))
		case flow.ActRedirect, flow.ActMirror:
			err = e.mirred(a, p)
		case flow.ActVLANPush, flow.ActVLANPop:
			err = e.vlan(a)
		case flow.ActTunnelEncap, flow.ActTunnelDecap:
			err = e.tunnelKey(a)
		case flow.ActCT:
			err = e.ct(a.CT)
		case flow.ActRewrite:
			err = e.rewrite(&f.Match, a.Rewrite)
		case flow.ActPolice:
			err = e.police(a.Police)
		default:
			err = fmt.Errorf("unknown action kind %d", a.Kind)
		}
		if err != nil {
			return fmt.Errorf("actions[%d] %s: %w", i, a.Kind, err)
		}
	}
	e.w.end(list)
	return nil
}

func (e *Encoder) mirred(a *flow.Action, p Params) error {
	if p.Resolve == nil {
		return fmt.Errorf("no port resolver for %q", a.Port)
	}
	ifindex, err := p.Resolve(a.Port)
	if err != nil {
		return fmt.Errorf("resolve port %q: %w", a.Port, err)
	}
	var eaction, control int32
	switch {
	case a.Kind == flow.ActRedirect && !a.Ingress:
		eaction, control = mirredEgressRedir, actStolen
	case a.Kind == flow.ActRedirect:
		eaction, control = mirredIngressRedir, actStolen
	case !a.Ingress:
		eaction, control = mirredEgressMirror, actPipe
	default:
		eaction, control = mirredIngressMirror, actPipe
	}
	o, opts, err := e.beginAct("mirred")
	if err != nil {
		return err
	}
	e.w.hdr(mirredParms, tcMirredLen)
	e.w.tcGen(control)
	e.w.b = native.AppendUint32(e.w.b, uint32(eaction))
	e.w.b = native.AppendUint32(e.w.b, uint32(ifindex))
	e.endAct(o, opts)
	return nil
}

func (e *Encoder) vlan(a *flow.Action) error {
	o, opts, err := e.beginAct("vlan")
	if err != nil {
		return err
	}
	e.w.hdr(vlanParms, tcGenLen+4)
	e.w.tcGen(actPipe)
	if a.Kind == flow.ActVLANPop {
		e.w.b = native.AppendUint32(e.w.b, vlanActPop)
	} else {
		e.w.b = native.AppendUint32(e.w.b, vlanActPush)
		proto := a.VLAN.Proto
		if proto == 0 {
			proto = ethP8021Q
		}
		e.w.u16(vlanPushID, a.VLAN.ID)
		e.w.be16(vlanPushProto, proto)
		e.w.u8(vlanPushPrio, a.VLAN.Prio)
	}
	e.endAct(o, opts)
	return nil
}

func (e *Encoder) tunnelKey(a *flow.Action) error {
	t := a.Encap
	if a.Kind == flow.ActTunnelEncap && t == nil {
		return errors.New("missing tunnel parameters")
	}
	o, opts, err := e.beginAct("tunnel_key")
	if err != nil {
		return err
	}
	e.w.hdr(tunParms, tcGenLen+4)
	e.w.tcGen(actPipe)
	if a.Kind == flow.ActTunnelDecap {
		e.w.b = native.AppendUint32(e.w.b, tunActRelease)
		e.endAct(o, opts)
		return nil
	}
	e.w.b = native.AppendUint32(e.w.b, tunActSet)
	e.w.be32(tunKeyID, t.VNI)
	if !t.Src.IsValid() || !t.Dst.IsValid() || t.Src.Is4() != t.Dst.Is4() {
		return errors.New("tunnel source and destination must be addresses of one family")
	}
	if t.Src.Is4() {
		s, d := t.Src.As4(), t.Dst.As4()
		e.w.bytes(tunIPv4Src, s[:])
		e.w.bytes(tunIPv4Dst, d[:])
	} else {
		s, d := t.Src.As16(), t.Dst.As16()
		e.w.bytes(tunIPv6Src, s[:])
		e.w.bytes(tunIPv6Dst, d[:])
	}
	if t.DstPort != 0 {
		e.w.be16(tunDstPort, t.DstPort)
	}
	var nocsum uint8
	if t.NoCsum {
		nocsum = 1
	}
	e.w.u8(tunNoCsum, nocsum)
	if t.TOS != 0 {
		e.w.u8(tunTOS, t.TOS)
	}
	if t.TTL != 0 {
		e.w.u8(tunTTL, t.TTL)
	}
	e.endAct(o, opts)
	return nil
}

func (e *Encoder) ct(c *flow.CT) error {
	if c == nil {
		return errors.New("missing ct parameters")
	}
	o, opts, err := e.beginAct("ct")
	if err != nil {
		return err
	}
	e.w.hdr(ctParms, tcGenLen)
	e.w.tcGen(actPipe)
	if c.Clear {
		e.w.u16(ctAction, ctActClear)
		e.endAct(o, opts)
		return nil
	}
	var act uint16
	if c.Commit {
		act |= ctActCommit
	}
	switch c.NAT.Kind {
	case flow.NATSrc:
		act |= ctActNAT | ctActNATSrc
	case flow.NATDst:
		act |= ctActNAT | ctActNATDst
	}
	e.w.u16(ctAction, act)
	e.w.u16(ctZone, c.Zone)
	if c.Mark.Set() {
		e.w.u32(ctMark, c.Mark.Value)
		e.w.u32(ctMarkMask, c.Mark.Mask)
	}
	if n := c.NAT; n.Kind != flow.NATNone {
		if !n.AddrMin.IsValid() {
			return errors.New("ct nat needs an address")
		}
		if n.AddrMin.Is4() {
			a := n.AddrMin.As4()
			e.w.bytes(ctNATIPv4Min, a[:])
			if n.AddrMax.IsValid() {
				a = n.AddrMax.As4()
				e.w.bytes(ctNATIPv4Max, a[:])
			}
		} else {
			a := n.AddrMin.As16()
			e.w.bytes(ctNATIPv6Min, a[:])
			if n.AddrMax.IsValid() {
				a = n.AddrMax.As16()
				e.w.bytes(ctNATIPv6Max, a[:])
			}
		}
		if n.PortMin != 0 {
			e.w.be16(ctNATPortMin, n.PortMin)
			if n.PortMax != 0 {
				e.w.be16(ctNATPortMax, n.PortMax)
			}
		}
	}
	e.endAct(o, opts)
	return nil
}
