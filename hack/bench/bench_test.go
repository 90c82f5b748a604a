package main

import (
	"context"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	// separateClient and latency start this test binary again as their client.
	if clientMain(os.Args[1:]) || latencyMain(os.Args[1:]) {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchParts runs every part of make bench's emulated tier on a few
// thousand flows: the harness must work, whatever the figures say. It is
// not a timed test.
func TestBenchParts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dozens of daemons")
	}
	ctx := context.Background()
	for name, run := range map[string]func() ([]Figure, error){
		"insertion": func() ([]Figure, error) { return insertion(ctx, 2000, 500, sideBoth) },
		"grpc":      func() ([]Figure, error) { return insertion(ctx, 2000, 500, sideGRPC) },
		"client":    func() ([]Figure, error) { return separateClient(ctx, 2000, 500) },
		"latency": func() ([]Figure, error) {
			latencyRounds = 1
			return latency(ctx, 3000, 500)
		},
		"restart": func() ([]Figure, error) { return restart(ctx, 2000) },
		"memory":  func() ([]Figure, error) { return memory(ctx, 4000, 500) },
	} {
		t.Run(name, func(t *testing.T) {
			figs, err := run()
			require.NoError(t, err)
			require.NotEmpty(t, figs)
			for _, f := range figs {
				require.NotEmpty(t, f.Name)
				require.False(t, math.IsNaN(f.Value) || math.IsInf(f.Value, 0), "%s: %v", f.Name, f.Value)
				if f.Unit == "flows/s" {
					require.Positive(t, f.Value, f.Name)
				}
			}
		})
	}
}
