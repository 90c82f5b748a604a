package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// Config is one run's settings.
type Config struct {
	// Binary is the offloadd to run; empty builds ./cmd/offloadd.
	Binary string
	// Dir holds the state directory, socket, logs and the built binary.
	Dir string
	// Rounds is how many times the daemon is killed and restarted.
	Rounds int
	// Clients issue requests concurrently, each on its own flow IDs.
	Clients int
	// IDs is how many flow IDs each client uses.
	IDs int
	// Batch is the most flows per request.
	Batch int
	// KillMin and KillMax bound the time from a start to its SIGKILL.
	KillMin, KillMax time.Duration
	// DiskFull, when set, is the size of a tmpfs (e.g. "256k") mounted
	// for the state directory. Needs root.
	DiskFull string
	// Seed makes a run repeatable (up to scheduling).
	Seed uint64
	// Log receives progress lines.
	Log io.Writer
}

func main() {
	var c Config
	flag.StringVar(&c.Binary, "binary", "", "offloadd binary (default: build ./cmd/offloadd into --dir)")
	flag.StringVar(&c.Dir, "dir", "", "work directory (default: a new temporary directory, removed at the end)")
	flag.IntVar(&c.Rounds, "rounds", 20, "kill/restart rounds")
	flag.IntVar(&c.Clients, "clients", 4, "concurrent clients")
	flag.IntVar(&c.IDs, "ids", 200, "flow IDs per client")
	flag.IntVar(&c.Batch, "batch", 8, "most flows per ApplyFlows/DeleteFlows request")
	flag.DurationVar(&c.KillMin, "kill-min", 100*time.Millisecond, "shortest time from a start to its SIGKILL")
	flag.DurationVar(&c.KillMax, "kill-max", 1500*time.Millisecond, "longest time from a start to its SIGKILL")
	flag.StringVar(&c.DiskFull, "disk-full", "", "put the state directory on a tmpfs of this size (e.g. 256k; needs root)")
	flag.Uint64Var(&c.Seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	var g GreedyConfig
	greedy := flag.Bool("greedy", false, "instead: measure what stuck watchers and listing clients cost (see --flows, --watchers, --listers)")
	flag.IntVar(&g.Flows, "flows", 200000, "greedy: flows installed")
	flag.IntVar(&g.Watchers, "watchers", 20, "greedy: watchers that never read")
	flag.IntVar(&g.Listers, "listers", 4, "greedy: clients listing every flow in pages of 1,000")
	flag.DurationVar(&g.Duration, "duration", 10*time.Second, "greedy: how long single-flow applies are timed under the listers")
	flag.Parse()
	c.Log = os.Stderr
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "crashcheck-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashcheck:", err)
			os.Exit(2)
		}
		defer os.RemoveAll(d)
		c.Dir = d
	}
	if *greedy {
		g.Dir, g.Binary, g.Log = c.Dir, c.Binary, c.Log
		r, err := RunGreedy(context.Background(), g)
		r.print(os.Stdout, g)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crashcheck:", err)
			os.Exit(2)
		}
		return
	}
	st, problems, err := Run(context.Background(), c)
	printReport(os.Stdout, c, st, problems)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashcheck:", err)
		os.Exit(2)
	}
	if st.Lost+st.Unexpected+st.Duplicates+st.AtomicViolations > 0 {
		os.Exit(1)
	}
}

func printReport(w io.Writer, c Config, s stats, problems []string) {
	mode := "normal"
	if c.DiskFull != "" {
		mode = "disk-full (state dir on a " + c.DiskFull + " tmpfs)"
	}
	fmt.Fprintf(w, "mode %s, seed %d, clients %d, ids/client %d, batch ≤%d\n", mode, c.Seed, c.Clients, c.IDs, c.Batch)
	fmt.Fprintf(w, "rounds %d, SIGKILLs %d\n", s.Rounds, s.Kills)
	fmt.Fprintf(w, "acknowledged flow changes %d (atomic batches %d)\n", s.AckedChanges, s.AckedAtomicBatches)
	fmt.Fprintf(w, "requests without an answer %d (found applied %d, not applied %d)\n", s.UnknownRequests, s.UnknownApplied, s.UnknownDropped)
	fmt.Fprintf(w, "save errors in the daemon's log %d\n", s.SaveErrorsLogged)
	fmt.Fprintf(w, "LOST acknowledged changes %d, deleted flows back %d, duplicates %d, atomic batches half applied %d\n",
		s.Lost, s.Unexpected, s.Duplicates, s.AtomicViolations)
	fmt.Fprintf(w, "flows at the end %d\n", s.FlowsAtEnd)
	for _, p := range problems {
		fmt.Fprintln(w, "  ", p)
	}
}

// Run runs the check and returns its figures and the first problems
// found. The error is for a run that could not be carried out.
func Run(ctx context.Context, c Config) (stats, []string, error) {
	j := newJournal()
	rng := rand.New(rand.NewPCG(c.Seed, 13))
	if c.Binary == "" {
		c.Binary = filepath.Join(c.Dir, "offloadd")
		if err := build(ctx, c.Binary); err != nil {
			return j.stats, nil, err
		}
	}
	stateDir := filepath.Join(c.Dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return j.stats, nil, err
	}
	if _, err := os.Stat(filepath.Join(stateDir, "state.db")); err == nil {
		return j.stats, nil, fmt.Errorf("%s holds a state file of an earlier run: the journal starts empty; use a new --dir", stateDir)
	}
	if c.DiskFull != "" {
		unmount, err := mountTmpfs(stateDir, c.DiskFull)
		if err != nil {
			return j.stats, nil, err
		}
		defer unmount()
	}
	logPath := filepath.Join(c.Dir, "offloadd.log")
	d := &daemon{bin: c.Binary, stateDir: stateDir, sock: filepath.Join(c.Dir, "offloadd.sock"), logPath: logPath}
	defer d.stop()

	vers := make([]uint32, c.Clients)
	for round := range c.Rounds + 1 {
		if err := d.start(ctx); err != nil {
			return j.stats, j.problems, fmt.Errorf("round %d: %w", round, err)
		}
		listed, err := d.list(ctx)
		if err != nil {
			return j.stats, j.problems, fmt.Errorf("round %d: list flows: %w", round, err)
		}
		j.check(round, listed)
		if round == c.Rounds {
			j.stats.FlowsAtEnd = len(listed)
			break
		}
		j.stats.Rounds++
		killAt := c.KillMin + time.Duration(rng.Int64N(int64(c.KillMax-c.KillMin)+1))
		lctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for cl := range c.Clients {
			wg.Go(func() {
				client(lctx, d.flows, j, c, cl, &vers[cl], rand.New(rand.NewPCG(c.Seed, uint64(round*1000+cl))))
			})
		}
		time.Sleep(killAt)
		if err := d.kill(); err != nil {
			cancel()
			return j.stats, j.problems, fmt.Errorf("round %d: %w", round, err)
		}
		j.stats.Kills++
		wg.Wait()
		cancel()
		fmt.Fprintf(c.Log, "round %d: killed after %v; %d acknowledged changes so far\n", round, killAt.Round(time.Millisecond), j.stats.AckedChanges)
	}
	d.stop()
	if b, err := os.ReadFile(logPath); err == nil {
		j.stats.SaveErrorsLogged = strings.Count(string(b), "persist desired state")
	}
	return j.stats, j.problems, nil
}

// build builds ./cmd/offloadd of this module to bin.
func build(ctx context.Context, bin string) error {
	gocmd := "go"
	// go test and go run set GOROOT: build with the same toolchain.
	if g := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(g); err == nil {
			gocmd = g
		}
	}
	cmd := exec.CommandContext(ctx, gocmd, "build", "-o", bin, "github.com/offloadd/offloadd/cmd/offloadd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build offloadd: %w", err)
	}
	return nil
}

// client sends requests on its own IDs until ctx ends or a request gets
// no answer (the daemon died, or failed it).
// ver counts the client's flow versions over the run (24 bits are used).
func client(ctx context.Context, flows v1.FlowServiceClient, j *journal, c Config, cl int, ver *uint32, rng *rand.Rand) {
	for ctx.Err() == nil {
		n := 1 + rng.IntN(c.Batch)
		seen := map[string]bool{}
		var ids []string
		for range n {
			id := fmt.Sprintf("c%02d-f%04d", cl, rng.IntN(c.IDs))
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		o := &op{ids: ids, new: map[string]state{}}
		var err error
		if rng.IntN(4) == 0 {
			for _, id := range ids {
				o.new[id] = state{}
			}
			err = deleteFlows(ctx, flows, j, ids)
		} else {
			o.atomic = rng.IntN(2) == 0
			err = applyFlows(ctx, flows, j, o, ver)
		}
		if err != nil {
			j.lost(o)
			return
		}
	}
}

// applyFlows applies o's flows, each with the next version from ver.
func applyFlows(ctx context.Context, flows v1.FlowServiceClient, j *journal, o *op, ver *uint32) error {
	req := &v1.ApplyFlowsRequest{Atomic: o.atomic}
	for i, id := range o.ids {
		*ver = (*ver + 1) & 0xffffff
		o.new[id] = state{present: true, ver: *ver}
		dst := netip.AddrFrom4([4]byte{10, byte(*ver >> 16), byte(*ver >> 8), byte(*ver)})
		req.Flows = append(req.Flows, &v1.Flow{Id: id, Port: fmt.Sprintf("pf0vf%d", i%4), Priority: 10,
			Match:   &v1.Match{EthType: "ipv4", Ipv4Dst: dst.String()},
			Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
	}
	resp, err := flows.ApplyFlows(ctx, req)
	if err != nil {
		return err
	}
	for _, r := range resp.GetResults() {
		switch r.GetOutcome() {
		case v1.ApplyOutcome_APPLY_OUTCOME_CREATED, v1.ApplyOutcome_APPLY_OUTCOME_UPDATED, v1.ApplyOutcome_APPLY_OUTCOME_UNCHANGED:
			s := o.new[r.GetId()]
			s.gen = r.GetStatus().GetGeneration()
			j.ack(r.GetId(), s)
		default:
			return fmt.Errorf("flow %s: %v %s", r.GetId(), r.GetOutcome(), r.GetError())
		}
	}
	if o.atomic {
		j.ackAtomic()
	}
	return nil
}

func deleteFlows(ctx context.Context, flows v1.FlowServiceClient, j *journal, ids []string) error {
	resp, err := flows.DeleteFlows(ctx, &v1.DeleteFlowsRequest{Ids: ids})
	if err != nil {
		return err
	}
	for _, r := range resp.GetResults() {
		if r.GetError() != "" {
			return fmt.Errorf("delete flow %s: %s", r.GetId(), r.GetError())
		}
		if r.GetFound() {
			j.ack(r.GetId(), state{})
		}
	}
	return nil
}

// listedFlow is one flow as ListFlows returns it.
type listedFlow struct {
	id    string
	state state
}

// daemon is the offloadd process under test.
type daemon struct {
	bin, stateDir, sock, logPath string
	// args are more command-line arguments.
	args []string

	cmd    *exec.Cmd
	exited chan error // the process's Wait
	conn   *grpc.ClientConn
	flows  v1.FlowServiceClient
}

func (d *daemon) start(ctx context.Context) error {
	log, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	d.cmd = exec.Command(d.bin, append([]string{"--backend", "emulated", "--state-dir", d.stateDir, "--socket", d.sock, "--log-level", "warn"}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start offloadd: %w", err)
	}
	exited := make(chan error, 1)
	d.exited = exited
	go func() { exited <- d.cmd.Wait() }()
	d.conn, err = grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	d.flows = v1.NewFlowServiceClient(d.conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			d.cmd = nil
			d.conn.Close()
			return fmt.Errorf("offloadd exited at start (%v); see %s", err, d.logPath)
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := d.flows.ListFlows(cctx, &v1.ListFlowsRequest{PageSize: 1})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("offloadd not serving on %s after 30s: %w", d.sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// list returns every flow the daemon holds.
func (d *daemon) list(ctx context.Context) ([]listedFlow, error) {
	var out []listedFlow
	token := ""
	for {
		resp, err := d.flows.ListFlows(ctx, &v1.ListFlowsRequest{PageSize: 10000, PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, f := range resp.GetFlows() {
			dst := f.GetFlow().GetMatch().GetIpv4Dst()
			if !strings.Contains(dst, "/") {
				dst += "/32"
			}
			p, err := netip.ParsePrefix(dst)
			if err != nil {
				return nil, fmt.Errorf("flow %s: %w", f.GetFlow().GetId(), err)
			}
			a := p.Addr().As4()
			out = append(out, listedFlow{id: f.GetFlow().GetId(),
				state: state{present: true, ver: uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]), gen: f.GetGeneration()}})
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (d *daemon) kill() error {
	if d.cmd == nil {
		return errors.New("kill offloadd: not running")
	}
	if err := d.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill offloadd %d: %w", d.cmd.Process.Pid, err)
	}
	<-d.exited
	d.cmd = nil
	d.conn.Close()
	return nil
}

// stop ends the daemon with SIGTERM (SIGKILL after 10 s).
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
	d.conn.Close()
}
