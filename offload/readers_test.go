package offload

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
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
		assert.Len(t, w.Snapshot(), 1)
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

// TestSlowWatcherIsCutAtItsByteBound: a watcher that never reads holds at
// most its buffer's worth of changes, then ends with ErrWatcherLagged.
func TestSlowWatcherIsCutAtItsByteBound(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{Devices: []nic.Device{newFakeDev(0)}, Logger: quiet, WatchBuffer: 64 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	w, err := e.Watch(ctx)
	require.NoError(t, err)
	var batch []*flow.Flow
	for i := range 2000 {
		batch = append(batch, acl(fmt.Sprintf("f%04d", i), uint16(1+i%100), uint16(i)))
	}
	_, err = e.Apply(ctx, batch, ApplyOptions{})
	require.NoError(t, err)
	w.mu.Lock()
	queued, limit := w.bytes, w.limit
	w.mu.Unlock()
	assert.LessOrEqual(t, queued, limit)
	n := 0
	for range w.C {
		n++
	}
	require.ErrorIs(t, w.Err(), ErrWatcherLagged)
	assert.Less(t, n, 2000, "cut before every change was delivered")
	t.Logf("a watcher that did not read got %d of 2000 changes before it was cut", n)
}

// TestListPage pages through the flows in ID order with filters.
func TestListPage(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t, 0)
	var batch []*flow.Flow
	for i := range 50 {
		f := acl(fmt.Sprintf("t%d-%02d", i%2, i), uint16(1+i), uint16(i))
		if i%5 == 0 {
			f.Port = "pf0vf1"
		}
		batch = append(batch, f)
	}
	_, err := e.Apply(ctx, batch, ApplyOptions{})
	require.NoError(t, err)
	collect := func(f Filter, size int) ([]string, int) {
		var ids []string
		after, pages := "", 0
		for {
			page, more := e.ListPage(f, after, size)
			pages++
			for _, st := range page {
				ids = append(ids, st.Flow.ID)
			}
			if !more {
				return ids, pages
			}
			after = page[len(page)-1].Flow.ID
		}
	}
	all, pages := collect(Filter{}, 7)
	assert.Len(t, all, 50)
	assert.Equal(t, 8, pages)
	assert.IsIncreasing(t, all)
	odd, _ := collect(Filter{IDPrefix: "t1-"}, 4)
	assert.Len(t, odd, 25)
	for _, id := range odd {
		assert.True(t, strings.HasPrefix(id, "t1-"), id)
	}
	vf1, _ := collect(Filter{Port: "pf0vf1"}, 3)
	assert.Len(t, vf1, 10)
	assert.Equal(t, all, func() []string {
		var ids []string
		for _, st := range e.List(Filter{}) {
			ids = append(ids, st.Flow.ID)
		}
		return ids
	}())
}
