//go:build linux

// The SysfsScanner finds representors with sriovnet, which builds on Linux only.

package representor

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/representor/sysfstest"
)

// manualLinks is a LinkEvents the test drives: Fire notifies the current
// subscriber; Fail ends the current subscription with an error.
type manualLinks struct {
	mu     sync.Mutex
	notify func()
	fail   chan error
	subs   atomic.Int32
	ready  chan struct{}
}

func newManualLinks() *manualLinks {
	return &manualLinks{fail: make(chan error), ready: make(chan struct{}, 16)}
}

func (m *manualLinks) Watch(ctx context.Context, notify func()) error {
	m.mu.Lock()
	m.notify = notify
	m.mu.Unlock()
	m.subs.Add(1)
	m.ready <- struct{}{}
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.fail:
		return err
	}
}

func (m *manualLinks) Fire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notify()
}

// countingScanner counts scans of an inner scanner.
type countingScanner struct {
	Scanner
	n atomic.Int32
}

func (c *countingScanner) Scan(ctx context.Context) (Snapshot, error) {
	c.n.Add(1)
	return c.Scanner.Scan(ctx)
}

func nextEvents(t *testing.T, ch <-chan nic.Event, n int) []nic.Event {
	t.Helper()
	var out []nic.Event
	for len(out) < n {
		select {
		case ev := <-ch:
			out = append(out, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d events, want %d: %+v", len(out), n, out)
		}
	}
	return out
}

func noEvent(t *testing.T, ch <-chan nic.Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

var eventKindNames = map[nic.EventKind]string{
	nic.EventPortAdded: "added", nic.EventPortRemoved: "removed", nic.EventPortChanged: "changed",
}

func kinds(evs []nic.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, eventKindNames[ev.Kind]+" "+ev.Port.Name)
	}
	return out
}

func TestWatcher(t *testing.T) {
	tr := dualPortCX6(t)
	es := fakeEswitch{"pci/" + pf0PCI: nic.EswitchSwitchdev, "pci/" + pf1PCI: nic.EswitchLegacy}
	links := newManualLinks()
	w, err := NewWatcher(context.Background(), WatcherConfig{
		Scanner: NewSysfsScanner(tr.Root, es), Links: links, Settle: time.Millisecond, Resync: -1,
	})
	require.NoError(t, err)
	defer w.Close()
	<-links.ready
	assert.Len(t, w.Snapshot().Ports(), 6)
	noEvent(t, w.Events())

	// A third VF with its representor appears.
	tr.AddVF(sysfstest.VF{PFPCI: pf0PCI, Index: 2, PCI: "0000:08:00.4", Vendor: "15b3", Device: "101e", Driver: "mlx5_core", Netdev: "enp8s0f0v2"})
	tr.AddNetdev(sysfstest.Netdev{Name: "enp8s0f0npf0vf2", PCI: pf0PCI, PortName: "pf0vf2", SwitchID: swID})
	links.Fire()
	evs := nextEvents(t, w.Events(), 2)
	assert.Equal(t, []string{"added enp8s0f0npf0vf2", "added enp8s0f0v2"}, kinds(evs))
	assert.Equal(t, nic.PortRepresentor, evs[0].Port.Kind)
	assert.Equal(t, 2, evs[0].Port.VF)
	assert.Equal(t, "enp8s0f0v2", evs[0].Port.Peer)

	// The uplink's MTU changes and VF1's representor goes away.
	tr.Write("class/net/enp8s0f0np0/mtu", "1500")
	tr.RemoveNetdev("enp8s0f0npf0vf1")
	links.Fire()
	evs = nextEvents(t, w.Events(), 2)
	assert.Equal(t, []string{"removed enp8s0f0npf0vf1", "changed enp8s0f0np0"}, kinds(evs))
	assert.Equal(t, 1500, evs[1].Port.MTU)
	noEvent(t, w.Events())

	// A trigger with no change emits nothing.
	w.Trigger()
	noEvent(t, w.Events())
	_, err = w.Snapshot().PF(pf0PCI)
	assert.NoError(t, err)
}

func TestWatcherCoalesces(t *testing.T) {
	tr := dualPortCX6(t)
	sc := &countingScanner{Scanner: NewSysfsScanner(tr.Root, nil)}
	w, err := NewWatcher(context.Background(), WatcherConfig{Scanner: sc, Settle: 200 * time.Millisecond, Resync: -1})
	require.NoError(t, err)
	defer w.Close()
	require.EqualValues(t, 1, sc.n.Load())
	for range 100 {
		w.Trigger()
	}
	tr.RemoveNetdev("enp8s0f1v0")
	evs := nextEvents(t, w.Events(), 1)
	assert.Equal(t, []string{"removed enp8s0f1v0"}, kinds(evs))
	assert.EqualValues(t, 2, sc.n.Load(), "100 triggers in one settle window cost one scan")
}

func TestWatcherResync(t *testing.T) {
	tr := dualPortCX6(t)
	w, err := NewWatcher(context.Background(), WatcherConfig{Scanner: NewSysfsScanner(tr.Root, nil), Resync: 10 * time.Millisecond})
	require.NoError(t, err)
	defer w.Close()
	tr.RemoveNetdev("enp8s0f1v0")
	assert.Equal(t, []string{"removed enp8s0f1v0"}, kinds(nextEvents(t, w.Events(), 1)))
}

// A failed scan keeps the last snapshot; the next good one reports the
// difference against it.
func TestWatcherScanFailure(t *testing.T) {
	tr := dualPortCX6(t)
	sc := &flakyScanner{Scanner: NewSysfsScanner(tr.Root, nil)}
	w, err := NewWatcher(context.Background(), WatcherConfig{Scanner: sc, Settle: time.Millisecond, Resync: -1})
	require.NoError(t, err)
	defer w.Close()
	before := w.Snapshot()
	sc.fail.Store(true)
	tr.RemoveNetdev("enp8s0f1v0")
	w.Trigger()
	noEvent(t, w.Events())
	assert.Equal(t, before, w.Snapshot())
	sc.fail.Store(false)
	w.Trigger()
	assert.Equal(t, []string{"removed enp8s0f1v0"}, kinds(nextEvents(t, w.Events(), 1)))
}

type flakyScanner struct {
	Scanner
	fail atomic.Bool
}

func (f *flakyScanner) Scan(ctx context.Context) (Snapshot, error) {
	if f.fail.Load() {
		return Snapshot{}, errors.New("sysfs gone")
	}
	return f.Scanner.Scan(ctx)
}

func TestWatcherInitialScanFails(t *testing.T) {
	sc := &flakyScanner{}
	sc.fail.Store(true)
	_, err := NewWatcher(context.Background(), WatcherConfig{Scanner: sc})
	assert.ErrorContains(t, err, "initial representor scan: sysfs gone")
	_, err = NewWatcher(context.Background(), WatcherConfig{})
	assert.ErrorContains(t, err, "no scanner")
}

// A failed subscription is retried, and the retry rescans because events
// may have been lost meanwhile.
func TestWatcherResubscribes(t *testing.T) {
	tr := dualPortCX6(t)
	links := newManualLinks()
	w, err := NewWatcher(context.Background(), WatcherConfig{
		Scanner: NewSysfsScanner(tr.Root, nil), Links: links, Settle: time.Millisecond, Resync: -1, Retry: time.Millisecond,
	})
	require.NoError(t, err)
	defer w.Close()
	<-links.ready
	tr.RemoveNetdev("enp8s0f1v0") // change happens while no event arrives
	links.fail <- errors.New("ENOBUFS")
	<-links.ready
	assert.EqualValues(t, 2, links.subs.Load())
	assert.Equal(t, []string{"removed enp8s0f1v0"}, kinds(nextEvents(t, w.Events(), 1)))
}

func TestWatcherClose(t *testing.T) {
	tr := dualPortCX6(t)
	links := newManualLinks()
	w, err := NewWatcher(context.Background(), WatcherConfig{Scanner: NewSysfsScanner(tr.Root, nil), Links: links, Buffer: 1, Settle: time.Millisecond, Resync: -1})
	require.NoError(t, err)
	<-links.ready
	// Fill the buffer and leave the loop blocked on a second event: Close
	// must still return.
	tr.RemoveNetdev("enp8s0f1v0")
	tr.RemoveNetdev("enp8s0f0v0")
	w.Trigger()
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		assert.NoError(t, w.Close())
		assert.NoError(t, w.Close())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked")
	}
	n := 0
	for range w.Events() {
		n++
	}
	assert.Equal(t, 1, n)
	w.Trigger() // harmless after Close
}
