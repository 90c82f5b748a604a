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

// fields calls fn for each field of the message in b. It returns false
// when fn does or a field is malformed or of a wire type not in our
// schema (fixed-width, groups).
func fields(b []byte, fn func(f wireField) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		f := wireField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			return false
		}
		if n < 0 || !fn(f) {
			return false
		}
		b = b[n:]
	}
	return true
}

func (f wireField) isVarint() bool { return f.typ == protowire.VarintType }

func (f wireField) u32(dst *uint32) bool {
	*dst = uint32(f.u)
	return f.isVarint()
}

// optU32 sets an optional uint32: *dst points at slot, which holds the value.
func (f wireField) optU32(dst **uint32, slot *uint32) bool {
	*dst = slot
	return f.u32(slot)
}

func (f wireField) boolean(dst *bool) bool {
	*dst = f.u != 0
	return f.isVarint()
}

// str sets a string; a proto3 string must be UTF-8.
func (f wireField) str(dst *string) bool {
	if f.typ != protowire.BytesType || !utf8.Valid(f.b) {
		return false
	}
	*dst = string(f.b)
	return true
}

// msg returns a sub-message's bytes.
func (f wireField) msg() ([]byte, bool) { return f.b, f.typ == protowire.BytesType }

// empty reports whether f is an empty message (Drop, Accept, ...).
func (f wireField) empty() bool { return f.typ == protowire.BytesType && len(f.b) == 0 }

// wireScratch holds the reused messages one flow is decoded into.
type wireScratch struct {
	flow    v1.Flow
	match   v1.Match
	ipFlags v1.IPFlags
	tunnel  v1.TunnelMatch
	opt     [33]uint32 // optional uint32 values, by match field number
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

// intern sets a string that tends to repeat across a batch (ports,
// protocols, tunnel endpoints), sharing one copy of each.
func (sc *wireScratch) intern(f wireField, dst *string) bool {
	if f.typ != protowire.BytesType || !utf8.Valid(f.b) {
		return false
	}
	if s, ok := sc.strs[string(f.b)]; ok {
		*dst = s
		return true
	}
	s := string(f.b)
	if sc.strs == nil {
		sc.strs = make(map[string]string, 32)
	}
	if len(sc.strs) < maxInterned {
		sc.strs[s] = s
	}
	*dst = s
	return true
}

// once guards a singular message field: protobuf merges repeats, which
// the fast path leaves to proto.Unmarshal.
func once(seen *bool) bool {
	if *seen {
		return false
	}
	*seen = true
	return true
}

// decodeFlow reads one wire Flow into sc.flow. It returns false when the
// flow needs proto.Unmarshal.
func (sc *wireScratch) decodeFlow(b []byte) bool {
	p := &sc.flow
	*p = v1.Flow{}
	sc.ptrs = sc.ptrs[:0]
	var haveMatch bool
	ok := fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return f.str(&p.Id)
		case 2:
			return sc.intern(f, &p.Port)
		case 3:
			return f.u32(&p.Chain)
		case 4:
			return f.u32(&p.Priority)
		case 5:
			p.Policy = v1.PlacementPolicy(int32(f.u))
			return f.isVarint()
		case 6:
			m, ok := f.msg()
			p.Match = &sc.match
			return ok && once(&haveMatch) && sc.decodeMatch(m)
		case 7:
			m, ok := f.msg()
			return ok && sc.decodeAction(m)
		}
		return false
	})
	if len(sc.ptrs) > 0 {
		p.Actions = sc.ptrs
	}
	return ok
}

func (sc *wireScratch) decodeMatch(b []byte) bool {
	m := &sc.match
	*m = v1.Match{}
	var haveFlags, haveTunnel bool
	return fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return f.str(&m.EthSrc)
		case 2:
			return f.str(&m.EthSrcMask)
		case 3:
			return f.str(&m.EthDst)
		case 4:
			return f.str(&m.EthDstMask)
		case 5:
			return sc.intern(f, &m.EthType)
		case 6:
			return f.optU32(&m.VlanId, &sc.opt[6])
		case 7:
			return f.optU32(&m.VlanPrio, &sc.opt[7])
		case 8:
			return f.optU32(&m.CvlanId, &sc.opt[8])
		case 9:
			return f.optU32(&m.CvlanPrio, &sc.opt[9])
		case 10:
			return f.str(&m.Ipv4Src)
		case 11:
			return f.str(&m.Ipv4Dst)
		case 12:
			return f.str(&m.Ipv6Src)
		case 13:
			return f.str(&m.Ipv6Dst)
		case 14:
			return sc.intern(f, &m.IpProto)
		case 15:
			return f.optU32(&m.Tos, &sc.opt[15])
		case 16:
			return f.u32(&m.TosMask)
		case 17:
			return f.optU32(&m.Ttl, &sc.opt[17])
		case 18:
			return f.u32(&m.TtlMask)
		case 19:
			return f.optU32(&m.SrcPort, &sc.opt[19])
		case 20:
			return f.u32(&m.SrcPortMask)
		case 21:
			return f.optU32(&m.DstPort, &sc.opt[21])
		case 22:
			return f.u32(&m.DstPortMask)
		case 23:
			return f.optU32(&m.TcpFlags, &sc.opt[23])
		case 24:
			return f.u32(&m.TcpFlagsMask)
		case 25:
			return f.optU32(&m.IcmpType, &sc.opt[25])
		case 26:
			return f.optU32(&m.IcmpCode, &sc.opt[26])
		case 27:
			b, ok := f.msg()
			m.IpFlags = &sc.ipFlags
			return ok && once(&haveFlags) && sc.decodeIPFlags(b)
		case 28:
			b, ok := f.msg()
			m.Tunnel = &sc.tunnel
			return ok && once(&haveTunnel) && sc.decodeTunnel(b)
		case 29:
			return sc.intern(f, &m.CtState)
		case 30:
			return f.optU32(&m.CtZone, &sc.opt[30])
		case 31:
			return f.optU32(&m.CtMark, &sc.opt[31])
		case 32:
			return f.u32(&m.CtMarkMask)
		}
		return false
	})
}

func (sc *wireScratch) decodeIPFlags(b []byte) bool {
	fl := &sc.ipFlags
	*fl = v1.IPFlags{}
	return fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			fl.Frag = &sc.flags[1]
			return f.boolean(fl.Frag)
		case 2:
			fl.FirstFrag = &sc.flags[2]
			return f.boolean(fl.FirstFrag)
		}
		return false
	})
}

func (sc *wireScratch) decodeTunnel(b []byte) bool {
	t := &sc.tunnel
	*t = v1.TunnelMatch{}
	return fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return f.optU32(&t.Vni, &sc.tunOpt[1])
		case 2:
			return sc.intern(f, &t.Src)
		case 3:
			return sc.intern(f, &t.Dst)
		case 4:
			return f.optU32(&t.DstPort, &sc.tunOpt[4])
		}
		return false
	})
}

// decodeAction appends one wire Action to sc.ptrs. Rewrite and police
// actions take the slow path.
func (sc *wireScratch) decodeAction(b []byte) bool {
	k := len(sc.ptrs)
	if k == len(sc.actions) {
		sc.actions = append(sc.actions, new(actionScratch))
	}
	as := sc.actions[k]
	a := &as.a
	*a = v1.Action{}
	ok := fields(b, func(f wireField) bool {
		if a.Action != nil {
			return false // protobuf keeps the last of a oneof, merging repeats
		}
		switch f.num {
		case 1:
			as.drop.Drop, a.Action = &as.dropMsg, &as.drop
			return f.empty()
		case 2:
			as.accept.Accept, a.Action = &as.acceptMsg, &as.accept
			return f.empty()
		case 3:
			r := &as.redirectMsg
			*r = v1.Redirect{}
			as.redirect.Redirect, a.Action = r, &as.redirect
			return sc.decodePortRef(f, &r.Port, &r.Ingress)
		case 4:
			r := &as.mirrorMsg
			*r = v1.Mirror{}
			as.mirror.Mirror, a.Action = r, &as.mirror
			return sc.decodePortRef(f, &r.Port, &r.Ingress)
		case 5:
			as.vlanPush.VlanPush, a.Action = &as.vlanPushMsg, &as.vlanPush
			return sc.decodeVlanPush(f, &as.vlanPushMsg)
		case 6:
			as.vlanPop.VlanPop, a.Action = &as.vlanPopMsg, &as.vlanPop
			return f.empty()
		case 7:
			as.encap.TunnelEncap, a.Action = &as.encapMsg, &as.encap
			return sc.decodeEncap(f, &as.encapMsg)
		case 8:
			as.decap.TunnelDecap, a.Action = &as.decapMsg, &as.decap
			return f.empty()
		case 9:
			as.ct.Ct, a.Action = &as.ctMsg, &as.ct
			return decodeCT(f, &as.ctMsg, &as.ctMark)
		case 10:
			as.gotoA.Goto, a.Action = &as.gotoMsg, &as.gotoA
			return decodeGoto(f, &as.gotoMsg)
		}
		return false
	})
	if ok {
		sc.ptrs = append(sc.ptrs, a)
	}
	return ok
}

// decodePortRef reads a Redirect or Mirror: port = 1, ingress = 2.
func (sc *wireScratch) decodePortRef(m wireField, port *string, ingress *bool) bool {
	b, ok := m.msg()
	return ok && fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return sc.intern(f, port)
		case 2:
			return f.boolean(ingress)
		}
		return false
	})
}

func (sc *wireScratch) decodeVlanPush(m wireField, q *v1.VlanPush) bool {
	*q = v1.VlanPush{}
	b, ok := m.msg()
	return ok && fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return f.u32(&q.Id)
		case 2:
			return f.u32(&q.Prio)
		case 3:
			return sc.intern(f, &q.Proto)
		}
		return false
	})
}

func (sc *wireScratch) decodeEncap(m wireField, e *v1.TunnelEncap) bool {
	*e = v1.TunnelEncap{}
	b, ok := m.msg()
	return ok && fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return f.u32(&e.Vni)
		case 2:
			return sc.intern(f, &e.Src)
		case 3:
			return sc.intern(f, &e.Dst)
		case 4:
			return f.u32(&e.DstPort)
		case 5:
			return f.u32(&e.Ttl)
		case 6:
			return f.u32(&e.Tos)
		case 7:
			return f.boolean(&e.NoCsum)
		}
		return false
	})
}

// decodeCT reads a Conntrack action without NAT (NAT takes the slow path).
func decodeCT(m wireField, ct *v1.Conntrack, mark *uint32) bool {
	*ct = v1.Conntrack{}
	b, ok := m.msg()
	return ok && fields(b, func(f wireField) bool {
		switch f.num {
		case 1:
			return f.u32(&ct.Zone)
		case 2:
			return f.boolean(&ct.Commit)
		case 3:
			return f.boolean(&ct.Clear)
		case 4:
			return f.optU32(&ct.Mark, mark)
		case 5:
			return f.u32(&ct.MarkMask)
		}
		return false
	})
}

func decodeGoto(m wireField, g *v1.Goto) bool {
	*g = v1.Goto{}
	b, ok := m.msg()
	return ok && fields(b, func(f wireField) bool {
		return f.num == 1 && f.u32(&g.Chain)
	})
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
	size         int // bytes of the request message
}

// newApplyBatch returns an empty batch with room for n flows.
func newApplyBatch(n int) *applyBatch {
	return &applyBatch{ids: make([]string, 0, n), flows: make([]*flow.Flow, 0, n), violations: make([][]flow.Violation, 0, n)}
}

func (b *applyBatch) add(id string, f *flow.Flow, vs []flow.Violation) {
	b.ids = append(b.ids, id)
	b.flows = append(b.flows, f)
	b.violations = append(b.violations, vs)
}

// batchFromProto converts a decoded request.
func batchFromProto(req *v1.ApplyFlowsRequest) *applyBatch {
	b := newApplyBatch(len(req.GetFlows()))
	b.atomic, b.includeFlows, b.size = req.GetAtomic(), req.GetIncludeFlows(), proto.Size(req)
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
	b := newApplyBatch(countFlows(data))
	var sc wireScratch
	ok := fields(data, func(f wireField) bool {
		switch f.num {
		case 1:
			fb, ok := f.msg()
			if !ok {
				return false
			}
			if sc.decodeFlow(fb) {
				fl, vs := FlowFromProto(&sc.flow, "")
				b.add(sc.flow.Id, fl, vs)
				return true
			}
			// The slow path for this flow; a flow protobuf cannot decode
			// fails the whole request, as proto.Unmarshal would.
			p := new(v1.Flow)
			if err := proto.Unmarshal(fb, p); err != nil {
				return false
			}
			b.slow++
			fl, vs := FlowFromProto(p, "")
			b.add(p.GetId(), fl, vs)
			return true
		case 2:
			return f.boolean(&b.atomic)
		case 3:
			return f.boolean(&b.includeFlows)
		}
		return false
	})
	if !ok {
		return nil, false
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
