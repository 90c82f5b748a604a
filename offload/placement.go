package offload

import (
	"cmp"
	"context"
	"fmt"
	"slices"

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

func shadowReason(by *flow.Flow) nic.Reason {
	return nic.Reason{Code: ReasonShadowed, Message: fmt.Sprintf(
		"flow %s (priority %d) runs before this one in %s chain %d, may match the same packets and is not in hardware; "+
			"in hardware this flow would take its packets", by.ID, by.Priority, by.Port, by.Chain)}
}

// chainSet is the flows of one (port, chain).
type chainSet struct{ ens []*entry }

func (e *Engine) link(en *entry) {
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
// (hardware-only flows, then the others in tc order), then the ordering
// rule per chain. It sorts changes into that order. Explain runs the same.
func (e *Engine) plan(changes []*change) []*change {
	for _, c := range changes {
		e.decide(c)
	}
	slices.SortStableFunc(changes, func(a, b *change) int { return cmp.Or(cmp.Compare(a.dev, b.dev), tcOrder(a.f, b.f)) })
	free := map[int]int{}
	room := func(dev int) *int {
		n, ok := free[dev]
		if !ok {
			used, total := e.devs[dev].Capacity()
			n = -1
			if total > 0 {
				n = max(total-used, 0)
			}
			free[dev] = n
		}
		return &n
	}
	take := func(c *change) bool {
		n := room(c.dev)
		if *n == 0 {
			return false
		}
		if *n > 0 {
			free[c.dev] = *n - 1
		}
		return true
	}
	for _, c := range changes {
		if c.failed() || c.target != flow.Hardware || !c.needsRoom() {
			continue
		}
		if !take(c) {
			used, total := e.devs[c.dev].Capacity()
			c.target, c.state, c.spilled = 0, StatePending, true
			c.reasons = []nic.Reason{capacityReason(used, total)}
		}
	}
	replaced := map[*entry]bool{}
	for _, c := range changes {
		if c.old != nil {
			replaced[c.old] = true
		}
	}
	for i := 0; i < len(changes); {
		j := i + 1
		k := chainKey{changes[i].f.Port, changes[i].f.Chain}
		for j < len(changes) && changes[j].dev == changes[i].dev && changes[j].f.Port == k.port && changes[j].f.Chain == k.chain {
			j++
		}
		e.planChain(k, changes[i:j], replaced, take)
		i = j
	}
	return changes
}

// planChain walks one chain's rules in tc order with the batch's changes
// among them, predicting which run only in software, and keeps a change
// out of hardware where it would shadow such a rule.
func (e *Engine) planChain(k chainKey, batch []*change, replaced map[*entry]bool, take func(*change) bool) {
	type member struct {
		f  *flow.Flow
		en *entry
		c  *change
	}
	var members []member
	for _, en := range e.chainEntries(k) {
		if !replaced[en] {
			members = append(members, member{f: en.flow, en: en})
		}
	}
	for _, c := range batch {
		if !c.failed() && c.target != 0 {
			members = append(members, member{f: c.f, c: c})
		}
	}
	slices.SortFunc(members, func(a, b member) int { return tcOrder(a.f, b.f) })
	var soft []*flow.Flow // rules that run only in software so far
	for _, m := range members {
		if m.en != nil {
			switch {
			case m.en.state == StateSoftware:
				soft = append(soft, m.f)
			case m.en.state == StateHardware && m.en.plane == flow.Both && shadowedBy(soft, m.f) != nil:
				soft = append(soft, m.f) // Apply demotes it
			}
			continue
		}
		c := m.c
		switch c.target {
		case flow.Software:
			soft = append(soft, c.f)
		case flow.Both:
			if by := shadowedBy(soft, c.f); by != nil {
				c.target, c.state, c.spilled = flow.Software, StateSoftware, true
				c.reasons = []nic.Reason{shadowReason(by)}
				soft = append(soft, c.f)
				continue
			}
			if c.needsRoom() && !take(c) {
				used, total := e.devs[c.dev].Capacity()
				c.state, c.spilled = StateSoftware, true
				c.reasons = []nic.Reason{capacityReason(used, total)}
				soft = append(soft, c.f)
			}
		}
	}
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

// shadowedBy returns a rule of soft that runs no later than f in its
// chain and may match the same packets.
func shadowedBy(soft []*flow.Flow, f *flow.Flow) *flow.Flow {
	for _, s := range soft {
		if s.Priority <= f.Priority && s.ID != f.ID && flow.Overlap(&s.Match, &f.Match) {
			return s
		}
	}
	return nil
}

// fixShadows demotes, make-before-break, the auto flows in hardware of
// the chains keys that would shadow an earlier rule running only in
// software (what plan predicted, and any surprise the devices gave).
// Callers hold e.mu.
func (e *Engine) fixShadows(ctx context.Context, keys map[chainKey]bool) {
	var demote []*entry
	var by []*flow.Flow
	for k := range keys {
		ens := slices.Clone(e.chainEntries(k))
		if !slices.ContainsFunc(ens, func(en *entry) bool { return en.state == StateSoftware }) {
			continue
		}
		slices.SortFunc(ens, func(a, b *entry) int { return tcOrder(a.flow, b.flow) })
		var soft []*flow.Flow
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
	e.moveToSoftware(ctx, demote, reasons, true)
}

// moveToSoftware puts ens, flows in hardware, in software only:
// the skip_hw copy first, then the old copy goes. Each records reasons[i]
// and whether it is a promotion candidate. It returns how many moved and
// the first error. Callers hold e.mu.
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
		for _, k := range moved {
			en := g.ens[k]
			en.state, en.plane, en.updated, en.spilled = StateSoftware, flow.Software, stampOf(now), spilled
			en.reasons = []nic.Reason{g.reasons[k]}
			e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
			n++
		}
	}
	if n > 0 {
		e.signalFreed()
	}
	return n, firstErr
}
