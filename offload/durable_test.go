package offload

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// fullStore is a store whose writes fail while full is set.
type fullStore struct {
	mu    sync.Mutex
	full  bool
	flows map[string]StoredFlow
}

func (s *fullStore) Save(fs []StoredFlow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return syscall.ENOSPC
	}
	for _, f := range fs {
		s.flows[f.Flow.ID] = f
	}
	return nil
}

func (s *fullStore) Delete(ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return syscall.ENOSPC
	}
	for _, id := range ids {
		delete(s.flows, id)
	}
	return nil
}

func (s *fullStore) Load() ([]StoredFlow, error) { return nil, nil }

func (s *fullStore) setFull(v bool) {
	s.mu.Lock()
	s.full = v
	s.mu.Unlock()
}

func (s *fullStore) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.flows {
		out = append(out, id)
	}
	return out
}

// TestDurableOrRefused: a change whose save fails is not acknowledged;
// while the store fails every change is refused and nothing changes; when
// it recovers the backlog is written in order and changes are taken again.
func TestDurableOrRefused(t *testing.T) {
	ctx := context.Background()
	st := &fullStore{flows: map[string]StoredFlow{}}
	e, err := New(Config{Devices: []nic.Device{newFakeDev(0)}, Store: st, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	_, err = e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)

	st.setFull(true)
	_, err = e.Apply(ctx, []*flow.Flow{acl("b", 2, 2)}, ApplyOptions{})
	require.ErrorIs(t, err, ErrNotDurable, "a change that is not saved is not acknowledged")
	assert.ErrorIs(t, err, syscall.ENOSPC)
	failing, n := e.Durability()
	require.Error(t, failing)
	assert.Equal(t, uint64(1), n)
	assert.True(t, e.Summarize().StoreFailing)

	_, err = e.Apply(ctx, []*flow.Flow{acl("c", 3, 3)}, ApplyOptions{})
	require.ErrorIs(t, err, ErrNotDurable)
	_, ok := e.Get("c")
	assert.False(t, ok, "a refused change changes nothing")
	_, err = e.Delete(ctx, []string{"a"})
	require.ErrorIs(t, err, ErrNotDurable)
	_, ok = e.Get("a")
	assert.True(t, ok, "a refused delete deletes nothing")

	st.setFull(false)
	require.Eventually(t, func() bool { err, _ := e.Durability(); return err == nil }, 5*retryEvery, 10*time.Millisecond,
		"the backlog is retried and the store recovers")
	assert.ElementsMatch(t, []string{"a", "b"}, st.ids(), "the unacknowledged change is saved on recovery")
	_, err = e.Apply(ctx, []*flow.Flow{acl("c", 3, 3)}, ApplyOptions{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, st.ids())
}
