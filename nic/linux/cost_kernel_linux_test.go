package linux_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// TestKernelPlacementCost measures, in one VM run, what the placement
// model's install modes cost the kernel: 10k rules with no skip flag (the
// software copy kept, the rule offered to the driver) against 10k skip_hw
// rules, alternating, with the time to install and the kernel's slab
// growth. A veth offloads nothing, so skip_sw (no software copy) cannot be
// installed here; docs/placement.md records the figures.
func TestKernelPlacementCost(t *testing.T) {
	requireKernelTier(t)
	dev, _ := kernelDevice(t)
	t.Cleanup(func() { _ = dev.Close() })
	const n, chunk, rounds = 10000, 1000, 2
	flows := make([]*flow.Flow, n)
	for i := range flows {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		flows[i] = &flow.Flow{ID: fmt.Sprintf("cost-%d", i), Port: "rep0", Priority: 1,
			Match:   flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPDst: netip.PrefixFrom(a, 32)},
			Actions: []flow.Action{{Kind: flow.ActDrop}}}
	}
	program := func(plane flow.Plane, kind nic.OpKind) time.Duration {
		start := time.Now()
		for off := 0; off < n; off += chunk {
			ops := make([]nic.Op, 0, chunk)
			for _, f := range flows[off:min(off+chunk, n)] {
				ops = append(ops, nic.Op{Kind: kind, Flow: f})
			}
			for i, err := range dev.Program(context.Background(), plane, ops) {
				if _, notInHW := nic.NotInHW(err); notInHW && plane == flow.Both {
					continue // the veth takes nothing into hardware
				}
				require.NoError(t, err, "%s %s %s", plane, kind, ops[i].Flow.ID)
			}
		}
		return time.Since(start)
	}
	for r := range rounds {
		for _, plane := range []flow.Plane{flow.Both, flow.Software} {
			before := slabKB(t)
			took := program(plane, nic.OpAdd)
			grew := slabKB(t) - before
			got, err := dev.Flows(context.Background(), plane)
			require.NoError(t, err)
			require.Len(t, got, n)
			for _, in := range got[:10] {
				require.False(t, in.InHW, "a veth runs nothing in hardware")
			}
			program(plane, nic.OpDelete)
			t.Logf("round %d: %d rules %-8s (%s): %v, %.0f rules/s, slab +%d KiB (%.0f B/rule)", r+1, n, plane, flagsOf(plane),
				took.Round(time.Millisecond), float64(n)/took.Seconds(), grew, float64(grew)*1024/float64(n))
		}
	}
}

func flagsOf(p flow.Plane) string {
	switch p {
	case flow.Hardware:
		return "skip_sw"
	case flow.Software:
		return "skip_hw"
	}
	return "no flag"
}

// slabKB reads Slab from /proc/meminfo.
func slabKB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "Slab:"); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return v
		}
	}
	require.NoError(t, s.Err())
	t.Fatal("no Slab line in /proc/meminfo")
	return 0
}
