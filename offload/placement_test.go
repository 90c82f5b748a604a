package offload

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// TestHardwareOnlyWaitsAsPending: a hardware-only flow refused for a full
// table stays in desired state as pending with its reason, and goes in when
// room frees; atomic batches treat waiting as success.
func TestHardwareOnlyWaitsAsPending(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 1)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1)}, ApplyOptions{})
	require.NoError(t, err)
	b := acl("b", 2, 2)
	b.Policy = flow.PolicyHardwareOnly
	x := e.ExplainBatch(ctx, []*flow.Flow{b})[0]
	assert.Equal(t, StatePending, x.State)
	rs, err := e.Apply(ctx, []*flow.Flow{b}, ApplyOptions{Atomic: true})
	require.NoError(t, err)
	assert.Equal(t, OutcomeCreated, rs[0].Outcome)
	st, ok := e.Get("b")
	require.True(t, ok, "a waiting flow is kept")
	assert.Equal(t, StatePending, st.State)
	require.NotEmpty(t, st.Reasons)
	assert.Equal(t, nic.ReasonCapacity, st.Reasons[0].Code)
	assert.Equal(t, "both+in_hw a", d.String(), "nothing of b is installed")

	_, err = e.Delete(ctx, []string{"a"})
	require.NoError(t, err)
	n, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	st, _ = e.Get("b")
	assert.Equal(t, StateHardware, st.State)
	assert.Equal(t, "hardware b", d.String(), "installed skip_sw when room freed")
}

// TestReleaseRestoresHardwareOnly: a hardware-only flow held in software
// for a migration goes back to skip_sw on release, not to no-flag.
func TestReleaseRestoresHardwareOnly(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	f := toVF0("h", 1)
	f.Policy = flow.PolicyHardwareOnly
	_, err := e.Apply(ctx, []*flow.Flow{f, toVF0("a", 2)}, ApplyOptions{})
	require.NoError(t, err)
	_, err = e.HoldInSoftware(ctx, []string{"h", "a"}, "migration m1")
	require.NoError(t, err)
	assert.Equal(t, "software a\nsoftware h", d.String())
	_, err = e.ReleaseHeld(ctx, []string{"h", "a"})
	require.NoError(t, err)
	assert.Equal(t, "both+in_hw a\nhardware h", d.String(), "each back in its own plane")
}

// TestShadowedFlowsFollowTheRuleBefore: a rule behind an overlapping
// software-only rule stays out of hardware, and goes in once that rule
// is gone; a disjoint rule is not held back.
func TestShadowedFlowsFollowTheRuleBefore(t *testing.T) {
	ctx := context.Background()
	e, d := newEngine(t, 0)
	tap := acl("tap", 1, 53)
	tap.Match.DstPort = flow.Masked16{}
	tap.Policy = flow.PolicySoftwareOnly
	web, other := acl("web", 2, 80), acl("other", 3, 80)
	other.Match.IPDst = netip.MustParsePrefix("10.9.0.0/16")
	rs, err := e.Apply(ctx, []*flow.Flow{tap, web, other}, ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, StateSoftware, rs[1].Status.State)
	require.NotEmpty(t, rs[1].Status.Reasons)
	assert.Equal(t, ReasonShadowed, rs[1].Status.Reasons[0].Code)
	assert.Contains(t, rs[1].Status.Reasons[0].Message, "tap")
	assert.Equal(t, StateHardware, rs[2].Status.State, "disjoint from the tap")
	assert.Equal(t, "both+in_hw other\nsoftware tap\nsoftware web", d.String())

	// A new software-only rule before a hardware one demotes it.
	tap2 := acl("tap2", 1, 80)
	tap2.Match.IPDst = netip.MustParsePrefix("10.9.1.0/24")
	tap2.Policy = flow.PolicySoftwareOnly
	_, err = e.Apply(ctx, []*flow.Flow{tap2}, ApplyOptions{})
	require.NoError(t, err)
	st, _ := e.Get("other")
	assert.Equal(t, StateSoftware, st.State)
	assert.Equal(t, ReasonShadowed, st.Reasons[0].Code)

	_, err = e.Delete(ctx, []string{"tap", "tap2"})
	require.NoError(t, err)
	n, err := e.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, "both+in_hw other\nboth+in_hw web", d.String())
}

// TestCountersNeverGoDown: the per-device totals keep deleted flows' counts.
func TestCountersNeverGoDown(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t, 0)
	_, err := e.Apply(ctx, []*flow.Flow{acl("a", 1, 1), acl("b", 2, 2)}, ApplyOptions{})
	require.NoError(t, err)
	require.NoError(t, e.RefreshStats(ctx))
	before := e.Summarize().Packets["fake0"]
	_, err = e.Delete(ctx, []string{"a"})
	require.NoError(t, err)
	after := e.Summarize().Packets["fake0"]
	assert.Equal(t, before, after)
	assert.Equal(t, uint64(2), after[flow.Hardware])
}

func gotoFlow(id string, chain uint32, prio uint16, to uint32) *flow.Flow {
	return &flow.Flow{ID: id, Port: "pf0vf0", Chain: chain, Priority: prio,
		Match: flow.Match{EthType: flow.EthTypeIPv4}, Actions: []flow.Action{{Kind: flow.ActGoto, Chain: to}}}
}

// TestGotoLoopsAndStrandedGotos: a loop closed across a batch and the
// installed flows is refused; the last rule of a chain a goto jumps to
// cannot be deleted alone, but can with the goto.
func TestGotoLoopsAndStrandedGotos(t *testing.T) {
	ctx := context.Background()
	e, _ := newEngine(t, 0)
	in8 := acl("in8", 1, 8)
	in8.Chain = 8
	_, err := e.Apply(ctx, []*flow.Flow{gotoFlow("to7", 0, 1, 7), gotoFlow("7to8", 7, 1, 8), in8}, ApplyOptions{})
	require.NoError(t, err)
	rs, err := e.Apply(ctx, []*flow.Flow{gotoFlow("8to7", 8, 1, 7)}, ApplyOptions{})
	require.NoError(t, err)
	require.Equal(t, OutcomeInvalid, rs[0].Outcome, "8 -> 7 closes the loop 7 -> 8 -> 7")
	require.NotEmpty(t, rs[0].Violations)
	assert.Equal(t, "actions[0].chain", rs[0].Violations[0].Field)
	x := e.Explain(ctx, gotoFlow("8to7", 8, 1, 7))
	assert.Equal(t, StateFailed, x.State, "explain refuses it too")

	// 7to8 is the last rule of chain 7, which to7 jumps to.
	ds, err := e.Delete(ctx, []string{"7to8"})
	require.NoError(t, err)
	require.ErrorIs(t, ds[0].Err, ErrInUse)
	assert.Contains(t, ds[0].Err.Error(), "to7")
	_, ok := e.Get("7to8")
	assert.True(t, ok, "nothing was deleted")
	ds, err = e.Delete(ctx, []string{"7to8", "to7"})
	require.NoError(t, err)
	assert.NoError(t, ds[0].Err)
	assert.NoError(t, ds[1].Err)
}
