package flow

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gf is a flow on port in chain that jumps to the chains in gotos, one
// goto per action slot (the last is the terminal one).
func gf(id, port string, chain uint32, gotos ...uint32) *Flow {
	f := &Flow{ID: id, Port: port, Chain: chain, Priority: 1}
	for _, g := range gotos {
		f.Actions = append(f.Actions, Action{Kind: ActGoto, Chain: g})
	}
	if len(gotos) == 0 {
		f.Actions = []Action{{Kind: ActDrop}}
	}
	return f
}

func bv(i int, field, reason string) BatchViolation {
	return BatchViolation{Index: i, Violation: Violation{Field: field, Reason: reason}}
}

func TestGotoLoops(t *testing.T) {
	tests := []struct {
		name            string
		existing, batch []*Flow
		want            []BatchViolation
	}{
		{"nothing", nil, nil, nil},
		{"forward chain", nil, []*Flow{gf("a", "p", 0, 1), gf("b", "p", 1, 2), gf("c", "p", 2)}, nil},
		{"self loop", nil, []*Flow{gf("a", "p", 3, 3)},
			[]BatchViolation{bv(0, "actions[0].chain", "goto chain 3 closes a loop on port p: chain 3 → 3")}},
		{"two chains in one batch", nil, []*Flow{gf("a", "p", 7, 8), gf("b", "p", 8, 7)},
			[]BatchViolation{
				bv(0, "actions[0].chain", "goto chain 8 closes a loop on port p: chain 7 → 8 → 7"),
				bv(1, "actions[0].chain", "goto chain 7 closes a loop on port p: chain 8 → 7 → 8"),
			}},
		{"batch closes a loop of existing flows", []*Flow{gf("a", "p", 1, 2), gf("b", "p", 2, 3)}, []*Flow{gf("c", "p", 3, 1)},
			[]BatchViolation{bv(0, "actions[0].chain", "goto chain 1 closes a loop on port p: chain 3 → 1 → 2 → 3")}},
		{"same chains on other ports do not loop", []*Flow{gf("a", "p", 7, 8)}, []*Flow{gf("b", "q", 8, 7)}, nil},
		{"replacing the back edge removes the loop", []*Flow{gf("a", "p", 7, 8), gf("b", "p", 8, 7)}, []*Flow{gf("b", "p", 8, 9)}, nil},
		{"replacement creates a loop", []*Flow{gf("a", "p", 7, 8), gf("b", "p", 8, 9)}, []*Flow{gf("b", "p", 8, 7)},
			[]BatchViolation{bv(0, "actions[0].chain", "goto chain 7 closes a loop on port p: chain 8 → 7 → 8")}},
		{"loop among existing flows only is not the batch's", []*Flow{gf("a", "p", 7, 8), gf("b", "p", 8, 7)}, []*Flow{gf("c", "p", 1, 2)}, nil},
		{"edge into a loop but not on it", []*Flow{gf("a", "p", 7, 8), gf("b", "p", 8, 7)}, []*Flow{gf("c", "p", 0, 7)}, nil},
		{"second goto action of a flow", nil, []*Flow{gf("a", "p", 1, 5), {ID: "b", Port: "p", Chain: 5, Actions: []Action{
			{Kind: ActCT, CT: &CT{}}, {Kind: ActGoto, Chain: 1}}}},
			[]BatchViolation{
				bv(0, "actions[0].chain", "goto chain 5 closes a loop on port p: chain 1 → 5 → 1"),
				bv(1, "actions[1].chain", "goto chain 1 closes a loop on port p: chain 5 → 1 → 5"),
			}},
		{"diamond without loop", nil, []*Flow{gf("a", "p", 0, 1), gf("b", "p", 0, 2), gf("c", "p", 1, 3), gf("d", "p", 2, 3)}, nil},
		{"shortest way back is reported", []*Flow{gf("x", "p", 2, 3), gf("y", "p", 3, 4), gf("z", "p", 4, 1), gf("w", "p", 2, 1)},
			[]*Flow{gf("a", "p", 1, 2)},
			[]BatchViolation{bv(0, "actions[0].chain", "goto chain 2 closes a loop on port p: chain 1 → 2 → 1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, GotoLoops(tt.existing, tt.batch))
		})
	}
}

func TestGotoDepth(t *testing.T) {
	chain := func(n uint32) []*Flow { // chain 0 → 1 → … → n
		var fs []*Flow
		for c := range n {
			fs = append(fs, gf(fmt.Sprint("g", c), "p", c, c+1))
		}
		return fs
	}
	assert.Empty(t, GotoLoops(chain(15), []*Flow{gf("last", "p", 15, 16)}), "16 gotos are run")
	assert.Equal(t, []BatchViolation{bv(0, "actions[0].chain",
		"goto chain 17 is on a path of 17 gotos from chain 0 on port p; the kernel drops a packet after 16")},
		GotoLoops(chain(16), []*Flow{gf("last", "p", 16, 17)}))
	// A goto in the middle that joins two paths into one too long.
	head, tail := chain(9), []*Flow{}
	for c := uint32(20); c < 29; c++ {
		tail = append(tail, gf(fmt.Sprint("t", c), "p", c, c+1))
	}
	vs := GotoLoops(append(head, tail...), []*Flow{gf("join", "p", 9, 20)})
	require.Len(t, vs, 1)
	assert.Contains(t, vs[0].Reason, "path of 19 gotos")
	// Chains not reached from chain 0 do not count, and other ports neither.
	assert.Empty(t, GotoLoops(append(chain(16)[1:], gf("q0", "q", 0, 1)), []*Flow{gf("last", "p", 16, 17)}))
}

// TestGotoLoopsLongChainDoesNotRecurse builds a 100k-chain ring: a
// recursive search would need a stack that deep. The description of the
// loop stays short.
func TestGotoLoopsLongChainDoesNotRecurse(t *testing.T) {
	const n = 100_000
	existing := make([]*Flow, 0, n)
	for i := range uint32(n - 1) {
		existing = append(existing, gf(fmt.Sprint("f", i), "p", i, i+1))
	}
	assert.Empty(t, GotoLoops(existing, []*Flow{gf("end", "p", n-1)}))
	vs := GotoLoops(existing, []*Flow{gf("end", "p", n-1, 0)})
	if assert.Len(t, vs, 1) {
		assert.Equal(t, fmt.Sprintf("goto chain 0 closes a loop on port p: chain %d → 0 → 1 → 2 → 3 → 4 → … (%d chains) … → %d → %d", n-1, n-7, n-2, n-1), vs[0].Reason)
	}
}

func TestChainTargets(t *testing.T) {
	got := ChainTargets([]*Flow{gf("b", "p", 0, 5), gf("a", "p", 1, 5), gf("c", "q", 0, 5), gf("d", "p", 0), gf("a2", "p", 2, 6, 6)})
	assert.Equal(t, map[ChainRef][]string{
		{"p", 5}: {"a", "b"},
		{"q", 5}: {"c"},
		{"p", 6}: {"a2"},
	}, got)
}

func TestStrandedGotos(t *testing.T) {
	existing := []*Flow{
		gf("jump", "p", 0, 5),
		gf("t1", "p", 5), gf("t2", "p", 5),
		gf("lonely", "p", 9),
		gf("other", "q", 5),
	}
	tests := []struct {
		name string
		del  []string
		want []DeleteViolation
	}{
		{"one of two rules", []string{"t1"}, nil},
		{"both rules", []string{"t1", "t2"}, []DeleteViolation{
			{"t1", "it is the last rule of p chain 5, which jump still jumps to; delete or change it first"},
			{"t2", "it is the last rule of p chain 5, which jump still jumps to; delete or change it first"}}},
		{"rules and the goto together", []string{"t1", "t2", "jump"}, nil},
		{"a chain nobody jumps to", []string{"lonely"}, nil},
		{"the same chain on another port", []string{"other"}, nil},
		{"unknown id", []string{"nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, StrandedGotos(existing, tt.del))
		})
	}
	many := []*Flow{gf("t", "p", 5), gf("j1", "p", 0, 5), gf("j2", "p", 1, 5), gf("j3", "p", 2, 5), gf("j4", "p", 3, 5)}
	assert.Equal(t, []DeleteViolation{{"t", "it is the last rule of p chain 5, which j1, j2, j3 and 1 more still jump to; delete or change them first"}},
		StrandedGotos(many, []string{"t"}))
}
