package offload

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

func isNotFound(err error) bool { return errors.Is(err, nic.ErrNotFound) }

// PromoteSpilled tries to move flows waiting for hardware into it, in tc
// order (chain, priority): software flows that hardware refused for lack
// of capacity or a device error or that an earlier software rule kept
// out, and hardware-only flows pending for room. It stops on a device
// once it is full again and returns how many flows moved.
func (e *Engine) PromoteSpilled(ctx context.Context) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.closed {
		return 0, ErrClosed
	}
	perDev := map[int][]*entry{}
	for _, en := range e.flows {
		if promotable(en) {
			perDev[en.dev] = append(perDev[en.dev], en)
		}
	}
	moved := 0
	for dev, ens := range perDev {
		if err := ctx.Err(); err != nil {
			return moved, fmt.Errorf("promote spilled flows: %w", err)
		}
		slices.SortFunc(ens, func(a, b *entry) int { return tcOrder(a.flow, b.flow) })
		moved += e.promote(ctx, dev, ens)
	}
	return moved, nil
}

// promotable says whether en waits for hardware.
func promotable(en *entry) bool {
	if !en.spilled {
		return false
	}
	switch en.flow.Policy {
	case flow.PolicyAuto:
		return en.state == StateSoftware
	case flow.PolicyHardwareOnly:
		return en.state == StateSoftware || en.state == StatePending
	}
	return false
}

// promote offers ens (in tc order, on device dev) to hardware while it has
// room: a flow with no skip flag is replaced in place, which offers it
// again; a software-only copy is replaced by one with no skip flag (a
// hardware-only flow's by a skip_sw one), make-before-break. A flow that
// an earlier rule running only in software would be shadowed by stays.
func (e *Engine) promote(ctx context.Context, dev int, ens []*entry) int {
	free := e.freeRoom(dev)
	soft := map[chainKey][]*flow.Flow{}
	softOf := func(k chainKey) []*flow.Flow {
		s, ok := soft[k]
		if !ok {
			s = e.decapShadows(k, e.uplinkSoft)
			for _, en := range e.chainEntries(k) {
				if en.state == StateSoftware && !promotable(en) {
					s = append(s, en.flow)
				}
			}
			soft[k] = s
		}
		return s
	}
	type cand struct {
		en   *entry
		kind nic.OpKind
	}
	perPlane := map[flow.Plane][]cand{}
	now := e.now()
	for _, en := range ens {
		if free == 0 {
			break
		}
		if r := e.hardwareReasons(en.flow, dev); len(r) > 0 {
			if en.flow.Policy == flow.PolicyAuto {
				e.locked(func() {
					en.reasons, en.spilled, en.updated = r, false, stampOf(now)
					e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
				})
			}
			continue
		}
		k := chainKey{en.flow.Port, en.flow.Chain}
		if en.flow.Policy == flow.PolicyAuto {
			if by := shadowedBy(softOf(k), en.flow); by != nil {
				// Still behind a software rule: it and what it shadows wait.
				soft[k] = append(soft[k], en.flow)
				continue
			}
		}
		target := flow.Both
		if en.flow.Policy == flow.PolicyHardwareOnly {
			target = flow.Hardware
		}
		kind := nic.OpAdd
		if en.state == StateSoftware && en.plane == target {
			kind = nic.OpReplace
		}
		perPlane[target] = append(perPlane[target], cand{en, kind})
		if free > 0 {
			free--
		}
	}
	moved := 0
	touched := map[chainKey]bool{}
	for _, target := range []flow.Plane{flow.Hardware, flow.Both} {
		cs := perPlane[target]
		if len(cs) == 0 {
			continue
		}
		ops := make([]nic.Op, len(cs))
		for k, c := range cs {
			ops[k] = nic.Op{Kind: c.kind, Flow: c.en.flow}
		}
		errs := e.devs[dev].Program(ctx, target, ops)
		del := map[flow.Plane][]nic.Op{}
		e.mu.Lock()
		for k, c := range cs {
			en := c.en
			var err error
			if k < len(errs) {
				err = errs[k]
			}
			refusal, notInHW := nic.NotInHW(err)
			if err != nil && !notInHW {
				reason, retry := refusalReason(err)
				en.reasons, en.spilled, en.updated = []nic.Reason{reason}, retry, stampOf(now)
				e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
				continue
			}
			if c.kind == nic.OpAdd && en.hasCopy() {
				del[en.plane] = append(del[en.plane], nic.Op{Kind: nic.OpDelete, Flow: en.flow})
			}
			en.plane, en.updated = target, stampOf(now)
			if notInHW {
				reason, retry := refusalReason(refusal)
				en.state, en.reasons, en.spilled = StateSoftware, []nic.Reason{reason}, retry
			} else {
				en.state, en.reasons, en.spilled = StateHardware, nil, false
				moved++
			}
			touched[chainKey{en.flow.Port, en.flow.Chain}] = true
			e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
		}
		e.mu.Unlock()
		for plane, ops := range del {
			for k, err := range e.devs[dev].Program(ctx, plane, ops) {
				if err != nil && !isNotFound(err) {
					e.log.Warn("remove the old copy of a promoted flow", "flow", ops[k].Flow.ID, "plane", plane.String(), "err", err)
				}
			}
		}
	}
	e.fixShadows(ctx, touched)
	if moved > 0 {
		e.log.Info("promoted flows to hardware", "device", e.names[dev], "flows", moved)
	}
	return moved
}

// DrainPort moves every hardware flow of port to software, make-before-break,
// and keeps new and promoted flows of the port out of hardware until
// UndrainPort. It returns how many flows moved.
func (e *Engine) DrainPort(ctx context.Context, port, why string) (int, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	ref, ok := e.ports[port]
	if !ok {
		return 0, fmt.Errorf("drain port %s: %w", port, ErrNotFound)
	}
	e.locked(func() { e.draining[port] = why })
	var ens []*entry
	for _, en := range e.flows {
		if en.flow.Port == port && en.state == StateHardware {
			ens = append(ens, en)
		}
	}
	slices.SortFunc(ens, func(a, b *entry) int { return tcOrder(a.flow, b.flow) })
	reasons := make([]nic.Reason, len(ens))
	for k, en := range ens {
		reasons[k] = e.hardwareReasons(en.flow, ref.dev)[0]
	}
	n, err := e.moveToSoftware(ctx, ens, reasons, false)
	if err != nil {
		return n, fmt.Errorf("drain port %s: %w", port, err)
	}
	return n, nil
}

// UndrainPort lets the port's flows use hardware again and marks its
// software flows as promotion candidates.
func (e *Engine) UndrainPort(port string) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.draining, port)
	for _, en := range e.flows {
		if en.flow.Port == port && en.state == StateSoftware && en.flow.Policy != flow.PolicySoftwareOnly {
			for _, r := range en.reasons {
				if r.Code == nic.ReasonDraining {
					en.spilled = true
				}
			}
		}
	}
	e.signalFreed()
}
