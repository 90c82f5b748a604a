package tcflower

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/offloadd/offloadd/offload/flow"
)

// pkey is one pedit key: the packet word at off (of header htype) becomes
// ((word & mask) ^ val) for cmd set, or word+val on the bits outside mask
// for cmd add. mask and val are the word as read in network order.
type pkey struct {
	mask, val uint32
	off       uint32
	htype     uint16
	cmd       uint16
}

// rewriteKeys returns the pedit keys iproute2's `pedit ex munge` emits for
// r and the csum flags that must follow. m is the flow's match, which
// fixes the IP family and L4 protocol.
func rewriteKeys(m *flow.Match, r *flow.Rewrite, keys []pkey) ([]pkey, uint32, error) {
	be := binary.BigEndian
	l4csum := func() uint32 {
		switch m.IPProto {
		case flow.ProtoTCP:
			return csumTCP
		case flow.ProtoUDP:
			return csumUDP
		}
		return 0
	}
	switch r.Field {
	case flow.RewriteEthDst:
		// pedit ex munge eth dst set MAC: a 32-bit word, then the high
		// half of the next word.
		keys = append(keys,
			pkey{val: be.Uint32(r.MAC[0:4]), off: 0, htype: peditHTypeEth},
			pkey{mask: 0x0000ffff, val: uint32(r.MAC[4])<<24 | uint32(r.MAC[5])<<16, off: 4, htype: peditHTypeEth})
		return keys, 0, nil
	case flow.RewriteEthSrc:
		keys = append(keys,
			pkey{mask: 0xffff0000, val: uint32(r.MAC[0])<<8 | uint32(r.MAC[1]), off: 4, htype: peditHTypeEth},
			pkey{val: be.Uint32(r.MAC[2:6]), off: 8, htype: peditHTypeEth})
		return keys, 0, nil
	case flow.RewriteIPSrc, flow.RewriteIPDst:
		if !r.IP.IsValid() {
			return nil, 0, errors.New("rewrite needs an address")
		}
		if r.IP.Is4() {
			off := uint32(12)
			if r.Field == flow.RewriteIPDst {
				off = 16
			}
			a := r.IP.As4()
			keys = append(keys, pkey{val: be.Uint32(a[:]), off: off, htype: peditHTypeIP4})
			return keys, csumIPv4Hdr | l4csum(), nil
		}
		off := uint32(8)
		if r.Field == flow.RewriteIPDst {
			off = 24
		}
		a := r.IP.As16()
		for i := range uint32(4) {
			keys = append(keys, pkey{val: be.Uint32(a[4*i:]), off: off + 4*i, htype: peditHTypeIP6})
		}
		return keys, l4csum(), nil
	case flow.RewriteTTLDec:
		// pedit ex munge ip ttl add 0xff (ip6 hoplimit add 0xff): adding
		// 0xff to one byte decrements it by one.
		switch m.EthType {
		case flow.EthTypeIPv4:
			keys = append(keys, pkey{mask: 0x00ffffff, val: 0xff000000, off: 8, htype: peditHTypeIP4, cmd: peditCmdAdd})
			return keys, csumIPv4Hdr, nil
		case flow.EthTypeIPv6:
			keys = append(keys, pkey{mask: 0xffffff00, val: 0x000000ff, off: 4, htype: peditHTypeIP6, cmd: peditCmdAdd})
			return keys, 0, nil
		}
		return nil, 0, errors.New("ttl_dec needs eth_type ipv4 or ipv6")
	case flow.RewriteSrcPort, flow.RewriteDstPort:
		var ht uint16
		switch m.IPProto {
		case flow.ProtoTCP:
			ht = peditHTypeTCP
		case flow.ProtoUDP:
			ht = peditHTypeUDP
		default:
			return nil, 0, fmt.Errorf("pedit has no header type for ports of ip_proto %d", m.IPProto)
		}
		k := pkey{mask: 0xffff0000, val: uint32(r.Port), htype: ht}
		if r.Field == flow.RewriteSrcPort {
			k.mask, k.val = 0x0000ffff, uint32(r.Port)<<16
		}
		return append(keys, k), l4csum(), nil
	}
	return nil, 0, fmt.Errorf("unknown rewrite field %d", r.Field)
}

func (e *Encoder) rewrite(m *flow.Match, r *flow.Rewrite) error {
	if r == nil {
		return errors.New("missing rewrite parameters")
	}
	var buf [8]pkey
	keys, csum, err := rewriteKeys(m, r, buf[:0])
	if err != nil {
		return err
	}
	o, opts, err := e.beginAct("pedit")
	if err != nil {
		return err
	}
	w := &e.w
	w.hdr(peditParmsEx, peditSelLen+len(keys)*peditKeyLen)
	w.tcGen(actPipe)
	w.b = append(w.b, uint8(len(keys)), 0, 0, 0) // nkeys, flags, padding
	for _, k := range keys {
		w.b = binary.BigEndian.AppendUint32(w.b, k.mask)
		w.b = binary.BigEndian.AppendUint32(w.b, k.val)
		w.b = native.AppendUint32(w.b, k.off)
		w.b = append(w.b, make([]byte, 12)...) // at, offmask, shift
	}
	ex := w.begin(peditKeysEx | nlaFNested)
	for _, k := range keys {
		ke := w.begin(peditKeyEx | nlaFNested)
		w.u16(peditKeyExHType, k.htype)
		w.u16(peditKeyExCmd, k.cmd)
		w.end(ke)
	}
	w.end(ex)
	e.endAct(o, opts)
	if csum == 0 {
		return nil
	}
	o, opts, err = e.beginAct("csum")
	if err != nil {
		return err
	}
	w.hdr(csumParms, tcGenLen+4)
	w.tcGen(actPipe)
	w.b = native.AppendUint32(w.b, csum)
	e.endAct(o, opts)
	return nil
}

// header is a scratch copy of one protocol header that pedit keys are
// applied to; set marks the bytes a key wrote.
type header struct {
	b   [40]byte
	set [40]bool
	add [40]bool
}

var errPedit = errors.New("pedit keys are not one offloadd rewrite")

// decodePedit turns the options of a pedit action back into a Rewrite.
func decodePedit(opts []byte) (*flow.Rewrite, error) {
	var tb [peditKeyEx + 1][]byte
	if err := parseTable(opts, tb[:]); err != nil {
		return nil, err
	}
	parms := tb[peditParmsEx]
	if parms == nil {
		return nil, errors.New("pedit without extended keys")
	}
	if len(parms) < peditSelLen {
		return nil, errTruncated
	}
	n := int(parms[tcGenLen])
	if len(parms) < peditSelLen+n*peditKeyLen {
		return nil, errTruncated
	}
	var htypes, cmds [256]uint16
	it := attrIter{b: tb[peditKeysEx]}
	i := 0
	for it.next() {
		if it.typ != peditKeyEx || i >= n {
			continue
		}
		var kt [peditKeyExCmd + 1][]byte
		if err := parseTable(it.data, kt[:]); err != nil {
			return nil, err
		}
		htypes[i], _ = getU16(kt[peditKeyExHType])
		cmds[i], _ = getU16(kt[peditKeyExCmd])
		i++
	}
	if it.err != nil {
		return nil, it.err
	}
	if i != n || n == 0 {
		return nil, errPedit
	}
	var h header
	htype := htypes[0]
	for k := range n {
		kb := parms[peditSelLen+k*peditKeyLen:]
		mask := binary.BigEndian.Uint32(kb[0:])
		val := binary.BigEndian.Uint32(kb[4:])
		off := native.Uint32(kb[8:])
		if htypes[k] != htype || off > uint32(len(h.b)-4) || native.Uint32(kb[12:]) != 0 {
			return nil, errPedit
		}
		for j := range uint32(4) {
			shift := 24 - 8*j
			m := byte(mask >> shift)
			switch m {
			case 0xff:
				continue
			case 0x00:
			default:
				return nil, fmt.Errorf("pedit partial-byte mask %08x: %w", mask, errPedit)
			}
			if h.set[off+j] {
				return nil, errPedit
			}
			h.set[off+j] = true
			h.add[off+j] = cmds[k] == peditCmdAdd
			h.b[off+j] = byte(val >> shift)
		}
	}
	return h.rewrite(htype)
}

// only reports whether exactly bytes [from, to) were written, with no add
// unless add is true.
func (h *header) only(from, to int, add bool) bool {
	for i := range h.set {
		in := i >= from && i < to
		if h.set[i] != in || (in && h.add[i] != add) {
			return false
		}
	}
	return true
}

func (h *header) rewrite(htype uint16) (*flow.Rewrite, error) {
	r := &flow.Rewrite{}
	switch {
	case htype == peditHTypeEth && h.only(0, 6, false):
		r.Field = flow.RewriteEthDst
		copy(r.MAC[:], h.b[0:6])
	case htype == peditHTypeEth && h.only(6, 12, false):
		r.Field = flow.RewriteEthSrc
		copy(r.MAC[:], h.b[6:12])
	case htype == peditHTypeIP4 && h.only(12, 16, false):
		r.Field = flow.RewriteIPSrc
		r.IP = netip.AddrFrom4([4]byte(h.b[12:16]))
	case htype == peditHTypeIP4 && h.only(16, 20, false):
		r.Field = flow.RewriteIPDst
		r.IP = netip.AddrFrom4([4]byte(h.b[16:20]))
	case htype == peditHTypeIP6 && h.only(8, 24, false):
		r.Field = flow.RewriteIPSrc
		r.IP = netip.AddrFrom16([16]byte(h.b[8:24]))
	case htype == peditHTypeIP6 && h.only(24, 40, false):
		r.Field = flow.RewriteIPDst
		r.IP = netip.AddrFrom16([16]byte(h.b[24:40]))
	case htype == peditHTypeIP4 && h.only(8, 9, true) && h.b[8] == 0xff,
		htype == peditHTypeIP6 && h.only(7, 8, true) && h.b[7] == 0xff:
		r.Field = flow.RewriteTTLDec
	case (htype == peditHTypeTCP || htype == peditHTypeUDP) && h.only(0, 2, false):
		r.Field = flow.RewriteSrcPort
		r.Port = binary.BigEndian.Uint16(h.b[0:2])
	case (htype == peditHTypeTCP || htype == peditHTypeUDP) && h.only(2, 4, false):
		r.Field = flow.RewriteDstPort
		r.Port = binary.BigEndian.Uint16(h.b[2:4])
	default:
		return nil, errPedit
	}
	return r, nil
}
