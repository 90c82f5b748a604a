package representor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/offloadd/offloadd/nic"
)

// Scanner reads the current topology; *SysfsScanner is the real one.
type Scanner interface {
	Scan(ctx context.Context) (Snapshot, error)
}

// LinkEvents is a source of link-change notifications.
type LinkEvents interface {
	// Watch calls notify for each link change until ctx is done (then it
	// returns nil) or the source fails (then it returns the error, and
	// changes may have been missed).
	Watch(ctx context.Context, notify func()) error
}

// WatcherConfig configures a Watcher. Zero fields take the stated defaults.
type WatcherConfig struct {
	// Scanner reads the topology. Required.
	Scanner Scanner
	// Links triggers rescans on link changes; nil: only Trigger and Resync do.
	Links LinkEvents
	// Settle is how long a trigger waits for more triggers before the
	// rescan, so a burst (creating 64 VFs) costs one scan. Default 100ms.
	Settle time.Duration
	// Resync rescans this often even without events. Default 30s; negative: never.
	Resync time.Duration
	// Retry is the first delay before resubscribing a failed link source;
	// it doubles up to 30s. Default 1s.
	Retry time.Duration
	// Buffer is the capacity of the Events channel. Default 256.
	Buffer int
	// Logger gets scan and subscription failures. Default slog.Default().
	Logger *slog.Logger
}

// Watcher keeps a current Snapshot and reports port changes as nic.Events.
type Watcher struct {
	cfg     WatcherConfig
	trigger chan struct{}
	events  chan nic.Event
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	mu   sync.Mutex
	snap Snapshot
}

// NewWatcher scans once (failing if that scan fails), then watches until
// Close; ctx bounds only that first scan. The first snapshot is not
// reported as events: read it with Snapshot.
func NewWatcher(ctx context.Context, cfg WatcherConfig) (*Watcher, error) {
	if cfg.Scanner == nil {
		return nil, errors.New("new representor watcher: no scanner")
	}
	if cfg.Settle == 0 {
		cfg.Settle = 100 * time.Millisecond
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	snap, err := cfg.Scanner.Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("initial representor scan: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &Watcher{
		cfg:     cfg,
		trigger: make(chan struct{}, 1),
		events:  make(chan nic.Event, cfg.Buffer),
		cancel:  cancel,
		snap:    snap,
	}
	w.wg.Add(1)
	go w.loop(runCtx)
	if cfg.Links != nil {
		w.wg.Add(1)
		go w.subscribe(runCtx)
	}
	return w, nil
}

// Events delivers port changes; it is closed by Close.
func (w *Watcher) Events() <-chan nic.Event { return w.events }

// Snapshot returns the latest topology.
func (w *Watcher) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// Trigger asks for a rescan. Triggers coalesce; it never blocks.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Close stops watching, waits for the goroutines and closes Events. It is
// safe to call more than once.
func (w *Watcher) Close() error {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
		close(w.events)
	})
	return nil
}

func (w *Watcher) loop(ctx context.Context) {
	defer w.wg.Done()
	var resync <-chan time.Time
	if w.cfg.Resync > 0 {
		t := time.NewTicker(w.cfg.Resync)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
		case <-w.trigger:
			// Let the burst finish; triggers arriving meanwhile are
			// absorbed by this scan.
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.cfg.Settle):
			}
			select {
			case <-w.trigger:
			default:
			}
		}
		if !w.rescan(ctx) {
			return
		}
	}
}

// rescan scans and emits the diff; false when ctx ended while emitting.
func (w *Watcher) rescan(ctx context.Context) bool {
	snap, err := w.cfg.Scanner.Scan(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.cfg.Logger.Warn("representor rescan failed; keeping the last snapshot", "err", err)
		}
		return ctx.Err() == nil
	}
	w.mu.Lock()
	old := w.snap
	w.snap = snap
	w.mu.Unlock()
	for _, ev := range Diff(old.Ports(), snap.Ports()) {
		select {
		case w.events <- ev:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (w *Watcher) subscribe(ctx context.Context) {
	defer w.wg.Done()
	delay := w.cfg.Retry
	for {
		started := time.Now()
		err := w.cfg.Links.Watch(ctx, w.Trigger)
		if ctx.Err() != nil {
			return
		}
		w.cfg.Logger.Warn("link event subscription ended; rescanning and resubscribing",
			"err", err, "retry", delay)
		// Events may have been lost.
		w.Trigger()
		if time.Since(started) > time.Minute {
			delay = w.cfg.Retry
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}
