package nictest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// testNoSkipFlag checks flow.Both copies (tc with no skip flag): the
// software copy always exists; the device says whether hardware took it,
// and why not; a software-only copy of the same rule hands over to it in
// place; replace keeps the handle; delete removes it.
func testNoSkipFlag(t *testing.T, e *env) {
	// A basic flow: installed; in_hw as the answer says.
	f := tcpDrop("nictest-both", e.in, 1)
	err := e.program(t, flow.Both, nic.Op{Kind: nic.OpAdd, Flow: f})[0]
	refusal, notInHW := nic.NotInHW(err)
	if !notInHW {
		require.NoError(t, err, "a no-flag add either succeeds or says not_in_hw")
	}
	got := e.flows(t, flow.Both)
	in, ok := got[f.ID]
	require.True(t, ok, "the no-flag copy is installed whatever hardware said")
	require.Equal(t, !notInHW, in.InHW, "in_hw agrees with the answer (refusal: %v)", refusal)
	norm := f.Clone()
	flow.Normalize(norm)
	require.True(t, norm.Equal(in.Flow), "read back differs:\nprogrammed %+v\nread back  %+v", norm, in.Flow)
	if notInHW {
		require.NotEmpty(t, refusal.Error(), "not_in_hw says why")
	}

	// Replace keeps the handle.
	g := tcpDrop("nictest-both", e.in, 2)
	err = e.program(t, flow.Both, nic.Op{Kind: nic.OpReplace, Flow: g})[0]
	if _, ok := nic.NotInHW(err); !ok {
		require.NoError(t, err)
	}
	got = e.flows(t, flow.Both)
	require.Equal(t, in.Handle, got[f.ID].Handle, "replace keeps the handle")

	// A flow the profile refuses: installed, not in hardware, with a reason.
	if p := e.dev.Profile(); p != nil {
		for _, r := range refusalCandidates("nictest-both-refused", e.ports, e.in, e.out) {
			if len(p.Check(r, e.ports.kind)) == 0 {
				continue
			}
			err := e.program(t, flow.Both, nic.Op{Kind: nic.OpAdd, Flow: r})[0]
			refusal, ok := nic.NotInHW(err)
			require.True(t, ok, "a no-flag add of a flow hardware refuses answers not_in_hw, got %v", err)
			var re *nic.RefusedError
			require.True(t, errors.As(err, &re))
			require.Equal(t, re, refusal)
			got = e.flows(t, flow.Both)
			require.Contains(t, got, r.ID)
			require.False(t, got[r.ID].InHW)
			e.mustProgram(t, flow.Both, nic.Op{Kind: nic.OpDelete, Flow: r})
			break
		}
	}

	// A software-only copy of the same rule hands over to a no-flag one.
	h := tcpDrop("nictest-handoff", e.in, 3)
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpAdd, Flow: h})
	err = e.program(t, flow.Both, nic.Op{Kind: nic.OpAdd, Flow: h})[0]
	if _, ok := nic.NotInHW(err); !ok {
		require.NoError(t, err, "a no-flag add over a skip_hw copy of the same rule")
	}
	err = e.program(t, flow.Software, nic.Op{Kind: nic.OpDelete, Flow: h})[0]
	if err != nil {
		require.ErrorIs(t, err, nic.ErrNotFound)
	}
	require.Contains(t, e.flows(t, flow.Both), h.ID)
	require.NotContains(t, e.flows(t, flow.Software), h.ID)

	// And back (a drain): a skip_hw copy over the no-flag one, then the
	// no-flag one goes.
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpAdd, Flow: h})
	err = e.program(t, flow.Both, nic.Op{Kind: nic.OpDelete, Flow: h})[0]
	if err != nil {
		require.ErrorIs(t, err, nic.ErrNotFound)
	}
	require.Contains(t, e.flows(t, flow.Software), h.ID)
	require.NotContains(t, e.flows(t, flow.Both), h.ID)
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpDelete, Flow: h})

	// Delete removes every trace.
	e.mustProgram(t, flow.Both, nic.Op{Kind: nic.OpDelete, Flow: f})
	require.Empty(t, e.flows(t, flow.Both))
	require.ErrorIs(t, e.program(t, flow.Both, nic.Op{Kind: nic.OpDelete, Flow: f})[0], nic.ErrNotFound)
}
