package offload

import (
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload/flow"
)

// recordingStore logs each store call and can hold the writer up.
type recordingStore struct {
	mu    sync.Mutex
	calls []string
	gate  chan struct{}
}

func (s *recordingStore) Save(fs []StoredFlow) error {
	if s.gate != nil {
		<-s.gate
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Flow.ID)
	}
	s.mu.Lock()
	s.calls = append(s.calls, "save "+strings.Join(ids, ","))
	s.mu.Unlock()
	return nil
}

func (s *recordingStore) Delete(ids []string) error {
	s.mu.Lock()
	s.calls = append(s.calls, "delete "+strings.Join(ids, ","))
	s.mu.Unlock()
	return nil
}

func (s *recordingStore) Load() ([]StoredFlow, error) { return nil, nil }

func save(ids ...string) *persistOp {
	op := &persistOp{}
	for _, id := range ids {
		op.save = append(op.save, StoredFlow{Flow: &flow.Flow{ID: id}})
	}
	return op
}

// TestPersisterGroupsInOrder: changes queued while a write runs go out
// together, in queue order, with neighbouring saves and deletes merged.
func TestPersisterGroupsInOrder(t *testing.T) {
	st := &recordingStore{gate: make(chan struct{})}
	p := newPersister(st)
	first := p.enqueue(save("a"))
	// The writer is now blocked in the first Save; queue more behind it.
	for {
		p.mu.Lock()
		n := len(p.queue)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		runtime.Gosched()
	}
	waits := []func() error{
		p.enqueue(save("b")),
		p.enqueue(save("c", "d")),
		p.enqueue(&persistOp{del: []string{"a"}}),
		p.enqueue(&persistOp{del: []string{"b"}}),
		p.enqueue(save("a")),
	}
	close(st.gate)
	require.NoError(t, first())
	for _, w := range waits {
		require.NoError(t, w())
	}
	p.close()
	assert.Equal(t, []string{"save a", "save b,c,d", "delete a,b", "save a"}, st.calls)
}
