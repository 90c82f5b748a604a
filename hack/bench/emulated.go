package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/offloadd/offloadd/api"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/cmd/offloadd/daemon"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/offloadd/offloadd/offload/store"
)

// startDaemon runs an in-process daemon on the emulated ConnectX-6 Dx with a
// hardware table big enough for every flow.
func startDaemon(ctx context.Context, dir string, table int, persist bool) (*daemon.Daemon, string, error) {
	cfg := daemon.DefaultConfig()
	cfg.Socket = filepath.Join(dir, "offloadd.sock")
	cfg.StateDir = ""
	if persist {
		cfg.StateDir = filepath.Join(dir, "state")
	}
	cfg.StatsInterval = 0
	cfg.Emulated.HWTableSize = table
	cfg.Emulated.NumVFs = 8
	d, err := daemon.New(cfg, quiet)
	if err != nil {
		return nil, "", err
	}
	if err := d.Start(ctx); err != nil {
		d.Shutdown(ctx)
		return nil, "", err
	}
	return d, cfg.Socket, nil
}

func toDomain(ps []*v1.Flow) ([]*flow.Flow, error) {
	out := make([]*flow.Flow, len(ps))
	for i, p := range ps {
		f, vs := api.FlowFromProto(p, "")
		if len(vs) > 0 {
			return nil, fmt.Errorf("bench flow %s: %v", p.GetId(), vs)
		}
		out[i] = f
	}
	return out, nil
}

func applyInProcess(ctx context.Context, e *offload.Engine, flows []*flow.Flow, batch int) (time.Duration, error) {
	start := time.Now()
	err := inFlight(len(flows), batch, func(i int) error {
		rs, err := e.Apply(ctx, flows[i:min(i+batch, len(flows))], offload.ApplyOptions{})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Outcome != offload.OutcomeCreated || r.Status.State != offload.StateHardware {
				return fmt.Errorf("flow %s: %s %s", r.ID, r.Outcome, r.Status.State)
			}
		}
		return nil
	})
	return time.Since(start), err
}

// inFlight calls apply for every batch offset of n flows from inflight
// goroutines, as a controller keeps a few batches in flight so that
// decoding the next overlaps applying and persisting this one.
func inFlight(n, batch int, apply func(off int) error) error {
	next := make(chan int)
	errs := make(chan error, inflight)
	for range inflight {
		go func() {
			for i := range next {
				if err := apply(i); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < n; i += batch {
		next <- i
	}
	close(next)
	var first error
	for range inflight {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// allCreated checks that an answer reports every flow created.
func allCreated(resp *v1.ApplyFlowsResponse) error {
	for _, r := range resp.GetResults() {
		if r.GetOutcome() != v1.ApplyOutcome_APPLY_OUTCOME_CREATED {
			return fmt.Errorf("flow %s: %s %s", r.GetId(), r.GetOutcome(), r.GetError())
		}
	}
	return nil
}

// inflight is how many batches the client keeps in flight, over gRPC
// and in-process alike.
var inflight = 4

// Which sides an insertion run measures.
const (
	sideBoth = iota
	sideGRPC
)

// insertionRounds is how many times each side of the insertion run goes.
const insertionRounds = 5

// insertion applies n flows in-process and over gRPC, alternating, with
// the same batches in flight and desired state persisted as the daemon
// does. Rates are each side's best round; the ratio is the median of the
// rounds' own ratios, so that both sides of it saw the same machine.
// With sideGRPC it runs the gRPC side only (for profiling).
func insertion(ctx context.Context, n, batch, sides int) ([]Figure, error) {
	pflows := benchFlows(n, "")
	// Each side gets its input ready before the clock starts: domain
	// flows in-process, encoded requests over gRPC, as a load generator
	// would. The client still decodes and checks every answer.
	reqs, err := encodeRequests(pflows, batch)
	if err != nil {
		return nil, err
	}
	var dflows []*flow.Flow
	if sides != sideGRPC {
		if dflows, err = toDomain(pflows); err != nil {
			return nil, err
		}
	}
	var (
		best    [2]time.Duration
		bestCPU [2]time.Duration
		ratios  []float64
	)
	for round := range insertionRounds {
		var took [2]time.Duration
		for side := range 2 {
			if round%2 == 1 {
				side = 1 - side // alternate which side goes first
			}
			if sides == sideGRPC && side == 0 {
				continue
			}
			dir, err := os.MkdirTemp("", "offloadd-bench")
			if err != nil {
				return nil, err
			}
			d, sock, err := startDaemon(ctx, dir, 2*n, true)
			if err != nil {
				return nil, err
			}
			cpu0 := cpuTime()
			if side == 0 {
				took[side], err = applyInProcess(ctx, d.Engine(), dflows, batch)
			} else {
				took[side], err = sendRaw(ctx, sock, reqs, batch)
			}
			cpu := cpuTime() - cpu0
			d.Shutdown(ctx)
			os.RemoveAll(dir)
			if err != nil {
				return nil, fmt.Errorf("insertion round %d: %w", round, err)
			}
			if best[side] == 0 || took[side] < best[side] {
				best[side], bestCPU[side] = took[side], cpu
			}
			runtime.GC()
		}
		if took[0] > 0 {
			ratios = append(ratios, took[1].Seconds()/took[0].Seconds())
		}
	}
	grpcRate := float64(n) / best[1].Seconds()
	grpcFig := Figure{Name: fmt.Sprintf("apply over gRPC (unix socket, %d batches in flight)", inflight), Value: grpcRate, Unit: "flows/s", Target: ">= 250000", Met: met(grpcRate >= 250000),
		Note: fmt.Sprintf("best of %d; %.2f µs CPU per flow, requests encoded before the clock, client included (%.0f%% of %d cores)", insertionRounds, us(bestCPU[1], n), 100*bestCPU[1].Seconds()/best[1].Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())}
	if sides == sideGRPC {
		return []Figure{grpcFig}, nil
	}
	inproc := float64(n) / best[0].Seconds()
	inprocFig := Figure{Name: fmt.Sprintf("apply in-process (engine, persisted, %d batches in flight)", inflight), Value: inproc, Unit: "flows/s",
		Note: fmt.Sprintf("best of %d; %.2f µs CPU per flow", insertionRounds, us(bestCPU[0], n))}
	slices.Sort(ratios)
	ratio := ratios[len(ratios)/2]
	return []Figure{
		inprocFig,
		grpcFig,
		{Name: "gRPC time / in-process time", Value: ratio, Unit: "x", Target: "<= 1.5", Met: met(ratio <= 1.5),
			Note: fmt.Sprintf("median of the rounds' ratios %s", fmtRatios(ratios))},
	}, nil
}

func fmtRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.FormatFloat(r, 'f', 2, 64)
	}
	return strings.Join(parts, ", ")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// us is d per item in microseconds.
func us(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// restart persists n flows, and times a daemon from start to serving with
// every flow placed again: until Start returns (the socket listens once
// every flow is placed), and until a client on the socket has seen health
// SERVING and a first ListFlows answer. The flows are written to the
// state file directly, as the daemon writes them, in chunks: through
// Apply a million flows in batches of 1,000 take longer than the run
// (each batch's plan sorts the chains it touches).
func restart(ctx context.Context, n int) ([]Figure, error) {
	dir, err := os.MkdirTemp("", "offloadd-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := seedState(filepath.Join(dir, "state"), n); err != nil {
		return nil, err
	}
	runtime.GC()
	d, started, served, err := serving(ctx, dir, 2*n)
	if err != nil {
		return nil, err
	}
	defer d.Shutdown(ctx)
	if got := d.Engine().Count()[offload.StateHardware]; got != n {
		return nil, fmt.Errorf("restart: %d of %d flows in hardware", got, n)
	}
	return []Figure{
		{Name: fmt.Sprintf("restart: load %d flows, place, serve", n), Value: started.Seconds(), Unit: "s",
			Note: "daemon New and Start; emulated NIC starts empty, so every flow is placed again"},
		{Name: fmt.Sprintf("restart: %d flows, start to first ListFlows", n), Value: served.Seconds(), Unit: "s",
			Note: "from daemon New to a client on the socket seeing health SERVING and a first ListFlows answer"},
	}, nil
}

// seedState writes n bench flows to a state directory's store, 100,000
// per transaction.
func seedState(stateDir string, n int) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(stateDir, store.FileName))
	if err != nil {
		return err
	}
	const chunk = 100000
	for i := 0; i < n; i += chunk {
		dflows, err := toDomain(benchFlows(min(chunk, n-i), fmt.Sprintf("s%d-", i)))
		if err != nil {
			st.Close()
			return err
		}
		saved := make([]offload.StoredFlow, len(dflows))
		for j, f := range dflows {
			flow.Normalize(f)
			saved[j] = offload.StoredFlow{Flow: f, Generation: 1}
		}
		if err := st.Save(saved); err != nil {
			st.Close()
			return err
		}
	}
	return st.Close()
}

// memory applies n flows in-process, batch at a time, and reports Go heap
// and RSS per flow.
func memory(ctx context.Context, n, batch int) ([]Figure, error) {
	heap0, rss0 := memNow()
	dir, err := os.MkdirTemp("", "offloadd-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	d, _, err := startDaemon(ctx, dir, 2*n, false)
	if err != nil {
		return nil, err
	}
	defer d.Shutdown(ctx)
	e := d.Engine()
	for i := 0; i < n; i += batch {
		// Generate per batch so the inputs are garbage once applied.
		dflows, err := toDomain(benchFlows(min(batch, n-i), fmt.Sprintf("m%d-", i)))
		if err != nil {
			return nil, err
		}
		if _, err := applyInProcess(ctx, e, dflows, batch); err != nil {
			return nil, err
		}
	}
	heap1, rss1 := memNow()
	heap := (float64(heap1) - float64(heap0)) / float64(n)
	rss := (float64(rss1) - float64(rss0)) / float64(n)
	runtime.KeepAlive(e)
	return []Figure{
		{Name: fmt.Sprintf("Go heap per flow (%d flows)", n), Value: heap, Unit: "bytes", Target: "<= 1024", Met: met(heap <= 1024)},
		{Name: fmt.Sprintf("Go heap per flow (%d flows), issue 12 target", n), Value: heap, Unit: "bytes", Target: "<= 512", Met: met(heap <= 512)},
		{Name: fmt.Sprintf("RSS per flow (%d flows)", n), Value: rss, Unit: "bytes", Target: "<= 1024", Met: met(rss <= 1024)},
	}, nil
}

func memNow() (heap, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = ms.HeapInuse
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
				rss = kb * 1024
			}
		}
	}
	return heap, rss
}
