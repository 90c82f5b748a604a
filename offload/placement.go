package offload

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// The placement model (docs/placement.md):
//
//   - An auto flow the NIC may run is put with no skip flag (flow.Both):
//     the kernel keeps it in software and offers it to the driver. It is
//     in hardware when the device says so (in_hw); a packet that misses
//     in hardware part-way (ct on a connection not yet offloaded, a goto
//     into a chain hardware lacks, a full table) finds it in software.
//   - An auto flow the NIC may not run (profile, policy, draining, or an
//     earlier overlapping rule of its chain that runs only in software)
//     is put in software only (skip_hw).
//   - A hardware-only flow is put with skip_sw; when the table is full it
//     waits as pending and is installed when room frees.
//   - A rule in hardware must not shadow an earlier rule of its chain that
//     runs only in software: a packet matching both would take the later
//     rule in hardware and the earlier one in software. Such a rule stays
//     in software (ReasonShadowed) until the earlier one is in hardware.

// ReasonShadowed is why an auto flow is kept out of hardware: an earlier,
// overlapping rule of its chain runs only in software.
const ReasonShadowed nic.ReasonCode = "earlier-rule-in-software"

// ReasonHardwareOnlyFirst marks a hardware-only flow in hardware that
// takes packets an earlier rule running only in software would take in
// software: the one case where placement changes a packet's fate, as its
// policy asked.
const ReasonHardwareOnlyFirst nic.ReasonCode = "hardware-only-before-software-rule"

func hardwareOnlyReason(by *flow.Flow) nic.Reason {
	return nic.Reason{Code: ReasonHardwareOnlyFirst, Message: fmt.Sprintf(
		"hardware-only (skip_sw): flow %s (%s chain %d priority %d) runs before this one in software and may match "+
			"the same packets; in hardware this flow takes them first", by.ID, by.Port, by.Chain, by.Priority)}
}

// hardwareOnlyReasons are the reasons of a hardware-only flow in hardware
// that soft may shadow (none when it shadows nothing).
func hardwareOnlyReasons(soft []*flow.Flow, f *flow.Flow) []nic.Reason {
	if by := shadowedBy(soft, f); by != nil {
		return []nic.Reason{hardwareOnlyReason(by)}
	}
	return nil
}

func shadowReason(by *flow.Flow) nic.Reason {
	return nic.Reason{Code: ReasonShadowed, Message: fmt.Sprintf(
		"flow %s (%s chain %d priority %d) runs before this one, may match the same packets and is not in hardware; "+
			"in hardware this flow would take its packets", by.ID, by.Port, by.Chain, by.Priority)}
}

// chainSet is the flows of one (port, chain).
type chainSet struct {
	ens []*entry
	// soft is false only when no entry runs in software and none has a
	// hardware-only note: notify sets it whenever one may, a writer's
	// scan clears it (see softScan). Atomic: Explain reads it.
	soft atomic.Bool
}

// markSoft notes that the chain of st may hold a rule in software or a
// hardware-only note. Called from notify, the funnel of every change.
func (e *Engine) markSoft(st *Status) {
	if st.State == StateSoftware || st.Flow.Policy == flow.PolicyHardwareOnly && len(st.Reasons) > 0 {
		if cs := e.chains[chainKey{st.Flow.Port, st.Flow.Chain}]; cs != nil {
			cs.soft.Store(true)
		}
	}
}

// softScan reports whether chain k holds an entry (not in skip) that runs
// in software or has a hardware-only note. A writer (clear) records a
// scan that found none, so the next batch skips it.
func (e *Engine) softScan(k chainKey, skip map[*entry]bool, clear bool) bool {
	cs := e.chains[k]
	if cs == nil || !cs.soft.Load() {
		return false
	}
	for _, en := range cs.ens {
		if skip[en] {
			continue
		}
		if en.state == StateSoftware || en.plane == flow.Hardware && len(en.reasons) > 0 {
			return true
		}
	}
	if clear && len(skip) == 0 {
		cs.soft.Store(false)
	}
	return false
}

func (e *Engine) link(en *entry) {
	e.byID.ReplaceOrInsert(en)
	if hasGoto(en.flow) {
		e.gotoFlows[en] = struct{}{}
	}
	k := chainKey{en.flow.Port, en.flow.Chain}
	cs := e.chains[k]
	if cs == nil {
		cs = &chainSet{}
		e.chains[k] = cs
	}
	en.pos = int32(len(cs.ens))
	cs.ens = append(cs.ens, en)
}

func (e *Engine) unlink(en *entry) {
	if cur, ok := e.byID.Get(en); ok && cur == en {
		e.byID.Delete(en)
	}
	delete(e.gotoFlows, en)
	k := chainKey{en.flow.Port, en.flow.Chain}
	cs := e.chains[k]
	if cs == nil || int(en.pos) >= len(cs.ens) || cs.ens[en.pos] != en {
		return
	}
	last := cs.ens[len(cs.ens)-1]
	cs.ens[en.pos], last.pos = last, en.pos
	cs.ens = cs.ens[:len(cs.ens)-1]
	if len(cs.ens) == 0 {
		delete(e.chains, k)
	}
}

// tcOrder sorts flows as tc consults them on one device: port, chain,
// priority, then ID.
func tcOrder(a, b *flow.Flow) int {
	return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Chain, b.Chain),
		cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.ID, b.ID))
}

// decide sets what a change asks of the device before capacity and
// ordering: its target plane, or why it cannot be placed.
func (e *Engine) decide(c *change) {
	r := e.hardwareReasons(c.f, c.dev)
	switch c.f.Policy {
	case flow.PolicySoftwareOnly:
		c.target, c.state, c.reasons = flow.Software, StateSoftware, r
	case flow.PolicyHardwareOnly:
		if len(r) > 0 {
			c.err = &PlacementError{ID: c.f.ID, Reasons: r}
			c.reasons = r
			return
		}
		c.target, c.state = flow.Hardware, StateHardware
	default:
		if len(r) > 0 {
			c.target, c.state, c.reasons = flow.Software, StateSoftware, r
			return
		}
		c.target, c.state = flow.Both, StateHardware
	}
}

// needsRoom says whether c's copy takes a new hardware entry: it does
// unless it replaces a copy of the same plane that hardware holds.
func (c *change) needsRoom() bool {
	o := c.old
	return o == nil || o.plane != c.target || o.state != StateHardware
}

// plan decides every valid change of a batch as Apply will place it:
// targets, then hardware room consumed in the order Program sends the ops
// (hardware-only flows, then the others in tc order, uplinks first), then
// the ordering rule per chain. It sorts changes into that order and
// returns the installed flows the batch will push out of hardware (with
// the rule that shadows each). Explain runs the same.
func (e *Engine) plan(changes []*change) ([]*change, *planner) {
	for _, c := range changes {
		e.decide(c)
	}
	slices.SortStableFunc(changes, func(a, b *change) int {
		return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(e.portRank(a.f.Port), e.portRank(b.f.Port)), tcOrder(a.f, b.f))
	})
	p := &planner{e: e, free: map[int]int{}, replaced: map[*entry]bool{}, demoted: map[*entry]*flow.Flow{},
		hwOnly: map[*entry][]nic.Reason{}}
	for _, c := range changes {
		if c.failed() || c.target != flow.Hardware || !c.needsRoom() {
			continue
		}
		if !p.take(c) {
			used, total := e.devs[c.dev].Capacity()
			c.target, c.state, c.spilled = noCopy, StatePending, true
			c.reasons = []nic.Reason{capacityReason(used, total)}
		}
	}
	for _, c := range changes {
		// A change that already failed leaves the installed version.
		if c.old != nil && !c.failed() {
			p.replaced[c.old] = true
		}
	}
	walked := map[chainKey]bool{}
	upChanged := false
	for i := 0; i < len(changes); {
		j := i + 1
		k := chainKey{changes[i].f.Port, changes[i].f.Chain}
		for j < len(changes) && changes[j].dev == changes[i].dev && changes[j].f.Port == k.port && changes[j].f.Chain == k.chain {
			j++
		}
		soft := p.walk(k, changes[i:j])
		if k.chain == 0 && e.portKind(k.port) == nic.PortUplink {
			p.upSoft(k.port, soft)
			upChanged = true
		}
		walked[k] = true
		i = j
	}
	// Chains that flows of the batch leave: what they held back changes.
	for _, c := range changes {
		if c.old == nil || c.failed() {
			continue
		}
		k := chainKey{c.old.flow.Port, c.old.flow.Chain}
		if !walked[k] {
			soft := p.walk(k, nil)
			if k.chain == 0 && e.portKind(k.port) == nic.PortUplink {
				p.upSoft(k.port, soft)
				upChanged = true
			}
			walked[k] = true
		}
	}
	if upChanged {
		// New software rules on an uplink may push tunnel rules out.
		for _, k := range e.tunnelChains() {
			if !walked[k] {
				p.walk(k, nil)
			}
		}
	}
	return changes, p
}

// planner is the state of one plan: hardware room left per device, the
// installed flows the batch replaces, the software rules of each uplink's
// chain 0, and the installed flows the batch pushes out of hardware.
type planner struct {
	e        *Engine
	free     map[int]int // -1: unknown size
	replaced map[*entry]bool
	uplinks  map[string][]*flow.Flow
	demoted  map[*entry]*flow.Flow
	// hwOnly are the reasons installed hardware-only flows will report.
	hwOnly map[*entry][]nic.Reason
}

// take uses one hardware entry of c's device, if one is left.
func (p *planner) take(c *change) bool {
	n := p.room(c.dev)
	if n == 0 {
		p.free[c.dev] = 0
		return false
	}
	if n > 0 {
		n--
	}
	p.free[c.dev] = n
	return true
}

// room is the hardware entries left on device dev as planned so far (-1:
// unknown size).
func (p *planner) room(dev int) int {
	if n, ok := p.free[dev]; ok {
		return n
	}
	return p.e.freeRoom(dev)
}

// freeRoom is the hardware entries free on device dev now (-1: the device
// does not tell its size).
func (e *Engine) freeRoom(dev int) int {
	used, total := e.devs[dev].Capacity()
	if total <= 0 {
		return -1
	}
	return max(total-used, 0)
}

func (p *planner) upSoft(port string, soft []*flow.Flow) {
	if p.uplinks == nil {
		p.uplinks = map[string][]*flow.Flow{}
	}
	p.uplinks[port] = soft
}

// uplinkSoft returns the software rules of every uplink's chain 0: as
// planned where the batch touched them, else as installed.
func (p *planner) uplinkSoft() []*flow.Flow {
	return p.e.uplinkSoftOf(p.uplinks, p.replaced)
}

// walk goes through one chain's rules in tc order with the batch's
// changes among them, predicting which run only in software, and keeps a
// change out of hardware where it would shadow such a rule. It returns
// the chain's rules that run only in software.
func (p *planner) walk(k chainKey, batch []*change) []*flow.Flow {
	if p.simple(k, batch) {
		// Nothing runs only in software in this chain, before or after
		// the batch: every change goes where decide put it, in tc order.
		for _, c := range batch {
			if !c.failed() && c.target == flow.Both && c.needsRoom() {
				p.take(c)
			}
		}
		return nil
	}
	e := p.e
	type member struct {
		f  *flow.Flow
		en *entry
		c  *change
	}
	var members []member
	for _, en := range e.chainEntries(k) {
		if !p.replaced[en] {
			members = append(members, member{f: en.flow, en: en})
		}
	}
	for _, c := range batch {
		if !c.failed() && c.target != noCopy {
			members = append(members, member{f: c.f, c: c})
		}
	}
	slices.SortFunc(members, func(a, b member) int { return tcOrder(a.f, b.f) })
	soft := e.decapShadows(k, p.uplinkSoft) // rules that run only in software so far
	for _, m := range members {
		if m.en != nil {
			switch {
			case m.en.state == StateSoftware:
				soft = append(soft, m.f)
			case m.en.state == StateHardware && m.en.plane == flow.Both:
				if by := shadowedBy(soft, m.f); by != nil {
					p.demoted[m.en] = by // Apply demotes it
					soft = append(soft, m.f)
				}
			case m.en.state == StateHardware && m.en.plane == flow.Hardware:
				p.hwOnly[m.en] = hardwareOnlyReasons(soft, m.f)
			}
			continue
		}
		c := m.c
		switch c.target {
		case flow.Hardware:
			c.reasons = hardwareOnlyReasons(soft, c.f)
		case flow.Software:
			soft = append(soft, c.f)
		case flow.Both:
			if by := shadowedBy(soft, c.f); by != nil {
				c.target, c.state, c.spilled = flow.Software, StateSoftware, true
				c.reasons = []nic.Reason{shadowReason(by)}
				soft = append(soft, c.f)
				continue
			}
			if c.needsRoom() && !p.take(c) {
				used, total := e.devs[c.dev].Capacity()
				c.state, c.spilled = StateSoftware, true
				c.reasons = []nic.Reason{capacityReason(used, total)}
				soft = append(soft, c.f)
			}
		}
	}
	return soft
}

// simple reports whether the chain needs no walk: no rule of it runs
// only in software (installed, or by the batch's decide), none from an
// uplink goes before it, and the hardware has room for every change
// that asks for it. A bulk load into a big chain then costs the batch,
// not the chain.
func (p *planner) simple(k chainKey, batch []*change) bool {
	if len(p.e.decapShadows(k, p.uplinkSoft)) > 0 {
		return false
	}
	need := 0
	for _, c := range batch {
		if c.failed() {
			continue
		}
		if c.target == flow.Software {
			return false
		}
		if c.target == flow.Both && c.needsRoom() {
			need++
		}
	}
	// A software rule to walk past, or a hardware-only note to renew.
	if p.e.softScan(k, p.replaced, false) {
		return false
	}
	if need > 0 && len(batch) > 0 {
		if n := p.room(batch[0].dev); n >= 0 && n < need {
			return false
		}
	}
	return true
}

// portRank orders ports the way a packet meets them: uplinks first (a
// VXLAN frame is classified on the uplink before it is decapsulated for
// the tunnel device), tunnel devices last.
func (e *Engine) portRank(port string) int {
	switch e.portKind(port) {
	case nic.PortUplink:
		return 0
	case nic.PortTunnel:
		return 2
	}
	return 1
}

// uplinkSoft returns the installed rules of every uplink's chain 0 that
// run only in software.
func (e *Engine) uplinkSoft() []*flow.Flow { return e.uplinkSoftOf(nil, nil) }

// uplinkSoftOf is uplinkSoft with planned uplinks (their software rules
// as a plan sees them) and installed flows a batch replaces left out.
func (e *Engine) uplinkSoftOf(planned map[string][]*flow.Flow, replaced map[*entry]bool) []*flow.Flow {
	var out []*flow.Flow
	for name, ref := range e.ports {
		if ref.port.Kind != nic.PortUplink {
			continue
		}
		if soft, ok := planned[name]; ok {
			out = append(out, soft...)
			continue
		}
		for _, en := range e.chainEntries(chainKey{name, 0}) {
			if en.state == StateSoftware && !replaced[en] {
				out = append(out, en.flow)
			}
		}
	}
	return out
}

// tunnelChains are chain 0 of every tunnel device.
func (e *Engine) tunnelChains() []chainKey {
	var out []chainKey
	for name, ref := range e.ports {
		if ref.port.Kind == nic.PortTunnel {
			out = append(out, chainKey{name, 0})
		}
	}
	return out
}

// decapShadows returns, for chain 0 of a tunnel device, the uplink rules
// (from uplinkSoft) that run only in software and may match the device's
// encapsulated frames: software classifies a frame on the uplink before it
// decapsulates it, while hardware, when the uplink's rules miss,
// decapsulates it for the tunnel device's rules (mlx5 puts them in the
// uplink's table). To those rules a tunnel rule in hardware comes first.
func (e *Engine) decapShadows(k chainKey, uplinkSoft func() []*flow.Flow) []*flow.Flow {
	ref, ok := e.ports[k.port]
	if k.chain != 0 || !ok || ref.port.Kind != nic.PortTunnel {
		return nil
	}
	// What hardware decapsulates: whole UDP datagrams to the device's port.
	outer := flow.Match{IPProto: flow.ProtoUDP, DstPort: flow.Masked16{Value: ref.port.TunnelDstPort, Mask: 0xffff},
		Frag: flow.Masked32{Value: 0, Mask: flow.FragIsFragment}}
	var out []*flow.Flow
	for _, s := range uplinkSoft() {
		if flow.Overlap(&s.Match, &outer) {
			out = append(out, s) // ahead of every rule of the chain
		}
	}
	return out
}

func capacityReason(used, total int) nic.Reason {
	return nic.Reason{Code: nic.ReasonCapacity, Message: fmt.Sprintf("hardware flow table is full (%d of %d entries)", used, total)}
}

// chainEntries returns the flows of one chain (shared: do not modify).
func (e *Engine) chainEntries(k chainKey) []*entry {
	if cs := e.chains[k]; cs != nil {
		return cs.ens
	}
	return nil
}

// shadowedBy returns a rule of soft that runs no later than f and may
// match the same packets: one of f's chain with a priority not above
// f's, or an uplink rule ahead of a tunnel device's chain 0 (its match is
// on the outer headers, f's on the inner ones, so only the ports say
// they may meet: decapShadows picked it for that).
func shadowedBy(soft []*flow.Flow, f *flow.Flow) *flow.Flow {
	for _, s := range soft {
		if s.Port != f.Port {
			return s
		}
		if s.Priority <= f.Priority && s.ID != f.ID && flow.Overlap(&s.Match, &f.Match) {
			return s
		}
	}
	return nil
}

// fixShadows demotes, make-before-break, the auto flows in hardware of
// the chains keys that would shadow an earlier rule running only in
// software (what plan predicted, and any surprise the devices gave).
// Callers hold e.wmu.
func (e *Engine) fixShadows(ctx context.Context, keys map[chainKey]bool) {
	for k := range keys {
		if k.chain == 0 && e.portKind(k.port) == nic.PortUplink {
			for _, t := range e.tunnelChains() {
				keys[t] = true
			}
			break
		}
	}
	var demote []*entry
	var by []*flow.Flow
	for k := range keys {
		soft := e.decapShadows(k, e.uplinkSoft)
		if len(soft) == 0 && !e.softScan(k, nil, true) {
			continue
		}
		ens := slices.Clone(e.chainEntries(k))
		slices.SortFunc(ens, func(a, b *entry) int { return tcOrder(a.flow, b.flow) })
		for _, en := range ens {
			switch {
			case en.state == StateSoftware:
				soft = append(soft, en.flow)
			case en.state == StateHardware && en.plane == flow.Both:
				if s := shadowedBy(soft, en.flow); s != nil {
					demote = append(demote, en)
					by = append(by, s)
					soft = append(soft, en.flow)
				}
			case en.state == StateHardware && en.plane == flow.Hardware:
				e.locked(func() { e.setReasons(en, hardwareOnlyReasons(soft, en.flow)) })
			}
		}
	}
	if len(demote) == 0 {
		return
	}
	reasons := make([]nic.Reason, len(demote))
	for i := range demote {
		reasons[i] = shadowReason(by[i])
	}
	if n, _ := e.moveToSoftware(ctx, demote, reasons, true); n > 0 {
		// What they now hold back (a tunnel rule behind an uplink rule,
		// a hardware-only flow's note) is seen on the next pass.
		e.fixShadows(ctx, keys)
	}
}

// setReasons changes en's reasons, telling watchers when they change.
// Callers hold e.wmu and e.mu.
func (e *Engine) setReasons(en *entry, rs []nic.Reason) {
	if slices.Equal(en.reasons, rs) {
		return
	}
	en.reasons = rs
	e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
}

// moveToSoftware puts ens, flows in hardware, in software only:
// the skip_hw copy first, then the old copy goes. Each records reasons[i]
// and whether it is a promotion candidate. It returns how many moved and
// the first error. Callers hold e.wmu.
func (e *Engine) moveToSoftware(ctx context.Context, ens []*entry, reasons []nic.Reason, spilled bool) (int, error) {
	type group struct {
		ens     []*entry
		reasons []nic.Reason
	}
	perDev := map[int]*group{}
	for i, en := range ens {
		g := perDev[en.dev]
		if g == nil {
			g = &group{}
			perDev[en.dev] = g
		}
		g.ens = append(g.ens, en)
		g.reasons = append(g.reasons, reasons[i])
	}
	n := 0
	var firstErr error
	now := e.now()
	for dev, g := range perDev {
		d := e.devs[dev]
		add := make([]nic.Op, len(g.ens))
		for k, en := range g.ens {
			add[k] = nic.Op{Kind: nic.OpAdd, Flow: en.flow}
		}
		del := map[flow.Plane][]nic.Op{}
		var moved []int
		for k, err := range d.Program(ctx, flow.Software, add) {
			en := g.ens[k]
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("move %s to software on %s: %w", en.flow.ID, en.flow.Port, err)
				}
				continue
			}
			del[en.plane] = append(del[en.plane], nic.Op{Kind: nic.OpDelete, Flow: en.flow})
			moved = append(moved, k)
		}
		for plane, ops := range del {
			for k, err := range d.Program(ctx, plane, ops) {
				if err != nil && !isNotFound(err) {
					e.log.Warn("remove the hardware copy of a flow moved to software", "flow", ops[k].Flow.ID, "plane", plane.String(), "err", err)
				}
			}
		}
		e.commit(len(moved), func(i int) {
			k := moved[i]
			en := g.ens[k]
			en.state, en.plane, en.updated, en.spilled = StateSoftware, flow.Software, stampOf(now), spilled
			en.reasons = []nic.Reason{g.reasons[k]}
			e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
		})
		n += len(moved)
	}
	if n > 0 {
		e.signalFreed()
	}
	return n, firstErr
}
