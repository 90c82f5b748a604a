// Command migration measures the live-migration handoff on the emulated
// backend: two in-process daemons (emulated ConnectX-6 Dx with its packet
// datapath, engine, migrator and gRPC API on unix sockets), a VM port with
// N flows and C established TCP connections, and constant traffic through
// the VM's ACL, VXLAN and conntrack flows while the handoff runs. For each
// N it reports the time of every step and of the whole handoff, and the
// packets sent and lost (the target is 0). Figures go to stdout as a table
// and to OUT/migration.json.
//
//	go run ./hack/bench/migration [-flows 1000,10000] [-conns 1000] [-out _out/bench]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/offloadd/offloadd/api"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/fallback"
	"github.com/offloadd/offloadd/hack/bench/report"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload"
)

// Figure is one measured number.
type Figure = report.Figure

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	flows := flag.String("flows", "1000,10000", "comma-separated flow counts of the migrating port")
	conns := flag.Int("conns", 1000, "established TCP connections of the migrating VM")
	out := flag.String("out", "_out/bench", "directory for migration.json")
	flag.Parse()
	var ns []int
	for _, s := range strings.Split(*flows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < len(vmFlows("x")) {
			fail(fmt.Errorf("-flows: %q is not a count of at least %d", s, len(vmFlows("x"))))
		}
		ns = append(ns, n)
	}
	if *conns < 1 || *conns > 20000 {
		fail(fmt.Errorf("-conns: %d is not between 1 and 20000", *conns))
	}
	rep := report.New()
	for _, n := range ns {
		fmt.Fprintf(os.Stderr, "== handoff of a port with %d flows and %d connections, under traffic\n", n, *conns)
		fs, err := run(context.Background(), n, *conns)
		if err != nil {
			fail(err)
		}
		for _, f := range fs {
			fmt.Fprintf(os.Stderr, "  %-52s %12.1f %s\n", f.Name, f.Value, f.Unit)
			rep.Add(f)
		}
	}
	path, err := rep.Write(*out, "migration.json")
	if err != nil {
		fail(err)
	}
	rep.Print(os.Stdout)
	fmt.Printf("\n(figures written to %s)\n", path)
	if rep.Missed() {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench migration:", err)
	os.Exit(1)
}

// node is one in-process daemon with a datapath.
type node struct {
	name string
	dev  *emulated.Device
	dp   *datapath.Datapath
	eng  *offload.Engine
	mc   v1.MigrationServiceClient
	fc   v1.FlowServiceClient
	sock string
	stop func()
}

func newNode(dir, name string, table int, clock *datapath.ManualClock) (*node, error) {
	cfg := emulated.DefaultConfig()
	cfg.HWTableSize = table
	dev, err := emulated.New(cfg, nil)
	if err != nil {
		return nil, err
	}
	dp, err := datapath.New(dev, datapath.Config{Now: clock.Now,
		Neighbours: []datapath.Neighbour{{IP: netip.MustParseAddr(vtepPeer), MAC: [6]byte{2, 0xaa, 0, 0, 0, 2}}}})
	if err != nil {
		return nil, err
	}
	eng, err := offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: quiet})
	if err != nil {
		return nil, err
	}
	vfs := fallback.NewEmulatedVFs(dev, func(rep string) bool { return len(eng.List(offload.Filter{Port: rep})) > 0 })
	mig, err := fallback.NewMigrator(fallback.MigratorConfig{Engine: eng, VFs: vfs, Node: name, Logger: quiet,
		Conntrack: fallback.NewEmulatedConns(dp.Conntrack(), clock.Now), Now: clock.Now})
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, name+".sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	const max = 256 << 20
	gs := grpc.NewServer(append(api.ServerOptions(), grpc.MaxRecvMsgSize(max), grpc.MaxSendMsgSize(max))...)
	api.NewServer(eng, eng, api.WithLogger(quiet)).Register(gs)
	api.NewMigrationService(mig, api.WithMigrationLogger(quiet), api.WithPeers(sockPeers(dir))).Register(gs)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(max), grpc.MaxCallSendMsgSize(max)))
	if err != nil {
		return nil, err
	}
	return &node{name: name, dev: dev, dp: dp, eng: eng, sock: sock,
		mc: v1.NewMigrationServiceClient(conn), fc: v1.NewFlowServiceClient(conn),
		stop: func() { conn.Close(); gs.Stop(); eng.Close(); dev.Close() }}, nil
}

// sockPeers are the bench's daemons as migration peers: the one named N
// listens on DIR/N.sock, and the bench, not a client, chose that path.
type sockPeers string

func (d sockPeers) HasPeer(name string) bool {
	_, err := os.Stat(filepath.Join(string(d), name+".sock"))
	return err == nil
}

func (d sockPeers) DialPeer(_ context.Context, name string) (*grpc.ClientConn, error) {
	const max = 256 << 20
	return grpc.NewClient("unix:"+filepath.Join(string(d), name+".sock"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(max), grpc.MaxCallSendMsgSize(max)))
}

func (n *node) apply(ctx context.Context, fs []*v1.Flow) error {
	for len(fs) > 0 {
		k := min(len(fs), 1000)
		if _, err := n.fc.ApplyFlows(ctx, &v1.ApplyFlowsRequest{Flows: fs[:k], Atomic: true}); err != nil {
			return fmt.Errorf("apply flows on %s: %w", n.name, err)
		}
		fs = fs[k:]
	}
	return nil
}

// run measures one handoff of a port with nFlows flows.
func run(ctx context.Context, nFlows, nConns int) ([]Figure, error) {
	dir, err := os.MkdirTemp("", "bench-migration")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	clock := datapath.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	src, err := newNode(dir, "src", 4*nFlows, clock)
	if err != nil {
		return nil, err
	}
	defer src.stop()
	dst, err := newNode(dir, "dst", 4*nFlows, clock)
	if err != nil {
		return nil, err
	}
	defer dst.stop()
	if err := src.apply(ctx, append(networkFlows(), workload("pf0vf3", nFlows)...)); err != nil {
		return nil, err
	}
	if err := dst.apply(ctx, networkFlows()); err != nil {
		return nil, err
	}
	const srcVF = "enp8s0f0v3"
	if err := establish(src.dp, srcVF, nConns); err != nil {
		return nil, err
	}
	ps, err := probes(src.dp, srcVF, nConns)
	if err != nil {
		return nil, err
	}
	tr := startTraffic(src, ps)
	defer tr.halt()
	tr.await(2000)
	if lost := tr.lost.Load(); lost > 0 {
		return nil, fmt.Errorf("steady state before the handoff lost %d packets: %s", lost, tr.report())
	}
	sentBefore := tr.sent.Load()

	var figs []Figure
	tag := fmt.Sprintf("%d flows", nFlows)
	timed := func(step string, fn func() error) error {
		start := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		figs = append(figs, Figure{Name: fmt.Sprintf("migration %s: %s", tag, step), Value: ms(time.Since(start)), Unit: "ms"})
		return nil
	}
	start := time.Now()
	var prep *v1.PrepareMigrationResponse
	var bundleBytes int
	steps := []struct {
		name string
		fn   func() error
	}{
		{"prepare (destination)", func() error {
			var err error
			prep, err = dst.mc.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3"})
			return err
		}},
		{"drain (source)", func() error {
			_, err := src.mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf3"})
			return err
		}},
		{"export + import (source forwards)", func() error {
			tr.moveTo(nil, nil) // the guest is paused for the switchover
			ex, err := src.mc.ExportMigration(ctx, &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: dst.name})
			if err != nil {
				return err
			}
			bundleBytes = len(ex.GetBundle().GetContent())
			ps, err := probes(dst.dp, prep.GetVf().GetNetdev(), nConns)
			if err != nil {
				return err
			}
			tr.moveTo(dst, ps) // it resumes on the destination, on its virtio path
			return nil
		}},
		{"reoffload (destination)", func() error {
			_, err := dst.mc.ReoffloadMigration(ctx, &v1.ReoffloadMigrationRequest{MigrationId: "m1"})
			return err
		}},
		{"commit (source)", func() error {
			_, err := src.mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: "m1"})
			return err
		}},
	}
	for _, s := range steps {
		if err := timed(s.name, s.fn); err != nil {
			return nil, err
		}
	}
	total := time.Since(start)
	tr.await(2000)
	tr.halt()
	sent, lost := tr.sent.Load()-sentBefore, tr.lost.Load()
	hw, err := dst.fc.ListFlows(ctx, &v1.ListFlowsRequest{IdPrefix: "vm1-", State: v1.FlowState_FLOW_STATE_HARDWARE, PageSize: 10000})
	if err != nil {
		return nil, err
	}
	figs = append(figs,
		Figure{Name: fmt.Sprintf("migration %s: handoff, prepare to commit", tag), Value: ms(total), Unit: "ms",
			Note: fmt.Sprintf("%d conntrack entries, bundle %d bytes, %d flows in hardware at the destination", nConns, bundleBytes, len(hw.GetFlows()))},
		Figure{Name: fmt.Sprintf("migration %s: packets sent during the handoff", tag), Value: float64(sent), Unit: "packets"},
		Figure{Name: fmt.Sprintf("migration %s: packets lost", tag), Value: float64(lost), Unit: "packets", Target: "0", Met: met(lost == 0),
			Note: tr.report()})
	return figs, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func met(ok bool) *bool { return &ok }

const (
	vmIP     = "10.0.0.3"
	peerIP   = "10.0.1.7"
	vtepSrc  = "192.0.2.1"
	vtepPeer = "192.0.2.2"
	vni      = 100
)

func u32(v uint32) *uint32 { return &v }

// networkFlows are per-network flows on both nodes: tunnel TCP through
// conntrack zone 5 into chain 2, whose default drop is software-only.
func networkFlows() []*v1.Flow {
	return []*v1.Flow{
		{Id: "net100-default", Port: "vxlan0", Chain: 2, Priority: 65000, Policy: v1.PlacementPolicy_PLACEMENT_POLICY_SOFTWARE_ONLY,
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}},
		{Id: "net100-ct-in", Port: "vxlan0", Priority: 100,
			Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", CtState: "-trk", Tunnel: &v1.TunnelMatch{Vni: u32(vni), DstPort: u32(4789)}},
			Actions: []*v1.Action{{Action: &v1.Action_Ct{Ct: &v1.Conntrack{Zone: 5}}}, {Action: &v1.Action_Goto{Goto: &v1.Goto{Chain: 2}}}}},
	}
}

// vmFlows are the VM's traffic flows on port: ACL, VXLAN UDP both ways,
// TCP through conntrack with software copies of the established rules.
func vmFlows(port string) []*v1.Flow {
	act := func(as ...*v1.Action) []*v1.Action { return as }
	drop := &v1.Action{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}
	encap := &v1.Action{Action: &v1.Action_TunnelEncap{TunnelEncap: &v1.TunnelEncap{Vni: vni, Src: vtepSrc, Dst: vtepPeer}}}
	toVX := &v1.Action{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: "vxlan0"}}}
	toVM := &v1.Action{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: port}}}
	decap := &v1.Action{Action: &v1.Action_TunnelDecap{TunnelDecap: &v1.TunnelDecap{}}}
	ct := func(commit bool) *v1.Action {
		return &v1.Action{Action: &v1.Action_Ct{Ct: &v1.Conntrack{Zone: 5, Commit: commit}}}
	}
	tun := &v1.TunnelMatch{Vni: u32(vni), DstPort: u32(4789)}
	return []*v1.Flow{
		{Id: "vm1-acl-smtp", Port: port, Priority: 1, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", DstPort: u32(25)}, Actions: act(drop)},
		{Id: "vm1-udp-out", Port: port, Priority: 5, Match: &v1.Match{EthType: "ipv4", IpProto: "udp", Ipv4Dst: peerIP}, Actions: act(encap, toVX)},
		{Id: "vm1-ct-out", Port: port, Priority: 10, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", CtState: "-trk"},
			Actions: act(ct(false), &v1.Action{Action: &v1.Action_Goto{Goto: &v1.Goto{Chain: 1}}})},
		{Id: "vm1-est-out", Port: port, Chain: 1, Priority: 1, Match: &v1.Match{EthType: "ipv4", CtState: "+trk+est"}, Actions: act(encap, toVX)},
		{Id: "vm1-new-out", Port: port, Chain: 1, Priority: 2, Match: &v1.Match{EthType: "ipv4", IpProto: "tcp", CtState: "+trk+new"}, Actions: act(ct(true), encap, toVX)},
		{Id: "vm1-udp-in", Port: "vxlan0", Priority: 90, Match: &v1.Match{EthType: "ipv4", IpProto: "udp", Ipv4Dst: vmIP, Tunnel: tun}, Actions: act(decap, toVM)},
		{Id: "vm1-est-in", Port: "vxlan0", Chain: 2, Priority: 1, Match: &v1.Match{EthType: "ipv4", Ipv4Dst: vmIP, CtState: "+trk+est", Tunnel: tun}, Actions: act(decap, toVM)},
	}
}

// workload is vmFlows plus ACLs up to n flows: half drop traffic to
// addresses the probes never use, half redirect such traffic from the
// uplink to the port.
func workload(port string, n int) []*v1.Flow {
	fs := vmFlows(port)
	for i := 0; len(fs) < n; i++ {
		dst := fmt.Sprintf("10.200.%d.%d", i>>8&0xff, i&0xff)
		if i%2 == 0 {
			fs = append(fs, &v1.Flow{Id: fmt.Sprintf("vm1-acl-%05d", i), Port: port, Priority: 2,
				Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", Ipv4Dst: dst, DstPort: u32(uint32(i%60000 + 1024))},
				Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
			continue
		}
		fs = append(fs, &v1.Flow{Id: fmt.Sprintf("vm1-in-%05d", i), Port: "p0", Priority: 2,
			Match:   &v1.Match{EthType: "ipv4", IpProto: "udp", Ipv4Dst: dst, DstPort: u32(uint32(i%60000 + 1024))},
			Actions: []*v1.Action{{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: port}}}}})
	}
	return fs
}

// establish opens n TCP connections of the VM through the datapath.
func establish(dp *datapath.Datapath, vf string, n int) error {
	peer := fmt.Sprintf(",vni=%d,tun_src=%s,tun_dst=%s", vni, vtepPeer, vtepSrc)
	for i := range n {
		sport := 20000 + i
		out := fmt.Sprintf("tcp,src=%s,dst=%s,sport=%d,dport=80,", vmIP, peerIP, sport)
		in := fmt.Sprintf("tcp,src=%s,dst=%s,sport=80,dport=%d,", peerIP, vmIP, sport)
		for _, s := range []struct{ port, spec string }{
			{vf, out + "flags=S"}, {"p0", in + "flags=SA" + peer}, {vf, out + "flags=A"},
			{vf, out + "flags=PA,len=10"}, {"p0", in + "flags=PA,len=10" + peer},
		} {
			tr, err := dp.InjectSpec(s.port, s.spec)
			if err != nil {
				return err
			}
			if tr.Verdict != datapath.VerdictForwarded {
				return fmt.Errorf("connection %d: %s on %s: %s (%s)", i, s.spec, s.port, tr.Verdict, tr.Reason)
			}
		}
	}
	return nil
}

// probe is one packet of the constant traffic and where it must go.
type probe struct {
	name, port string
	frame      []byte
	want       string
	kind       datapath.OutputKind
	dropBy     string
}

func (p probe) check(tr *datapath.Trace) string {
	if p.dropBy != "" {
		if tr.Verdict == datapath.VerdictDropped && strings.Contains(tr.Reason, p.dropBy) {
			return ""
		}
		return fmt.Sprintf("%s: %s (%s)", p.name, tr.Verdict, tr.Reason)
	}
	for _, o := range tr.Outputs {
		if !o.Mirror && o.Port == p.want && o.Kind == p.kind {
			return ""
		}
	}
	return fmt.Sprintf("%s: %s (%s)", p.name, tr.Verdict, tr.Reason)
}

// probes is the VM's traffic on a node: ACL, UDP both ways, and data both
// ways on every connection.
func probes(dp *datapath.Datapath, vf string, n int) ([]probe, error) {
	var ps []probe
	var err error
	add := func(name, port, spec, want string, kind datapath.OutputKind, dropBy string) {
		if err != nil {
			return
		}
		var f []byte
		f, err = dp.BuildSpec(port, spec)
		ps = append(ps, probe{name: name, port: port, frame: f, want: want, kind: kind, dropBy: dropBy})
	}
	peer := fmt.Sprintf(",vni=%d,tun_src=%s,tun_dst=%s", vni, vtepPeer, vtepSrc)
	add("acl", vf, fmt.Sprintf("tcp,src=%s,dst=%s,dport=25,flags=S", vmIP, peerIP), "", 0, "vm1-acl-smtp")
	add("udp out", vf, fmt.Sprintf("udp,src=%s,dst=%s,sport=5000,dport=53", vmIP, peerIP), "p0", datapath.OutputWire, "")
	add("udp in", "p0", fmt.Sprintf("udp,src=%s,dst=%s,sport=53,dport=5000", peerIP, vmIP)+peer, vf, datapath.OutputVM, "")
	for i := range n {
		sport := 20000 + i
		add(fmt.Sprintf("tcp %d out", sport), vf, fmt.Sprintf("tcp,src=%s,dst=%s,sport=%d,dport=80,flags=PA,len=100", vmIP, peerIP, sport),
			"p0", datapath.OutputWire, "")
		add(fmt.Sprintf("tcp %d in", sport), "p0", fmt.Sprintf("tcp,src=%s,dst=%s,sport=80,dport=%d,flags=PA,len=1000", peerIP, vmIP, sport)+peer,
			vf, datapath.OutputVM, "")
	}
	return ps, err
}

// traffic sends probes round-robin on the node the VM runs on.
type traffic struct {
	mu       sync.Mutex
	node     *node
	probes   []probe
	sent     atomic.Int64
	lost     atomic.Int64
	failures []string
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func startTraffic(n *node, ps []probe) *traffic {
	tr := &traffic{node: n, probes: ps, stop: make(chan struct{}), done: make(chan struct{})}
	go tr.run()
	return tr
}

func (tr *traffic) moveTo(n *node, ps []probe) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.node, tr.probes = n, ps
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
		if tr.node == nil || len(tr.probes) == 0 {
			tr.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			continue
		}
		p := tr.probes[i%len(tr.probes)]
		res, err := tr.node.dp.Send(p.port, p.frame)
		tr.sent.Add(1)
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			why = p.check(res)
		}
		if why != "" {
			tr.lost.Add(1)
			if len(tr.failures) < 5 {
				tr.failures = append(tr.failures, tr.node.name+": "+why)
			}
		}
		tr.mu.Unlock()
	}
}

func (tr *traffic) await(n int64) {
	want := tr.sent.Load() + n
	for deadline := time.Now().Add(30 * time.Second); tr.sent.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

func (tr *traffic) halt() {
	tr.once.Do(func() {
		close(tr.stop)
		<-tr.done
	})
}

func (tr *traffic) report() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.failures) == 0 {
		return ""
	}
	return strings.Join(tr.failures, "; ")
}
