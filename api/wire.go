package api

import (
	"unicode/utf8"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The ApplyFlows fast path reads each wire Flow into reused v1 messages
// (no per-flow protobuf allocations) and converts them with FlowFromProto,
// so conversion and validation stay in one place. It handles the messages
// well-formed controllers send; anything else (an unknown field, a field
// given twice that protobuf would merge, a rewrite or police action, NAT)
// sends that flow, or for a malformed request the whole request, through
// proto.Unmarshal, so both paths give the same result.

// wireField is one decoded field: its number, wire type and value.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // varint value
	b   []byte // bytes value
}

// nextField consumes one varint or length-delimited field from b. Other
// wire types are not in our schema and take the slow path.
func nextField(b []byte) (wireField, []byte, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return wireField{}, nil, false
	}
	b = b[n:]
	f := wireField{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		f.u, n = protowire.ConsumeVarint(b)
	case protowire.BytesType:
		f.b, n = protowire.ConsumeBytes(b)
	default:
		return wireField{}, nil, false
	}
	if n < 0 {
		return wireField{}, nil, false
	}
	return f, b[n:], true
}

func (f wireField) varint() (uint64, bool) { return f.u, f.typ == protowire.VarintType }

func (f wireField) u32() (uint32, bool) { return uint32(f.u), f.typ == protowire.VarintType }

func (f wireField) boolean() (bool, bool) { return f.u != 0, f.typ == protowire.VarintType }

// bytes returns a length-delimited value; a proto3 string must be UTF-8.
func (f wireField) str() ([]byte, bool) {
	return f.b, f.typ == protowire.BytesType && utf8.Valid(f.b)
}

// msg returns a sub-message's bytes.
func (f wireField) msg() ([]byte, bool) { return f.b, f.typ == protowire.BytesType }

// wireScratch holds the reused messages one flow is decoded into.
type wireScratch struct {
	flow    v1.Flow
	match   v1.Match
	ipFlags v1.IPFlags
	tunnel  v1.TunnelMatch
	opt     [40]uint32 // optional uint32 values, by match field number
	tunOpt  [5]uint32  // optional uint32 values, by tunnel field number
	flags   [3]bool    // optional bools of ip_flags, by field number
	actions []*actionScratch
	ptrs    []*v1.Action
	strs    map[string]string
}

// actionScratch holds the reused messages of one action.
type actionScratch struct {
	a           v1.Action
	drop        v1.Action_Drop
	accept      v1.Action_Accept
	redirect    v1.Action_Redirect
	mirror      v1.Action_Mirror
	vlanPush    v1.Action_VlanPush
	vlanPop     v1.Action_VlanPop
	encap       v1.Action_TunnelEncap
	decap       v1.Action_TunnelDecap
	ct          v1.Action_Ct
	gotoA       v1.Action_Goto
	dropMsg     v1.Drop
	acceptMsg   v1.Accept
	redirectMsg v1.Redirect
	mirrorMsg   v1.Mirror
	vlanPushMsg v1.VlanPush
	vlanPopMsg  v1.VlanPop
	encapMsg    v1.TunnelEncap
	decapMsg    v1.TunnelDecap
	ctMsg       v1.Conntrack
	ctMark      uint32
	gotoMsg     v1.Goto
}

// maxInterned bounds the strings one request interns.
const maxInterned = 256

// intern returns b as a string, sharing one copy of the values that
// repeat across a batch (ports, protocols, tunnel endpoints).
func (sc *wireScratch) intern(b []byte) string {
	if s, ok := sc.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if sc.strs == nil {
		sc.strs = make(map[string]string, 32)
	}
	if len(sc.strs) < maxInterned {
		sc.strs[s] = s
	}
	return s
}

// decodeFlow reads one wire Flow into sc.flow. It returns false when the
// flow needs proto.Unmarshal.
func (sc *wireScratch) decodeFlow(b []byte) bool {
	p := &sc.flow
	*p = v1.Flow{}
	sc.ptrs = sc.ptrs[:0]
	var haveMatch bool
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		var s []byte
		switch f.num {
		case 1:
			s, ok = f.str()
			p.Id = string(s)
		case 2:
			s, ok = f.str()
			p.Port = sc.intern(s)
		case 3:
			p.Chain, ok = f.u32()
		case 4:
			p.Priority, ok = f.u32()
		case 5:
			var v uint64
			v, ok = f.varint()
			p.Policy = v1.PlacementPolicy(int32(v))
		case 6:
			if haveMatch {
				return false // protobuf merges repeats
			}
			haveMatch = true
			s, ok = f.msg()
			ok = ok && sc.decodeMatch(s)
			p.Match = &sc.match
		case 7:
			s, ok = f.msg()
			ok = ok && sc.decodeAction(s)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	if len(sc.ptrs) > 0 {
		p.Actions = sc.ptrs
	}
	return true
}

func (sc *wireScratch) decodeMatch(b []byte) bool {
	m := &sc.match
	*m = v1.Match{}
	var haveFlags, haveTunnel bool
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		var s []byte
		switch f.num {
		case 1, 2, 3, 4, 10, 11, 12, 13:
			s, ok = f.str()
			v := string(s)
			switch f.num {
			case 1:
				m.EthSrc = v
			case 2:
				m.EthSrcMask = v
			case 3:
				m.EthDst = v
			case 4:
				m.EthDstMask = v
			case 10:
				m.Ipv4Src = v
			case 11:
				m.Ipv4Dst = v
			case 12:
				m.Ipv6Src = v
			case 13:
				m.Ipv6Dst = v
			}
		case 5, 14, 29:
			s, ok = f.str()
			v := sc.intern(s)
			switch f.num {
			case 5:
				m.EthType = v
			case 14:
				m.IpProto = v
			case 29:
				m.CtState = v
			}
		case 6, 7, 8, 9, 15, 17, 19, 21, 23, 25, 26, 30, 31:
			v := &sc.opt[f.num]
			*v, ok = f.u32()
			switch f.num {
			case 6:
				m.VlanId = v
			case 7:
				m.VlanPrio = v
			case 8:
				m.CvlanId = v
			case 9:
				m.CvlanPrio = v
			case 15:
				m.Tos = v
			case 17:
				m.Ttl = v
			case 19:
				m.SrcPort = v
			case 21:
				m.DstPort = v
			case 23:
				m.TcpFlags = v
			case 25:
				m.IcmpType = v
			case 26:
				m.IcmpCode = v
			case 30:
				m.CtZone = v
			case 31:
				m.CtMark = v
			}
		case 16:
			m.TosMask, ok = f.u32()
		case 18:
			m.TtlMask, ok = f.u32()
		case 20:
			m.SrcPortMask, ok = f.u32()
		case 22:
			m.DstPortMask, ok = f.u32()
		case 24:
			m.TcpFlagsMask, ok = f.u32()
		case 32:
			m.CtMarkMask, ok = f.u32()
		case 27:
			if haveFlags {
				return false
			}
			haveFlags = true
			s, ok = f.msg()
			ok = ok && sc.decodeIPFlags(s)
			m.IpFlags = &sc.ipFlags
		case 28:
			if haveTunnel {
				return false
			}
			haveTunnel = true
			s, ok = f.msg()
			ok = ok && sc.decodeTunnel(s)
			m.Tunnel = &sc.tunnel
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func (sc *wireScratch) decodeIPFlags(b []byte) bool {
	fl := &sc.ipFlags
	*fl = v1.IPFlags{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.num < 1 || f.num > 2 {
			return false
		}
		b = rest
		v := &sc.flags[f.num]
		if *v, ok = f.boolean(); !ok {
			return false
		}
		if f.num == 1 {
			fl.Frag = v
		} else {
			fl.FirstFrag = v
		}
	}
	return true
}

func (sc *wireScratch) decodeTunnel(b []byte) bool {
	t := &sc.tunnel
	*t = v1.TunnelMatch{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		var s []byte
		switch f.num {
		case 1, 4:
			v := &sc.tunOpt[f.num]
			*v, ok = f.u32()
			if f.num == 1 {
				t.Vni = v
			} else {
				t.DstPort = v
			}
		case 2:
			s, ok = f.str()
			t.Src = sc.intern(s)
		case 3:
			s, ok = f.str()
			t.Dst = sc.intern(s)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

// decodeAction appends one wire Action to sc.ptrs.
func (sc *wireScratch) decodeAction(b []byte) bool {
	k := len(sc.ptrs)
	if k == len(sc.actions) {
		sc.actions = append(sc.actions, new(actionScratch))
	}
	as := sc.actions[k]
	a := &as.a
	*a = v1.Action{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || a.Action != nil {
			return false // protobuf keeps the last of a oneof, merging repeats
		}
		b = rest
		s, ok := f.msg()
		if !ok {
			return false
		}
		switch f.num {
		case 1:
			ok = len(s) == 0
			as.drop.Drop = &as.dropMsg
			a.Action = &as.drop
		case 2:
			ok = len(s) == 0
			as.accept.Accept = &as.acceptMsg
			a.Action = &as.accept
		case 3:
			r := &as.redirectMsg
			*r = v1.Redirect{}
			ok = sc.decodePortRef(s, &r.Port, &r.Ingress)
			as.redirect.Redirect = r
			a.Action = &as.redirect
		case 4:
			r := &as.mirrorMsg
			*r = v1.Mirror{}
			ok = sc.decodePortRef(s, &r.Port, &r.Ingress)
			as.mirror.Mirror = r
			a.Action = &as.mirror
		case 5:
			ok = sc.decodeVlanPush(s, &as.vlanPushMsg)
			as.vlanPush.VlanPush = &as.vlanPushMsg
			a.Action = &as.vlanPush
		case 6:
			ok = len(s) == 0
			as.vlanPop.VlanPop = &as.vlanPopMsg
			a.Action = &as.vlanPop
		case 7:
			ok = sc.decodeEncap(s, &as.encapMsg)
			as.encap.TunnelEncap = &as.encapMsg
			a.Action = &as.encap
		case 8:
			ok = len(s) == 0
			as.decap.TunnelDecap = &as.decapMsg
			a.Action = &as.decap
		case 9:
			ok = decodeCT(s, &as.ctMsg, &as.ctMark)
			as.ct.Ct = &as.ctMsg
			a.Action = &as.ct
		case 10:
			ok = decodeGoto(s, &as.gotoMsg)
			as.gotoA.Goto = &as.gotoMsg
			a.Action = &as.gotoA
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	sc.ptrs = append(sc.ptrs, a)
	return true
}

// decodePortRef reads a Redirect or Mirror: port = 1, ingress = 2.
func (sc *wireScratch) decodePortRef(b []byte, port *string, ingress *bool) bool {
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch f.num {
		case 1:
			var s []byte
			s, ok = f.str()
			*port = sc.intern(s)
		case 2:
			*ingress, ok = f.boolean()
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func (sc *wireScratch) decodeVlanPush(b []byte, q *v1.VlanPush) bool {
	*q = v1.VlanPush{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch f.num {
		case 1:
			q.Id, ok = f.u32()
		case 2:
			q.Prio, ok = f.u32()
		case 3:
			var s []byte
			s, ok = f.str()
			q.Proto = sc.intern(s)
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func (sc *wireScratch) decodeEncap(b []byte, e *v1.TunnelEncap) bool {
	*e = v1.TunnelEncap{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		var s []byte
		switch f.num {
		case 1:
			e.Vni, ok = f.u32()
		case 2:
			s, ok = f.str()
			e.Src = sc.intern(s)
		case 3:
			s, ok = f.str()
			e.Dst = sc.intern(s)
		case 4:
			e.DstPort, ok = f.u32()
		case 5:
			e.Ttl, ok = f.u32()
		case 6:
			e.Tos, ok = f.u32()
		case 7:
			e.NoCsum, ok = f.boolean()
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

// decodeCT reads a Conntrack action without NAT (NAT takes the slow path).
func decodeCT(b []byte, ct *v1.Conntrack, mark *uint32) bool {
	*ct = v1.Conntrack{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false
		}
		b = rest
		switch f.num {
		case 1:
			ct.Zone, ok = f.u32()
		case 2:
			ct.Commit, ok = f.boolean()
		case 3:
			ct.Clear, ok = f.boolean()
		case 4:
			*mark, ok = f.u32()
			ct.Mark = mark
		case 5:
			ct.MarkMask, ok = f.u32()
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func decodeGoto(b []byte, g *v1.Goto) bool {
	*g = v1.Goto{}
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.num != 1 {
			return false
		}
		b = rest
		if g.Chain, ok = f.u32(); !ok {
			return false
		}
	}
	return true
}

// applyBatch is an ApplyFlowsRequest converted to domain flows: per
// request flow its id, the converted flow and the conversion's violations
// (relative to the flow).
type applyBatch struct {
	ids          []string
	flows        []*flow.Flow
	violations   [][]flow.Violation
	atomic       bool
	includeFlows bool
	slow         int // flows decoded by proto.Unmarshal (the fast path did not cover them)
}

func (b *applyBatch) add(id string, f *flow.Flow, vs []flow.Violation) {
	b.ids = append(b.ids, id)
	b.flows = append(b.flows, f)
	b.violations = append(b.violations, vs)
}

// batchFromProto converts a decoded request.
func batchFromProto(req *v1.ApplyFlowsRequest) *applyBatch {
	n := len(req.GetFlows())
	b := &applyBatch{ids: make([]string, 0, n), flows: make([]*flow.Flow, 0, n), violations: make([][]flow.Violation, 0, n),
		atomic: req.GetAtomic(), includeFlows: req.GetIncludeFlows()}
	for _, p := range req.GetFlows() {
		f, vs := FlowFromProto(p, "")
		b.add(p.GetId(), f, vs)
	}
	return b
}

// decodeApplyFlows converts an ApplyFlowsRequest straight from its wire
// form. It returns false when the request must go through proto.Unmarshal
// (a malformed message or an unknown field at the top level).
func decodeApplyFlows(data []byte) (*applyBatch, bool) {
	b := &applyBatch{}
	var sc wireScratch
	n := countFlows(data)
	b.ids, b.flows, b.violations = make([]string, 0, n), make([]*flow.Flow, 0, n), make([][]flow.Violation, 0, n)
	for len(data) > 0 {
		f, rest, ok := nextField(data)
		if !ok {
			return nil, false
		}
		data = rest
		switch f.num {
		case 1:
			fb, ok := f.msg()
			if !ok {
				return nil, false
			}
			if sc.decodeFlow(fb) {
				p := &sc.flow
				fl, vs := FlowFromProto(p, "")
				b.add(p.Id, fl, vs)
				continue
			}
			// The slow path for this flow; a flow protobuf cannot decode
			// fails the whole request, as proto.Unmarshal would.
			p := new(v1.Flow)
			if err := proto.Unmarshal(fb, p); err != nil {
				return nil, false
			}
			b.slow++
			fl, vs := FlowFromProto(p, "")
			b.add(p.GetId(), fl, vs)
		case 2:
			if b.atomic, ok = f.boolean(); !ok {
				return nil, false
			}
		case 3:
			if b.includeFlows, ok = f.boolean(); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return b, true
}

// countFlows counts the top-level field 1 entries, to size the batch.
func countFlows(data []byte) int {
	n := 0
	for len(data) > 0 {
		m, typ, k := protowire.ConsumeTag(data)
		if k < 0 {
			return n
		}
		data = data[k:]
		k = protowire.ConsumeFieldValue(m, typ, data)
		if k < 0 {
			return n
		}
		data = data[k:]
		if m == 1 {
			n++
		}
	}
	return n
}
