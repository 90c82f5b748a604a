package fallback

import (
	"context"
	"log/slog"
	"time"
)

// Promotable is the part of the engine the promoter drives.
type Promotable interface {
	// PromoteSpilled moves spilled software flows into hardware where they fit.
	PromoteSpilled(ctx context.Context) (int, error)
	// CapacityFreed is signalled when hardware entries may have become free.
	CapacityFreed() <-chan struct{}
}

// Promoter brings spilled flows back to hardware: at once when capacity is
// freed, and every RetryInterval for flows refused by a device error.
type Promoter struct {
	eng Promotable
	log *slog.Logger
	// retry is how often flows spilled by device errors are retried.
	retry time.Duration
}

// NewPromoter returns a promoter; retry <= 0 means 30s.
func NewPromoter(eng Promotable, log *slog.Logger, retry time.Duration) *Promoter {
	if retry <= 0 {
		retry = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Promoter{eng: eng, log: log, retry: retry}
}

// Run promotes until ctx ends.
func (p *Promoter) Run(ctx context.Context) {
	t := time.NewTicker(p.retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.eng.CapacityFreed():
		case <-t.C:
		}
		n, err := p.eng.PromoteSpilled(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("promote spilled flows", "err", err)
		}
		if n > 0 {
			p.log.Debug("promoted spilled flows", "flows", n)
		}
	}
}
