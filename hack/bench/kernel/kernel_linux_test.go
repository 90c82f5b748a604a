package main

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/linux/tcflower"
)

func requireKernel(t *testing.T) {
	t.Helper()
	if os.Getenv("OFFLOADD_KERNEL") != "1" || os.Geteuid() != 0 {
		t.Skip("kernel-VM tier only (OFFLOADD_KERNEL=1, root): run hack/kernel-vm/test.sh")
	}
}

// TestKernelMethodsInstallTheSameRules runs every insertion method on a
// small ruleset and reads the filters back: each must install exactly the
// rules buildRules made, on the same devices, chains, priorities and
// handles, so the benchmark compares like with like. vishvananda/netlink
// cannot set action cookies; its filters are the same rules without one.
func TestKernelMethodsInstallTheSameRules(t *testing.T) {
	requireKernel(t)
	const n, devs = 256, 4
	rules := buildRules(n, devs)
	ctx := context.Background()
	for _, m := range methods() {
		t.Run(m.key, func(t *testing.T) {
			b, err := newBed(devs)
			require.NoError(t, err)
			t.Cleanup(b.close)
			run, done, err := m.prepare(ctx, b, rules, 2)
			require.NoError(t, err)
			t.Cleanup(done)
			require.NoError(t, run())

			got, err := b.snapshot(ctx)
			require.NoError(t, err)
			require.Len(t, got, n)
			count, err := b.count(ctx)
			require.NoError(t, err)
			assert.Equal(t, n, count)
			for _, r := range rules {
				k := filterKey{b.ifindex[r.f.Port], r.f.Chain, r.f.Priority, r.handle}
				st, ok := got[k]
				if !assert.True(t, ok, "no filter for %s at %+v", r.f.ID, k) {
					continue
				}
				st.flow.ID = r.f.ID
				assert.True(t, r.f.Equal(st.flow), "%s read back as %+v", r.f.ID, st.flow)
				ck := tcflower.CookieFor(r.f.ID)
				if m.key == "d" {
					assert.Empty(t, st.cookie, "%s", r.f.ID)
				} else {
					assert.Equal(t, string(ck[:]), st.cookie, "%s", r.f.ID)
				}
			}
		})
	}
}

// TestKernelRestartChangesNothing runs the restart measurement on a small
// ruleset: both restarts find every rule and change none.
func TestKernelRestartChangesNothing(t *testing.T) {
	requireKernel(t)
	const n = 300
	b, err := newBed(4)
	require.NoError(t, err)
	t.Cleanup(b.close)
	res, err := restart(context.Background(), b, n, t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, n, res.deviceFound)
	assert.Equal(t, n, res.report.Adopted)
	assert.Zero(t, res.report.Installed)
	assert.Zero(t, res.report.Orphans)
	assert.Zero(t, res.changedDevice)
	assert.Zero(t, res.handlesDiffer)
	assert.Zero(t, res.changedRestore)
	for _, f := range res.figures() {
		if f.Met != nil {
			assert.True(t, *f.Met, "%s: %v %s", f.Name, f.Value, f.Unit)
		}
	}

	// changed notices a replaced filter: same handle, new action index.
	before, err := b.snapshot(context.Background())
	require.NoError(t, err)
	after := map[filterKey]filterState{}
	var moved filterKey
	for k, s := range before {
		after[k] = s
		moved = k
	}
	s := after[moved]
	s.actions = append([]uint32{s.actions[0] + 1000}, s.actions[1:]...)
	after[moved] = s
	assert.Equal(t, 1, changed(before, after))
	delete(after, moved)
	assert.Equal(t, 1, changed(before, after))
}
