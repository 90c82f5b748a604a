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
func (r *copyReading) accumulate(total *nic.Counters, handle uint32, c nic.Counters) {
	if handle != r.handle || c.Packets < r.packets || c.Bytes < r.bytes {
		*r = copyReading{handle: handle}
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
		// In chunks: a reading of every flow must not hold readers and
		// the writer's commits up for its whole length.
		for lo := 0; lo < len(inst); lo += commitChunk {
			e.mu.Lock()
			e.accumulateChunk(dev, inst[lo:min(lo+commitChunk, len(inst))])
			e.mu.Unlock()
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// accumulateChunk adds the readings of inst, copies on device dev, to
// their flows' totals. Callers hold e.mu.
func (e *Engine) accumulateChunk(dev int, inst []nic.Installed) {
	for i := range inst {
		in := &inst[i]
		en, ok := e.flows[in.Flow.ID]
		// Only the flow's current copy: another is on its way in or out.
		if !ok || en.dev != dev || !en.hasCopy() || in.Plane != en.plane {
			continue
		}
		switch in.Plane {
		case flow.Hardware:
			en.seen[flow.Hardware].accumulate(&en.hw, in.Handle, in.Counters)
		case flow.Software:
			en.seen[flow.Software].accumulate(&en.sw, in.Handle, in.Counters)
		case flow.Both:
			en.seen[flow.Hardware].accumulate(&en.hw, in.Handle, in.HWCounters)
			en.seen[flow.Software].accumulate(&en.sw, in.Handle, in.Counters)
		}
	}
}
