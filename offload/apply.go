package offload

import (
	"context"
	"errors"
	"fmt"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// change is the plan and outcome for one valid flow of a batch.
type change struct {
	i   int
	f   *flow.Flow
	dev int
	old *entry

	// target is the plane the copy goes to, noCopy for none (pending).
	target  flow.Plane
	state   State
	reasons []nic.Reason
	spilled bool
	err     error

	done nic.OpKind // the op that succeeded, 0 if none
}

func (c *change) failed() bool { return c.err != nil }

// noCopy is the target of a change that installs nothing (a pending
// hardware-only flow).
const noCopy flow.Plane = 0xff

// chain is the (port, chain) the change's flow goes to.
func (c *change) chain() chainKey { return chainKey{c.f.Port, c.f.Chain} }

// Apply creates or replaces flows. Identical flows are left alone and keep
// their generation. Results come in request order. Without Atomic, invalid
// or failed flows are reported and the rest applied; with Atomic, any
// invalid or failed flow leaves everything as it was and Apply returns an
// error wrapping ErrBatchRejected.
func (e *Engine) Apply(ctx context.Context, flows []*flow.Flow, opt ApplyOptions) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply flows: %w", err)
	}
	if err := e.refuseIfDegraded(); err != nil {
		return nil, fmt.Errorf("apply flows: %w", err)
	}
	res, wait, err := e.apply(ctx, flows, opt)
	// Durable before the caller hears of it; other callers may go on
	// meanwhile, and their changes share the transaction.
	if werr := wait(); werr != nil && err == nil {
		return res, fmt.Errorf("apply flows: %w", werr)
	}
	return res, err
}

// refuseIfDegraded refuses a change while the store cannot be written:
// nothing is acknowledged that is not durable (ErrNotDurable).
func (e *Engine) refuseIfDegraded() error {
	if e.persister == nil {
		return nil
	}
	if err, _ := e.persister.state(); err != nil {
		return fmt.Errorf("%w: the store is failing (%w); changes are refused until it recovers", ErrNotDurable, err)
	}
	return nil
}

// Durability reports the store's health: the last write error while
// writes fail (nil when healthy, or without a store) and how many writes
// have failed since start.
func (e *Engine) Durability() (error, uint64) {
	if e.persister == nil {
		return nil, 0
	}
	return e.persister.state()
}

// apply does Apply as the writer and returns the wait for its changes to
// be durable.
func (e *Engine) apply(ctx context.Context, flows []*flow.Flow, opt ApplyOptions) ([]Result, func() error, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closed {
		return nil, noWait, fmt.Errorf("apply flows: %w", ErrClosed)
	}

	batch := make([]*flow.Flow, len(flows))
	for i, in := range flows {
		batch[i] = in
		if !opt.Owned {
			batch[i] = in.Clone()
		}
	}
	results, invalid := e.validateBatch(batch)
	if opt.Atomic && invalid > 0 {
		abortRest(results)
		return results, noWait, fmt.Errorf("apply flows: %d of %d invalid: %w", invalid, len(flows), ErrBatchRejected)
	}

	// Plan: skip unchanged flows, decide where each goes.
	changes := make([]*change, 0, len(batch))
	slab := make([]change, len(batch)) // one allocation for the batch's changes
	for i, f := range batch {
		if results[i].Outcome == OutcomeInvalid {
			continue
		}
		old := e.flows[f.ID]
		if old != nil && old.flow.Equal(f) {
			results[i].Outcome = OutcomeUnchanged // its status comes last
			continue
		}
		c := &slab[i]
		*c = change{i: i, f: f, dev: e.ports[f.Port].dev, old: old}
		changes = append(changes, c)
	}
	e.plan(changes)
	e.program(ctx, changes)

	failed := 0
	for _, c := range changes {
		if c.failed() {
			failed++
		}
	}
	if opt.Atomic && failed > 0 {
		e.rollback(ctx, changes)
		for _, c := range changes {
			if c.failed() {
				results[c.i].Outcome = OutcomeFailed
				results[c.i].Err = c.err
			}
		}
		abortRest(results)
		return results, noWait, fmt.Errorf("apply flows: %d of %d failed: %w", failed, len(flows), ErrBatchRejected)
	}

	// Break: remove the copy in the plane a flow left.
	e.removeOldCopies(ctx, changes)

	now := e.now()
	var saved []StoredFlow
	touched := map[chainKey]bool{}
	var installed []*change
	for _, c := range changes {
		r := &results[c.i]
		if c.failed() {
			r.Outcome, r.Err = OutcomeFailed, c.err
			continue
		}
		r.Outcome = OutcomeCreated
		if c.old != nil {
			r.Outcome = OutcomeUpdated
			touched[chainKey{c.old.flow.Port, c.old.flow.Chain}] = true
		}
		touched[c.chain()] = true
		installed = append(installed, c)
	}
	saved = make([]StoredFlow, 0, len(installed))
	e.commit(len(installed), func(k int) {
		c := installed[k]
		en := &entry{flow: c.f, state: c.state, plane: c.target, reasons: c.reasons, gen: 1, dev: c.dev, updated: stampOf(now), spilled: c.spilled}
		if c.old != nil {
			en.gen = c.old.gen + 1
		}
		e.install(c, en)
		saved = append(saved, StoredFlow{Flow: c.f, Generation: en.gen})
	})
	e.fixShadows(ctx, touched)
	// Every answer is the flow's status after the batch: it may have
	// pushed unchanged flows out of hardware; a failed change keeps the
	// installed version.
	e.mu.RLock()
	for i := range results {
		r := &results[i]
		if r.Outcome == OutcomeCreated || r.Outcome == OutcomeUpdated || r.Outcome == OutcomeUnchanged || r.Outcome == OutcomeFailed {
			if en, ok := e.flows[r.ID]; ok {
				r.Status = e.status(r.ID, en)
			}
		}
	}
	e.mu.RUnlock()
	return results, e.persist(&persistOp{save: saved}), nil
}

// validateBatch normalizes and validates batch in place against the node
// and each other (duplicate IDs, goto targets the batch itself provides),
// marking invalid flows; it returns the results and how many are invalid.
func (e *Engine) validateBatch(batch []*flow.Flow) ([]Result, int) {
	results := make([]Result, len(batch))
	first := make(map[string]int, len(batch))
	batchChains := map[chainKey]bool{}
	for i, f := range batch {
		flow.Normalize(f)
		results[i].ID = f.ID
		v := flow.Validate(f, portsView{e})
		if j, dup := first[f.ID]; dup && f.ID != "" {
			v = append(v, flow.Violation{Field: "id", Reason: fmt.Sprintf("duplicate of flows[%d] in the same batch", j)})
		} else {
			first[f.ID] = i
		}
		results[i].Violations = v
		if len(v) == 0 {
			batchChains[chainKey{f.Port, f.Chain}] = true
		}
	}
	var valid []*flow.Flow
	var at []int
	for i, f := range batch {
		if len(results[i].Violations) == 0 {
			results[i].Violations = e.gotoViolations(f, batchChains)
		}
		if len(results[i].Violations) == 0 && hasGoto(f) {
			valid, at = append(valid, f), append(at, i)
		}
	}
	// Loops across the batch and the installed flows, and goto paths
	// deeper than the kernel follows.
	if len(valid) > 0 {
		existing := make([]*flow.Flow, 0, len(e.gotoFlows))
		for en := range e.gotoFlows {
			existing = append(existing, en.flow)
		}
		for _, v := range flow.GotoLoops(existing, valid) {
			i := at[v.Index]
			results[i].Violations = append(results[i].Violations, v.Violation)
		}
	}
	invalid := 0
	for i := range batch {
		if len(results[i].Violations) > 0 {
			results[i].Outcome = OutcomeInvalid
			invalid++
		}
	}
	return results, invalid
}

// noWait is the wait of a change with nothing to write.
func noWait() error { return nil }

// install records en as the flow's entry in place of c.old, carrying its
// counters over, and tells the watchers. Callers hold e.wmu and e.mu.
func (e *Engine) install(c *change, en *entry) Status {
	if c.old != nil {
		en.hw, en.sw, en.seen = c.old.hw, c.old.sw, c.old.seen
		e.unlink(c.old)
	}
	e.link(en)
	e.flows[c.f.ID] = en
	st := e.status(c.f.ID, en)
	e.notify(Event{Kind: EventUpsert, Status: st})
	return st
}

// persist queues a change of the desired state for the store, in the
// engine's order (callers hold e.mu), and returns a wait for it to be
// written. A failed write is an error wrapping ErrNotDurable: the change
// is installed and kept in memory, and it is written, in order, when the
// store recovers; until then the engine refuses new changes.
func (e *Engine) persist(op *persistOp) func() error {
	if e.persister == nil || len(op.save) == 0 && len(op.del) == 0 {
		return noWait
	}
	w := e.persister.enqueue(op)
	return func() error {
		if err := w(); err != nil {
			e.log.Error("persist desired state", "saved", len(op.save), "deleted", len(op.del), "err", err)
			return fmt.Errorf("%w: %w; the change is installed and is saved when the store recovers, "+
				"but a restart before then loses it", ErrNotDurable, err)
		}
		return nil
	}
}

func abortRest(results []Result) {
	for i := range results {
		if results[i].Outcome != OutcomeInvalid && results[i].Outcome != OutcomeFailed {
			results[i].Outcome = OutcomeAborted
			results[i].Status = Status{}
		}
	}
}

// program runs the changes' ops, grouped per plane and device in one
// Program call each: hardware-only flows, then flows with no skip flag,
// then software-only ones, each in the order of changes (plan's), and
// records the outcome on each change.
func (e *Engine) program(ctx context.Context, changes []*change) {
	type group struct {
		ops []nic.Op
		cs  []*change
	}
	for _, plane := range nic.InstallPlanes {
		groups := map[int]*group{}
		var devs []int
		for _, c := range changes {
			if c.failed() || c.target != plane {
				continue
			}
			op := nic.OpAdd
			if c.old != nil && c.old.hasCopy() && c.old.plane == plane {
				op = nic.OpReplace
			}
			g := groups[c.dev]
			if g == nil {
				g = &group{}
				groups[c.dev] = g
				devs = append(devs, c.dev)
			}
			g.ops = append(g.ops, nic.Op{Kind: op, Flow: c.f})
			g.cs = append(g.cs, c)
		}
		for _, dev := range devs {
			g := groups[dev]
			errs := e.devs[dev].Program(ctx, plane, g.ops)
			for k, c := range g.cs {
				var err error
				if k < len(errs) {
					err = errs[k]
				}
				e.record(c, plane, g.ops[k].Kind, err)
			}
		}
	}
}

// record notes on c what Program answered for its op in plane.
func (e *Engine) record(c *change, plane flow.Plane, op nic.OpKind, err error) {
	if err == nil {
		c.done = op
		switch plane {
		case flow.Both:
			c.state, c.reasons, c.spilled = StateHardware, nil, false
		case flow.Hardware:
			// Keeps plan's note of a software rule it may take packets of.
			c.state, c.spilled = StateHardware, false
		}
		return
	}
	if refusal, ok := nic.NotInHW(err); ok && plane == flow.Both {
		// Installed in software; hardware did not take it.
		reason, retry := refusalReason(refusal)
		c.done, c.state, c.reasons, c.spilled = op, StateSoftware, []nic.Reason{reason}, retry
		return
	}
	if plane != flow.Hardware {
		c.err = fmt.Errorf("install %s in %s on %s: %w", c.f.ID, plane, c.f.Port, err)
		return
	}
	reason, retry := refusalReason(err)
	if retry {
		// Hardware-only and no room (or a device error): it waits.
		c.target, c.state, c.reasons, c.spilled = noCopy, StatePending, []nic.Reason{reason}, true
		return
	}
	var re *nic.RefusedError
	c.err = &PlacementError{ID: c.f.ID, Reasons: []nic.Reason{reason},
		Capacity: errors.As(err, &re) && re.Kind == nic.RefusedNoSpace, Err: err}
	c.reasons = []nic.Reason{reason}
}

// rollback undoes the ops that succeeded, restoring previous versions.
func (e *Engine) rollback(ctx context.Context, changes []*change) {
	for _, plane := range nic.InstallPlanes {
		perDev := map[int][]nic.Op{}
		for _, c := range changes {
			if c.target != plane {
				continue
			}
			switch c.done {
			case nic.OpAdd:
				perDev[c.dev] = append(perDev[c.dev], nic.Op{Kind: nic.OpDelete, Flow: c.f})
			case nic.OpReplace:
				perDev[c.dev] = append(perDev[c.dev], nic.Op{Kind: nic.OpReplace, Flow: c.old.flow})
			}
		}
		e.runCleanup(ctx, plane, perDev, "roll back")
	}
}

// removeOldCopies deletes the copy of each changed flow from the plane it
// left (or every copy of a flow that now waits as pending).
func (e *Engine) removeOldCopies(ctx context.Context, changes []*change) {
	perPlane := map[flow.Plane]map[int][]nic.Op{}
	freed := false
	for _, c := range changes {
		o := c.old
		if c.failed() || o == nil || !o.hasCopy() || c.done != 0 && o.plane == c.target {
			continue
		}
		if perPlane[o.plane] == nil {
			perPlane[o.plane] = map[int][]nic.Op{}
		}
		perPlane[o.plane][o.dev] = append(perPlane[o.plane][o.dev], nic.Op{Kind: nic.OpDelete, Flow: o.flow})
		freed = freed || o.state == StateHardware
	}
	for _, plane := range nic.InstallPlanes {
		e.runCleanup(ctx, plane, perPlane[plane], "remove old copy")
	}
	if freed {
		e.signalFreed()
	}
}

// runCleanup runs ops whose failure cannot be undone: it logs each error.
func (e *Engine) runCleanup(ctx context.Context, plane flow.Plane, perDev map[int][]nic.Op, what string) {
	for dev, ops := range perDev {
		for k, err := range e.devs[dev].Program(ctx, plane, ops) {
			if err != nil && !errors.Is(err, nic.ErrNotFound) {
				e.log.Warn(what, "flow", ops[k].Flow.ID, "plane", plane.String(), "op", ops[k].Kind.String(), "err", err)
			}
		}
	}
}

// Delete removes flows from their plane and from the desired state.
func (e *Engine) Delete(ctx context.Context, ids []string) ([]DeleteResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("delete flows: %w", err)
	}
	if err := e.refuseIfDegraded(); err != nil {
		return nil, fmt.Errorf("delete flows: %w", err)
	}
	res, wait, err := e.delete(ctx, ids)
	if werr := wait(); werr != nil && err == nil {
		return res, fmt.Errorf("delete flows: %w", werr)
	}
	return res, err
}

// delete does Delete under e.mu and returns the wait for its changes to
// be durable.
func (e *Engine) delete(ctx context.Context, ids []string) ([]DeleteResult, func() error, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closed {
		return nil, noWait, fmt.Errorf("delete flows: %w", ErrClosed)
	}
	results := make([]DeleteResult, len(ids))
	refused := e.strandedGotos(ids)
	type del struct {
		k  int
		en *entry
	}
	perPlane := map[flow.Plane]map[int][]nic.Op{flow.Hardware: {}, flow.Software: {}, flow.Both: {}}
	refs := map[flow.Plane]map[int][]del{flow.Hardware: {}, flow.Software: {}, flow.Both: {}}
	seen := map[string]bool{}
	var gone []string
	for k, id := range ids {
		results[k].ID = id
		en, ok := e.flows[id]
		if !ok || seen[id] {
			results[k].Found = ok
			continue
		}
		seen[id] = true
		results[k].Found = true
		if why, ok := refused[id]; ok {
			results[k].Err = fmt.Errorf("delete %s: %s: %w", id, why, ErrInUse)
			continue
		}
		if !en.hasCopy() {
			e.mu.Lock()
			e.forget(id, en)
			e.mu.Unlock()
			gone = append(gone, id)
			continue
		}
		plane := en.plane
		perPlane[plane][en.dev] = append(perPlane[plane][en.dev], nic.Op{Kind: nic.OpDelete, Flow: en.flow})
		refs[plane][en.dev] = append(refs[plane][en.dev], del{k, en})
	}
	freed := false
	touched := map[chainKey]bool{}
	for plane, perDev := range perPlane {
		for dev, ops := range perDev {
			errs := e.devs[dev].Program(ctx, plane, ops)
			for n, d := range refs[plane][dev] {
				if n < len(errs) && errs[n] != nil && !errors.Is(errs[n], nic.ErrNotFound) {
					results[d.k].Err = fmt.Errorf("delete %s from %s plane: %w", d.en.flow.ID, plane, errs[n])
					continue
				}
				// A software flow gone may let a rule it shadowed into hardware.
				freed = true
				touched[chainKey{d.en.flow.Port, d.en.flow.Chain}] = true
				e.mu.Lock()
				e.forget(d.en.flow.ID, d.en)
				e.mu.Unlock()
				gone = append(gone, d.en.flow.ID)
			}
		}
	}
	// Hardware-only flows the gone ones ran before no longer say so.
	e.fixShadows(ctx, touched)
	wait := e.persist(&persistOp{del: gone})
	if freed {
		e.signalFreed()
	}
	return results, wait, nil
}

// strandedGotos returns, by ID, why deleting ids would leave a goto of a
// remaining flow pointing at an empty chain.
func (e *Engine) strandedGotos(ids []string) map[string]string {
	var existing []*flow.Flow
	seenChain := map[chainKey]bool{}
	for _, id := range ids {
		en, ok := e.flows[id]
		if !ok {
			continue
		}
		k := chainKey{en.flow.Port, en.flow.Chain}
		if seenChain[k] {
			continue
		}
		seenChain[k] = true
		for _, c := range e.chainEntries(k) {
			if !hasGoto(c.flow) {
				existing = append(existing, c.flow)
			}
		}
	}
	if len(seenChain) == 0 {
		return nil
	}
	for en := range e.gotoFlows {
		existing = append(existing, en.flow)
	}
	out := map[string]string{}
	for _, v := range flow.StrandedGotos(existing, ids) {
		out[v.ID] = v.Reason
	}
	return out
}

func hasGoto(f *flow.Flow) bool {
	for i := range f.Actions {
		if f.Actions[i].Kind == flow.ActGoto {
			return true
		}
	}
	return false
}

// forget drops en from the state and tells the watchers. Callers hold
// e.wmu and e.mu.
func (e *Engine) forget(id string, en *entry) {
	delete(e.flows, id)
	e.unlink(en)
	e.retire(en)
	e.notify(Event{Kind: EventDelete, Status: e.status(id, en)})
}
