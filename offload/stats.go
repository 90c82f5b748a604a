package offload

import (
	"context"
	"fmt"

	"github.com/offloadd/offloadd/offload/flow"
)

// RefreshStats reads per-flow counters from every device and plane and
// stores them in the flows' statuses.
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
					en.hw = inst[i].Counters
				} else {
					en.sw = inst[i].Counters
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
