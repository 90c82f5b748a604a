package emulated_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/offload/flow"
)

func flowIDs(fs []*flow.Flow) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

func TestFlowTableOrderAndCache(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	mk := func(id, port string, chain uint32, prio uint16) *flow.Flow {
		f := drop(id, port, 1)
		f.Chain, f.Priority = chain, prio
		return f
	}
	for _, err := range program(t, d, flow.Software, adds(
		mk("c", "pf0vf0", 0, 20), mk("b", "pf0vf0", 0, 10), mk("a", "pf0vf0", 0, 20),
		mk("x", "pf0vf0", 1, 5), mk("y", "pf0vf1", 0, 1))...) {
		require.NoError(t, err)
	}
	ft, err := d.FlowTable(flow.Software)
	require.NoError(t, err)
	assert.Equal(t, flow.Software, ft.Plane())
	assert.Equal(t, 5, ft.Len())
	assert.Equal(t, []string{"b", "a", "c"}, flowIDs(ft.Chain("pf0vf0", 0)), "priority, then ID")
	assert.Equal(t, []string{"x"}, flowIDs(ft.Chain("pf0vf0", 1)))
	assert.Empty(t, ft.Chain("pf0vf0", 2))
	var seen []emulated.PortChain
	ft.Chains(func(pc emulated.PortChain, _ []*flow.Flow) { seen = append(seen, pc) })
	assert.Equal(t, []emulated.PortChain{{Port: "pf0vf0", Chain: 0}, {Port: "pf0vf0", Chain: 1}, {Port: "pf0vf1", Chain: 0}}, seen)

	again, err := d.FlowTable(flow.Software)
	require.NoError(t, err)
	assert.Same(t, ft, again, "no change, same snapshot")

	hw, err := d.FlowTable(flow.Hardware)
	require.NoError(t, err)
	assert.Zero(t, hw.Len(), "planes are separate")

	for _, err := range program(t, d, flow.Software, nic.Op{Kind: nic.OpDelete, Flow: mk("b", "pf0vf0", 0, 10)}) {
		require.NoError(t, err)
	}
	after, err := d.FlowTable(flow.Software)
	require.NoError(t, err)
	assert.NotSame(t, ft, after)
	assert.NotEqual(t, ft.Generation(), after.Generation())
	assert.Equal(t, []string{"a", "c"}, flowIDs(after.Chain("pf0vf0", 0)))
	assert.Equal(t, []string{"b", "a", "c"}, flowIDs(ft.Chain("pf0vf0", 0)), "an old snapshot does not change")

	// A failed op does not invalidate.
	errs := program(t, d, flow.Software, nic.Op{Kind: nic.OpDelete, Flow: mk("nope", "pf0vf0", 0, 1)})
	require.Error(t, errs[0])
	same, err := d.FlowTable(flow.Software)
	require.NoError(t, err)
	assert.Same(t, after, same)

	// Removing the VFs flushes their flows and invalidates the snapshot.
	require.NoError(t, d.SetNumVFs(0))
	flushed, err := d.FlowTable(flow.Software)
	require.NoError(t, err)
	assert.Zero(t, flushed.Len())

	require.NoError(t, d.Close())
	_, err = d.FlowTable(flow.Software)
	require.ErrorIs(t, err, nic.ErrClosed)
}

func TestFlowTableLegacyEmptiesHardware(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	for _, err := range program(t, d, flow.Hardware, adds(drop("h", "p0", 1))...) {
		require.NoError(t, err)
	}
	ft, err := d.FlowTable(flow.Hardware)
	require.NoError(t, err)
	require.Equal(t, 1, ft.Len())
	require.NoError(t, d.SetEswitchMode(context.Background(), nic.EswitchLegacy))
	ft, err = d.FlowTable(flow.Hardware)
	require.NoError(t, err)
	assert.Zero(t, ft.Len())
}

func TestTunnelPort(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.Tunnels = append(cfg.Tunnels, emulated.TunnelConfig{Name: "vxlan1", DstPort: 4790})
	d := newDevice(t, cfg)
	p, ok := d.TunnelPort(4789)
	require.True(t, ok)
	assert.Equal(t, "vxlan0", p.Name)
	p, ok = d.TunnelPort(4790)
	require.True(t, ok)
	assert.Equal(t, "vxlan1", p.Name)
	_, ok = d.TunnelPort(6081)
	assert.False(t, ok)
}

func BenchmarkFlowTableCached(b *testing.B) {
	d, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(b, err)
	defer d.Close()
	for _, err := range d.Program(context.Background(), flow.Software, adds(drop("a", "pf0vf0", 1))) {
		require.NoError(b, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.FlowTable(flow.Software); err != nil {
			b.Fatal(err)
		}
	}
}
