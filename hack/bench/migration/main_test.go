package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun runs the handoff benchmark on a small port: the harness must
// work and lose no packet. It is not a timed test.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons with traffic")
	}
	figs, err := run(context.Background(), 200, 50)
	require.NoError(t, err)
	var lost *Figure
	for i, f := range figs {
		t.Logf("%s: %.1f %s", f.Name, f.Value, f.Unit)
		if strings.HasSuffix(f.Name, "packets lost") {
			lost = &figs[i]
		}
	}
	require.NotNil(t, lost, "a packets-lost figure")
	require.Zero(t, lost.Value)
	require.NotNil(t, lost.Met)
	require.True(t, *lost.Met)
}
