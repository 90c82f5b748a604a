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

	wantHW, wantSW bool
	state          State
	reasons        []nic.Reason
	spilled        bool
	err            error

	hwOp, swOp nic.OpKind // the ops that succeeded, 0 if none
}

func (c *change) failed() bool { return c.err != nil }

// Apply creates or replaces flows. Identical flows are left alone and keep
// their generation. Results come in request order. Without Atomic, invalid
// or failed flows are reported and the rest applied; with Atomic, any
// invalid or failed flow leaves everything as it was and Apply returns an
// error wrapping ErrBatchRejected.
func (e *Engine) Apply(ctx context.Context, flows []*flow.Flow, opt ApplyOptions) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply flows: %w", err)
	}
	res, wait, err := e.apply(ctx, flows, opt)
	// Durable before the caller hears of it; other callers may go on
	// meanwhile, and their changes share the transaction.
	wait()
	return res, err
}

// apply does Apply under e.mu and returns the wait for its changes to be
// durable.
func (e *Engine) apply(ctx context.Context, flows []*flow.Flow, opt ApplyOptions) ([]Result, func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
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

	// Plan: skip unchanged flows, decide which plane each should try first.
	changes := make([]*change, 0, len(batch))
	slab := make([]change, len(batch)) // one allocation for the batch's changes
	for i, f := range batch {
		if results[i].Outcome == OutcomeInvalid {
			continue
		}
		old := e.flows[f.ID]
		if old != nil && old.flow.Equal(f) {
			results[i].Outcome = OutcomeUnchanged
			results[i].Status = e.status(f.ID, old)
			continue
		}
		c := &slab[i]
		*c = change{i: i, f: f, dev: e.ports[f.Port].dev, old: old}
		changes = append(changes, e.plan(c))
	}

	e.program(ctx, changes, flow.Hardware)
	e.program(ctx, changes, flow.Software)

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
	for _, c := range changes {
		r := &results[c.i]
		if c.failed() {
			r.Outcome, r.Err = OutcomeFailed, c.err
			if c.old != nil {
				r.Status = e.status(c.f.ID, c.old)
			}
			continue
		}
		en := &entry{flow: c.f, state: c.state, reasons: c.reasons, gen: 1, dev: c.dev, updated: stampOf(now), spilled: c.spilled}
		r.Outcome = OutcomeCreated
		if c.old != nil {
			r.Outcome = OutcomeUpdated
			en.gen = c.old.gen + 1
		}
		r.Status = e.install(c, en)
		saved = append(saved, StoredFlow{Flow: c.f, Generation: en.gen})
	}
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
	invalid := 0
	for i, f := range batch {
		if len(results[i].Violations) == 0 {
			results[i].Violations = e.gotoViolations(f, batchChains)
		}
		if len(results[i].Violations) > 0 {
			results[i].Outcome = OutcomeInvalid
			invalid++
		}
	}
	return results, invalid
}

// noWait is the wait of a change with nothing to write.
func noWait() {}

// plan decides which plane a change tries first: hardware unless
// something already rules it out.
func (e *Engine) plan(c *change) *change {
	r := e.hardwareReasons(c.f, c.dev)
	switch {
	case len(r) == 0:
		c.wantHW = true
	case c.f.Policy == flow.PolicyHardwareOnly:
		c.err = &PlacementError{ID: c.f.ID, Reasons: r}
		c.reasons = r
	default:
		c.wantSW, c.reasons = true, r
	}
	return c
}

// install records en as the flow's entry in place of c.old, carrying its
// counters over, and tells the watchers. Callers hold e.mu.
func (e *Engine) install(c *change, en *entry) Status {
	if c.old != nil {
		en.hw, en.sw, en.seen = c.old.hw, c.old.sw, c.old.seen
		e.addChain(c.old.flow, -1)
	}
	e.addChain(c.f, 1)
	e.flows[c.f.ID] = en
	st := e.status(c.f.ID, en)
	e.notify(Event{Kind: EventUpsert, Status: st})
	return st
}

// persist queues a change of the desired state for the store, in the
// engine's order (callers hold e.mu), and returns a wait for it to be
// written. A failure is logged: the flows are installed, and the next
// change of each writes it again.
func (e *Engine) persist(op *persistOp) func() {
	if e.persister == nil || len(op.save) == 0 && len(op.del) == 0 {
		return noWait
	}
	w := e.persister.enqueue(op)
	return func() {
		if err := w(); err != nil {
			e.log.Error("persist desired state", "saved", len(op.save), "deleted", len(op.del), "err", err)
		}
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

// program runs one plane's ops for the changes that want it, grouped per
// device in one Program call each, and records the outcome on each change.
// A hardware refusal of an auto flow sends it on to the software plane.
func (e *Engine) program(ctx context.Context, changes []*change, plane flow.Plane) {
	type group struct {
		ops []nic.Op
		cs  []*change
	}
	groups := map[int]*group{}
	for _, c := range changes {
		if c.failed() || (plane == flow.Hardware && !c.wantHW) || (plane == flow.Software && !c.wantSW) {
			continue
		}
		want := StateHardware
		if plane == flow.Software {
			want = StateSoftware
		}
		op := nic.OpAdd
		if c.old != nil && c.old.state == want {
			op = nic.OpReplace
		}
		g := groups[c.dev]
		if g == nil {
			g = &group{}
			groups[c.dev] = g
		}
		g.ops = append(g.ops, nic.Op{Kind: op, Flow: c.f})
		g.cs = append(g.cs, c)
	}
	for dev, g := range groups {
		errs := e.devs[dev].Program(ctx, plane, g.ops)
		for k, c := range g.cs {
			var err error
			if k < len(errs) {
				err = errs[k]
			}
			if err == nil {
				if plane == flow.Hardware {
					c.state, c.hwOp, c.reasons = StateHardware, g.ops[k].Kind, nil
				} else {
					c.state, c.swOp = StateSoftware, g.ops[k].Kind
				}
				continue
			}
			if plane == flow.Software {
				c.err = fmt.Errorf("install %s in software on %s: %w", c.f.ID, c.f.Port, err)
				continue
			}
			reason, retry := refusalReason(err)
			if c.f.Policy == flow.PolicyHardwareOnly {
				var re *nic.RefusedError
				c.err = &PlacementError{ID: c.f.ID, Reasons: []nic.Reason{reason},
					Capacity: errors.As(err, &re) && re.Kind == nic.RefusedNoSpace, Err: err}
				continue
			}
			c.wantSW, c.reasons, c.spilled = true, []nic.Reason{reason}, retry
		}
	}
}

// rollback undoes the ops that succeeded, restoring previous versions.
func (e *Engine) rollback(ctx context.Context, changes []*change) {
	for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
		perDev := map[int][]nic.Op{}
		for _, c := range changes {
			op := c.hwOp
			if plane == flow.Software {
				op = c.swOp
			}
			switch op {
			case nic.OpAdd:
				perDev[c.dev] = append(perDev[c.dev], nic.Op{Kind: nic.OpDelete, Flow: c.f})
			case nic.OpReplace:
				perDev[c.dev] = append(perDev[c.dev], nic.Op{Kind: nic.OpReplace, Flow: c.old.flow})
			}
		}
		e.runCleanup(ctx, plane, perDev, "roll back")
	}
}

// removeOldCopies deletes the copy of each moved flow from the plane it left.
func (e *Engine) removeOldCopies(ctx context.Context, changes []*change) {
	hw, sw := map[int][]nic.Op{}, map[int][]nic.Op{}
	for _, c := range changes {
		if c.failed() || c.old == nil || c.old.state == c.state {
			continue
		}
		del := nic.Op{Kind: nic.OpDelete, Flow: c.old.flow}
		switch c.old.state {
		case StateHardware:
			hw[c.old.dev] = append(hw[c.old.dev], del)
		case StateSoftware:
			sw[c.old.dev] = append(sw[c.old.dev], del)
		}
	}
	e.runCleanup(ctx, flow.Hardware, hw, "remove old copy")
	e.runCleanup(ctx, flow.Software, sw, "remove old copy")
	if len(hw) > 0 {
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
	res, wait, err := e.delete(ctx, ids)
	wait()
	return res, err
}

// delete does Delete under e.mu and returns the wait for its changes to
// be durable.
func (e *Engine) delete(ctx context.Context, ids []string) ([]DeleteResult, func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, noWait, fmt.Errorf("delete flows: %w", ErrClosed)
	}
	results := make([]DeleteResult, len(ids))
	type del struct {
		k  int
		en *entry
	}
	perPlane := map[flow.Plane]map[int][]nic.Op{flow.Hardware: {}, flow.Software: {}}
	refs := map[flow.Plane]map[int][]del{flow.Hardware: {}, flow.Software: {}}
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
		var plane flow.Plane
		switch en.state {
		case StateHardware:
			plane = flow.Hardware
		case StateSoftware:
			plane = flow.Software
		default:
			e.forget(id, en)
			gone = append(gone, id)
			continue
		}
		perPlane[plane][en.dev] = append(perPlane[plane][en.dev], nic.Op{Kind: nic.OpDelete, Flow: en.flow})
		refs[plane][en.dev] = append(refs[plane][en.dev], del{k, en})
	}
	freed := false
	for plane, perDev := range perPlane {
		for dev, ops := range perDev {
			errs := e.devs[dev].Program(ctx, plane, ops)
			for n, d := range refs[plane][dev] {
				if n < len(errs) && errs[n] != nil && !errors.Is(errs[n], nic.ErrNotFound) {
					results[d.k].Err = fmt.Errorf("delete %s from %s plane: %w", d.en.flow.ID, plane, errs[n])
					continue
				}
				freed = freed || plane == flow.Hardware
				e.forget(d.en.flow.ID, d.en)
				gone = append(gone, d.en.flow.ID)
			}
		}
	}
	wait := e.persist(&persistOp{del: gone})
	if freed {
		e.signalFreed()
	}
	return results, wait, nil
}

func (e *Engine) forget(id string, en *entry) {
	delete(e.flows, id)
	e.addChain(en.flow, -1)
	e.notify(Event{Kind: EventDelete, Status: e.status(id, en)})
}
