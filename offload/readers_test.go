package offload

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/offload/flow"
)

// TestReadersNeverWaitOnHardware: while a writer is stuck in the device,
// Get, List, Summarize, Explain and Watch answer.
func TestReadersNeverWaitOnHardware(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	d.gate = make(chan struct{})
	applied := make(chan error, 1)
	go func() {
		_, err := e.Apply(ctx, []*flow.Flow{acl("b", 2, 2)}, ApplyOptions{})
		applied <- err
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, ok := e.Get("a")
		assert.True(t, ok)
		assert.Equal(t, StateHardware, st.State)
		assert.Len(t, e.List(Filter{}), 1, "b is not visible before it is installed")
		e.Summarize()
		assert.Equal(t, StateHardware, e.Explain(ctx, acl("c", 3, 3)).State)
		w, err := e.Watch(ctx)
		require.NoError(t, err)
		assert.Len(t, w.Snapshot, 1)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("readers waited for the device")
	}
	close(d.gate)
	require.NoError(t, <-applied)
	_, ok := e.Get("b")
	assert.True(t, ok)
}

// TestConcurrentReadersAndWriters runs every writer and reader at once;
// the race detector (make test-race) checks the locking, the end state
// checks the outcome.
func TestConcurrentReadersAndWriters(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, _ := newEngine(t, 20)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 60 {
				id := fmt.Sprintf("w%d-%d", w, i%15)
				f := acl(id, uint16(1+i%15), uint16(100*w+i%15))
				if i%4 == 3 {
					f.Policy = flow.PolicySoftwareOnly
				}
				_, err := e.Apply(ctx, []*flow.Flow{f}, ApplyOptions{})
				assert.NoError(t, err)
				if i%5 == 0 {
					_, err := e.Delete(ctx, []string{id})
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 30 {
			_, _ = e.PromoteSpilled(ctx)
			_, _ = e.DrainPort(ctx, "pf0vf0", "test")
			e.UndrainPort("pf0vf0")
			_, _ = e.HoldInSoftware(ctx, []string{"w0-1", "w1-2"}, "test")
			_, _ = e.ReleaseHeld(ctx, []string{"w0-1", "w1-2"})
			assert.NoError(t, e.RefreshStats(ctx))
		}
	})
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			w, err := e.Watch(ctx)
			require.NoError(t, err)
			for {
				select {
				case <-stop:
					return
				case <-w.C:
				default:
				}
				e.List(Filter{})
				e.Get("w0-1")
				e.Summarize()
				e.ExplainBatch(ctx, []*flow.Flow{acl("x", 1, 9)})
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	// What the engine says is what the device holds.
	n, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	_ = n
	hw := 0
	for _, st := range e.List(Filter{}) {
		if st.State == StateHardware {
			hw++
		}
	}
	used, total := e.devs[0].Capacity()
	assert.Equal(t, hw, used, "hardware flows and the device's table agree")
	assert.LessOrEqual(t, used, total)
}
