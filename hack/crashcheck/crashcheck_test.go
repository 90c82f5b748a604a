package main

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func present(ver uint32, gen uint64) state { return state{present: true, ver: ver, gen: gen} }

// listed is what ListFlows would return for m, with dup listed twice.
func listed(m map[string]state, dup ...string) []listedFlow {
	var out []listedFlow
	for _, id := range slices.Sorted(maps.Keys(m)) {
		if m[id].present {
			out = append(out, listedFlow{id, m[id]})
		}
	}
	for _, id := range dup {
		out = append(out, listedFlow{id, m[id]})
	}
	return out
}

// TestJournalCheck: the checker counts every kind of loss it claims to
// find, and accepts either outcome of a request without an answer.
func TestJournalCheck(t *testing.T) {
	j := newJournal()
	j.ack("a", present(1, 1))
	j.ack("b", present(1, 1))
	j.ack("c", present(2, 2))
	j.ack("gone", present(1, 1))
	j.ack("gone", state{})
	// Unanswered: an atomic batch applied in full, one not applied, a
	// delete applied.
	j.lost(&op{atomic: true, ids: []string{"x1", "x2"}, new: map[string]state{"x1": present(1, 0), "x2": present(1, 0)}})
	j.lost(&op{atomic: true, ids: []string{"y1"}, new: map[string]state{"y1": present(1, 0)}})
	j.lost(&op{ids: []string{"b"}, new: map[string]state{"b": {}}})

	j.check(0, listed(map[string]state{"a": present(1, 1), "c": present(2, 2), "x1": present(1, 1), "x2": present(1, 1)}))
	assert.Zero(t, j.stats.Lost+j.stats.Unexpected+j.stats.Duplicates+j.stats.AtomicViolations, "%v", j.problems)
	assert.Equal(t, 2, j.stats.UnknownApplied)
	assert.Equal(t, 1, j.stats.UnknownDropped)

	// Now lose things: an acknowledged update (c back at version 2), an
	// acknowledged create (x2 absent), a delete undone (gone), a
	// duplicate, an atomic batch half applied.
	j.ack("c", present(3, 3))
	j.lost(&op{atomic: true, ids: []string{"a", "n"}, new: map[string]state{"a": present(2, 0), "n": present(1, 0)}})
	j.check(1, listed(map[string]state{"a": present(2, 2), "c": present(2, 2), "x1": present(1, 1), "gone": present(1, 1)}, "x1"))
	assert.Equal(t, 2, j.stats.Lost, "%v", j.problems)
	assert.Equal(t, 1, j.stats.Unexpected)
	assert.Equal(t, 1, j.stats.Duplicates)
	assert.Equal(t, 1, j.stats.AtomicViolations)
}

// TestPrivilegedCrashCheck builds offloadd and runs three quick rounds of
// the crash check: every acknowledged change survives SIGKILL. Root
// only, as the tiers in make test are; -short skips it.
func TestPrivilegedCrashCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (privileged tier)")
	}
	if testing.Short() {
		t.Skip("builds and runs offloadd")
	}
	bin := filepath.Join(t.TempDir(), "offloadd")
	require.NoError(t, build(t.Context(), bin))
	for _, tc := range []struct {
		name, diskFull string
		ids            int
	}{
		{"normal", "", 100},
		// The state directory on a 128 KiB tmpfs fills up: what was
		// acknowledged must survive all the same.
		{"disk full", "128k", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			c := Config{Dir: t.TempDir(), Binary: bin, Rounds: 3, Clients: 3, IDs: tc.ids, Batch: 6, DiskFull: tc.diskFull,
				KillMin: 100 * time.Millisecond, KillMax: 400 * time.Millisecond, Seed: 13, Log: &log}
			st, problems, err := Run(t.Context(), c)
			require.NoError(t, err, log.String())
			var report bytes.Buffer
			printReport(&report, c, st, problems)
			t.Log("\n" + report.String())
			require.Equal(t, 3, st.Kills)
			require.Positive(t, st.AckedChanges)
			require.Zero(t, st.Lost, problems)
			require.Zero(t, st.Unexpected, problems)
			require.Zero(t, st.Duplicates, problems)
			require.Zero(t, st.AtomicViolations, problems)
		})
	}
}

// TestPrivilegedGreedy runs the greedy clients briefly: watchers that
// never read are cut at their bound, and single-flow applies are timed
// under listing clients.
func TestPrivilegedGreedy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (privileged tier)")
	}
	if testing.Short() {
		t.Skip("builds and runs offloadd")
	}
	var log bytes.Buffer
	g := GreedyConfig{Dir: t.TempDir(), Flows: 3000, Watchers: 2, Listers: 1, Duration: 300 * time.Millisecond, Log: &log}
	r, err := RunGreedy(t.Context(), g)
	require.NoError(t, err, log.String())
	var report bytes.Buffer
	r.print(&report, g)
	t.Log("\n" + report.String())
	require.NotEmpty(t, r.Applies)
	require.Positive(t, r.Pages)
	require.Positive(t, r.HeapBefore)
}
