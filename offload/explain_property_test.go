package offload_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// Explain must predict Apply: for random pre-existing state and a random
// batch on every emulated profile and various hardware table sizes,
// ExplainBatch and then Apply of the same batch on the same engine agree
// on every flow's state and first reason code.

// xSeedEnv replays one case: OFFLOADD_EXPLAIN_SEED=7 go test ./offload -run TestExplainBatchPredictsApply.
const xSeedEnv = "OFFLOADD_EXPLAIN_SEED"

const (
	xRep0, xRep1, xRep2 = "pf0vf0", "pf0vf1", "pf0vf2"
	xUp, xVX            = "p0", "vxlan0"
)

var (
	xPorts     = []string{xRep0, xRep1, xRep2, xUp, xVX}
	xTableSize = []int{1, 2, 3, 5, 8, 0}
	xLocalVTEP = netip.MustParseAddr("192.0.2.1")
	xVF0MAC    = [6]byte{0x02, 0x42, 0x0f, 0x01, 0x00, 0x00}
	xFull      = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

type xGen struct{ r *rand.Rand }

func (g *xGen) chance(p float64) bool { return g.r.Float64() < p }

func xPick[T any](g *xGen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

func xPort16(v uint16) flow.Masked16 { return flow.Masked16{Value: v, Mask: 0xffff} }

// match draws from a small pool so that flows overlap often and are
// disjoint often: ethertypes, protocols, ports, prefixes, MACs, VLANs,
// conntrack states, tunnel keys.
func (g *xGen) match(port string) flow.Match {
	v4 := func(m flow.Match) flow.Match { m.EthType = flow.EthTypeIPv4; return m }
	trk, est, nw := flow.CTTracked, flow.CTEstablished, flow.CTNew
	m := xPick(g,
		flow.Match{},
		v4(flow.Match{}),
		v4(flow.Match{IPProto: flow.ProtoTCP}),
		v4(flow.Match{IPProto: flow.ProtoTCP, DstPort: xPort16(80)}),
		v4(flow.Match{IPProto: flow.ProtoTCP, DstPort: xPort16(22)}),
		v4(flow.Match{IPProto: flow.ProtoUDP, DstPort: xPort16(53)}),
		v4(flow.Match{IPProto: flow.ProtoICMP, ICMPType: flow.Some[uint8](8)}),
		v4(flow.Match{IPDst: netip.MustParsePrefix("10.0.0.0/24")}),
		v4(flow.Match{IPDst: netip.MustParsePrefix("10.0.1.0/24"), IPProto: flow.ProtoUDP}),
		v4(flow.Match{IPSrc: netip.MustParsePrefix("10.0.0.1/32"), TTL: flow.Masked8{Value: 64, Mask: 0xff}}),
		v4(flow.Match{IPProto: flow.ProtoTCP, TCPFlags: flow.Masked16{Value: 0x02, Mask: 0x12}}),
		v4(flow.Match{IPProto: flow.ProtoSCTP, DstPort: xPort16(80)}),
		flow.Match{EthType: flow.EthTypeIPv6, IPDst: netip.MustParsePrefix("fd00::/64")},
		flow.Match{EthType: flow.EthTypeARP},
		flow.Match{EthDst: flow.MaskedMAC{Addr: xVF0MAC, Mask: xFull}},
		flow.Match{VLANID: flow.Some[uint16](10), CVLANID: flow.Some[uint16](30)},
		v4(flow.Match{IPProto: flow.ProtoTCP, CTState: flow.Masked16{Value: trk | est, Mask: trk | est}}),
		v4(flow.Match{IPProto: flow.ProtoTCP, CTState: flow.Masked16{Value: trk | nw, Mask: trk | nw}}),
		v4(flow.Match{CTState: flow.Masked16{Value: 0, Mask: trk}}),
		v4(flow.Match{CTState: flow.Masked16{Value: trk | est, Mask: trk | est}, CTZone: flow.Some[uint16](1)}),
	)
	if port == xVX {
		m.TunDstPort = flow.Some[uint16](4789)
		if g.chance(0.2) {
			m.TunDstPort = flow.Opt[uint16]{}
		}
		if g.chance(0.5) {
			m.TunID = flow.Some(xPick[uint32](g, 100, 200))
		}
		if g.chance(0.5) {
			m.TunDst = netip.PrefixFrom(xLocalVTEP, 32)
		}
	}
	return m
}

func (g *xGen) actions(f *flow.Flow) []flow.Action {
	var as []flow.Action
	if f.Port == xVX && g.chance(0.7) {
		as = append(as, flow.Action{Kind: flow.ActTunnelDecap})
	}
	for range g.r.IntN(3) {
		switch g.r.IntN(6) {
		case 0:
			as = append(as, flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 10}})
		case 1:
			as = append(as, flow.Action{Kind: flow.ActMirror, Port: xPick(g, xRep1, xUp)})
		case 2:
			as = append(as, flow.Action{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: flow.RewriteEthDst, MAC: xVF0MAC}})
		case 3:
			if f.Match.EthType == flow.EthTypeIPv4 {
				as = append(as, flow.Action{Kind: flow.ActRewrite, Rewrite: &flow.Rewrite{Field: xPick(g, flow.RewriteTTLDec, flow.RewriteIPDst),
					IP: netip.MustParseAddr("10.9.9.9")}})
			}
		case 4:
			as = append(as, flow.Action{Kind: flow.ActPolice, Police: &flow.Police{RatePackets: 100, Burst: 10}})
		default:
			if f.Match.EthType == flow.EthTypeIPv4 {
				as = append(as, flow.Action{Kind: flow.ActCT, CT: &flow.CT{Zone: xPick[uint16](g, 1, 2), Commit: g.chance(0.3)}})
			}
		}
	}
	switch g.r.IntN(8) {
	case 0:
		as = append(as, flow.Action{Kind: flow.ActDrop})
	case 1:
		as = append(as, flow.Action{Kind: flow.ActAccept})
	case 2, 3:
		if f.Chain < 4 {
			as = append(as, flow.Action{Kind: flow.ActGoto, Chain: f.Chain + 1 + uint32(g.r.IntN(2))})
			break
		}
		as = append(as, flow.Action{Kind: flow.ActDrop})
	case 4:
		as = append(as, flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 100, Src: xLocalVTEP,
			Dst: netip.MustParseAddr("198.51.100.10")}}, flow.Action{Kind: flow.ActRedirect, Port: xVX})
	default:
		as = append(as, flow.Action{Kind: flow.ActRedirect, Port: xPick(g, xRep0, xRep1, xUp, "enp8s0f0v1")})
	}
	return as
}

// flow makes a flow with id; now and then an invalid one.
func (g *xGen) flow(id string) *flow.Flow {
	f := &flow.Flow{ID: id, Port: xPick(g, xPorts...), Priority: uint16(1 + g.r.IntN(20)),
		Policy: xPick(g, flow.PolicyAuto, flow.PolicyAuto, flow.PolicyAuto, flow.PolicySoftwareOnly, flow.PolicyHardwareOnly)}
	if g.chance(0.3) {
		f.Chain = uint32(1 + g.r.IntN(4))
	}
	f.Match = g.match(f.Port)
	f.Actions = g.actions(f)
	switch {
	case g.chance(0.03):
		f.Priority = 0
	case g.chance(0.03):
		f.Port = "nope0"
	}
	return f
}

// batch makes flows for ids, then gives most goto targets a rule of the
// batch (a few stay unresolved unless the engine has the chain).
func (g *xGen) batch(ids []string, n *int) []*flow.Flow {
	var out []*flow.Flow
	for _, id := range ids {
		out = append(out, g.flow(id))
	}
	for i := 0; i < len(out); i++ {
		for _, a := range out[i].Actions {
			if a.Kind != flow.ActGoto || g.chance(0.1) || slices.ContainsFunc(out, func(f *flow.Flow) bool {
				return f.Port == out[i].Port && f.Chain == a.Chain
			}) {
				continue
			}
			*n++
			t := g.flow(fmt.Sprintf("t%03d", *n))
			t.Port, t.Chain = out[i].Port, a.Chain
			t.Match = g.match(t.Port)
			t.Actions = g.actions(t)
			out = append(out, t)
		}
	}
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// ids picks k distinct IDs of a pool of n.
func (g *xGen) ids(n, k int) []string {
	var out []string
	for _, i := range g.r.Perm(n)[:min(k, n)] {
		out = append(out, fmt.Sprintf("x%02d", i))
	}
	return out
}

var xQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func xFlowText(f *flow.Flow) string {
	return strings.TrimSpace(prototext.MarshalOptions{}.Format(api.FlowToProto(f)))
}

func xStatusText(st offload.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", st.State)
	for _, r := range st.Reasons {
		fmt.Fprintf(&b, " [%s: %s]", r.Code, r.Message)
	}
	return b.String()
}

func xFirstCode(rs []nic.Reason) nic.ReasonCode {
	if len(rs) == 0 {
		return ""
	}
	return rs[0].Code
}

// xCase runs one case and returns what differs (nil when nothing). It
// counts each flow's outcome and state in seen.
func xCase(t *testing.T, seed uint64, seen map[string]int) []string {
	ctx := context.Background()
	g := &xGen{r: rand.New(rand.NewPCG(seed, seed^0xbb67ae8584caa73b))}
	cfg := emulated.DefaultConfig()
	profiles := nic.Builtin()
	cfg.Profile = profiles[g.r.IntN(len(profiles))].Name
	cfg.HWTableSize = xPick(g, xTableSize...)
	dev, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	defer dev.Close()
	eng, err := offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: xQuiet,
		Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	defer eng.Close()

	// Pre-existing state: a first batch, some deletes, maybe a promotion pass.
	const pool = 30
	n := 0
	_, err = eng.Apply(ctx, g.batch(g.ids(pool, 3+g.r.IntN(15)), &n), offload.ApplyOptions{})
	require.NoError(t, err)
	if g.chance(0.5) {
		_, err = eng.Delete(ctx, g.ids(pool, g.r.IntN(8)))
		require.NoError(t, err)
	}
	if g.chance(0.3) {
		_, err = eng.PromoteSpilled(ctx)
		require.NoError(t, err)
	}
	pre := eng.List(offload.Filter{})

	// The batch: new flows, unchanged copies and changed versions of installed ones.
	batch := g.batch(g.ids(pool, 2+g.r.IntN(15)), &n)
	for i, f := range batch {
		st, ok := eng.Get(f.ID)
		if !ok {
			continue
		}
		switch {
		case g.chance(0.3):
			batch[i] = st.Flow.Clone()
		case g.chance(0.3):
			c := st.Flow.Clone()
			c.Priority = uint16(1 + g.r.IntN(20))
			c.Policy = xPick(g, flow.PolicyAuto, flow.PolicySoftwareOnly, flow.PolicyHardwareOnly)
			batch[i] = c
		}
	}

	xs := eng.ExplainBatch(ctx, batch)
	res, err := eng.Apply(ctx, batch, offload.ApplyOptions{})
	require.NoError(t, err)
	require.Len(t, xs, len(batch))
	require.Len(t, res, len(batch))

	byID := map[string]offload.Result{}
	for _, r := range res {
		byID[r.ID] = r
	}
	var diffs []string
	for i, x := range xs {
		r := res[i]
		id := batch[i].ID
		got := "applied " + r.Outcome.String()
		k := r.Outcome.String() + "/" + r.Status.State.String()
		if c := xFirstCode(r.Status.Reasons); c != "" {
			k += "/" + string(c)
		}
		seen[k]++
		switch r.Outcome {
		case offload.OutcomeInvalid:
			if x.State != offload.StateFailed || len(x.Violations) == 0 {
				diffs = append(diffs, fmt.Sprintf("%s: explain %s with %d violations, %s %v", id, x.State, len(x.Violations), got, r.Violations))
			}
			continue
		case offload.OutcomeFailed:
			if x.State != offload.StateFailed {
				diffs = append(diffs, fmt.Sprintf("%s: explain %s %v, %s: %v", id, x.State, x.Reasons, got, r.Err))
			}
			continue
		}
		if len(x.Violations) > 0 || x.State == offload.StateFailed {
			diffs = append(diffs, fmt.Sprintf("%s: explain %s %v %v, %s %s", id, x.State, x.Violations, x.Reasons, got, xStatusText(r.Status)))
			continue
		}
		if x.State != r.Status.State || xFirstCode(x.Reasons) != xFirstCode(r.Status.Reasons) {
			diffs = append(diffs, fmt.Sprintf("%s: explain %s %v, %s %s", id, x.State, x.Reasons, got, xStatusText(r.Status)))
		}
		// What Apply reported is what is installed after it.
		if st, ok := eng.Get(id); !ok || st.State != r.Status.State || xFirstCode(st.Reasons) != xFirstCode(r.Status.Reasons) {
			diffs = append(diffs, fmt.Sprintf("%s: %s %s, installed after Apply: %s", id, got, xStatusText(r.Status), xStatusText(st)))
		}
		if x.Changed != (r.Outcome != offload.OutcomeUnchanged) {
			diffs = append(diffs, fmt.Sprintf("%s: explain changed=%v, %s", id, x.Changed, got))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (replay: %s=%d), profile %s, hardware table size %d\npre-state:\n", seed, xSeedEnv, seed, cfg.Profile, cfg.HWTableSize)
	for _, st := range pre {
		fmt.Fprintf(&b, "  %s -> %s\n", xFlowText(st.Flow), xStatusText(st))
	}
	b.WriteString("batch:\n")
	for i, f := range batch {
		fmt.Fprintf(&b, "  %s\n    explain %s %v; apply %s %s\n", xFlowText(f), xs[i].State, xs[i].Reasons, res[i].Outcome, xStatusText(res[i].Status))
	}
	return append(diffs, b.String())
}

func TestExplainBatchPredictsApply(t *testing.T) {
	seeds := make([]uint64, 0, 300)
	if s := os.Getenv(xSeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, xSeedEnv)
		seeds = append(seeds, seed)
	} else {
		cases := 300
		if testing.Short() {
			cases = 60
		}
		if s := os.Getenv("OFFLOADD_EXPLAIN_CASES"); s != "" {
			var err error
			cases, err = strconv.Atoi(s)
			require.NoError(t, err, "OFFLOADD_EXPLAIN_CASES")
		}
		for i := range cases - cases/5 {
			seeds = append(seeds, uint64(i+1))
		}
		base := uint64(time.Now().UnixNano())
		t.Logf("seeds from the clock: %d..%d (replay one with %s=N)", base, base+uint64(cases/5)-1, xSeedEnv)
		for i := range cases / 5 {
			seeds = append(seeds, base+uint64(i))
		}
	}
	seen := map[string]int{}
	for _, seed := range seeds {
		if diffs := xCase(t, seed, seen); diffs != nil {
			t.Fatalf("ExplainBatch did not predict Apply:\n%s", strings.Join(diffs, "\n"))
		}
	}
	t.Logf("%d cases; outcome/state/first reason of the flows: %v", len(seeds), seen)
}

// TestExplainBatchBugs keeps minimal reproducers of the differences
// TestExplainBatchPredictsApply found, fixed since.
func TestExplainBatchBugs(t *testing.T) {
	ctx := context.Background()
	v4 := flow.Match{EthType: flow.EthTypeIPv4}
	tcp := flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP}
	deny := &flow.Flow{ID: "deny", Port: xRep0, Priority: 1, Match: v4, Policy: flow.PolicySoftwareOnly,
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
	web := &flow.Flow{ID: "web", Port: xRep0, Priority: 2, Match: tcp, Actions: []flow.Action{{Kind: flow.ActRedirect, Port: xUp}}}
	// A hardware-only version of deny that mlx5 refuses: a redirect to a
	// VF netdev is not an eswitch port.
	denyHW := deny.Clone()
	denyHW.Policy, denyHW.Actions = flow.PolicyHardwareOnly, []flow.Action{{Kind: flow.ActRedirect, Port: "enp8s0f0v1"}}
	for _, tc := range []struct {
		name       string
		pre, batch []*flow.Flow
		bug        string
	}{
		{"an update that fails leaves its old version shadowing", []*flow.Flow{deny}, []*flow.Flow{denyHW, web},
			"the installed version of a flow whose update fails (hardware-only, refused) still shadows the rules after it"},
		{"an unchanged flow a new software rule shadows", []*flow.Flow{web}, []*flow.Flow{web, deny},
			"an unchanged flow that the batch's new software rule pushes out of hardware reports it, in Explain and Apply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, err := emulated.New(emulated.DefaultConfig(), nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = dev.Close() })
			eng, err := offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: xQuiet})
			require.NoError(t, err)
			t.Cleanup(func() { _ = eng.Close() })
			_, err = eng.Apply(ctx, tc.pre, offload.ApplyOptions{})
			require.NoError(t, err)
			xs := eng.ExplainBatch(ctx, tc.batch)
			res, err := eng.Apply(ctx, tc.batch, offload.ApplyOptions{})
			require.NoError(t, err)
			var diffs []string
			for i, x := range xs {
				st, _ := eng.Get(res[i].ID)
				if res[i].Outcome == offload.OutcomeFailed || res[i].Outcome == offload.OutcomeInvalid {
					continue
				}
				if x.State != res[i].Status.State || x.State != st.State {
					diffs = append(diffs, fmt.Sprintf("%s: explain %s %v; apply %s %s; installed %s",
						res[i].ID, x.State, x.Reasons, res[i].Outcome, xStatusText(res[i].Status), xStatusText(st)))
				}
			}
			require.Empty(t, diffs, tc.bug)
		})
	}
}
