package offload

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEngine(t *testing.T, capacity int) (*Engine, *fakeDev) {
	t.Helper()
	d := newFakeDev(capacity)
	e, err := New(Config{Devices: []nic.Device{d}, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e, d
}

func outcomes(rs []Result) []Outcome {
	out := make([]Outcome, len(rs))
	for i, r := range rs {
		out[i] = r.Outcome
	}
	return out
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	rs, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 22), acl("b", 2, 23)}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, []Outcome{OutcomeCreated, OutcomeCreated}, outcomes(rs))
	assert.Equal(t, StateHardware, rs[0].Status.State)
	assert.Equal(t, uint64(1), rs[0].Status.Generation)
	d.takeLog()

	rs, err = e.Apply(ctx, []*flow.Flow{acl("a", 1, 22), acl("b", 2, 24)}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, []Outcome{OutcomeUnchanged, OutcomeUpdated}, outcomes(rs))
	assert.Equal(t, uint64(1), rs[0].Status.Generation)
	assert.Equal(t, uint64(2), rs[1].Status.Generation)
	assert.Equal(t, []string{"both replace b ok"}, d.takeLog())
}

func TestSpillWhenFullAndPromoteAfterDelete(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 2)
	rs, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1), acl("b", 2, 2), acl("c", 3, 3)}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, StateHardware, rs[1].Status.State)
	c := rs[2].Status
	require.Equal(t, StateSoftware, c.State)
	require.Len(t, c.Reasons, 1)
	assert.Equal(t, nic.ReasonCapacity, c.Reasons[0].Code)
	assert.Contains(t, c.Reasons[0].Message, "table full")

	_, err = e.Delete(ctx, []string{"a"})
	require.NoError(t, err)
	select {
	case <-e.CapacityFreed():
	default:
		t.Fatal("delete of a hardware flow did not signal free capacity")
	}
	d.takeLog()
	n, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	// Offered again in place: the software copy never goes.
	assert.Equal(t, []string{"both replace c ok"}, d.takeLog())
	st, _ := e.Get("c")
	assert.Equal(t, StateHardware, st.State)
	assert.Empty(t, st.Reasons)
	assert.Equal(t, "both+in_hw b\nboth+in_hw c", d.String())
}

func TestRefusalKeepsDeviceReason(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	d.refuse = func(f *flow.Flow) error {
		if f.ID == "x" {
			return nic.Refusal(syscall.EOPNOTSUPP, "mlx5_core: matching on ct_state +new is not supported")
		}
		return nil
	}
	x := acl("x", 1, 80)
	x2 := acl("x2", 1, 81)
	x2.ID = "x"
	x2.Policy = flow.PolicyHardwareOnly
	rs, err := e.Apply(ctx, []*flow.Flow{x}, ApplyOptions{})
	require.NoError(t, err)
	require.Equal(t, StateSoftware, rs[0].Status.State)
	assert.Equal(t, []nic.Reason{{Code: nic.ReasonRefused,
		Message: "hardware refused: mlx5_core: matching on ct_state +new is not supported (operation not supported)"}}, rs[0].Status.Reasons)

	// hardware-only: fails with the reason, and the previous version stays.
	rs, err = e.Apply(ctx, []*flow.Flow{x2}, ApplyOptions{})
	require.NoError(t, err)
	require.Equal(t, OutcomeFailed, rs[0].Outcome)
	var pe *PlacementError
	require.ErrorAs(t, rs[0].Err, &pe)
	assert.True(t, errors.Is(rs[0].Err, syscall.EOPNOTSUPP))
	st, _ := e.Get("x")
	assert.Equal(t, uint16(80), st.Flow.Match.DstPort.Value)
	assert.Equal(t, "both x", d.String(), "in software: hardware refused it")
}

func TestAtomicBatch(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	d.takeLog()

	bad := acl("bad", 3, 3)
	bad.Match.IPDst = netip.MustParsePrefix("10.0.0.0/8")
	bad.Match.EthType = 0
	rs, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 9), acl("b", 2, 2), bad}, ApplyOptions{Atomic: true})
	require.ErrorIs(t, err, ErrBatchRejected)
	assert.Equal(t, []Outcome{OutcomeAborted, OutcomeAborted, OutcomeInvalid}, outcomes(rs))
	assert.Equal(t, []flow.Violation{
		{Field: "match.ipv4_dst", Reason: "needs eth_type ipv4 (0x0800)"},
		{Field: "match.ip_proto", Reason: "needs eth_type ipv4 (0x0800) or ipv6 (0x86dd)"}}, rs[2].Violations)
	assert.Empty(t, d.takeLog(), "an invalid atomic batch must not touch the device")

	// A device failure in an atomic batch rolls back what was done.
	d.refuse = func(f *flow.Flow) error {
		if f.ID == "hw" {
			return nic.Refusal(syscall.EOPNOTSUPP, "no")
		}
		return nil
	}
	hw := acl("hw", 4, 4)
	hw.Policy = flow.PolicyHardwareOnly
	rs, err = e.Apply(ctx, []*flow.Flow{acl("a", 1, 9), acl("b", 2, 2), hw}, ApplyOptions{Atomic: true})
	require.ErrorIs(t, err, ErrBatchRejected)
	assert.Equal(t, []Outcome{OutcomeAborted, OutcomeAborted, OutcomeFailed}, outcomes(rs))
	assert.Equal(t, "both+in_hw a", d.String())
	st, _ := e.Get("a")
	assert.Equal(t, uint16(1), st.Flow.Match.DstPort.Value)
	assert.Equal(t, uint64(1), st.Generation)
	_, ok := e.Get("b")
	assert.False(t, ok)
	got := e.List(Filter{})
	require.Len(t, got, 1)
}

func TestMoveBetweenPlanesIsMakeBeforeBreak(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	d.takeLog()
	sw := acl("a", 1, 1)
	sw.Policy = flow.PolicySoftwareOnly
	rs, err := e.Apply(ctx, []*flow.Flow{sw}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, StateSoftware, rs[0].Status.State)
	assert.Equal(t, nic.ReasonPolicy, rs[0].Status.Reasons[0].Code)
	assert.Equal(t, []string{"software add a ok", "both delete a ok"}, d.takeLog())
}

func TestValidationAgainstNode(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t, 0)
	jump := acl("jump", 1, 1)
	jump.Actions = []flow.Action{{Kind: flow.ActGoto, Chain: 5}}
	target := acl("target", 1, 1)
	target.Chain = 5
	dup := acl("jump", 2, 2)
	rs, err := e.Apply(ctx, []*flow.Flow{jump, dup}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, []flow.Violation{{Field: "actions[0].chain", Reason: "goto chain 5, which has no rules on port pf0vf0"}}, rs[0].Violations)
	assert.Equal(t, []flow.Violation{{Field: "id", Reason: "duplicate of flows[0] in the same batch"}}, rs[1].Violations)

	rs, err = e.Apply(ctx, []*flow.Flow{jump, target}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, []Outcome{OutcomeCreated, OutcomeCreated}, outcomes(rs))
}

func TestWatchSnapshotThenChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, _ := newEngine(t, 1)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	w, err := e.Watch(ctx)
	require.NoError(t, err)
	require.Len(t, w.Snapshot(), 1)
	assert.Equal(t, "a", w.Snapshot()[0].Flow.ID)

	_, err = e.Apply(ctx, []*flow.Flow{acl("b", 2, 2)}, ApplyOptions{})
	require.NoError(t, err)
	_, err = e.Delete(ctx, []string{"a"})
	require.NoError(t, err)
	_, err = e.PromoteSpilled(ctx)
	require.NoError(t, err)
	want := []struct {
		kind  EventKind
		id    string
		state State
	}{{EventUpsert, "b", StateSoftware}, {EventDelete, "a", StateHardware}, {EventUpsert, "b", StateHardware}}
	for _, w2 := range want {
		select {
		case ev := <-w.C:
			assert.Equal(t, w2.kind, ev.Kind)
			assert.Equal(t, w2.id, ev.Status.Flow.ID)
			assert.Equal(t, w2.state, ev.Status.State)
		case <-time.After(5 * time.Second):
			t.Fatalf("no event for %s", w2.id)
		}
	}
	cancel()
	for range w.C {
	}
	assert.ErrorIs(t, w.Err(), context.Canceled)
}

func TestPortGoneAndBack(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	port := d.ports[1]
	e.handleEvent(ctx, 0, nic.Event{Kind: nic.EventPortRemoved, Port: port})
	st, _ := e.Get("a")
	assert.Equal(t, StatePending, st.State)
	assert.Equal(t, nic.ReasonPort, st.Reasons[0].Code)
	assert.Equal(t, "", d.String())
	e.handleEvent(ctx, 0, nic.Event{Kind: nic.EventPortAdded, Port: port})
	st, _ = e.Get("a")
	assert.Equal(t, StateHardware, st.State)
	assert.Equal(t, "both+in_hw a", d.String())
}

func TestDrainAndUndrain(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	other := acl("other", 1, 1)
	other.Port = "pf0vf1"
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1), acl("b", 2, 2), other}, ApplyOptions{})
	require.NoError(t, err)
	d.takeLog()
	n, err := e.DrainPort(ctx, "pf0vf0", "live migration m1")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []string{"software add a ok", "software add b ok", "both delete a ok", "both delete b ok"}, d.takeLog())
	assert.Equal(t, "both+in_hw other\nsoftware a\nsoftware b", d.String())
	// New flows on a draining port stay in software.
	rs, err := e.Apply(ctx, []*flow.Flow{acl("c", 3, 3)}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, nic.ReasonDraining, rs[0].Status.Reasons[0].Code)

	e.UndrainPort("pf0vf0")
	n, err = e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, "both+in_hw a\nboth+in_hw b\nboth+in_hw c\nboth+in_hw other", d.String())
}

func TestExplain(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 1)
	x := e.Explain(ctx, acl("a", 1, 1))
	assert.Equal(t, StateHardware, x.State)
	assert.True(t, x.Changed)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	x = e.Explain(ctx, acl("a", 1, 1))
	assert.False(t, x.Changed)
	assert.Equal(t, StateHardware, x.State)
	x = e.Explain(ctx, acl("b", 1, 1))
	assert.Equal(t, StateSoftware, x.State)
	assert.Equal(t, nic.ReasonCapacity, x.Reasons[0].Code)
	bad := acl("c", 0, 1)
	x = e.Explain(ctx, bad)
	assert.Equal(t, StateFailed, x.State)
	assert.NotEmpty(t, x.Violations)
	assert.Equal(t, "both+in_hw a", d.String(), "explain changes nothing")
}

type memStore struct{ flows map[string]StoredFlow }

func (m *memStore) Save(fs []StoredFlow) error {
	for _, f := range fs {
		m.flows[f.Flow.ID] = StoredFlow{Flow: f.Flow.Clone(), Generation: f.Generation}
	}
	return nil
}
func (m *memStore) Delete(ids []string) error {
	for _, id := range ids {
		delete(m.flows, id)
	}
	return nil
}
func (m *memStore) Load() ([]StoredFlow, error) {
	var out []StoredFlow
	for _, f := range m.flows {
		out = append(out, StoredFlow{Flow: f.Flow.Clone(), Generation: f.Generation})
	}
	return out, nil
}

func TestRestoreAdoptsWithoutTouchingInstalledFlows(t *testing.T) {
	ctx := context.Background()
	d := newFakeDev(0)
	st := &memStore{flows: map[string]StoredFlow{}}
	e1, err := New(Config{Devices: []nic.Device{d}, Store: st, Logger: quiet})
	require.NoError(t, err)
	_, err = e1.Apply(ctx, []*flow.Flow{acl("a", 1, 1), acl("b", 2, 2)}, ApplyOptions{})
	require.NoError(t, err)
	_, err = e1.Apply(ctx, []*flow.Flow{acl("b", 2, 3)}, ApplyOptions{})
	require.NoError(t, err)
	e1.Close()
	// While the daemon is down: "a" vanished from the device, an orphan appeared.
	d.Program(ctx, flow.Both, []nic.Op{{Kind: nic.OpDelete, Flow: acl("a", 1, 1)}, {Kind: nic.OpAdd, Flow: acl("orphan", 9, 9)}})
	d.takeLog()

	e2, err := New(Config{Devices: []nic.Device{d}, Store: st, Logger: quiet})
	require.NoError(t, err)
	rep, err := e2.Restore(ctx)
	require.NoError(t, err)
	assert.Equal(t, RestoreReport{Adopted: 1, Installed: 1, Orphans: 1}, rep)
	assert.ElementsMatch(t, []string{"both delete orphan ok", "both add a ok"}, d.takeLog())
	b, _ := e2.Get("b")
	assert.Equal(t, uint64(2), b.Generation)
	assert.Equal(t, StateHardware, b.State)
	assert.Equal(t, uint64(1), b.HW.Packets, "adopted counters are kept")
}

// TestCountersContinueAcrossPlaneMoves: every copy counts one packet; the
// per-plane totals keep what earlier copies counted.
func TestCountersContinueAcrossPlaneMoves(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	counts := func() (uint64, uint64) {
		require.NoError(t, e.RefreshStats(ctx))
		st, _ := e.Get("a")
		return st.HW.Packets, st.SW.Packets
	}
	hw, sw := counts()
	assert.Equal(t, [2]uint64{1, 0}, [2]uint64{hw, sw})
	hw, sw = counts()
	assert.Equal(t, [2]uint64{1, 0}, [2]uint64{hw, sw}, "a second reading of the same copy adds nothing")
	_, err = e.DrainPort(ctx, "pf0vf0", "test")
	require.NoError(t, err)
	hw, sw = counts()
	assert.Equal(t, [2]uint64{1, 1}, [2]uint64{hw, sw}, "the hardware count stays after the drain")
	e.UndrainPort("pf0vf0")
	_, err = e.PromoteSpilled(ctx)
	require.NoError(t, err)
	hw, sw = counts()
	assert.Equal(t, [2]uint64{2, 1}, [2]uint64{hw, sw}, "a new hardware copy adds to the total")
	upd := acl("a", 1, 2)
	_, err = e.Apply(ctx, []*flow.Flow{upd}, ApplyOptions{})
	require.NoError(t, err)
	hw, sw = counts()
	assert.Equal(t, [2]uint64{2, 1}, [2]uint64{hw, sw}, "a replaced copy keeps its handle and count")
}

// swFirst reads both planes in one pass, software copies first.
type swFirst struct{ *fakeDev }

func (d swFirst) AllFlows(ctx context.Context) ([]nic.Installed, error) {
	sw, err := d.Flows(ctx, flow.Software)
	if err != nil {
		return nil, err
	}
	hw, err := d.Flows(ctx, flow.Both)
	return append(sw, hw...), err
}

// TestRestoreKeepsTheHardwareCopy: a restart that finds a flow in both
// planes (a move was cut short) keeps the hardware copy, whatever order
// the device lists them in.
func TestRestoreKeepsTheHardwareCopy(t *testing.T) {
	ctx := context.Background()
	d := newFakeDev(0)
	st := &memStore{flows: map[string]StoredFlow{}}
	e1, err := New(Config{Devices: []nic.Device{d}, Store: st, Logger: quiet})
	require.NoError(t, err)
	_, err = e1.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	e1.Close()
	d.Program(ctx, flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: acl("a", 1, 1)}})
	d.takeLog()

	e2, err := New(Config{Devices: []nic.Device{swFirst{d}}, Store: st, Logger: quiet})
	require.NoError(t, err)
	rep, err := e2.Restore(ctx)
	require.NoError(t, err)
	assert.Equal(t, RestoreReport{Adopted: 1}, rep)
	assert.Equal(t, []string{"software delete a ok"}, d.takeLog())
	a, _ := e2.Get("a")
	assert.Equal(t, StateHardware, a.State)
}
