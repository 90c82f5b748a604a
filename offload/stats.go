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
	type read struct {
		dev   int
		plane flow.Plane
	}
	var errs []error
	for dev, d := range e.devs {
		for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
			inst, err := d.Flows(ctx, plane)
			if err != nil {
				errs = append(errs, fmt.Errorf("read %s plane of %s: %w", plane, d.Info().Name, err))
				continue
			}
			e.mu.Lock()
			for i := range inst {
				en, ok := e.flows[inst[i].Flow.ID]
				if !ok || en.dev != dev {
					continue
				}
				if plane == flow.Hardware {
					en.seen[plane].accumulate(&en.hw, &inst[i])
				} else {
					en.seen[plane].accumulate(&en.sw, &inst[i])
				}
			}
			e.mu.Unlock()
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
