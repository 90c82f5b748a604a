package fallback

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeConns is an in-memory ConnTable that renders itself as sorted text.
type fakeConns struct {
	mu      sync.Mutex
	entries map[ConnKey]ConnEntry
	fail    error // returned by every call when set
}

func newFakeConns(es ...ConnEntry) *fakeConns {
	c := &fakeConns{entries: map[ConnKey]ConnEntry{}}
	for _, e := range es {
		c.entries[e.Key()] = e
	}
	return c
}

func (c *fakeConns) Dump(_ context.Context, zones []uint16) ([]ConnEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	var out []ConnEntry
	for _, e := range c.entries {
		if slices.Contains(zones, e.Zone) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func (c *fakeConns) Upsert(_ context.Context, es []ConnEntry) ([]ConnPrev, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ConnPrev, len(es))
	if c.fail != nil {
		return out, c.fail
	}
	for i, e := range es {
		prev, ok := c.entries[e.Key()]
		c.entries[e.Key()] = e
		out[i] = ConnPrev{Done: true, Existed: ok, Entry: prev}
	}
	return out, nil
}

func (c *fakeConns) Delete(_ context.Context, ks []ConnKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	for _, k := range ks {
		delete(c.entries, k)
	}
	return nil
}

func (c *fakeConns) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	for _, e := range c.entries {
		lines = append(lines, fmt.Sprintf("%s mark %d timeout %s", e, e.Mark, e.Timeout))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// memFlowStore is an offload.Store in memory, to restart an engine.
type memFlowStore struct {
	mu    sync.Mutex
	flows map[string]offload.StoredFlow
}

func (s *memFlowStore) Save(fs []offload.StoredFlow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range fs {
		s.flows[f.Flow.ID] = offload.StoredFlow{Flow: f.Flow.Clone(), Generation: f.Generation}
	}
	return nil
}

func (s *memFlowStore) Delete(ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.flows, id)
	}
	return nil
}

func (s *memFlowStore) Load() ([]offload.StoredFlow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []offload.StoredFlow
	for _, f := range s.flows {
		out = append(out, offload.StoredFlow{Flow: f.Flow.Clone(), Generation: f.Generation})
	}
	return out, nil
}

// node is one emulated node: NIC, engine, conntrack, VF pool, migrator.
type node struct {
	name   string
	dev    *emulated.Device
	eng    *offload.Engine
	flows  *memFlowStore
	conns  *fakeConns
	vfs    *EmulatedVFs
	store  RecordStore
	mig    *Migrator
	clock  time.Time
	closed bool
}

func newNode(t *testing.T, name string, conns ...ConnEntry) *node {
	t.Helper()
	cfg := emulated.DefaultConfig()
	dev, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	n := &node{name: name, dev: dev, conns: newFakeConns(conns...), store: NewMemStore(),
		flows: &memFlowStore{flows: map[string]offload.StoredFlow{}}, clock: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	n.start(t)
	return n
}

// start builds the engine and migrator over the node's device and stores,
// as a daemon start does.
func (n *node) start(t *testing.T) {
	t.Helper()
	eng, err := offload.New(offload.Config{Devices: []nic.Device{n.dev}, Logger: quiet, Store: n.flows})
	require.NoError(t, err)
	_, err = eng.Restore(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	n.eng = eng
	n.vfs = NewEmulatedVFs(n.dev, func(rep string) bool { return len(eng.List(offload.Filter{Port: rep})) > 0 })
	n.mig, err = NewMigrator(MigratorConfig{Engine: eng, Conntrack: n.conns, VFs: n.vfs, Store: n.store,
		Node: n.name, Logger: quiet, Now: func() time.Time { return n.clock }})
	require.NoError(t, err)
	require.NoError(t, n.mig.Recover(context.Background()))
}

func (n *node) apply(t *testing.T, fs ...*flow.Flow) {
	t.Helper()
	rs, err := n.eng.Apply(context.Background(), fs, offload.ApplyOptions{Atomic: true})
	require.NoError(t, err)
	for _, r := range rs {
		require.Empty(t, r.Violations, r.ID)
	}
}

// state renders the node: each flow's placement and generation, both
// planes of the NIC, the conntrack table and the VF settings.
func (n *node) state(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, st := range n.eng.List(offload.Filter{}) {
		lines = append(lines, fmt.Sprintf("flow %s %s gen %d on %s", st.Flow.ID, st.State, st.Generation, st.Flow.Port))
	}
	for _, plane := range nic.InstallPlanes {
		inst, err := n.dev.Flows(context.Background(), plane)
		require.NoError(t, err)
		for _, in := range inst {
			lines = append(lines, fmt.Sprintf("%s %s", plane, in.Flow.ID))
		}
	}
	sort.Strings(lines)
	lines = append(lines, n.conns.String())
	for _, vf := range n.dev.VFs() {
		lines = append(lines, fmt.Sprintf("vf %d %+v", vf.Index, vf.Config))
	}
	return strings.Join(lines, "\n")
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// workload is the migrating VM's flows on port: an ACL, conntrack in zone
// 5 with established traffic to VXLAN VNI 100, new connections committed in
// software, and decapsulated VXLAN traffic redirected to the port.
func workload(port string) []*flow.Flow {
	ip := flow.Match{EthType: flow.EthTypeIPv4}
	tcp := ip
	tcp.IPProto = flow.ProtoTCP
	smtp := tcp
	smtp.DstPort = flow.Masked16{Value: 25, Mask: 0xffff}
	untracked := ip
	untracked.CTState = flow.Masked16{Value: 0, Mask: flow.CTTracked}
	est := ip
	est.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTEstablished, Mask: flow.CTTracked | flow.CTEstablished}
	newConn := tcp
	newConn.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew}
	encap := flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: 100,
		Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}}
	toVX := flow.Action{Kind: flow.ActRedirect, Port: "vxlan0"}
	vx := ip
	vx.TunID = flow.Some[uint32](100)
	vx.TunDstPort = flow.Some[uint16](4789)
	vx.IPDst = pfx("10.0.0.3/32")
	return []*flow.Flow{
		{ID: "vm1-acl-smtp", Port: port, Priority: 1, Match: smtp, Actions: []flow.Action{{Kind: flow.ActDrop}}},
		{ID: "vm1-ct", Port: port, Priority: 10, Match: untracked,
			Actions: []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5}}, {Kind: flow.ActGoto, Chain: 1}}},
		{ID: "vm1-est", Port: port, Chain: 1, Priority: 1, Match: est, Actions: []flow.Action{encap, toVX}},
		{ID: "vm1-new", Port: port, Chain: 1, Priority: 2, Match: newConn,
			Actions: []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5, Commit: true}}, encap, toVX}},
		{ID: "vm1-vxlan-in", Port: "vxlan0", Priority: 100, Match: vx,
			Actions: []flow.Action{{Kind: flow.ActTunnelDecap}, {Kind: flow.ActRedirect, Port: port}}},
	}
}

// bystander is a flow of another VM on port.
func bystander(id, port string) *flow.Flow {
	return &flow.Flow{ID: id, Port: port, Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4, IPSrc: pfx("10.9.9.0/24")},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
}

func tcpConn(zone uint16, sport uint16) ConnEntry {
	src, dst := netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.1.7")
	return ConnEntry{Zone: zone, Proto: 6,
		Orig:   ConnTuple{Src: src, Dst: dst, SrcPort: sport, DstPort: 80},
		Reply:  ConnTuple{Src: dst, Dst: src, SrcPort: 80, DstPort: sport},
		TCP:    &ConnTCP{State: TCPEstablished, OrigWScale: 7, ReplyWScale: 7},
		Status: ConnSeenReply | ConnAssured | ConnConfirmed, Mark: 42, Timeout: 431999 * time.Second}
}

// pair is a source node with the workload on pf0vf3 and a destination
// whose VFs 0 and 1 are busy, so the workload lands on VF 2.
func pair(t *testing.T) (src, dst *node) {
	t.Helper()
	src = newNode(t, "src", tcpConn(5, 40000), tcpConn(5, 40001), tcpConn(9, 50000))
	src.apply(t, append(workload("pf0vf3"), bystander("other-vm", "pf0vf1"))...)
	require.NoError(t, src.dev.SetVF(3, emulated.VFConfig{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x33}, VLAN: 100, SpoofChk: true}))
	dst = newNode(t, "dst", tcpConn(7, 60000))
	dst.apply(t, bystander("dst-vm0", "pf0vf0"), bystander("dst-vm1", "pf0vf1"))
	return src, dst
}

func states(t *testing.T, e *offload.Engine, ids ...string) map[string]offload.State {
	t.Helper()
	out := map[string]offload.State{}
	for _, id := range ids {
		st, ok := e.Get(id)
		require.True(t, ok, id)
		out[id] = st.State
	}
	return out
}

var workloadIDs = []string{"vm1-acl-smtp", "vm1-ct", "vm1-est", "vm1-new", "vm1-vxlan-in"}

func TestMigrationHandoff(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	before := states(t, src.eng, workloadIDs...)
	assert.Equal(t, offload.StateSoftware, before["vm1-new"], "+new conntrack stays in software on mlx5")
	assert.Equal(t, offload.StateHardware, before["vm1-est"])
	gens := map[string]uint64{}
	src.apply(t, func() *flow.Flow { f := workload("pf0vf3")[0]; f.Priority = 2; return f }())
	for _, id := range workloadIDs {
		st, _ := src.eng.Get(id)
		gens[id] = st.Generation
	}
	require.Equal(t, uint64(2), gens["vm1-acl-smtp"])

	// 1. Prepare on the destination.
	prep, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, "pf0vf2", prep.Port)
	require.NotNil(t, prep.VF)
	assert.Equal(t, 2, prep.VF.Index)

	// 2. Drain on the source: every flow of the port in software, the
	// bystander untouched.
	dr, err := src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, DrainResult{Port: "pf0vf3", Flows: 5, Moved: 4, Held: 1}, dr)
	for id, st := range states(t, src.eng, workloadIDs...) {
		assert.Equal(t, offload.StateSoftware, st, id)
	}
	hw, err := src.dev.Flows(ctx, flow.Both)
	require.NoError(t, err)
	require.Len(t, hw, 1)
	assert.Equal(t, "other-vm", hw[0].Flow.ID)
	assert.True(t, hw[0].InHW)
	moved, err := src.eng.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved, "the promoter leaves drained flows alone")

	// 3. Export on the source.
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	assert.Equal(t, BundleVersion, b.Version)
	assert.Equal(t, "src", b.SourceNode)
	assert.Equal(t, uint64(1), b.Serial)
	assert.Equal(t, []uint16{5}, b.Zones)
	require.Len(t, b.Conns, 2)
	require.Len(t, b.Flows, 5)
	for _, f := range b.Flows {
		assert.Equal(t, gens[f.Flow.ID], f.Generation, f.Flow.ID)
	}
	require.NotNil(t, b.VF)
	assert.Equal(t, VFSettings{MAC: "02:00:00:00:00:33", VLAN: 100, SpoofChk: true}, *b.VF)

	// 4. Import on the destination: ports renamed, all in software, held.
	imp, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.NoError(t, err)
	assert.Equal(t, 5, imp.Created)
	assert.Equal(t, 2, imp.ConnsCreated)
	for _, p := range imp.Flows {
		assert.Equal(t, offload.StateSoftware, p.State, p.ID)
		assert.Equal(t, gens[p.ID], p.Generation, p.ID)
	}
	st, _ := dst.eng.Get("vm1-vxlan-in")
	assert.Equal(t, "pf0vf2", st.Flow.Actions[1].Port)
	st, _ = dst.eng.Get("vm1-est")
	assert.Equal(t, "pf0vf2", st.Flow.Port)
	moved, err = dst.eng.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved)
	conns, err := dst.conns.Dump(ctx, []uint16{5})
	require.NoError(t, err)
	assert.Len(t, conns, 2)
	vf, err := dst.dev.VF(2)
	require.NoError(t, err)
	assert.Equal(t, uint16(100), vf.Config.VLAN, "the source VF's settings follow the workload")

	// 5. Re-offload once the VF is attached: the same placements as on the source.
	ro, err := dst.mig.Reoffload(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, 4, ro.Hardware)
	assert.Equal(t, 1, ro.Software)
	assert.Equal(t, before, states(t, dst.eng, workloadIDs...))

	// 6. Commit on the source: flows, entries of zone 5 and the VF's settings are gone.
	cm, err := src.mig.Commit(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, CommitResult{FlowsRemoved: 5, ConnsRemoved: 2, VFReleased: true}, cm)
	assert.Len(t, src.eng.List(offload.Filter{}), 1)
	assert.Equal(t, "zone 9 tcp 10.0.0.3:50000 > 10.0.1.7:80 ESTABLISHED mark 42 timeout 119h59m59s", src.conns.String())
	vf, err = src.dev.VF(3)
	require.NoError(t, err)
	assert.Zero(t, vf.Config.VLAN)
	assert.False(t, vf.Config.SpoofChk)
	_, err = dst.mig.Commit(ctx, "m1")
	require.NoError(t, err)

	// Every step repeated returns what it returned.
	prep2, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, prep, prep2)
	dr2, err := src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, dr, dr2)
	b2, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	assert.Equal(t, b, b2)
	imp2, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.NoError(t, err)
	assert.Equal(t, imp, imp2)
	ro2, err := dst.mig.Reoffload(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, ro, ro2)
	cm2, err := src.mig.Commit(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, cm, cm2)
	_, err = src.mig.Abort(ctx, "m1")
	require.ErrorIs(t, err, ErrStep)
	assert.ErrorContains(t, err, "committed")

	m, err := src.mig.Get("m1")
	require.NoError(t, err)
	assert.Equal(t, Migration{ID: "m1", Role: RoleSource, Step: StepCommitted, Port: "pf0vf3", VF: m.VF,
		Flows: 5, Conns: 2, Created: src.clock, Updated: src.clock}, m)
	assert.Len(t, dst.mig.List(), 1)
}

func TestMigrationStepsOutOfOrder(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	b := &Bundle{Version: BundleVersion, MigrationID: "m1", SourcePort: "pf0vf3", Serial: 1}

	_, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	assert.ErrorIs(t, err, ErrStep)
	assert.ErrorContains(t, err, "expected Prepare first")
	_, err = src.mig.Export(ctx, ExportRequest{ID: "m1"})
	assert.ErrorContains(t, err, "expected Drain first")
	_, err = dst.mig.Reoffload(ctx, "m1")
	assert.ErrorContains(t, err, "expected Prepare first")

	_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = dst.mig.Reoffload(ctx, "m1")
	assert.ErrorIs(t, err, ErrStep)
	assert.ErrorContains(t, err, "expected Import first")
	_, err = dst.mig.Commit(ctx, "m1")
	assert.ErrorContains(t, err, "expected Import first")
	_, err = dst.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf2"})
	assert.ErrorIs(t, err, ErrStep)
	assert.ErrorContains(t, err, "this node is the destination")

	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Commit(ctx, "m1")
	assert.ErrorContains(t, err, "expected Export first")
	_, err = src.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	assert.ErrorContains(t, err, "this node is the source")
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf1"})
	assert.ErrorIs(t, err, ErrConflict)

	_, err = src.mig.Drain(ctx, DrainRequest{ID: "bad/id", Port: "pf0vf3"})
	assert.ErrorIs(t, err, ErrInvalidRequest)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m2", Port: "pf0vf9"})
	assert.ErrorIs(t, err, ErrInvalidRequest)
	_, err = src.mig.Commit(ctx, "nope")
	assert.ErrorIs(t, err, ErrUnknown)
}

func TestMigrationBundleChecks(t *testing.T) {
	ctx := context.Background()
	_, dst := pair(t)
	_, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		b    Bundle
		want string
	}{
		{"major version", Bundle{Version: "2.0", MigrationID: "m1", SourcePort: "pf0vf3"}, "bundle version 2.0 is not supported"},
		{"garbage version", Bundle{Version: "x", MigrationID: "m1", SourcePort: "pf0vf3"}, "not MAJOR.MINOR"},
		{"other migration", Bundle{Version: "1.0", MigrationID: "m2", SourcePort: "pf0vf3"}, `the bundle is of migration "m2"`},
		{"bad conntrack entry", Bundle{Version: "1.0", MigrationID: "m1", SourcePort: "pf0vf3", Conns: []ConnEntry{{Zone: 5, Proto: 6}}}, "missing address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: &tc.b})
			require.ErrorIs(t, err, ErrInvalidRequest)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: &Bundle{Version: "1.7", MigrationID: "m1", SourcePort: "pf0vf9"}})
	assert.ErrorIs(t, err, ErrConflict, "a newer minor version is read; the port must match")
}

func TestMigrationFlowIDCollision(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	// The destination has a different flow under one of the workload's IDs.
	clash := bystander("vm1-acl-smtp", "pf0vf0")
	dst.apply(t, clash)
	_, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.ErrorIs(t, err, ErrConflict)
	assert.ErrorContains(t, err, "flow vm1-acl-smtp is already installed on this node as a different flow")
	assert.Len(t, dst.eng.List(offload.Filter{}), 3, "nothing was installed")
}

func TestMigrationAdoptsEqualFlows(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	prep, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	// The controller already applied one of the flows for the destination port.
	dst.apply(t, workload(prep.Port)[0])
	st, _ := dst.eng.Get("vm1-acl-smtp")
	require.Equal(t, offload.StateSoftware, st.State, "the prepared port drains")
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	imp, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.NoError(t, err)
	assert.Equal(t, 4, imp.Created)
	assert.Equal(t, 1, imp.Unchanged)

	// Abort removes what the migration created and keeps the adopted flow, now in hardware.
	res, err := dst.mig.Abort(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, 4, res.FlowsRemoved)
	st, ok := dst.eng.Get("vm1-acl-smtp")
	require.True(t, ok)
	assert.Equal(t, offload.StateHardware, st.State)
}

// TestMigrationAbortAtEachStep aborts after every step and checks that both
// nodes are exactly as before: flows, generations, placements, both NIC
// planes, conntrack tables and VF settings.
func TestMigrationAbortAtEachStep(t *testing.T) {
	steps := []string{"prepare", "drain", "export", "import", "reoffload"}
	for k := range steps {
		t.Run("after "+steps[k], func(t *testing.T) {
			ctx := context.Background()
			src, dst := pair(t)
			srcBefore, dstBefore := src.state(t), dst.state(t)
			var b *Bundle
			for _, step := range steps[:k+1] {
				var err error
				switch step {
				case "prepare":
					_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3", VF: &VFSettings{MAC: "02:00:00:00:00:33"}})
				case "drain":
					_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
				case "export":
					b, err = src.mig.Export(ctx, ExportRequest{ID: "m1"})
				case "import":
					_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
				case "reoffload":
					_, err = dst.mig.Reoffload(ctx, "m1")
				}
				require.NoError(t, err, step)
			}
			require.NotEqual(t, dstBefore, dst.state(t))

			sres, err := src.mig.Abort(ctx, "m1")
			require.NoError(t, err)
			assert.Empty(t, sres.NotRestored)
			dres, err := dst.mig.Abort(ctx, "m1")
			require.NoError(t, err)
			assert.True(t, dres.VFReleased)
			assert.Equal(t, srcBefore, src.state(t))
			assert.Equal(t, dstBefore, dst.state(t))

			again, err := dst.mig.Abort(ctx, "m1")
			require.NoError(t, err)
			assert.Equal(t, dres, again)
			_, err = dst.mig.Reoffload(ctx, "m1")
			assert.ErrorContains(t, err, "was aborted")
			_, err = src.mig.Commit(ctx, "m1")
			assert.ErrorIs(t, err, ErrStep)
		})
	}
}

func TestMigrationAbortRestoresReplacedConntrackEntries(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	old := tcpConn(5, 40000)
	old.Mark, old.TCP = 1, &ConnTCP{State: TCPSynSent}
	_, err := dst.conns.Upsert(ctx, []ConnEntry{old})
	require.NoError(t, err)
	before := dst.conns.String()
	_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	imp, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.NoError(t, err)
	assert.Equal(t, 1, imp.ConnsCreated)
	assert.Equal(t, 1, imp.ConnsUpdated)
	res, err := dst.mig.Abort(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, 1, res.ConnsRemoved)
	assert.Equal(t, 1, res.ConnsRestored)
	assert.Equal(t, before, dst.conns.String())
}

func TestMigrationRefreshedExport(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	_, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	b1, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b1})
	require.NoError(t, err)

	// While the guest still runs on the source: a flow is removed, one is
	// added (in software: the port drains), a connection opens.
	_, err = src.eng.Delete(ctx, []string{"vm1-acl-smtp"})
	require.NoError(t, err)
	late := bystander("vm1-late", "pf0vf3")
	src.apply(t, late)
	st, _ := src.eng.Get("vm1-late")
	require.Equal(t, offload.StateSoftware, st.State)
	_, err = src.conns.Upsert(ctx, []ConnEntry{tcpConn(5, 40002)})
	require.NoError(t, err)

	b2, err := src.mig.Export(ctx, ExportRequest{ID: "m1", Refresh: true})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), b2.Serial)
	imp, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b2})
	require.NoError(t, err)
	assert.Equal(t, ImportResult{Serial: 2, Created: 1, Unchanged: 4, Removed: 1, ConnsCreated: 1, ConnsUpdated: 2, Flows: imp.Flows}, imp)
	_, ok := dst.eng.Get("vm1-acl-smtp")
	assert.False(t, ok)
	_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b1})
	assert.ErrorIs(t, err, ErrConflict, "an older bundle after a newer one")

	cm, err := src.mig.Commit(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, 6, cm.FlowsRemoved, "flows of every export")
	assert.Equal(t, 3, cm.ConnsRemoved)
}

func TestMigrationDrainVerifiesTheDevice(t *testing.T) {
	ctx := context.Background()
	src, _ := pair(t)
	// The software plane refuses the port's flows, so they cannot leave hardware.
	require.NoError(t, src.dev.AddFault(emulated.Fault{Name: "sw", Plane: flow.Software,
		Match: emulated.FaultMatch{IDPrefix: "vm1-"}, Errno: syscall.ENOMEM, Message: "no memory"}))
	_, err := src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.ErrorIs(t, err, ErrIncomplete)
	assert.ErrorContains(t, err, "flows of port pf0vf3 are still in hardware")
	m, err := src.mig.Get("m1")
	require.NoError(t, err)
	assert.Equal(t, StepNone, m.Step)

	require.NoError(t, src.dev.RemoveFault("sw"))
	dr, err := src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	assert.Equal(t, 4, dr.Moved)
	hw, err := src.dev.Flows(ctx, flow.Both)
	require.NoError(t, err)
	assert.Len(t, hw, 1)
}

func TestMigrationExportConntrackScope(t *testing.T) {
	ctx := context.Background()
	src, _ := pair(t)
	_, err := src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Export(ctx, ExportRequest{ID: "m1", Zones: []uint16{0, 5}})
	assert.ErrorIs(t, err, ErrInvalidRequest)
	assert.ErrorContains(t, err, "zone 0 is the host's default zone")
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1", Zones: []uint16{5, 9}, Addresses: []netip.Prefix{pfx("10.0.0.3/32")}})
	require.NoError(t, err)
	assert.Len(t, b.Conns, 3)
}

func TestMigrationSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	src, dst := pair(t)
	dir := t.TempDir()
	fs, err := NewFileStore(dir)
	require.NoError(t, err)
	src.store = fs
	src.start(t)
	_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)

	// Restart both daemons: new engines over the same NICs and stores.
	src.eng.Close()
	dst.eng.Close()
	src.start(t)
	dst.start(t)
	moved, err := src.eng.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved, "recovered holds keep the drained flows in software")
	for id, st := range states(t, src.eng, workloadIDs...) {
		assert.Equal(t, offload.StateSoftware, st, id)
	}
	b2, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	assert.Equal(t, b.Exported, b2.Exported, "the same bundle after the restart")
	_, err = dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b2})
	require.NoError(t, err)

	// Restart the destination again before Reoffload; the VF stays reserved.
	dst.eng.Close()
	dst.start(t)
	l, err := dst.vfs.Reserve(ctx, "m2", VFSettings{})
	require.NoError(t, err)
	assert.Equal(t, 3, l.Index, "VF 2 is still the migration's")
	require.NoError(t, dst.vfs.Release(ctx, l))
	moved, err = dst.eng.PromoteSpilled(ctx)
	require.NoError(t, err)
	assert.Zero(t, moved)
	ro, err := dst.mig.Reoffload(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, 4, ro.Hardware)
	_, err = src.mig.Commit(ctx, "m1")
	require.NoError(t, err)

	// Finished migrations are forgotten after the retention time.
	src.clock = src.clock.Add(25 * time.Hour)
	src.start(t)
	_, err = src.mig.Get("m1")
	assert.ErrorIs(t, err, ErrUnknown)
	saved, err := fs.Load()
	require.NoError(t, err)
	assert.Empty(t, saved)
}

func TestMigrationPrepareWithFlowsAndPortMap(t *testing.T) {
	ctx := context.Background()
	_, dst := pair(t)
	f := workload("pf0vf3")[4]
	f.Port = "vxlan7" // the source's tunnel device name
	res, err := dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "pf0vf3", Port: "pf0vf5",
		PortMap: map[string]string{"vxlan7": "vxlan0"}, Flows: []offload.StoredFlow{{Flow: f, Generation: 3}}})
	require.NoError(t, err)
	assert.Equal(t, "pf0vf5", res.Port)
	require.Len(t, res.Flows, 1)
	assert.Equal(t, Placement{ID: "vm1-vxlan-in", State: offload.StateSoftware, Generation: 3,
		Reasons: []nic.Reason{{Code: nic.ReasonDraining, Message: "awaiting VF attach for migration m1"}}}, res.Flows[0])
	st, _ := dst.eng.Get("vm1-vxlan-in")
	assert.Equal(t, "vxlan0", st.Flow.Port)
	assert.Equal(t, "pf0vf5", st.Flow.Actions[1].Port)
	assert.False(t, res.VF == nil, "the VF behind the port is described")
	_, err = dst.mig.Abort(ctx, "m1")
	require.NoError(t, err)
	_, ok := dst.eng.Get("vm1-vxlan-in")
	assert.False(t, ok)

	_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m9", SourcePort: "pf0vf3", VF: &VFSettings{QoS: 3}})
	assert.ErrorIs(t, err, ErrInvalidRequest)
	_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m9", SourcePort: "pf0vf3", Flows: []offload.StoredFlow{{Flow: bystander("x", "nope")}}})
	var fe *FlowsError
	require.ErrorAs(t, err, &fe)
	assert.ErrorIs(t, err, ErrInvalidRequest)
	assert.ErrorContains(t, err, "flow x: port")
}

func TestEmulatedVFs(t *testing.T) {
	ctx := context.Background()
	dev, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(t, err)
	defer dev.Close()
	orig := emulated.VFConfig{MAC: [6]byte{2, 0, 0, 0, 0, 1}, VLAN: 7}
	require.NoError(t, dev.SetVF(0, orig))
	p := NewEmulatedVFs(dev, func(rep string) bool { return rep == "pf0vf1" })
	l, err := p.Reserve(ctx, "a", VFSettings{MAC: "02:00:00:00:00:aa", Trust: true})
	require.NoError(t, err)
	assert.Equal(t, 0, l.Index)
	assert.Equal(t, "pf0vf0", l.Representor)
	assert.Equal(t, VFSettings{MAC: "02:00:00:00:00:01", VLAN: 7}, l.Restore)
	again, err := p.Reserve(ctx, "a", VFSettings{MAC: "02:00:00:00:00:aa", Trust: true})
	require.NoError(t, err)
	assert.Equal(t, l, again)
	l2, err := p.Reserve(ctx, "b", VFSettings{})
	require.NoError(t, err)
	assert.Equal(t, 2, l2.Index, "VF 1 is busy")
	vf, _ := dev.VF(0)
	assert.True(t, vf.Config.Trust)

	require.NoError(t, p.Release(ctx, l))
	require.NoError(t, p.Release(ctx, l))
	vf, _ = dev.VF(0)
	assert.Equal(t, orig, vf.Config)
	_, err = p.Lookup(ctx, "p0")
	assert.ErrorIs(t, err, nic.ErrNotFound)
	_, err = p.Reserve(ctx, "c", VFSettings{MAC: "zz"})
	assert.Error(t, err)

	for i := range 8 {
		_, _ = p.Reserve(ctx, fmt.Sprintf("fill%d", i), VFSettings{})
	}
	_, err = p.Reserve(ctx, "full", VFSettings{})
	assert.ErrorIs(t, err, ErrNoVF)
}
