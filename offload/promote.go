package offload

import (
	"context"
	"fmt"
	"sort"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

func sortStatuses(s []Status) {
	sort.Slice(s, func(i, j int) bool { return s[i].Flow.ID < s[j].Flow.ID })
}

// flowOrder sorts flows the way tc consults them: chain, then priority, then ID.
func flowOrder(a, b *flow.Flow) bool {
	if a.Chain != b.Chain {
		return a.Chain < b.Chain
	}
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.ID < b.ID
}

// PromoteSpilled tries to move software flows that hardware refused for lack
// of capacity or a device error back into hardware, make-before-break, in tc
// order (chain, priority). It stops on a device once it is full again and
// returns how many flows moved.
func (e *Engine) PromoteSpilled(ctx context.Context) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, ErrClosed
	}
	perDev := map[int][]*entry{}
	for _, en := range e.flows {
		if en.state == StateSoftware && en.spilled && en.flow.Policy == flow.PolicyAuto {
			perDev[en.dev] = append(perDev[en.dev], en)
		}
	}
	moved := 0
	for dev, ens := range perDev {
		if err := ctx.Err(); err != nil {
			return moved, fmt.Errorf("promote spilled flows: %w", err)
		}
		sort.Slice(ens, func(i, j int) bool { return flowOrder(ens[i].flow, ens[j].flow) })
		if used, total := e.devs[dev].Capacity(); total > 0 {
			free := max(total-used, 0)
			if free == 0 {
				continue
			}
			ens = ens[:min(len(ens), free)]
		}
		moved += e.promote(ctx, dev, ens)
	}
	return moved, nil
}

// promote installs ens in hardware and removes their software copies.
func (e *Engine) promote(ctx context.Context, dev int, ens []*entry) int {
	var ops []nic.Op
	var cand []*entry
	for _, en := range ens {
		if len(e.hardwareReasons(en.flow, dev)) > 0 {
			continue
		}
		ops = append(ops, nic.Op{Kind: nic.OpAdd, Flow: en.flow})
		cand = append(cand, en)
	}
	if len(ops) == 0 {
		return 0
	}
	errs := e.devs[dev].Program(ctx, flow.Hardware, ops)
	var del []nic.Op
	var moved []*entry
	for k, en := range cand {
		if k < len(errs) && errs[k] != nil {
			reason, retry := refusalReason(errs[k])
			en.reasons, en.spilled = []nic.Reason{reason}, retry
			continue
		}
		del = append(del, nic.Op{Kind: nic.OpDelete, Flow: en.flow})
		moved = append(moved, en)
	}
	for k, err := range e.devs[dev].Program(ctx, flow.Software, del) {
		if err != nil {
			e.log.Warn("remove software copy after promotion", "flow", del[k].Flow.ID, "err", err)
		}
	}
	now := e.now()
	for _, en := range moved {
		en.state, en.reasons, en.spilled, en.updated = StateHardware, nil, false, stampOf(now)
		e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
	}
	if len(moved) > 0 {
		e.log.Info("promoted flows to hardware", "device", e.names[dev], "flows", len(moved))
	}
	return len(moved)
}

// DrainPort moves every hardware flow of port to software, make-before-break,
// and keeps new and promoted flows of the port out of hardware until
// UndrainPort. It returns how many flows moved.
func (e *Engine) DrainPort(ctx context.Context, port, why string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref, ok := e.ports[port]
	if !ok {
		return 0, fmt.Errorf("drain port %s: %w", port, ErrNotFound)
	}
	e.draining[port] = why
	var ens []*entry
	for _, en := range e.flows {
		if en.flow.Port == port && en.state == StateHardware {
			ens = append(ens, en)
		}
	}
	sort.Slice(ens, func(i, j int) bool { return flowOrder(ens[i].flow, ens[j].flow) })
	add := make([]nic.Op, len(ens))
	for k, en := range ens {
		add[k] = nic.Op{Kind: nic.OpAdd, Flow: en.flow}
	}
	dev := e.devs[ref.dev]
	var del []nic.Op
	var moved []*entry
	var firstErr error
	for k, err := range dev.Program(ctx, flow.Software, add) {
		if err != nil {
			firstErr = fmt.Errorf("drain port %s: install %s in software: %w", port, ens[k].flow.ID, err)
			continue
		}
		del = append(del, nic.Op{Kind: nic.OpDelete, Flow: ens[k].flow})
		moved = append(moved, ens[k])
	}
	errs := dev.Program(ctx, flow.Hardware, del)
	now := e.now()
	n := 0
	for k, en := range moved {
		if k < len(errs) && errs[k] != nil {
			// Both copies exist; keep it recorded in hardware so drain can be retried.
			if firstErr == nil {
				firstErr = fmt.Errorf("drain port %s: remove %s from hardware: %w", port, en.flow.ID, errs[k])
			}
			continue
		}
		en.state, en.updated, en.spilled = StateSoftware, stampOf(now), false
		en.reasons = e.hardwareReasons(en.flow, ref.dev)
		e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
		n++
	}
	if n > 0 {
		e.signalFreed()
	}
	return n, firstErr
}

// UndrainPort lets the port's flows use hardware again and marks its
// software flows as promotion candidates.
func (e *Engine) UndrainPort(port string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.draining, port)
	for _, en := range e.flows {
		if en.flow.Port == port && en.state == StateSoftware && en.flow.Policy == flow.PolicyAuto {
			for _, r := range en.reasons {
				if r.Code == nic.ReasonDraining {
					en.spilled = true
				}
			}
		}
	}
	e.signalFreed()
}
