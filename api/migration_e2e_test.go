package api

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/fallback"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// The end-to-end proof of the handoff: two emulated daemons, each an
// emulated ConnectX-6 Dx with its packet datapath, engine, migrator and
// gRPC API, and a VM whose ACL, VXLAN and conntrack flows keep carrying
// traffic while its port migrates from one to the other.

const (
	vmIP     = "10.0.0.3"
	peerIP   = "10.0.1.7"
	vtepSrc  = "192.0.2.1" // the nodes' VXLAN endpoint in the flows
	vtepPeer = "192.0.2.2" // the peer's
	vni      = 100
	conns    = 8 // established TCP connections
)

var peerVTEPMAC = [6]byte{0x02, 0xaa, 0, 0, 0, 2}

// trafficNode is a daemon with a datapath.
type trafficNode struct {
	*migNode
	dp *datapath.Datapath
}

func newTrafficNode(t *testing.T, net bufNet, name string, clock *datapath.ManualClock) *trafficNode {
	t.Helper()
	dev, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(t, err)
	dp, err := datapath.New(dev, datapath.Config{Now: clock.Now,
		Neighbours: []datapath.Neighbour{{IP: netip.MustParseAddr(vtepPeer), MAC: peerVTEPMAC}}})
	require.NoError(t, err)
	eng, err := offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: quietLog})
	require.NoError(t, err)
	n := &migNode{name: name, dev: dev, eng: eng, lis: bufconn.Listen(1 << 20)}
	vfs := fallback.NewEmulatedVFs(dev, func(rep string) bool { return len(eng.List(offload.Filter{Port: rep})) > 0 })
	n.mig, err = fallback.NewMigrator(fallback.MigratorConfig{Engine: eng, VFs: vfs, Node: name, Logger: quietLog,
		Conntrack: fallback.NewEmulatedConns(dp.Conntrack(), clock.Now), Now: clock.Now})
	require.NoError(t, err)
	gs := grpc.NewServer()
	NewServer(eng, eng, WithLogger(quietLog)).Register(gs)
	NewMigrationService(n.mig, WithMigrationLogger(quietLog), WithPeers(net)).Register(gs)
	go func() { _ = gs.Serve(n.lis) }()
	net[name] = n.lis
	conn, err := net.dial(context.Background(), name)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		eng.Close()
		dev.Close()
	})
	n.mc, n.fc = v1.NewMigrationServiceClient(conn), v1.NewFlowServiceClient(conn)
	return &trafficNode{migNode: n, dp: dp}
}

// vmFlows are the VM's flows on port: an ACL; UDP to and from the peer
// over VXLAN; TCP through conntrack zone 5 (into chain 2 of vxlan0 by the
// network's flows), with established connections in hardware, new ones
// committed in software. No software twins: a packet that hardware hands
// to software mid-way (a connection not offloaded yet) finds the
// established rules' own software copies (no skip flag).
func vmFlows(port string) []*v1.Flow {
	u := func(v uint32) *uint32 { return &v }
	act := func(as ...*v1.Action) []*v1.Action { return as }
	drop := &v1.Action{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}
	encap := &v1.Action{Action: &v1.Action_TunnelEncap{TunnelEncap: &v1.TunnelEncap{Vni: vni, Src: vtepSrc, Dst: vtepPeer}}}
	toVX := &v1.Action{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: "vxlan0"}}}
	toVM := &v1.Action{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: port}}}
	decap := &v1.Action{Action: &v1.Action_TunnelDecap{TunnelDecap: &v1.TunnelDecap{}}}
	ct := func(commit bool) *v1.Action {
		return &v1.Action{Action: &v1.Action_Ct{Ct: &v1.Conntrack{Zone: 5, Commit: commit}}}
	}
	gotoChain := func(c uint32) *v1.Action { return &v1.Action{Action: &v1.Action_Goto{Goto: &v1.Goto{Chain: c}}} }
	tun := &v1.TunnelMatch{Vni: u(vni), DstPort: u(4789)}
	return []*v1.Flow{
		{Id: "vm1-acl-smtp", Port: port, Priority: 1, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", DstPort: u(25)}, Actions: act(drop)},
		{Id: "vm1-udp-out", Port: port, Priority: 5, Match: &v1.Match{EthType: "ipv4", IpProto: "udp", Ipv4Dst: peerIP}, Actions: act(encap, toVX)},
		{Id: "vm1-ct-out", Port: port, Priority: 10, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", CtState: "-trk"}, Actions: act(ct(false), gotoChain(1))},
		{Id: "vm1-est-out", Port: port, Chain: 1, Priority: 1, Match: &v1.Match{EthType: "ipv4", CtState: "+trk+est"}, Actions: act(encap, toVX)},
		{Id: "vm1-new-out", Port: port, Chain: 1, Priority: 2, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", CtState: "+trk+new"}, Actions: act(ct(true), encap, toVX)},
		{Id: "vm1-udp-in", Port: "vxlan0", Priority: 90, Match: &v1.Match{EthType: "ipv4", IpProto: "udp", Ipv4Dst: vmIP, Tunnel: tun}, Actions: act(decap, toVM)},
		{Id: "vm1-est-in", Port: "vxlan0", Chain: 2, Priority: 1, Match: &v1.Match{EthType: "ipv4", Ipv4Dst: vmIP, CtState: "+trk+est", Tunnel: tun},
			Actions: act(decap, toVM)},
	}
}

// networkFlows are the per-network flows every node hosting VMs of VNI
// 100 has: TCP from the tunnel goes through conntrack zone 5 to chain 2,
// where each VM's flows pick their packets and the rest is dropped. They
// are no VM's port flows (they neither enter at nor send to a VM's port)
// and do not migrate. The chain's default drop is software-only: in
// hardware it would shadow the VM rules that run in software.
func networkFlows() []*v1.Flow {
	u := func(v uint32) *uint32 { return &v }
	return []*v1.Flow{
		{Id: "net100-default", Port: "vxlan0", Chain: 2, Priority: 65000, Policy: v1.PlacementPolicy_PLACEMENT_POLICY_SOFTWARE_ONLY,
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}},
		{Id: "net100-ct-in", Port: "vxlan0", Priority: 100,
			Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", CtState: "-trk", Tunnel: &v1.TunnelMatch{Vni: u(vni), DstPort: u(4789)}},
			Actions: []*v1.Action{{Action: &v1.Action_Ct{Ct: &v1.Conntrack{Zone: 5}}}, {Action: &v1.Action_Goto{Goto: &v1.Goto{Chain: 2}}}}},
	}
}

// probe is one packet of the constant traffic and where it must end up.
type probe struct {
	name  string
	port  string // where it enters
	frame []byte
	// want is the output port and kind; dropBy a flow that must drop it.
	want   string
	kind   datapath.OutputKind
	dropBy string
}

// probes builds the traffic of the VM on node n, whose VF netdev is vf.
func (n *trafficNode) probes(t *testing.T, vf string) []probe {
	t.Helper()
	build := func(port, spec string) []byte {
		f, err := n.dp.BuildSpec(port, spec)
		require.NoError(t, err, spec)
		return f
	}
	fromPeer := func(inner string) []byte {
		return build("p0", inner+fmt.Sprintf(",vni=%d,tun_src=%s,tun_dst=%s", vni, vtepPeer, vtepSrc))
	}
	ps := []probe{
		{name: "acl", port: vf, frame: build(vf, fmt.Sprintf("tcp,src=%s,dst=%s,dport=25,flags=S", vmIP, peerIP)), dropBy: "vm1-acl-smtp"},
		{name: "udp out", port: vf, frame: build(vf, fmt.Sprintf("udp,src=%s,dst=%s,sport=5000,dport=53", vmIP, peerIP)), want: "p0", kind: datapath.OutputWire},
		{name: "udp in", port: "p0", frame: fromPeer(fmt.Sprintf("udp,src=%s,dst=%s,sport=53,dport=5000", peerIP, vmIP)), want: vf, kind: datapath.OutputVM},
	}
	for i := range conns {
		sport := 40000 + i
		ps = append(ps,
			probe{name: fmt.Sprintf("tcp %d out", sport), port: vf, want: "p0", kind: datapath.OutputWire,
				frame: build(vf, fmt.Sprintf("tcp,src=%s,dst=%s,sport=%d,dport=80,flags=PA,len=100", vmIP, peerIP, sport))},
			probe{name: fmt.Sprintf("tcp %d in", sport), port: "p0", want: vf, kind: datapath.OutputVM,
				frame: fromPeer(fmt.Sprintf("tcp,src=%s,dst=%s,sport=80,dport=%d,flags=PA,len=1000", peerIP, vmIP, sport))})
	}
	return ps
}

// check reports what went wrong with a probe's trace, "" when nothing.
func (p probe) check(tr *datapath.Trace) string {
	if p.dropBy != "" {
		if tr.Verdict == datapath.VerdictDropped && strings.Contains(tr.Reason, p.dropBy) {
			return ""
		}
		return fmt.Sprintf("%s: %s (%s), want a drop by %s", p.name, tr.Verdict, tr.Reason, p.dropBy)
	}
	for _, o := range tr.Outputs {
		if !o.Mirror && o.Port == p.want && o.Kind == p.kind {
			return ""
		}
	}
	return fmt.Sprintf("%s: %s (%s), want %s to %s", p.name, tr.Verdict, tr.Reason, p.kind, p.want)
}

// traffic sends probes round-robin from its own goroutine until stopped,
// on whichever node the VM currently runs, and counts losses.
type traffic struct {
	mu     sync.Mutex
	node   *trafficNode
	probes []probe
	paused bool

	sent, lost atomic.Int64
	failures   []string
	stop       chan struct{}
	done       chan struct{}
}

func startTraffic() *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go tr.run()
	return tr
}

// moveTo sends from now on to n's probes; nil pauses (the VM is paused).
func (tr *traffic) moveTo(n *trafficNode, ps []probe) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.node, tr.probes, tr.paused = n, ps, n == nil
}

func (tr *traffic) run() {
	defer close(tr.done)
	for i := 0; ; i++ {
		select {
		case <-tr.stop:
			return
		default:
		}
		tr.mu.Lock()
		n, ps := tr.node, tr.probes
		if n == nil || len(ps) == 0 {
			tr.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			continue
		}
		p := ps[i%len(ps)]
		res, err := n.dp.Send(p.port, p.frame)
		tr.sent.Add(1)
		why := ""
		if err != nil {
			why = p.name + ": " + err.Error()
		} else {
			why = p.check(res)
		}
		if why != "" {
			tr.lost.Add(1)
			if len(tr.failures) < 10 {
				tr.failures = append(tr.failures, n.name+": "+why)
			}
		}
		tr.mu.Unlock()
	}
}

// await lets at least n more packets go.
func (tr *traffic) await(t *testing.T, n int64) {
	t.Helper()
	want := tr.sent.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for tr.sent.Load() < want {
		require.True(t, time.Now().Before(deadline), "traffic stalled")
		time.Sleep(200 * time.Microsecond)
	}
}

func (tr *traffic) halt() {
	close(tr.stop)
	<-tr.done
}

func (tr *traffic) report() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return fmt.Sprintf("%d of %d packets lost: %s", tr.lost.Load(), tr.sent.Load(), strings.Join(tr.failures, "; "))
}

// establish opens the VM's TCP connections on node n through the datapath:
// handshake, then data both ways until conntrack offloads them.
func (n *trafficNode) establish(t *testing.T, vf string) {
	t.Helper()
	send := func(port, spec string, want datapath.OutputKind) {
		t.Helper()
		tr, err := n.dp.InjectSpec(port, spec)
		require.NoError(t, err)
		ok := false
		for _, o := range tr.Outputs {
			ok = ok || o.Kind == want
		}
		require.True(t, ok, "%s on %s:\n%s", spec, port, tr)
	}
	peer := fmt.Sprintf(",vni=%d,tun_src=%s,tun_dst=%s", vni, vtepPeer, vtepSrc)
	for i := range conns {
		sport := 40000 + i
		out := fmt.Sprintf("tcp,src=%s,dst=%s,sport=%d,dport=80,", vmIP, peerIP, sport)
		in := fmt.Sprintf("tcp,src=%s,dst=%s,sport=80,dport=%d,", peerIP, vmIP, sport)
		send(vf, out+"flags=S", datapath.OutputWire)
		send("p0", in+"flags=SA"+peer, datapath.OutputVM)
		send(vf, out+"flags=A", datapath.OutputWire)
		send(vf, out+"flags=PA,len=10", datapath.OutputWire)
		send("p0", in+"flags=PA,len=10"+peer, datapath.OutputVM)
	}
	es := n.dp.Conntrack().Entries(n.dp.Now())
	require.Len(t, es, conns)
	for _, e := range es {
		require.Equal(t, "ESTABLISHED", e.TCPState.String(), e.String())
	}
}

// placements is where each of the VM's flows runs on the node.
func (n *trafficNode) placements(t *testing.T) map[string]string {
	t.Helper()
	resp, err := n.fc.ListFlows(context.Background(), &v1.ListFlowsRequest{IdPrefix: "vm1-"})
	require.NoError(t, err)
	out := map[string]string{}
	for _, st := range resp.GetFlows() {
		out[st.GetFlow().GetId()] = fmt.Sprintf("%s gen %d", st.GetState(), st.GetGeneration())
	}
	return out
}

func TestMigrationWithTraffic(t *testing.T) {
	ctx := context.Background()
	clock := datapath.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	net := bufNet{}
	src, dst := newTrafficNode(t, net, "src", clock), newTrafficNode(t, net, "dst", clock)
	src.applyFlows(t, append(networkFlows(), vmFlows("pf0vf3")...)...)
	dst.applyFlows(t, networkFlows()...)
	dst.applyFlows(t, &v1.Flow{Id: "other-vm", Port: "pf0vf0", Priority: 1, Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
	srcVF := "enp8s0f0v3"
	src.establish(t, srcVF)
	before := src.placements(t)
	require.Equal(t, "FLOW_STATE_HARDWARE gen 1", before["vm1-est-out"])
	require.Equal(t, "FLOW_STATE_HARDWARE gen 1", before["vm1-est-in"])

	tr := startTraffic()
	defer tr.halt()
	tr.moveTo(src, src.probes(t, srcVF))
	tr.await(t, 500)
	require.Zero(t, tr.lost.Load(), "steady state: %s", tr.report())

	prep, err := dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	dstVF := prep.GetVf().GetNetdev()
	require.Equal(t, "pf0vf1", prep.GetPort())

	// Drain while the VM talks: not a packet lost.
	tr.await(t, 200)
	_, err = src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf3"})
	require.NoError(t, err)
	tr.await(t, 500)
	require.Zero(t, tr.lost.Load(), "drain: %s", tr.report())
	for id, p := range src.placements(t) {
		require.True(t, strings.HasPrefix(p, "FLOW_STATE_SOFTWARE"), "%s: %s", id, p)
	}

	// The guest is paused for the switchover: the last state is exported.
	tr.moveTo(nil, nil)
	ex, err := src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: "dst"})
	require.NoError(t, err)
	require.Equal(t, uint32(conns), ex.GetForwarded().GetConntrackCreated())

	// The guest resumes on the destination before its VF is attached: the
	// flows run in software there, and established connections pass with
	// no new SYN.
	clock.Advance(time.Second)
	trace, err := dst.dp.InjectSpec(dstVF, fmt.Sprintf("tcp,src=%s,dst=%s,sport=40000,dport=80,flags=PA,len=100", vmIP, peerIP))
	require.NoError(t, err)
	require.Equal(t, datapath.VerdictForwarded, trace.Verdict, "%s", trace)
	require.True(t, trace.SoftwarePath)
	tr.moveTo(dst, dst.probes(t, dstVF))
	tr.await(t, 500)
	require.Zero(t, tr.lost.Load(), "after the switchover: %s", tr.report())

	// Re-offload while the VM talks: not a packet lost, and the same
	// placements and generations as on the source.
	_, err = dst.mc.ReoffloadMigration(ctx, &v1.ReoffloadMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	tr.await(t, 1000)
	require.Zero(t, tr.lost.Load(), "re-offload: %s", tr.report())
	assert.Equal(t, before, dst.placements(t))

	_, err = src.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	_, err = dst.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "m1"})
	require.NoError(t, err)
	tr.await(t, 500)
	require.Zero(t, tr.lost.Load(), "after commit: %s", tr.report())
	assert.Empty(t, src.placements(t))
	assert.Empty(t, src.dp.Conntrack().Entries(clock.Now()))

	// Once the connections are offloaded again, the traffic runs in hardware.
	trace, err = dst.dp.InjectSpec(dstVF, fmt.Sprintf("tcp,src=%s,dst=%s,sport=40001,dport=80,flags=PA,len=100", vmIP, peerIP))
	require.NoError(t, err)
	assert.False(t, trace.SoftwarePath, "%s", trace)
	t.Logf("%d packets, none lost", tr.sent.Load())
}

// nodeState renders what a node holds: every flow with its placement and
// generation, both NIC planes, and the conntrack table without timeouts.
func (n *trafficNode) nodeState(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, st := range n.eng.List(offload.Filter{}) {
		lines = append(lines, fmt.Sprintf("flow %s %s gen %d", st.Flow.ID, st.State, st.Generation))
	}
	for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
		inst, err := n.dev.Flows(context.Background(), plane)
		require.NoError(t, err)
		for _, in := range inst {
			lines = append(lines, fmt.Sprintf("%s %s", plane, in.Flow.ID))
		}
	}
	for _, e := range n.dp.Conntrack().Entries(n.dp.Now()) {
		e.Timeout = 0
		lines = append(lines, "conn "+e.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// packets sums a flow's hardware and software packet counters.
func (n *trafficNode) packets(t *testing.T, id string) (hw, sw uint64) {
	t.Helper()
	require.NoError(t, n.eng.RefreshStats(context.Background()))
	st, ok := n.eng.Get(id)
	require.True(t, ok, id)
	return st.HW.Packets, st.SW.Packets
}

// TestMigrationAbortWithTraffic aborts after each step while the VM keeps
// talking on the source, and checks that no packet is lost, that both
// nodes hold exactly what they held before, and that the flows keep
// counting in hardware.
func TestMigrationAbortWithTraffic(t *testing.T) {
	steps := []string{"prepare", "drain", "export", "import", "reoffload"}
	for k := range steps {
		t.Run("after "+steps[k], func(t *testing.T) {
			ctx := context.Background()
			clock := datapath.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
			net := bufNet{}
			src, dst := newTrafficNode(t, net, "src", clock), newTrafficNode(t, net, "dst", clock)
			src.applyFlows(t, append(networkFlows(), vmFlows("pf0vf3")...)...)
			dst.applyFlows(t, networkFlows()...)
			src.establish(t, "enp8s0f0v3")
			tr := startTraffic()
			defer tr.halt()
			tr.moveTo(src, src.probes(t, "enp8s0f0v3"))
			tr.await(t, 200)
			srcBefore, dstBefore := src.nodeState(t), dst.nodeState(t)

			var bundle *v1.MigrationBundle
			for _, step := range steps[:k+1] {
				var err error
				switch step {
				case "prepare":
					_, err = dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3"})
				case "drain":
					_, err = src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf3"})
				case "export":
					var ex *v1.ExportMigrationResponse
					ex, err = src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1"})
					bundle = ex.GetBundle()
				case "import":
					_, err = dst.mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: "m1", Bundle: bundle})
				case "reoffload":
					_, err = dst.mc.ReoffloadMigration(ctx, &v1.ReoffloadMigrationRequest{MigrationId: "m1"})
				}
				require.NoError(t, err, step)
				tr.await(t, 200)
			}
			hwBefore, swBefore := src.packets(t, "vm1-udp-out")
			if k >= 1 {
				require.NotEqual(t, srcBefore, src.nodeState(t), "drained")
			}
			if k >= 3 {
				require.NotEqual(t, dstBefore, dst.nodeState(t), "imported")
			}

			_, err := dst.mc.AbortMigration(ctx, &v1.AbortMigrationRequest{MigrationId: "m1"})
			require.NoError(t, err)
			ab, err := src.mc.AbortMigration(ctx, &v1.AbortMigrationRequest{MigrationId: "m1"})
			require.NoError(t, err)
			assert.Empty(t, ab.GetNotRestored())
			tr.await(t, 500)
			require.Zero(t, tr.lost.Load(), tr.report())

			tr.moveTo(nil, nil)
			assert.Equal(t, srcBefore, src.nodeState(t))
			assert.Equal(t, dstBefore, dst.nodeState(t))
			// The restored hardware copy counts the traffic again; what
			// software counted while drained stays in the flow's software counter.
			hw, sw := src.packets(t, "vm1-udp-out")
			assert.Positive(t, hw)
			assert.GreaterOrEqual(t, sw, swBefore)
			if k == 0 {
				assert.Greater(t, hw, hwBefore, "never drained: the same hardware copy counts on")
			}
		})
	}
}
