package offload

import (
	"context"
	"fmt"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// copyReading is the last counter reading of one installed copy.
type copyReading struct {
	handle         uint32
	packets, bytes uint64
}

// accumulate adds what in counted since the last reading to total. A new
// copy (another handle) or a reset counter starts from zero.
func (r *copyReading) accumulate(total *nic.Counters, in *nic.Installed) {
	c := in.Counters
	if in.Handle != r.handle || c.Packets < r.packets || c.Bytes < r.bytes {
		*r = copyReading{handle: in.Handle}
	}
	total.Packets += c.Packets - r.packets
	total.Bytes += c.Bytes - r.bytes
	if c.LastUsed.After(total.LastUsed) {
		total.LastUsed = c.LastUsed
	}
	r.packets, r.bytes = c.Packets, c.Bytes
}

// RefreshStats reads per-flow counters from every device and plane and
// adds what is new to the flows' per-plane totals, which survive moves
// between planes, replaced copies and restarts of the device's counters.
func (e *Engine) RefreshStats(ctx context.Context) error {
	var errs []error
	for dev, d := range e.devs {
		inst, err := nic.ReadAllFlows(ctx, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("read flows of %s: %w", d.Info().Name, err))
			continue
		}
		e.mu.Lock()
		for i := range inst {
			en, ok := e.flows[inst[i].Flow.ID]
			if !ok || en.dev != dev {
				continue
			}
			switch inst[i].Plane {
			case flow.Hardware:
				en.seen[flow.Hardware].accumulate(&en.hw, &inst[i])
			case flow.Software:
				en.seen[flow.Software].accumulate(&en.sw, &inst[i])
			}
		}
		e.mu.Unlock()
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
