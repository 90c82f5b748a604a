package tcflower

import (
	"encoding/binary"
	"errors"
)

var native = binary.NativeEndian

// writer appends netlink attributes to a byte slice it owns. It never
// allocates once its buffer has grown to the working size.
type writer struct{ b []byte }

func align4(n int) int { return (n + 3) &^ 3 }

func (w *writer) pad() {
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

// hdr appends an attribute header for a payload of n bytes.
func (w *writer) hdr(typ uint16, n int) {
	w.b = native.AppendUint16(w.b, uint16(4+n))
	w.b = native.AppendUint16(w.b, typ)
}

func (w *writer) bytes(typ uint16, v []byte) {
	w.hdr(typ, len(v))
	w.b = append(w.b, v...)
	w.pad()
}

func (w *writer) str(typ uint16, s string) {
	w.hdr(typ, len(s)+1)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.pad()
}

func (w *writer) u8(typ uint16, v uint8) {
	w.hdr(typ, 1)
	w.b = append(w.b, v, 0, 0, 0)
}

func (w *writer) u16(typ uint16, v uint16) {
	w.hdr(typ, 2)
	w.b = native.AppendUint16(w.b, v)
	w.b = append(w.b, 0, 0)
}

func (w *writer) be16(typ uint16, v uint16) {
	w.hdr(typ, 2)
	w.b = binary.BigEndian.AppendUint16(w.b, v)
	w.b = append(w.b, 0, 0)
}

func (w *writer) u32(typ uint16, v uint32) {
	w.hdr(typ, 4)
	w.b = native.AppendUint32(w.b, v)
}

func (w *writer) be32(typ uint16, v uint32) {
	w.hdr(typ, 4)
	w.b = binary.BigEndian.AppendUint32(w.b, v)
}

func (w *writer) u64(typ uint16, v uint64) {
	w.hdr(typ, 8)
	w.b = native.AppendUint64(w.b, v)
}

// begin opens a nested attribute; end closes it.
func (w *writer) begin(typ uint16) int {
	off := len(w.b)
	w.hdr(typ, 0)
	return off
}

func (w *writer) end(off int) {
	native.PutUint16(w.b[off:], uint16(len(w.b)-off))
}

// tcGen appends the tc_gen header every action's PARMS struct starts with:
// index, capab, action, refcnt, bindcnt.
func (w *writer) tcGen(action int32) {
	w.b = native.AppendUint32(w.b, 0)
	w.b = native.AppendUint32(w.b, 0)
	w.b = native.AppendUint32(w.b, uint32(action))
	w.b = native.AppendUint32(w.b, 0)
	w.b = native.AppendUint32(w.b, 0)
}

var errTruncated = errors.New("truncated netlink attribute")

// attrIter walks the attributes of b.
type attrIter struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

func (it *attrIter) next() bool {
	if len(it.b) == 0 || it.err != nil {
		return false
	}
	if len(it.b) < 4 {
		it.err = errTruncated
		return false
	}
	l := int(native.Uint16(it.b))
	if l < 4 || l > len(it.b) {
		it.err = errTruncated
		return false
	}
	it.typ = native.Uint16(it.b[2:]) & nlaTypeMask
	it.data = it.b[4:l]
	if a := align4(l); a < len(it.b) {
		it.b = it.b[a:]
	} else {
		it.b = nil
	}
	return true
}

// parseTable fills tb[type] with each attribute's payload; types above
// len(tb)-1 are ignored. It is the kernel's nla_parse.
func parseTable(b []byte, tb [][]byte) error {
	clear(tb)
	it := attrIter{b: b}
	for it.next() {
		if int(it.typ) < len(tb) {
			tb[it.typ] = it.data
		}
	}
	return it.err
}

func getU8(b []byte) (uint8, bool) {
	if len(b) < 1 {
		return 0, false
	}
	return b[0], true
}

func getU16(b []byte) (uint16, bool) {
	if len(b) < 2 {
		return 0, false
	}
	return native.Uint16(b), true
}

func getBE16(b []byte) (uint16, bool) {
	if len(b) < 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b), true
}

func getU32(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	return native.Uint32(b), true
}

func getBE32(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

func getU64(b []byte) (uint64, bool) {
	if len(b) < 8 {
		return 0, false
	}
	return native.Uint64(b), true
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
