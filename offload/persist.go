package offload

import "sync"

// persister writes desired-state changes to the store in the order they
// were queued, grouping whatever queued up while the previous transaction
// ran into one. Apply queues under the engine's lock (so order follows the
// engine's) and waits for durability after releasing it, so batches from
// several callers share one fsync.
type persister struct {
	store Store
	mu    sync.Mutex
	queue []*persistOp
	wake  chan struct{}
	done  chan struct{}
}

// persistOp is one queued change: flows to save or IDs to delete.
type persistOp struct {
	save []StoredFlow
	del  []string
	err  chan error
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
	for range p.wake {
		for {
			p.mu.Lock()
			q := p.queue
			p.queue = nil
			p.mu.Unlock()
			if len(q) == 0 {
				break
			}
			p.write(q)
		}
	}
}

// write runs q in order, merging neighbouring saves and neighbouring
// deletes into one store call each.
func (p *persister) write(q []*persistOp) {
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
		for ; i < j; i++ {
			q[i].err <- err
		}
	}
}

// close stops the writer once everything queued is written.
func (p *persister) close() {
	close(p.wake)
	<-p.done
}
