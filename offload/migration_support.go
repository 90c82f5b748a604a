package offload

import (
	"context"
	"fmt"
	"slices"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// This file holds the engine methods the live-migration handoff
// (package fallback) needs beyond DrainPort: holding single flows in
// software whatever their ingress port, installing flows straight into
// software with a generation, and bringing held flows back to hardware.
//
// A held flow is a software flow whose reasons include a ReasonDraining
// reason and that is not a promotion candidate, so neither PromoteSpilled
// nor the promoter moves it. Apply of a changed definition places the flow
// anew, which ends the hold.

// holdReason is the reason a held flow reports.
func holdReason(why string) nic.Reason {
	return nic.Reason{Code: nic.ReasonDraining, Message: why}
}

func isHeld(en *entry) bool {
	return en.state == StateSoftware && !en.spilled && slices.ContainsFunc(en.reasons, isDrainReason)
}

func isDrainReason(r nic.Reason) bool { return r.Code == nic.ReasonDraining }

// HoldInSoftware moves the hardware flows among ids to software,
// make-before-break, and keeps them and the spilled software flows among
// ids out of hardware until ReleaseHeld; why is the reason they report.
// Unknown IDs and flows in software for other reasons are left alone.
// It returns how many flows moved plane.
func (e *Engine) HoldInSoftware(ctx context.Context, ids []string, why string) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closed {
		return 0, fmt.Errorf("hold flows in software: %w", ErrClosed)
	}
	hold := holdReason(why)
	now := e.now()
	var ens []*entry
	for _, id := range ids {
		en, ok := e.flows[id]
		if !ok {
			continue
		}
		switch {
		case en.state == StateHardware:
			ens = append(ens, en)
		case en.state == StateSoftware && en.spilled:
			e.locked(func() {
				en.spilled, en.updated = false, stampOf(now)
				en.reasons = append([]nic.Reason{hold}, en.reasons...)
				e.notify(Event{Kind: EventUpsert, Status: e.status(id, en)})
			})
		}
	}
	slices.SortFunc(ens, func(a, b *entry) int { return tcOrder(a.flow, b.flow) })
	reasons := make([]nic.Reason, len(ens))
	for i := range reasons {
		reasons[i] = hold
	}
	return e.moveToSoftware(ctx, ens, reasons, false)
}

// ApplyHeld creates or replaces flows all or nothing, like an atomic Apply,
// but installs them in software only and holds them there (see
// HoldInSoftware) with the reason why. A created flow takes its
// StoredFlow.Generation (1 when 0); a changed one the larger of that and
// its next generation. An installed flow with the same definition keeps
// its generation and is held where it is, or moved from hardware to
// software make-before-break (outcome unchanged).
func (e *Engine) ApplyHeld(ctx context.Context, flows []StoredFlow, why string) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply held flows: %w", err)
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("apply held flows: %w", ErrClosed)
	}
	hold := holdReason(why)
	batch := make([]*flow.Flow, len(flows))
	for i, sf := range flows {
		batch[i] = sf.Flow.Clone()
	}
	results, invalid := e.validateBatch(batch)
	if invalid > 0 {
		abortRest(results)
		return results, fmt.Errorf("apply held flows: %d of %d invalid: %w", invalid, len(flows), ErrBatchRejected)
	}

	now := e.now()
	var changes []*change
	e.mu.Lock()
	for i, f := range batch {
		old := e.flows[f.ID]
		if old != nil && old.flow.Equal(f) && old.state == StateSoftware {
			if !isHeld(old) {
				old.spilled, old.updated = false, stampOf(now)
				old.reasons = append([]nic.Reason{hold}, old.reasons...)
				e.notify(Event{Kind: EventUpsert, Status: e.status(f.ID, old)})
			}
			results[i].Outcome = OutcomeUnchanged
			results[i].Status = e.status(f.ID, old)
			continue
		}
		changes = append(changes, &change{i: i, f: f, dev: e.ports[f.Port].dev, old: old,
			target: flow.Software, state: StateSoftware, reasons: []nic.Reason{hold}})
	}
	e.mu.Unlock()
	e.program(ctx, changes)
	failed := 0
	for _, c := range changes {
		if c.failed() {
			failed++
		}
	}
	if failed > 0 {
		e.rollback(ctx, changes)
		for _, c := range changes {
			if c.failed() {
				results[c.i].Outcome, results[c.i].Err = OutcomeFailed, c.err
			}
		}
		abortRest(results)
		return results, fmt.Errorf("apply held flows: %d of %d failed: %w", failed, len(flows), ErrBatchRejected)
	}
	e.removeOldCopies(ctx, changes)

	var saved []StoredFlow
	e.mu.Lock()
	for _, c := range changes {
		r := &results[c.i]
		gen := max(flows[c.i].Generation, 1)
		en := &entry{flow: c.f, state: StateSoftware, plane: flow.Software, reasons: c.reasons, dev: c.dev, updated: stampOf(now)}
		r.Outcome = OutcomeCreated
		if c.old != nil {
			r.Outcome = OutcomeUpdated
			gen = max(flows[c.i].Generation, c.old.gen+1)
			if c.old.flow.Equal(c.f) {
				r.Outcome, gen = OutcomeUnchanged, c.old.gen
			}
		}
		en.gen = gen
		r.Status = e.install(c, en)
		saved = append(saved, StoredFlow{Flow: c.f, Generation: en.gen})
	}
	e.mu.Unlock()
	if err := e.persist(&persistOp{save: saved})(); err != nil {
		return results, fmt.Errorf("apply held flows: %w", err)
	}
	return results, nil
}

// ReleaseHeld ends the hold of the software flows among ids whose reasons
// include ReasonDraining and moves those that may use hardware back to it,
// make-before-break, in tc order (chain, priority) while the device has
// room. Flows that do not fit wait for the promoter as spilled flows;
// flows that still may not use hardware (policy, profile, their ingress
// port still draining) report why. Call it after UndrainPort of the
// flows' ports. It returns how many flows moved to hardware.
func (e *Engine) ReleaseHeld(ctx context.Context, ids []string) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closed {
		return 0, fmt.Errorf("release held flows: %w", ErrClosed)
	}
	now := e.now()
	perDev := map[int][]*entry{}
	e.mu.Lock()
	for _, id := range ids {
		en, ok := e.flows[id]
		if !ok || en.state != StateSoftware || !slices.ContainsFunc(en.reasons, isDrainReason) {
			continue
		}
		if r := e.hardwareReasons(en.flow, en.dev); len(r) > 0 {
			en.reasons, en.spilled, en.updated = r, false, stampOf(now)
			e.notify(Event{Kind: EventUpsert, Status: e.status(id, en)})
			continue
		}
		en.spilled = true
		perDev[en.dev] = append(perDev[en.dev], en)
	}
	e.mu.Unlock()
	moved := 0
	for dev, ens := range perDev {
		if err := ctx.Err(); err != nil {
			return moved, fmt.Errorf("release held flows: %w", err)
		}
		slices.SortFunc(ens, func(a, b *entry) int { return tcOrder(a.flow, b.flow) })
		moved += e.promote(ctx, dev, ens)
		used, total := e.devs[dev].Capacity()
		e.mu.Lock()
		for _, en := range ens {
			if en.state == StateSoftware && slices.ContainsFunc(en.reasons, isDrainReason) {
				en.updated = stampOf(now)
				en.reasons = []nic.Reason{{Code: nic.ReasonCapacity,
					Message: fmt.Sprintf("hardware flow table is full (%d of %d entries); waiting for room", used, total)}}
				e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
			}
		}
		e.mu.Unlock()
	}
	return moved, nil
}
