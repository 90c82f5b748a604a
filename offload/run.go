package offload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// Run follows device events (ports coming and going, capacity freed) and
// refreshes counters every statsInterval (0 disables it), until ctx ends.
func (e *Engine) Run(ctx context.Context, statsInterval time.Duration) {
	var wg sync.WaitGroup
	for i, d := range e.devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-d.Events():
					if !ok {
						return
					}
					e.handleEvent(ctx, i, ev)
				}
			}
		}()
	}
	if statsInterval > 0 {
		t := time.NewTicker(statsInterval)
		defer t.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				if err := e.RefreshStats(ctx); err != nil && ctx.Err() == nil {
					e.log.Warn("refresh flow counters", "err", err)
				}
			}
		}
	}
	wg.Wait()
}

func (e *Engine) handleEvent(ctx context.Context, dev int, ev nic.Event) {
	switch ev.Kind {
	case nic.EventCapacityFreed:
		e.signalFreed()
	case nic.EventPortAdded, nic.EventPortChanged:
		e.wmu.Lock()
		defer e.wmu.Unlock()
		e.locked(func() { e.ports[ev.Port.Name] = portRef{port: ev.Port, dev: dev} })
		var pending []*entry
		for _, en := range e.flows {
			if en.flow.Port == ev.Port.Name && en.state == StatePending {
				pending = append(pending, en)
			}
		}
		if len(pending) > 0 {
			e.log.Info("port appeared, installing its flows", "port", ev.Port.Name, "flows", len(pending))
			e.place(ctx, pending)
		}
	case nic.EventPortRemoved:
		e.wmu.Lock()
		defer e.wmu.Unlock()
		e.locked(func() { delete(e.ports, ev.Port.Name) })
		var gone []*entry
		perPlane := map[flow.Plane][]nic.Op{}
		for _, en := range e.flows {
			if en.flow.Port != ev.Port.Name || en.state == StatePending {
				continue
			}
			if en.hasCopy() {
				// The kernel drops a vanished port's filters; make sure the device forgot them too.
				perPlane[en.plane] = append(perPlane[en.plane], nic.Op{Kind: nic.OpDelete, Flow: en.flow})
			}
			gone = append(gone, en)
		}
		for plane, ops := range perPlane {
			e.devs[dev].Program(ctx, plane, ops)
		}
		now := e.now()
		e.commit(len(gone), func(i int) {
			en := gone[i]
			en.state, en.updated, en.spilled = StatePending, stampOf(now), false
			en.reasons = []nic.Reason{{Code: nic.ReasonPort, Field: "port", Message: fmt.Sprintf("port %s is gone; the flow is installed again when it returns", ev.Port.Name)}}
			e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
		})
		if len(gone) > 0 {
			e.log.Warn("port vanished, its flows are pending", "port", ev.Port.Name, "flows", len(gone))
			e.signalFreed()
		}
	}
}

// place installs entries that have no installed copy, as Apply would;
// callers hold e.wmu.
func (e *Engine) place(ctx context.Context, ens []*entry) {
	changes := make([]*change, len(ens))
	for k, en := range ens {
		changes[k] = &change{i: k, f: en.flow, dev: en.dev}
	}
	planned, _ := e.plan(changes)
	e.program(ctx, planned)
	now := e.now()
	touched := map[chainKey]bool{}
	e.mu.Lock()
	for _, c := range changes {
		en := ens[c.i]
		en.updated = stampOf(now)
		if c.failed() {
			en.state, en.spilled = StateFailed, false
			en.reasons = c.reasons
			if len(en.reasons) == 0 {
				en.reasons = []nic.Reason{{Code: nic.ReasonDeviceError, Message: c.err.Error()}}
			}
		} else {
			en.state, en.plane, en.reasons, en.spilled = c.state, c.target, c.reasons, c.spilled
			touched[c.chain()] = true
		}
		e.notify(Event{Kind: EventUpsert, Status: e.status(en.flow.ID, en)})
	}
	e.mu.Unlock()
	e.fixShadows(ctx, touched)
}

// Close stops every watcher; later calls that change state fail with ErrClosed.
// Installed flows stay in place, so traffic keeps flowing across a restart.
func (e *Engine) Close() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for w := range e.watchers {
		w.stop(ErrClosed)
		delete(e.watchers, w)
	}
	e.mu.Unlock()
	if e.persister != nil {
		e.persister.close() // after every queued change is written
	}
	return nil
}
