package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// binaryVersion is the first byte of every encoded flow.
const binaryVersion = 1

// ErrBadEncoding: the bytes are not an encoded flow of a version this build reads.
var ErrBadEncoding = errors.New("bad flow encoding")

// AppendBinary appends a compact encoding of f to b. Only the keys the
// match uses are written, so a typical flow takes well under 100 bytes.
func AppendBinary(b []byte, f *Flow) []byte {
	w := writer{b: b}
	w.u8(binaryVersion)
	w.str(f.ID)
	w.str(f.Port)
	w.uvar(uint64(f.Chain))
	w.uvar(uint64(f.Priority))
	w.u8(uint8(f.Policy))
	m := &f.Match
	keys := m.Keys()
	w.uvar(uint64(keys))
	keys.Each(func(k Key) {
		switch k {
		case KeyEthSrc:
			w.raw(m.EthSrc.Addr[:])
			w.raw(m.EthSrc.Mask[:])
		case KeyEthDst:
			w.raw(m.EthDst.Addr[:])
			w.raw(m.EthDst.Mask[:])
		case KeyEthType:
			w.uvar(uint64(m.EthType))
		case KeyVLANID:
			w.uvar(uint64(m.VLANID.V))
		case KeyVLANPrio:
			w.u8(m.VLANPrio.V)
		case KeyCVLANID:
			w.uvar(uint64(m.CVLANID.V))
		case KeyCVLANPrio:
			w.u8(m.CVLANPrio.V)
		case KeyIPv4Src, KeyIPv6Src:
			w.prefix(m.IPSrc)
		case KeyIPv4Dst, KeyIPv6Dst:
			w.prefix(m.IPDst)
		case KeyIPProto:
			w.u8(m.IPProto)
		case KeyTOS:
			w.u8(m.TOS.Value)
			w.u8(m.TOS.Mask)
		case KeyTTL:
			w.u8(m.TTL.Value)
			w.u8(m.TTL.Mask)
		case KeySrcPort:
			w.m16(m.SrcPort)
		case KeyDstPort:
			w.m16(m.DstPort)
		case KeyTCPFlags:
			w.m16(m.TCPFlags)
		case KeyICMPType:
			w.u8(m.ICMPType.V)
		case KeyICMPCode:
			w.u8(m.ICMPCode.V)
		case KeyFrag:
			w.m32(m.Frag)
		case KeyTunID:
			w.uvar(uint64(m.TunID.V))
		case KeyTunSrc:
			w.prefix(m.TunSrc)
		case KeyTunDst:
			w.prefix(m.TunDst)
		case KeyTunDstPort:
			w.uvar(uint64(m.TunDstPort.V))
		case KeyCTState:
			w.m16(m.CTState)
		case KeyCTZone:
			w.uvar(uint64(m.CTZone.V))
		case KeyCTMark:
			w.m32(m.CTMark)
		}
	})
	w.uvar(uint64(len(f.Actions)))
	for i := range f.Actions {
		w.action(&f.Actions[i])
	}
	return w.b
}

func (w *writer) action(a *Action) {
	w.u8(uint8(a.Kind))
	switch a.Kind {
	case ActRedirect, ActMirror:
		w.str(a.Port)
		w.bool(a.Ingress)
	case ActVLANPush:
		w.uvar(uint64(a.VLAN.ID))
		w.u8(a.VLAN.Prio)
		w.uvar(uint64(a.VLAN.Proto))
	case ActGoto:
		w.uvar(uint64(a.Chain))
	case ActTunnelEncap:
		e := a.Encap
		w.bool(e != nil)
		if e != nil {
			w.uvar(uint64(e.VNI))
			w.addr(e.Src)
			w.addr(e.Dst)
			w.uvar(uint64(e.DstPort))
			w.u8(e.TTL)
			w.u8(e.TOS)
			w.bool(e.NoCsum)
		}
	case ActCT:
		c := a.CT
		w.bool(c != nil)
		if c != nil {
			w.uvar(uint64(c.Zone))
			w.bool(c.Commit)
			w.bool(c.Clear)
			w.m32(c.Mark)
			w.u8(uint8(c.NAT.Kind))
			w.addr(c.NAT.AddrMin)
			w.addr(c.NAT.AddrMax)
			w.uvar(uint64(c.NAT.PortMin))
			w.uvar(uint64(c.NAT.PortMax))
		}
	case ActRewrite:
		r := a.Rewrite
		w.bool(r != nil)
		if r != nil {
			w.u8(uint8(r.Field))
			w.raw(r.MAC[:])
			w.addr(r.IP)
			w.uvar(uint64(r.Port))
		}
	case ActPolice:
		p := a.Police
		w.bool(p != nil)
		if p != nil {
			w.uvar(p.RateBytes)
			w.uvar(p.RatePackets)
			w.uvar(uint64(p.Burst))
			w.u8(uint8(p.Conform))
			w.u8(uint8(p.Exceed))
		}
	}
}

type writer struct{ b []byte }

func (w *writer) u8(v uint8)     { w.b = append(w.b, v) }
func (w *writer) uvar(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) raw(p []byte)   { w.b = append(w.b, p...) }
func (w *writer) m16(m Masked16) { w.uvar(uint64(m.Value)); w.uvar(uint64(m.Mask)) }
func (w *writer) m32(m Masked32) { w.uvar(uint64(m.Value)); w.uvar(uint64(m.Mask)) }
func (w *writer) str(s string)   { w.uvar(uint64(len(s))); w.b = append(w.b, s...) }
func (w *writer) bool(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// addr writes 0 (invalid), 4 or 16 followed by the address bytes.
func (w *writer) addr(a netip.Addr) {
	switch {
	case !a.IsValid():
		w.u8(0)
	case a.Is4():
		w.u8(4)
		b := a.As4()
		w.raw(b[:])
	default:
		w.u8(16)
		b := a.As16()
		w.raw(b[:])
	}
}

func (w *writer) prefix(p netip.Prefix) {
	w.addr(p.Addr())
	w.u8(uint8(p.Bits()))
}

// DecodeBinary decodes a flow written by AppendBinary.
func DecodeBinary(b []byte) (*Flow, error) {
	r := reader{b: b}
	if v := r.u8(); v != binaryVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadEncoding, v)
	}
	f := &Flow{ID: r.str(), Port: r.str(), Chain: uint32(r.uvar()), Priority: uint16(r.uvar()), Policy: Policy(r.u8())}
	m := &f.Match
	keys := KeySet(r.uvar())
	keys.Each(func(k Key) {
		switch k {
		case KeyEthSrc:
			r.arr6(&m.EthSrc.Addr)
			r.arr6(&m.EthSrc.Mask)
		case KeyEthDst:
			r.arr6(&m.EthDst.Addr)
			r.arr6(&m.EthDst.Mask)
		case KeyEthType:
			m.EthType = uint16(r.uvar())
		case KeyVLANID:
			m.VLANID = Some(uint16(r.uvar()))
		case KeyVLANPrio:
			m.VLANPrio = Some(r.u8())
		case KeyCVLANID:
			m.CVLANID = Some(uint16(r.uvar()))
		case KeyCVLANPrio:
			m.CVLANPrio = Some(r.u8())
		case KeyIPv4Src, KeyIPv6Src:
			m.IPSrc = r.prefix()
		case KeyIPv4Dst, KeyIPv6Dst:
			m.IPDst = r.prefix()
		case KeyIPProto:
			m.IPProto = r.u8()
		case KeyTOS:
			m.TOS = Masked8{r.u8(), r.u8()}
		case KeyTTL:
			m.TTL = Masked8{r.u8(), r.u8()}
		case KeySrcPort:
			m.SrcPort = r.m16()
		case KeyDstPort:
			m.DstPort = r.m16()
		case KeyTCPFlags:
			m.TCPFlags = r.m16()
		case KeyICMPType:
			m.ICMPType = Some(r.u8())
		case KeyICMPCode:
			m.ICMPCode = Some(r.u8())
		case KeyFrag:
			m.Frag = r.m32()
		case KeyTunID:
			m.TunID = Some(uint32(r.uvar()))
		case KeyTunSrc:
			m.TunSrc = r.prefix()
		case KeyTunDst:
			m.TunDst = r.prefix()
		case KeyTunDstPort:
			m.TunDstPort = Some(uint16(r.uvar()))
		case KeyCTState:
			m.CTState = r.m16()
		case KeyCTZone:
			m.CTZone = Some(uint16(r.uvar()))
		case KeyCTMark:
			m.CTMark = r.m32()
		}
	})
	if r.err == nil && m.Keys() != keys {
		return nil, fmt.Errorf("%w: key set 0x%x does not match its values", ErrBadEncoding, uint64(keys))
	}
	probe := Flow{Match: *m}
	Normalize(&probe)
	if probe.Match != *m {
		return nil, fmt.Errorf("%w: values outside their masks", ErrBadEncoding)
	}
	n := r.uvar()
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d actions in %d bytes", ErrBadEncoding, n, len(b))
	}
	f.Actions = make([]Action, n)
	for i := range f.Actions {
		r.action(&f.Actions[i])
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadEncoding, len(r.b))
	}
	return f, nil
}

func (r *reader) action(a *Action) {
	a.Kind = ActionKind(r.u8())
	switch a.Kind {
	case ActRedirect, ActMirror:
		a.Port = r.str()
		a.Ingress = r.bool()
	case ActVLANPush:
		a.VLAN = VLANPush{ID: uint16(r.uvar()), Prio: r.u8(), Proto: uint16(r.uvar())}
	case ActGoto:
		a.Chain = uint32(r.uvar())
	case ActTunnelEncap:
		if r.bool() {
			a.Encap = &TunnelEncap{VNI: uint32(r.uvar()), Src: r.addr(), Dst: r.addr(), DstPort: uint16(r.uvar()),
				TTL: r.u8(), TOS: r.u8(), NoCsum: r.bool()}
		}
	case ActCT:
		if r.bool() {
			a.CT = &CT{Zone: uint16(r.uvar()), Commit: r.bool(), Clear: r.bool(), Mark: r.m32(),
				NAT: NAT{Kind: NATKind(r.u8()), AddrMin: r.addr(), AddrMax: r.addr(), PortMin: uint16(r.uvar()), PortMax: uint16(r.uvar())}}
		}
	case ActRewrite:
		if r.bool() {
			rw := &Rewrite{Field: RewriteField(r.u8())}
			r.arr6(&rw.MAC)
			rw.IP = r.addr()
			rw.Port = uint16(r.uvar())
			a.Rewrite = rw
		}
	case ActPolice:
		if r.bool() {
			a.Police = &Police{RateBytes: r.uvar(), RatePackets: r.uvar(), Burst: uint32(r.uvar()),
				Conform: Verdict(r.u8()), Exceed: Verdict(r.u8())}
		}
	}
}

// reader decodes; the first error sticks and later reads return zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrBadEncoding, what)
	}
	r.b = nil
}

func (r *reader) u8() uint8 {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvar() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(n int, what string) []byte {
	if n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string     { return string(r.take(int(r.uvar()), "string")) }
func (r *reader) bool() bool      { return r.u8() != 0 }
func (r *reader) m16() Masked16   { return Masked16{uint16(r.uvar()), uint16(r.uvar())} }
func (r *reader) m32() Masked32   { return Masked32{uint32(r.uvar()), uint32(r.uvar())} }
func (r *reader) arr6(a *[6]byte) { copy(a[:], r.take(6, "MAC")) }

func (r *reader) addr() netip.Addr {
	switch n := r.u8(); n {
	case 0:
		return netip.Addr{}
	case 4:
		var a [4]byte
		copy(a[:], r.take(4, "IPv4 address"))
		return netip.AddrFrom4(a)
	case 16:
		var a [16]byte
		copy(a[:], r.take(16, "IPv6 address"))
		return netip.AddrFrom16(a)
	default:
		if r.err == nil {
			r.err = fmt.Errorf("%w: address length %d", ErrBadEncoding, n)
		}
		r.b = nil
		return netip.Addr{}
	}
}

func (r *reader) prefix() netip.Prefix {
	a := r.addr()
	bits := int(r.u8())
	if !a.IsValid() {
		return netip.Prefix{}
	}
	p := netip.PrefixFrom(a, bits)
	if !p.IsValid() && r.err == nil {
		r.err = fmt.Errorf("%w: prefix length %d", ErrBadEncoding, bits)
	}
	return p
}
