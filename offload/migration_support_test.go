package offload

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// toVF0 is a flow on the uplink that redirects to pf0vf0.
func toVF0(id string, prio uint16) *flow.Flow {
	f := acl(id, prio, prio)
	f.Port = "p0"
	f.Actions = []flow.Action{{Kind: flow.ActRedirect, Port: "pf0vf0"}}
	return f
}

func TestHoldInSoftwareKeepsFlowsOutOfHardware(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{toVF0("in", 1), toVF0("other", 2)}, ApplyOptions{})
	require.NoError(t, err)
	d.takeLog()

	n, err := e.HoldInSoftware(ctx, []string{"in", "missing"}, "live migration m1")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{"software add in ok", "both delete in ok"}, d.takeLog())
	st, _ := e.Get("in")
	assert.Equal(t, StateSoftware, st.State)
	require.Len(t, st.Reasons, 1)
	assert.Equal(t, nic.ReasonDraining, st.Reasons[0].Code)
	assert.Equal(t, "live migration m1", st.Reasons[0].Message)

	// Holding again changes nothing; promotion leaves held flows alone.
	n, err = e.HoldInSoftware(ctx, []string{"in"}, "live migration m1")
	require.NoError(t, err)
	assert.Zero(t, n)
	moved, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved)
	assert.Empty(t, d.takeLog())

	moved, err = e.ReleaseHeld(ctx, []string{"in"})
	require.NoError(t, err)
	assert.Equal(t, 1, moved)
	assert.Equal(t, []string{"both add in ok", "software delete in ok"}, d.takeLog())
	st, _ = e.Get("in")
	assert.Equal(t, StateHardware, st.State)
	assert.Empty(t, st.Reasons)
	assert.Equal(t, "both+in_hw in\nboth+in_hw other", d.String())
}

func TestHoldStopsPromotionOfSpilledFlows(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 1)
	_, err := e.Apply(ctx, []*flow.Flow{toVF0("a", 1), toVF0("b", 2)}, ApplyOptions{})
	require.NoError(t, err)
	st, _ := e.Get("b")
	require.Equal(t, StateSoftware, st.State)

	_, err = e.HoldInSoftware(ctx, []string{"a", "b"}, "live migration m1")
	require.NoError(t, err)
	assert.Equal(t, "both b\nsoftware a", d.String())
	st, _ = e.Get("b")
	require.Len(t, st.Reasons, 2)
	assert.Equal(t, nic.ReasonDraining, st.Reasons[0].Code)
	assert.Equal(t, nic.ReasonCapacity, st.Reasons[1].Code)
	moved, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved, "held flows are not promotion candidates")

	// Release fills the one free entry in tc order; the other waits as spilled.
	moved, err = e.ReleaseHeld(ctx, []string{"a", "b"})
	require.NoError(t, err)
	assert.Equal(t, 1, moved)
	assert.Equal(t, "both b\nboth+in_hw a", d.String())
	st, _ = e.Get("b")
	require.Len(t, st.Reasons, 1)
	assert.Equal(t, nic.ReasonCapacity, st.Reasons[0].Code)
	_, err = e.Delete(ctx, []string{"a"})
	require.NoError(t, err)
	moved, err = e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, moved, "a released flow that did not fit is spilled")
}

func TestReleaseHeldLeavesFlowsOfDrainingPorts(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	_, err = e.DrainPort(ctx, "pf0vf0", "live migration m1")
	require.NoError(t, err)
	moved, err := e.ReleaseHeld(ctx, []string{"a"})
	require.NoError(t, err)
	assert.Zero(t, moved)
	st, _ := e.Get("a")
	assert.Equal(t, nic.ReasonDraining, st.Reasons[0].Code)

	e.UndrainPort("pf0vf0")
	moved, err = e.ReleaseHeld(ctx, []string{"a"})
	require.NoError(t, err)
	assert.Equal(t, 1, moved)
	assert.Equal(t, "both+in_hw a", d.String())
}

func TestReleaseHeldReportsWhyAFlowStaysInSoftware(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.ApplyHeld(ctx, []StoredFlow{{Flow: toVF0("a", 1)}}, "live migration m1")
	require.NoError(t, err)
	d.profile.Actions = flow.Actions(flow.ActDrop)
	moved, err := e.ReleaseHeld(ctx, []string{"a"})
	require.NoError(t, err)
	assert.Zero(t, moved)
	st, _ := e.Get("a")
	require.NotEmpty(t, st.Reasons)
	assert.Equal(t, nic.ReasonUnsupportedAction, st.Reasons[0].Code)
	assert.Equal(t, "software a", d.String())
}

func TestApplyHeld(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	changed := acl("changed", 2, 2)
	_, err := e.Apply(ctx, []*flow.Flow{acl("same", 1, 1), changed}, ApplyOptions{})
	require.NoError(t, err)
	d.takeLog()

	changed = acl("changed", 2, 3)
	rs, err := e.ApplyHeld(ctx, []StoredFlow{
		{Flow: toVF0("new", 3), Generation: 7},
		{Flow: acl("same", 1, 1), Generation: 9},
		{Flow: changed, Generation: 5},
	}, "awaiting VF attach for migration m1")
	require.NoError(t, err)
	assert.Equal(t, []Outcome{OutcomeCreated, OutcomeUnchanged, OutcomeUpdated}, outcomes(rs))
	assert.Equal(t, []uint64{7, 1, 5}, []uint64{rs[0].Status.Generation, rs[1].Status.Generation, rs[2].Status.Generation})
	for _, r := range rs {
		assert.Equal(t, StateSoftware, r.Status.State, r.ID)
		assert.Equal(t, nic.ReasonDraining, r.Status.Reasons[0].Code, r.ID)
	}
	assert.Equal(t, "software changed\nsoftware new\nsoftware same", d.String())
	assert.Equal(t, []string{
		"software add new ok", "software add same ok", "software add changed ok",
		"both delete same ok", "both delete changed ok",
	}, d.takeLog(), "make-before-break")

	// Repeating it changes nothing.
	rs, err = e.ApplyHeld(ctx, []StoredFlow{{Flow: toVF0("new", 3), Generation: 7}}, "awaiting VF attach for migration m1")
	require.NoError(t, err)
	assert.Equal(t, OutcomeUnchanged, rs[0].Outcome)
	assert.Empty(t, d.takeLog())

	// A changed flow never goes below its next generation.
	again := acl("changed", 2, 4)
	rs, err = e.ApplyHeld(ctx, []StoredFlow{{Flow: again, Generation: 1}}, "m1")
	require.NoError(t, err)
	assert.Equal(t, uint64(6), rs[0].Status.Generation)

	moved, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved)
}

func TestApplyHeldIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	bad := acl("bad", 1, 1)
	bad.Port = "nope"
	rs, err := e.ApplyHeld(ctx, []StoredFlow{{Flow: acl("a", 1, 1)}, {Flow: bad}}, "m1")
	require.ErrorIs(t, err, ErrBatchRejected)
	assert.Equal(t, []Outcome{OutcomeAborted, OutcomeInvalid}, outcomes(rs))
	assert.Empty(t, d.String())

	// A software refusal rolls back what was installed.
	d.mu.Lock()
	d.planes[flow.Software]["b"] = acl("b", 2, 2) // an unknown copy makes "add b" fail
	d.mu.Unlock()
	rs, err = e.ApplyHeld(ctx, []StoredFlow{{Flow: acl("a", 1, 1)}, {Flow: acl("b", 2, 2)}}, "m1")
	require.ErrorIs(t, err, ErrBatchRejected)
	assert.Equal(t, []Outcome{OutcomeAborted, OutcomeFailed}, outcomes(rs))
	assert.True(t, errors.Is(rs[1].Err, nic.ErrExists))
	_, ok := e.Get("a")
	assert.False(t, ok)
	assert.Equal(t, "software b", d.String())
}

func TestHoldInSoftwareReportsSoftwareRefusal(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{toVF0("a", 1)}, ApplyOptions{})
	require.NoError(t, err)
	d.mu.Lock()
	d.planes[flow.Software]["a"] = toVF0("a", 1)
	d.mu.Unlock()
	n, err := e.HoldInSoftware(ctx, []string{"a"}, "m1")
	require.Error(t, err)
	assert.ErrorIs(t, err, nic.ErrExists)
	assert.Zero(t, n)
	st, _ := e.Get("a")
	assert.Equal(t, StateHardware, st.State, "a flow that could not be installed in software stays in hardware")
}
