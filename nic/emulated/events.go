package emulated

import (
	"sync"

	"github.com/offloadd/offloadd/nic"
)

// eventQueue delivers events in order without ever blocking the sender:
// events wait in an unbounded queue that one goroutine drains into the
// channel. A capacity-freed event is dropped while another waits to enter
// the channel; port events are never dropped.
type eventQueue struct {
	mu        sync.Mutex
	pending   []nic.Event
	capQueued bool
	closed    bool

	wake chan struct{} // coalescing trigger
	done chan struct{}
	out  chan nic.Event
	wg   sync.WaitGroup
}

func newEventQueue(buffer int) *eventQueue {
	q := &eventQueue{
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		out:  make(chan nic.Event, buffer),
	}
	q.wg.Add(1)
	go q.run()
	return q
}

// push queues ev; it never blocks and drops events after close.
func (q *eventQueue) push(ev nic.Event) {
	q.mu.Lock()
	if q.closed || (ev.Kind == nic.EventCapacityFreed && q.capQueued) {
		q.mu.Unlock()
		return
	}
	if ev.Kind == nic.EventCapacityFreed {
		q.capQueued = true
	}
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) run() {
	defer q.wg.Done()
	var batch []nic.Event
	for {
		select {
		case <-q.done:
			return
		case <-q.wake:
		}
		q.mu.Lock()
		batch, q.pending = q.pending, batch[:0]
		q.mu.Unlock()
		for _, ev := range batch {
			select {
			case q.out <- ev:
			case <-q.done:
				return
			}
			if ev.Kind == nic.EventCapacityFreed {
				q.mu.Lock()
				q.capQueued = false
				q.mu.Unlock()
			}
		}
	}
}

// close stops delivery, waits for the goroutine and closes the channel.
// Events still queued are dropped. It is idempotent.
func (q *eventQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.done)
	q.wg.Wait()
	close(q.out)
}
