package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload/flow"
)

// pkt is a packet in flight: its bytes, their parsed key, and the
// metadata tc keeps beside the skb.
type pkt struct {
	buf []byte
	k   key
	tun tunMeta
	ct  ctMeta
}

// ctMeta is the packet's conntrack state for ct_state, ct_zone and ct_mark matches.
type ctMeta struct {
	state uint16
	zone  uint16
	mark  uint32
}

// tunMeta is the packet's tunnel metadata: received with a decapsulated
// packet, or set for transmit by tunnel_encap (tunnel_key set).
type tunMeta struct {
	set              bool
	tx               bool
	vni              uint32
	src, dst         netip.Addr
	dstPort, srcPort uint16
	tos, ttl         uint8
	noCsum           bool
}

func (p *pkt) clone() *pkt {
	c := *p
	c.buf = slices.Clone(p.buf)
	return &c
}

// branch is where a packet copy stands: how deep in redirects, and
// whether it is the injected packet (primary) or a mirror copy.
type branch struct {
	depth   int
	primary bool
}

// run is the processing of one injected packet. Called with dp.mu held.
type run struct {
	dp     *Datapath
	now    time.Time
	tr     *Trace
	steps  bool
	hw, sw *table
}

func (dp *Datapath) process(portName string, frame []byte, steps bool) (*Trace, error) {
	if len(frame) < 14 {
		return nil, fmt.Errorf("inject on %s: a frame of %d bytes is shorter than an Ethernet header", portName, len(frame))
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	port, ok := dp.dev.Port(portName)
	if !ok {
		return nil, fmt.Errorf("inject on %s: %w", portName, nic.ErrNotFound)
	}
	hw, err := dp.table(flow.Hardware)
	if err != nil {
		return nil, fmt.Errorf("inject on %s: %w", portName, err)
	}
	sw, err := dp.table(flow.Software)
	if err != nil {
		return nil, fmt.Errorf("inject on %s: %w", portName, err)
	}
	now := dp.now()
	r := &run{dp: dp, now: now, steps: steps, hw: hw, sw: sw,
		tr: &Trace{InPort: portName, Time: now, Input: slices.Clone(frame)}}
	p := &pkt{buf: slices.Clone(frame)}
	dp.ps.parse(p.buf, &p.k)
	b := branch{primary: true}
	switch port.Kind {
	case nic.PortVF:
		rep, ok := dp.dev.Port(port.Peer)
		if port.Peer == "" || !ok {
			return nil, fmt.Errorf("inject on %s: the VF has no representor (eswitch in legacy mode?)", portName)
		}
		if !port.Up {
			r.drop(port, flow.Hardware, b, fmt.Sprintf("VF %s link is down", port.Name))
			return r.tr, nil
		}
		r.ingress(rep, p, flow.Hardware, b, fmt.Sprintf("sent by the VM on %s", port.Name))
	case nic.PortTunnel:
		inner, ok := dp.vxlanInner(port, p)
		if !ok {
			return nil, fmt.Errorf("inject on %s: not a VXLAN frame to UDP port %d", portName, port.TunnelDstPort)
		}
		r.ingress(port, inner, flow.Hardware, b, fmt.Sprintf("decapsulated: vni %d from %s", inner.tun.vni, inner.tun.src))
	default:
		r.ingress(port, p, flow.Hardware, b, "")
	}
	if dp.capture != nil {
		for _, o := range r.tr.Outputs {
			if err := dp.capture.write(now, o.Frame); err != nil {
				return r.tr, fmt.Errorf("capture output of %s: %w", portName, err)
			}
		}
	}
	return r.tr, nil
}

func (r *run) step(s Step) {
	if r.steps {
		r.tr.Steps = append(r.tr.Steps, s)
	}
}

func (r *run) table(plane flow.Plane) *table {
	if plane == flow.Hardware {
		return r.hw
	}
	return r.sw
}

// finish records the end of the primary packet's path.
func (r *run) finish(b branch, v Verdict, plane flow.Plane, reason string) {
	if b.primary {
		r.tr.Verdict, r.tr.Plane, r.tr.Reason = v, plane, reason
	}
}

// ingress classifies a packet arriving at port, starting in plane.
func (r *run) ingress(port nic.Port, p *pkt, plane flow.Plane, b branch, note string) {
	if b.depth > r.dp.maxDepth {
		r.drop(port, plane, b, fmt.Sprintf("more than %d redirects: a loop", r.dp.maxDepth))
		return
	}
	st := r.dp.portStats(port.Name)
	st.RxPackets++
	st.RxBytes += uint64(len(p.buf))
	r.step(Step{Kind: StepPort, Depth: b.depth, Port: port.Name, Plane: plane, Text: note})
	r.classify(port, p, plane, 0, b)
}

// Outcomes of running a rule's actions.
type outKind uint8

const (
	outDone outKind = iota // the packet's path ended here
	outNext                // police continue: classification goes on with the next rule
	outGoto                // goto chain
	outMiss                // hardware cannot run an action: software resumes at it
)

type outcome struct {
	kind   outKind
	chain  uint32
	action int
	why    string
}

// classify runs tc on port from chain in plane: rules by priority, the
// first match wins; a hardware miss continues in software at the same
// chain; a software miss is an upcall (on an uplink, a VXLAN frame is
// decapsulated to its tunnel device first, as the kernel's stack does).
// More than maxGotos gotos drop the packet, as the kernel's
// max_reclassify_loop does; a loop of gotos would otherwise spin forever.
func (r *run) classify(port nic.Port, p *pkt, plane flow.Plane, chain uint32, b branch) {
	gotos := 0
	for {
		if plane == flow.Software && b.primary {
			r.tr.SoftwarePath = true
		}
		rules := r.table(plane).chain(port.Name, chain)
		var out outcome
		matched, restart := false, false
		for i := 0; i < len(rules) && !matched && !restart; i++ {
			ru := rules[i]
			if !ru.match(p) {
				r.step(Step{Kind: StepRule, Depth: b.depth, Plane: plane, Port: port.Name, Chain: chain,
					Priority: ru.f.Priority, FlowID: ru.f.ID})
				continue
			}
			r.step(Step{Kind: StepRule, Depth: b.depth, Plane: plane, Port: port.Name, Chain: chain,
				Priority: ru.f.Priority, FlowID: ru.f.ID, Matched: true})
			// The hit counts in the plane that finishes the rule: a packet
			// whose action missed in hardware counts in software.
			hitPlane, size := plane, uint64(len(p.buf))
			out = r.exec(plane, port, ru, 0, p, b)
			if out.kind == outMiss {
				hitPlane = flow.Software
			}
			if err := r.dp.dev.AddCounters(hitPlane, ru.f.ID, 1, size, r.now); err != nil && hitPlane != plane {
				// A hardware-only rule has no software copy to count in.
				_ = r.dp.dev.AddCounters(plane, ru.f.ID, 1, size, r.now)
			}
			for out.kind == outMiss {
				r.step(Step{Kind: StepMiss, Depth: b.depth, Plane: plane, Port: port.Name, Chain: chain,
					Text: fmt.Sprintf("hardware cannot run actions[%d] of %s (%s): software continues at that action", out.action, ru.f.ID, out.why)})
				plane = flow.Software
				if b.primary {
					r.tr.SoftwarePath = true
				}
				out = r.exec(plane, port, ru, out.action, p, b)
				// A police continue after the move goes on in software's chain.
				restart = out.kind == outNext
			}
			matched = out.kind != outNext
		}
		if restart {
			continue
		}
		switch {
		case matched && out.kind == outDone:
			return
		case matched && out.kind == outGoto:
			if gotos++; gotos > r.dp.maxGotos {
				r.drop(port, plane, b, fmt.Sprintf("more than %d gotos: a loop (last to %s chain %d)", r.dp.maxGotos, port.Name, out.chain))
				return
			}
			chain = out.chain
			if plane == flow.Hardware && len(r.hw.chain(port.Name, chain)) == 0 {
				r.step(Step{Kind: StepMiss, Depth: b.depth, Plane: plane, Port: port.Name, Chain: chain,
					Text: fmt.Sprintf("hardware has no rules in %s chain %d: software continues at chain %d", port.Name, chain, chain)})
				plane = flow.Software
			}
			continue
		}
		// No rule matched.
		if plane == flow.Hardware {
			if chain == 0 && port.Kind == nic.PortUplink && r.hardwareDecap(port, p, b) {
				return
			}
			r.step(Step{Kind: StepMiss, Depth: b.depth, Plane: plane, Port: port.Name, Chain: chain,
				Text: fmt.Sprintf("hardware miss on %s chain %d: software continues at chain %d", port.Name, chain, chain)})
			plane = flow.Software
			continue
		}
		if port.Kind == nic.PortUplink {
			if tp, inner, ok := r.dp.vxlanInnerAny(p); ok {
				r.step(Step{Kind: StepMiss, Depth: b.depth, Plane: plane, Port: port.Name, Chain: chain,
					Text: fmt.Sprintf("software miss on %s: the kernel decapsulates the VXLAN frame (vni %d) to %s", port.Name, inner.tun.vni, tp.Name)})
				r.ingress(tp, inner, flow.Software, branch{depth: b.depth + 1, primary: b.primary}, "")
				return
			}
		}
		r.upcall(port, p, b, chain)
		return
	}
}

// hardwareDecap tries the tunnel devices' hardware rules for a VXLAN frame
// that missed the uplink's hardware chain 0: mlx5 installs tunnel-device
// rules into the uplink's hardware table. When one matches, the packet is
// decapsulated and classified there; otherwise it stays as it was.
func (r *run) hardwareDecap(uplink nic.Port, p *pkt, b branch) bool {
	if p.k.frag&flow.FragIsFragment != 0 {
		return false // a NIC decapsulates whole datagrams only
	}
	tp, inner, ok := r.dp.vxlanInnerAny(p)
	if !ok {
		return false
	}
	hit := false
	for _, ru := range r.hw.chain(tp.Name, 0) {
		if ru.match(inner) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	r.step(Step{Kind: StepMiss, Depth: b.depth, Plane: flow.Hardware, Port: uplink.Name,
		Text: fmt.Sprintf("hardware decapsulates the VXLAN frame (vni %d) for a rule on %s", inner.tun.vni, tp.Name)})
	r.ingress(tp, inner, flow.Hardware, branch{depth: b.depth + 1, primary: b.primary}, "")
	return true
}

// exec runs a rule's actions from index from in plane.
func (r *run) exec(plane flow.Plane, port nic.Port, ru *rule, from int, p *pkt, b branch) outcome {
	f := ru.f
	for i := from; i < len(f.Actions); i++ {
		a := &f.Actions[i]
		act := func(text func() string, cs ...Change) {
			if r.steps {
				r.step(Step{Kind: StepAction, Depth: b.depth, Plane: plane, Port: port.Name, Chain: f.Chain,
					FlowID: f.ID, Action: text(), Changes: cs})
			}
		}
		switch a.Kind {
		case flow.ActDrop:
			act(func() string { return "drop" })
			r.drop(port, plane, b, fmt.Sprintf("flow %s drops it", f.ID))
			return outcome{kind: outDone}
		case flow.ActAccept:
			act(func() string { return "accept" })
			r.host(port, p, plane, b)
			return outcome{kind: outDone}
		case flow.ActRedirect:
			act(func() string { return redirectText(a) })
			r.redirect(a, port, p, plane, b)
			return outcome{kind: outDone}
		case flow.ActMirror:
			act(func() string { return redirectText(a) })
			r.redirect(a, port, p.clone(), plane, branch{depth: b.depth, primary: false})
		case flow.ActVLANPush:
			act(func() string { return "vlan_push" }, r.dp.pushVLAN(p, a.VLAN))
		case flow.ActVLANPop:
			act(func() string { return "vlan_pop" }, r.dp.popVLAN(p))
		case flow.ActTunnelEncap:
			e := a.Encap
			if plane == flow.Hardware {
				if nh, _, ok := r.dp.nextHop(e.Dst); !ok {
					return outcome{kind: outMiss, action: i, why: fmt.Sprintf("no neighbour entry for %s", nh)}
				}
			}
			p.tun = tunMeta{set: true, tx: true, vni: e.VNI, src: e.Src, dst: e.Dst, dstPort: e.DstPort,
				ttl: e.TTL, tos: e.TOS, noCsum: e.NoCsum}
			act(func() string { return fmt.Sprintf("tunnel_encap vni %d %s -> %s", e.VNI, e.Src, e.Dst) })
		case flow.ActTunnelDecap:
			act(func() string { return "tunnel_decap: tunnel metadata dropped" })
			p.tun = tunMeta{}
		case flow.ActCT:
			if why, ok := r.conntrack(plane, port, f, a.CT, p, b); !ok {
				return outcome{kind: outMiss, action: i, why: why}
			}
		case flow.ActGoto:
			act(func() string { return fmt.Sprintf("goto chain %d", a.Chain) })
			return outcome{kind: outGoto, chain: a.Chain}
		case flow.ActRewrite:
			act(func() string { return "rewrite " + a.Rewrite.Field.String() }, r.dp.rewrite(p, a.Rewrite))
		case flow.ActPolice:
			v, text := r.dp.police(plane, f, i, a.Police, p, r.now)
			act(func() string { return text })
			switch v {
			case flow.VerdictDrop:
				r.drop(port, plane, b, fmt.Sprintf("flow %s: police exceeded", f.ID))
				return outcome{kind: outDone}
			case flow.VerdictAccept:
				r.host(port, p, plane, b)
				return outcome{kind: outDone}
			case flow.VerdictContinue:
				return outcome{kind: outNext}
			}
		}
	}
	// An action list that ends without a verdict passes the packet on, as
	// TC_ACT_PIPE at the end of the list does: up the port's netdev.
	r.host(port, p, plane, b)
	return outcome{kind: outDone}
}

func redirectText(a *flow.Action) string {
	dir := "egress"
	if a.Ingress {
		dir = "ingress"
	}
	return fmt.Sprintf("%s %s %s", a.Kind, dir, a.Port)
}

// conntrack runs a ct action. In hardware it handles only offloaded
// connections; it returns false (with why) for the rest.
func (r *run) conntrack(plane flow.Plane, port nic.Port, f *flow.Flow, a *flow.CT, p *pkt, b branch) (string, bool) {
	step := func(l CTLookup) {
		r.step(Step{Kind: StepConntrack, Depth: b.depth, Plane: plane, Port: port.Name, Chain: f.Chain, FlowID: f.ID, CT: &l})
	}
	if a.Clear {
		p.ct = ctMeta{}
		step(CTLookup{Note: "ct clear"})
		return "", true
	}
	if !p.k.ipv4 && !p.k.ipv6 {
		p.ct = ctMeta{}
		step(CTLookup{Zone: a.Zone, Note: "not IP: untracked"})
		return "", true
	}
	req := conntrack.Request{Zone: a.Zone, Packet: p.k.ctPacket(), Commit: a.Commit, Mark: a.Mark, NAT: a.NAT,
		Offload: r.dp.ctHW && r.hw.ctZones[a.Zone]}
	var res conntrack.Result
	if plane == flow.Hardware {
		var ok bool
		if res, ok = r.dp.ct.TrackOffloaded(req, r.now); !ok {
			return fmt.Sprintf("connection not offloaded in zone %d", a.Zone), false
		}
	} else {
		res = r.dp.ct.Track(req, r.now)
	}
	p.ct = ctMeta{state: res.State, zone: a.Zone, mark: res.Mark}
	step(CTLookup{Zone: a.Zone, State: res.State, Mark: res.Mark, Commit: a.Commit, Committed: res.Committed,
		Offloaded: res.Offloaded, Note: res.Note})
	if res.NAT {
		if cs := r.dp.natTo(p, res.To); len(cs) > 0 {
			r.step(Step{Kind: StepAction, Depth: b.depth, Plane: plane, Port: port.Name, Chain: f.Chain, FlowID: f.ID,
				Action: "ct nat", Changes: cs})
		}
	}
	if res.InnerNAT {
		if cs := r.dp.natQuoted(p, res.InnerTo); len(cs) > 0 {
			r.step(Step{Kind: StepAction, Depth: b.depth, Plane: plane, Port: port.Name, Chain: f.Chain, FlowID: f.ID,
				Action: "ct nat (quoted packet)", Changes: cs})
		}
	}
	return "", true
}

// redirect sends p to a's port, at its egress or ingress.
func (r *run) redirect(a *flow.Action, from nic.Port, p *pkt, plane flow.Plane, b branch) {
	t, ok := r.dp.dev.Port(a.Port)
	if !ok {
		r.drop(from, plane, b, fmt.Sprintf("%s target %s does not exist", a.Kind, a.Port))
		return
	}
	if !a.Ingress {
		r.egress(t, p, plane, b)
		return
	}
	if t.Kind == nic.PortVF {
		r.toVM(t, t, p, plane, b)
		return
	}
	r.ingress(t, p, plane, branch{depth: b.depth + 1, primary: b.primary}, "redirected to its ingress")
}

// egress sends p out of port t: switchdev wiring.
func (r *run) egress(t nic.Port, p *pkt, plane flow.Plane, b branch) {
	switch t.Kind {
	case nic.PortRepresentor:
		vf, ok := r.dp.dev.Port(t.Peer)
		if !ok {
			r.drop(t, plane, b, fmt.Sprintf("representor %s has no VF", t.Name))
			return
		}
		r.toVM(t, vf, p, plane, b)
	case nic.PortUplink:
		st := r.dp.portStats(t.Name)
		st.TxPackets++
		st.TxBytes += uint64(len(p.buf))
		r.output(t.Name, OutputWire, plane, p, b, fmt.Sprintf("%s: to the wire", t.Name))
		r.finish(b, VerdictForwarded, plane, "")
	case nic.PortVF:
		rep, ok := r.dp.dev.Port(t.Peer)
		if !ok {
			r.drop(t, plane, b, fmt.Sprintf("VF %s has no representor", t.Name))
			return
		}
		// The VF transmits: the frame enters the eswitch at its representor.
		r.ingress(rep, p, flow.Hardware, branch{depth: b.depth + 1, primary: b.primary}, "sent by "+t.Name)
	case nic.PortTunnel:
		r.tunnelOut(t, p, plane, b)
	default:
		r.drop(t, plane, b, fmt.Sprintf("cannot send out of %s (%s)", t.Name, t.Kind))
	}
}

// toVM delivers p to a VF's VM; via is the representor (or the VF itself
// for an ingress redirect).
func (r *run) toVM(via, vf nic.Port, p *pkt, plane flow.Plane, b branch) {
	if !vf.Up {
		r.drop(via, plane, b, fmt.Sprintf("VF %s link is down", vf.Name))
		return
	}
	st := r.dp.portStats(via.Name)
	st.TxPackets++
	st.TxBytes += uint64(len(p.buf))
	r.output(vf.Name, OutputVM, plane, p, b, fmt.Sprintf("%s: to the VM", vf.Name))
	r.finish(b, VerdictForwarded, plane, "")
}

func (r *run) output(port string, kind OutputKind, plane flow.Plane, p *pkt, b branch, text string) {
	r.tr.Outputs = append(r.tr.Outputs, Output{Port: port, Kind: kind, Plane: plane, Mirror: !b.primary, Frame: p.buf})
	if r.steps {
		r.step(Step{Kind: StepOutput, Depth: b.depth, Plane: plane, Port: port, Text: fmt.Sprintf("%s (%d bytes)", text, len(p.buf))})
	}
}

// host passes p up port's netdev (accept).
func (r *run) host(port nic.Port, p *pkt, plane flow.Plane, b branch) {
	r.dp.portStats(port.Name).Delivered++
	if port.Kind == nic.PortUplink {
		r.dp.learnFrom(p)
	}
	r.output(port.Name, OutputHost, plane, p, b, fmt.Sprintf("%s: up to the host stack", port.Name))
	r.finish(b, VerdictDelivered, plane, "")
}

func (r *run) upcall(port nic.Port, p *pkt, b branch, chain uint32) {
	r.dp.portStats(port.Name).Upcalls++
	if port.Kind == nic.PortUplink {
		r.dp.learnFrom(p)
	}
	why := fmt.Sprintf("no rule matched on %s (chain %d) in hardware or software", port.Name, chain)
	r.output(port.Name, OutputUpcall, flow.Software, p, b, "upcall to the slow path: "+why)
	r.finish(b, VerdictUpcall, flow.Software, why)
}

func (r *run) drop(port nic.Port, plane flow.Plane, b branch, why string) {
	r.dp.portStats(port.Name).Drops++
	r.step(Step{Kind: StepDrop, Depth: b.depth, Plane: plane, Port: port.Name, Text: "drop: " + why})
	r.finish(b, VerdictDropped, plane, why)
}
