package offload

import (
	"context"
	"sync"
)

// DefaultWatchBuffer is the default bound of the bytes queued for one
// watcher (Config.WatchBuffer) before it is closed with ErrWatcherLagged.
const DefaultWatchBuffer = 16 << 20

// eventBytes estimates what a queued event holds on to: the event and its
// status, the ID and the reasons' text (the flow itself is shared with
// the engine's state while the flow lives).
func eventBytes(ev *Event) int {
	n := 640 + len(ev.Status.Flow.ID)
	for _, r := range ev.Status.Reasons {
		n += 64 + len(r.Field) + len(r.Message)
	}
	return n
}

// Watcher receives every change after its snapshot. C is closed when the
// context ends, the engine closes, or the watcher falls behind; Err says which.
type Watcher struct {
	// C delivers changes in order.
	C <-chan Event

	// snap is every flow at the moment the watch started, by ID; their
	// statuses are read when asked for (SnapshotPage), so a watcher holds
	// a pointer per flow, not a copy of every status.
	snap []*entry
	e    *Engine
	// static is the snapshot of a watcher made by NewStaticWatcher.
	static []Status

	c      chan Event
	mu     sync.Mutex
	queue  []Event
	bytes  int // eventBytes of queue
	limit  int // bound of bytes
	wake   chan struct{}
	err    error
	closed bool
}

// Err reports why C was closed: ErrWatcherLagged, ErrClosed or the context's error.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// NewStaticWatcher returns a watcher over a fixed snapshot and channel of
// changes, for fakes of the engine in other packages' tests.
func NewStaticWatcher(snapshot []Status, c <-chan Event) *Watcher {
	return &Watcher{static: snapshot, C: c}
}

// SnapshotLen is the number of flows of the snapshot.
func (w *Watcher) SnapshotLen() int {
	if w.e == nil {
		return len(w.static)
	}
	return len(w.snap)
}

// SnapshotPage returns the statuses of the snapshot's flows [from,
// from+n), sorted by ID. A status is at least as new as the watch's start:
// a flow changed since comes with its newer state here and again as an
// event on C.
func (w *Watcher) SnapshotPage(from, n int) []Status {
	from = min(max(from, 0), w.SnapshotLen())
	to := min(from+max(n, 0), w.SnapshotLen())
	if w.e == nil {
		return w.static[from:to]
	}
	out := make([]Status, 0, to-from)
	w.e.mu.RLock()
	defer w.e.mu.RUnlock()
	for _, en := range w.snap[from:to] {
		out = append(out, w.e.status(en.flow.ID, en))
	}
	return out
}

// Snapshot returns every status of the snapshot (SnapshotPage of all).
func (w *Watcher) Snapshot() []Status { return w.SnapshotPage(0, w.SnapshotLen()) }

// Watch starts a watcher: its snapshot, then every change on C.
func (e *Engine) Watch(ctx context.Context) (*Watcher, error) {
	w := &Watcher{c: make(chan Event, 256), wake: make(chan struct{}, 1), limit: e.watchBuffer, e: e}
	w.C = w.c
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	w.snap = make([]*entry, 0, e.byID.Len())
	e.byID.Ascend(func(en *entry) bool {
		w.snap = append(w.snap, en)
		return true
	})
	e.watchers[w] = struct{}{}
	e.mu.Unlock()
	go w.pump(ctx)
	go func() {
		<-ctx.Done()
		e.mu.Lock()
		delete(e.watchers, w)
		e.mu.Unlock()
		w.stop(ctx.Err())
	}()
	return w, nil
}

// push queues ev; it never blocks the engine.
func (w *Watcher) push(ev Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	n := eventBytes(&ev)
	if w.bytes+n > w.limit {
		w.err, w.closed = ErrWatcherLagged, true
		w.queue, w.bytes = nil, 0
		w.signal()
		return false
	}
	w.queue = append(w.queue, ev)
	w.bytes += n
	w.signal()
	return true
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Watcher) stop(err error) {
	w.mu.Lock()
	if !w.closed {
		w.err, w.closed = err, true
	}
	w.mu.Unlock()
	w.signal()
}

// pump moves queued events to C until the watcher is stopped.
func (w *Watcher) pump(ctx context.Context) {
	defer func() {
		// Record why before C closes, so Err is set once C is drained.
		w.stop(ctx.Err())
		close(w.c)
	}()
	for {
		w.mu.Lock()
		q, closed := w.queue, w.closed
		w.queue, w.bytes = nil, 0
		w.mu.Unlock()
		if closed {
			return
		}
		for _, ev := range q {
			select {
			case w.c <- ev:
			case <-ctx.Done():
				return
			}
		}
		if len(q) == 0 {
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			}
		}
	}
}

// notify hands ev to every watcher; callers hold e.mu.
func (e *Engine) notify(ev Event) {
	if ev.Kind == EventUpsert {
		e.markSoft(&ev.Status)
	}
	for w := range e.watchers {
		if !w.push(ev) {
			delete(e.watchers, w)
		}
	}
}
