package offload

import (
	"sync"
	"sync/atomic"
	"time"
)

// retryEvery is how often a degraded persister tries its backlog again.
const retryEvery = time.Second

// persister writes desired-state changes to the store in the order they
// were queued, grouping whatever queued up while the previous transaction
// ran into one. Apply queues under the engine's lock (so order follows the
// engine's) and waits for durability after releasing it, so batches from
// several callers share one fsync.
//
// A failed write leaves the persister degraded: the failed change and
// every later one wait, in order, in a backlog that is retried every
// retryEvery and before anything new, so the store never holds a later
// change without an earlier one. Their callers hear of the failure; the
// engine refuses new changes while degraded.
type persister struct {
	store Store
	mu    sync.Mutex
	queue []*persistOp
	wake  chan struct{}
	done  chan struct{}

	// backlog is written by run only.
	backlog  []*persistOp
	degraded atomic.Pointer[error] // the last write error while degraded
	failures atomic.Uint64         // failed store writes, ever
}

// persistOp is one queued change: flows to save or IDs to delete.
type persistOp struct {
	save []StoredFlow
	del  []string
	err  chan error
	// told: the caller has heard the outcome (a retried op is not told twice).
	told bool
}

func newPersister(s Store) *persister {
	p := &persister{store: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.run()
	return p
}

// enqueue queues a change and returns a wait that reports its outcome.
func (p *persister) enqueue(op *persistOp) func() error {
	op.err = make(chan error, 1)
	p.mu.Lock()
	p.queue = append(p.queue, op)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return func() error { return <-op.err }
}

func (p *persister) run() {
	defer close(p.done)
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	for {
		select {
		case _, ok := <-p.wake:
			if !ok {
				p.flush()
				return
			}
		case <-retry.C:
			if len(p.backlog) == 0 {
				continue
			}
		}
		p.flush()
	}
}

// flush writes the backlog, then what is queued, until both are empty or
// a write fails.
func (p *persister) flush() {
	for {
		p.mu.Lock()
		q := p.queue
		p.queue = nil
		p.mu.Unlock()
		if len(p.backlog) > 0 {
			q = append(p.backlog, q...)
			p.backlog = nil
		}
		if len(q) == 0 {
			return
		}
		if !p.write(q) {
			return
		}
	}
}

// write runs q in order, merging neighbouring saves and neighbouring
// deletes into one store call each. At the first failure the rest of q
// goes to the backlog and every op not told yet hears the error. It
// reports whether everything was written.
func (p *persister) write(q []*persistOp) bool {
	for i := 0; i < len(q); {
		j := i + 1
		var err error
		if q[i].save != nil {
			flows := q[i].save
			for ; j < len(q) && q[j].save != nil; j++ {
				flows = append(flows[:len(flows):len(flows)], q[j].save...)
			}
			err = p.store.Save(flows)
		} else {
			ids := q[i].del
			for ; j < len(q) && q[j].save == nil; j++ {
				ids = append(ids[:len(ids):len(ids)], q[j].del...)
			}
			err = p.store.Delete(ids)
		}
		if err != nil {
			p.failures.Add(1)
			p.degraded.Store(&err)
			p.backlog = q[i:]
			for _, op := range q[i:] {
				tell(op, err)
			}
			return false
		}
		for ; i < j; i++ {
			tell(q[i], nil)
		}
	}
	p.degraded.Store(nil)
	return true
}

func tell(op *persistOp, err error) {
	if !op.told {
		op.told = true
		op.err <- err
	}
}

// state returns the last write error while degraded (nil: healthy) and
// the number of failed writes.
func (p *persister) state() (error, uint64) {
	var err error
	if e := p.degraded.Load(); e != nil {
		err = *e
	}
	return err, p.failures.Load()
}

// close stops the writer once everything queued is written.
func (p *persister) close() {
	close(p.wake)
	<-p.done
}
