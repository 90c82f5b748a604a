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
	// Snapshot is every flow at the moment the watch started, sorted by ID.
	Snapshot []Status
	// C delivers changes in order.
	C <-chan Event

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

// Watch starts a watcher: its Snapshot, then every change on C.
func (e *Engine) Watch(ctx context.Context) (*Watcher, error) {
	w := &Watcher{c: make(chan Event, 256), wake: make(chan struct{}, 1), limit: e.watchBuffer}
	w.C = w.c
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	w.Snapshot = make([]Status, 0, len(e.flows))
	for id, en := range e.flows {
		w.Snapshot = append(w.Snapshot, e.status(id, en))
	}
	e.watchers[w] = struct{}{}
	e.mu.Unlock()
	sortStatuses(w.Snapshot)
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
	for w := range e.watchers {
		if !w.push(ev) {
			delete(e.watchers, w)
		}
	}
}
