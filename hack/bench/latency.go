package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/cmd/offloadd/daemon"
)

// dial opens a client connection to the daemon's socket, as another
// client would: each caller gets its own connection.
func dial(sock string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}),
			grpc.MaxCallRecvMsgSize(daemon.MaxMsgSize), grpc.MaxCallSendMsgSize(daemon.MaxMsgSize)))
}

// Probe periods: each probe calls once a period, as a poller does; a
// call that overruns its period makes the next wait for the next period
// boundary, and the periods it overran are skipped (counted), not caught
// up. Latency is from the call's send to its answer.
const (
	getEvery   = 2 * time.Millisecond
	listEvery  = 20 * time.Millisecond
	applyEvery = 20 * time.Millisecond
)

// residentFlows are in the daemon before the bulk load: GetFlow reads
// them.
const residentFlows = 1000

// probe is one kind of call made on a schedule, with its latencies.
type probe struct {
	name  string
	every time.Duration
	// call makes the i-th call on conn.
	call func(ctx context.Context, conn *grpc.ClientConn, i int) error
}

// probeRun is what a probe measured in one phase.
type probeRun struct {
	lat []time.Duration
	// skipped counts the periods passed over because a call, or the
	// probe's wake-up, came late.
	skipped int
	err     error
}

// runProbes runs every probe on its own connection until stop is closed.
// first numbers the calls, so that phases do not repeat them.
func runProbes(ctx context.Context, sock string, probes []probe, first int, stop <-chan struct{}) []probeRun {
	out := make([]probeRun, len(probes))
	var wg sync.WaitGroup
	for k, p := range probes {
		conn, err := dial(sock)
		if err != nil {
			out[k].err = err
			continue
		}
		wg.Go(func() {
			defer conn.Close()
			// Connected before the first scheduled call.
			conn.Connect()
			for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
				if !conn.WaitForStateChange(ctx, st) {
					out[k].err = fmt.Errorf("%s: connect: %w", p.name, ctx.Err())
					return
				}
			}
			next := time.Now()
			for i := first; ; i++ {
				t := time.NewTimer(time.Until(next))
				select {
				case <-stop:
					t.Stop()
					return
				case <-t.C:
				}
				sent := time.Now()
				if err := p.call(ctx, conn, i); err != nil {
					out[k].err = fmt.Errorf("%s: %w", p.name, err)
					return
				}
				done := time.Now()
				out[k].lat = append(out[k].lat, done.Sub(sent))
				next = next.Add(p.every)
				if late := done.Sub(next); late > 0 {
					n := late/p.every + 1
					out[k].skipped += int(n)
					next = next.Add(n * p.every)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// bulkLoad applies reqs back to back, one batch in flight, as a controller
// pushing its flows does, and checks every flow was created.
func bulkLoad(ctx context.Context, sock string, reqs []rawRequest) (time.Duration, error) {
	conn, err := dial(sock)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	for i := range reqs {
		resp := new(v1.ApplyFlowsResponse)
		if err := conn.Invoke(ctx, v1.FlowService_ApplyFlows_FullMethodName, &reqs[i], resp); err != nil {
			return 0, err
		}
		if err := allCreated(resp); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// latencyRounds is how many fresh daemons the latency run uses; their
// samples are pooled.
var latencyRounds = 3

// latencyPersist says whether the latency run's daemons persist desired
// state (in bbolt, on this machine's disk) as the daemon does by default.
var latencyPersist = true

// latencyFlag starts the arguments of a latency client process.
const latencyFlag = "-latency-socket"

// latencyResult is what a latency client reports on stdout: per phase
// (under load, at rest) and probe, every call's latency.
type latencyResult struct {
	Lat [2][3][]time.Duration `json:"lat"`
	// Skipped counts the periods each probe passed over (probeRun).
	Skipped [2][3]int     `json:"skipped"`
	Took    time.Duration `json:"took"`
	Err     string        `json:"err,omitempty"`
}

// latencyMain runs a latency client process when args ask for one.
func latencyMain(args []string) bool {
	if len(args) == 0 || args[0] != latencyFlag {
		return false
	}
	fs := flag.NewFlagSet("latency client", flag.ExitOnError)
	sock := fs.String(latencyFlag[1:], "", "the daemon's socket")
	n := fs.Int("flows", 100000, "flows for the bulk load")
	batch := fs.Int("batch", 1000, "flows per ApplyFlows batch")
	check(fs.Parse(args))
	res, err := latencyRound(context.Background(), *sock, *n, *batch)
	if err != nil {
		res.Err = err.Error()
	}
	check(json.NewEncoder(os.Stdout).Encode(res))
	return true
}

// latency measures GetFlow, ListFlows (one port, first page) and
// single-flow ApplyFlows over gRPC on the unix socket while another
// client applies n flows in batches of batch back to back, and the same
// calls at rest right after, on the same daemon with every flow in place.
// The clients run in a process of their own, as controllers and
// monitoring do, so that they do not share the daemon's Go scheduler;
// each round has a fresh daemon, and the rounds' samples are pooled.
func latency(ctx context.Context, n, batch int) ([]Figure, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary: %w", err)
	}
	const (
		loaded = iota
		rest
	)
	var (
		lat      [2][3][]time.Duration // phase, probe
		roundP99 [2][3][]time.Duration
		skipped  [2][3]int
		loadTook []time.Duration
	)
	for round := range latencyRounds {
		res, err := func() (latencyResult, error) {
			dir, err := os.MkdirTemp("", "offloadd-bench")
			if err != nil {
				return latencyResult{}, err
			}
			defer os.RemoveAll(dir)
			d, sock, err := startDaemon(ctx, dir, 2*n+4*residentFlows, latencyPersist)
			if err != nil {
				return latencyResult{}, err
			}
			defer d.Shutdown(ctx)
			cmd := exec.CommandContext(ctx, exe, latencyFlag, sock, "-flows", strconv.Itoa(n), "-batch", strconv.Itoa(batch))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return latencyResult{}, fmt.Errorf("latency client: %w", err)
			}
			var res latencyResult
			if err := json.Unmarshal(out, &res); err != nil {
				return latencyResult{}, fmt.Errorf("read latency client's result: %w", err)
			}
			if res.Err != "" {
				return latencyResult{}, fmt.Errorf("latency client: %s", res.Err)
			}
			return res, nil
		}()
		if err != nil {
			return nil, fmt.Errorf("latency round %d: %w", round, err)
		}
		loadTook = append(loadTook, res.Took)
		for ph := range 2 {
			for k := range 3 {
				if len(res.Lat[ph][k]) == 0 {
					continue
				}
				lat[ph][k] = append(lat[ph][k], res.Lat[ph][k]...)
				skipped[ph][k] += res.Skipped[ph][k]
				roundP99[ph][k] = append(roundP99[ph][k], quantiles(res.Lat[ph][k])[1])
			}
		}
		runtime.GC()
	}

	var figs []Figure
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	targets := [3]float64{5, 5, 2}
	for k, p := range newProbes() {
		var q [2][3]time.Duration // phase: p50, p99, max
		for ph := range 2 {
			if len(lat[ph][k]) == 0 {
				return nil, fmt.Errorf("%s: no calls measured", p.name)
			}
			q[ph] = quantiles(lat[ph][k])
		}
		tgt := targets[k]
		spread := func(ph int) string {
			parts := make([]string, len(roundP99[ph][k]))
			for i, d := range roundP99[ph][k] {
				parts[i] = fmt.Sprintf("%.2f", ms(d))
			}
			return fmt.Sprintf("%d calls over %d rounds, one every %v (%d periods skipped: a call or its wake-up late); p99 per round %s ms",
				len(lat[ph][k]), latencyRounds, p.every, skipped[ph][k], strings.Join(parts, ", "))
		}
		figs = append(figs,
			Figure{Name: p.name + " under bulk apply: p50", Value: ms(q[loaded][0]), Unit: "ms"},
			Figure{Name: p.name + " under bulk apply: p99", Value: ms(q[loaded][1]), Unit: "ms",
				Target: fmt.Sprintf("<= %g", tgt), Met: met(ms(q[loaded][1]) <= tgt), Note: spread(loaded)},
			Figure{Name: p.name + " under bulk apply: max", Value: ms(q[loaded][2]), Unit: "ms"},
			Figure{Name: p.name + " at rest: p50", Value: ms(q[rest][0]), Unit: "ms"},
			Figure{Name: p.name + " at rest: p99", Value: ms(q[rest][1]), Unit: "ms", Note: spread(rest)},
			Figure{Name: p.name + " at rest: max", Value: ms(q[rest][2]), Unit: "ms"},
			Figure{Name: p.name + " p99 under load / at rest", Value: q[loaded][1].Seconds() / q[rest][1].Seconds(), Unit: "x"},
		)
	}
	slices.Sort(loadTook)
	figs = append(figs, Figure{Name: fmt.Sprintf("bulk apply with the probes running (%d flows, 1 batch in flight)", n),
		Value: float64(n) / loadTook[0].Seconds(), Unit: "flows/s",
		Note: fmt.Sprintf("best of %d; slowest %.2f s; the probes read and write while it runs; desired state persisted: %v", latencyRounds, loadTook[len(loadTook)-1].Seconds(), latencyPersist)})
	return figs, nil
}

// newProbes returns the probes: GetFlow of a resident flow, ListFlows of
// one port's first page (1,000 flows), and ApplyFlows of one new flow.
func newProbes() []probe {
	resident := benchFlows(residentFlows, "r-")
	single := benchFlows(1, "")[0]
	return []probe{
		{"GetFlow", getEvery, func(ctx context.Context, conn *grpc.ClientConn, i int) error {
			id := resident[rand.IntN(len(resident))].GetId()
			return conn.Invoke(ctx, v1.FlowService_GetFlow_FullMethodName, &v1.GetFlowRequest{Id: id}, new(v1.GetFlowResponse))
		}},
		{"ListFlows", listEvery, func(ctx context.Context, conn *grpc.ClientConn, i int) error {
			resp := new(v1.ListFlowsResponse)
			if err := conn.Invoke(ctx, v1.FlowService_ListFlows_FullMethodName, &v1.ListFlowsRequest{Port: "pf0vf0"}, resp); err != nil {
				return err
			}
			if len(resp.GetFlows()) == 0 {
				return fmt.Errorf("empty page")
			}
			return nil
		}},
		{"ApplyFlows (1 flow)", applyEvery, func(ctx context.Context, conn *grpc.ClientConn, i int) error {
			// A new flow each time: a controller adding one.
			f := proto.Clone(single).(*v1.Flow)
			f.Id = fmt.Sprintf("p-%07d", i)
			resp := new(v1.ApplyFlowsResponse)
			if err := conn.Invoke(ctx, v1.FlowService_ApplyFlows_FullMethodName, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{f}}, resp); err != nil {
				return err
			}
			return allCreated(resp)
		}},
	}
}

// latencyRound is one round of the latency client on a fresh daemon: it
// applies the resident flows, runs the probes from just before a bulk
// load of n flows until it ends, then at rest as long again (at least a
// second).
func latencyRound(ctx context.Context, sock string, n, batch int) (latencyResult, error) {
	var res latencyResult
	reqs, err := encodeRequests(benchFlows(n, ""), batch)
	if err != nil {
		return res, err
	}
	residentReqs, err := encodeRequests(benchFlows(residentFlows, "r-"), batch)
	if err != nil {
		return res, err
	}
	if _, err := bulkLoad(ctx, sock, residentReqs); err != nil {
		return res, fmt.Errorf("resident flows: %w", err)
	}
	probes := newProbes()
	runtime.GC()
	stop := make(chan struct{})
	var runs []probeRun
	done := make(chan struct{})
	go func() { runs = runProbes(ctx, sock, probes, 0, stop); close(done) }()
	time.Sleep(listEvery)
	res.Took, err = bulkLoad(ctx, sock, reqs)
	close(stop)
	<-done
	if err != nil {
		return res, fmt.Errorf("bulk load: %w", err)
	}
	if err := keep(runs, &res.Lat[0], &res.Skipped[0]); err != nil {
		return res, err
	}
	stop = make(chan struct{})
	time.AfterFunc(max(res.Took, time.Second), func() { close(stop) })
	return res, keep(runProbes(ctx, sock, probes, 1<<20, stop), &res.Lat[1], &res.Skipped[1])
}

// keep keeps a phase's latencies.
func keep(runs []probeRun, lat *[3][]time.Duration, skipped *[3]int) error {
	for k, r := range runs {
		if r.err != nil {
			return r.err
		}
		lat[k], skipped[k] = r.lat, r.skipped
	}
	return nil
}

// quantiles returns the p50, p99 and max of ds (nearest rank).
func quantiles(ds []time.Duration) [3]time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return [3]time.Duration{rank(0.50), rank(0.99), s[len(s)-1]}
}

// serving times a daemon from start to serving on its socket: health
// SERVING, then a first successful ListFlows (one flow).
func serving(ctx context.Context, dir string, table int) (*daemon.Daemon, time.Duration, time.Duration, error) {
	start := time.Now()
	d, sock, err := startDaemon(ctx, dir, table, true)
	if err != nil {
		return nil, 0, 0, err
	}
	started := time.Since(start)
	conn, err := dial(sock)
	if err != nil {
		d.Shutdown(ctx)
		return nil, 0, 0, err
	}
	defer conn.Close()
	for {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && h.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Since(start) > time.Minute {
			d.Shutdown(ctx)
			return nil, 0, 0, fmt.Errorf("not SERVING after a minute: %v %v", h.GetStatus(), err)
		}
		time.Sleep(time.Millisecond)
	}
	resp := new(v1.ListFlowsResponse)
	if err := conn.Invoke(ctx, v1.FlowService_ListFlows_FullMethodName, &v1.ListFlowsRequest{PageSize: 1}, resp); err != nil || len(resp.GetFlows()) != 1 {
		d.Shutdown(ctx)
		return nil, 0, 0, fmt.Errorf("first ListFlows: %d flows, %v", len(resp.GetFlows()), err)
	}
	return d, started, time.Since(start), nil
}
