package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// GreedyConfig is a run of greedy clients against one daemon.
type GreedyConfig struct {
	Binary, Dir string
	// Flows are installed first, in ApplyFlows batches of 1,000.
	Flows int
	// Watchers open WatchFlows, each on its own connection, and never
	// read while every flow is changed once.
	Watchers int
	// Listers list every flow in pages of 1,000, over and over, while
	// single-flow applies are timed for Duration.
	Listers  int
	Duration time.Duration
	Log      io.Writer
}

// GreedyReport holds the figures of a greedy run.
type GreedyReport struct {
	// HeapBefore is the daemon's Go heap in use after the install;
	// HeapChurn the most seen while every flow changed once with no
	// watcher (the garbage of the change itself); HeapPeak the most seen
	// while every flow changed again with the watchers stuck.
	HeapBefore, HeapChurn, HeapPeak float64
	// WatchersCut ended with ABORTED (cut for falling behind).
	WatchersCut int
	// Applies are single-flow ApplyFlows latencies under the listers.
	Applies []time.Duration
	// Pages is how many ListFlows pages the listers read meanwhile.
	Pages int
	// Served are the same applies' durations inside the daemon, from its
	// audit records (handler start to answer), sorted.
	Served []time.Duration
}

func (r GreedyReport) print(w io.Writer, g GreedyConfig) {
	fmt.Fprintf(w, "greedy: %d flows, %d watchers that never read, %d listing clients\n", g.Flows, g.Watchers, g.Listers)
	fmt.Fprintf(w, "daemon heap in use: %.1f MiB after the install, at most %.1f MiB while every flow changed with no watcher, "+
		"%.1f MiB with the watchers stuck: %.1f MiB for %d watchers (%.1f MiB each); watchers cut: %d of %d\n",
		r.HeapBefore/(1<<20), r.HeapChurn/(1<<20), r.HeapPeak/(1<<20), (r.HeapPeak-r.HeapChurn)/(1<<20), g.Watchers,
		(r.HeapPeak-r.HeapChurn)/(1<<20)/float64(max(g.Watchers, 1)), r.WatchersCut, g.Watchers)
	if len(r.Applies) > 0 {
		fmt.Fprintf(w, "single-flow ApplyFlows under the listers: %d in %v, p50 %v, p99 %v, max %v; pages listed meanwhile %d\n",
			len(r.Applies), g.Duration, pct(r.Applies, 50), pct(r.Applies, 99), r.Applies[len(r.Applies)-1], r.Pages)
	}
	if len(r.Served) > 0 {
		fmt.Fprintf(w, "the same applies inside the daemon (audit durations): p50 %v, p99 %v, max %v\n",
			pct(r.Served, 50), pct(r.Served, 99), r.Served[len(r.Served)-1])
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(10 * time.Microsecond)
}

// RunGreedy starts the daemon and runs the greedy clients.
func RunGreedy(ctx context.Context, g GreedyConfig) (GreedyReport, error) {
	var r GreedyReport
	if g.Binary == "" {
		g.Binary = filepath.Join(g.Dir, "offloadd")
		if err := build(ctx, g.Binary); err != nil {
			return r, err
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	metrics := lis.Addr().String()
	lis.Close()
	d := &daemon{bin: g.Binary, stateDir: filepath.Join(g.Dir, "state"), sock: filepath.Join(g.Dir, "offloadd.sock"),
		logPath: filepath.Join(g.Dir, "offloadd.log"), args: []string{"--metrics", metrics, "--audit-log", filepath.Join(g.Dir, "audit.json")}}
	if err := d.start(ctx); err != nil {
		return r, err
	}
	defer d.stop()
	apply := func(fs []*v1.Flow) error {
		_, err := d.flows.ApplyFlows(ctx, &v1.ApplyFlowsRequest{Flows: fs})
		return err
	}
	install := func(version uint32) error {
		for lo := 0; lo < g.Flows; lo += 1000 {
			var fs []*v1.Flow
			for i := lo; i < min(lo+1000, g.Flows); i++ {
				fs = append(fs, greedyFlow(i, version))
			}
			if err := apply(fs); err != nil {
				return fmt.Errorf("install flows %d..: %w", lo, err)
			}
		}
		return nil
	}
	if err := install(1); err != nil {
		return r, err
	}
	fmt.Fprintf(g.Log, "greedy: %d flows installed\n", g.Flows)
	if r.HeapBefore, err = heapInUse(metrics); err != nil {
		return r, err
	}

	// The change alone, for the garbage it makes.
	churn := func(version uint32) (float64, error) {
		peak := 0.0
		done := make(chan error, 1)
		go func() { done <- install(version) }()
		for {
			select {
			case err := <-done:
				for range 10 {
					if h, err := heapInUse(metrics); err == nil && h > peak {
						peak = h
					}
					time.Sleep(100 * time.Millisecond)
				}
				return peak, err
			case <-time.After(200 * time.Millisecond):
				if h, err := heapInUse(metrics); err == nil && h > peak {
					peak = h
				}
			}
		}
	}
	if r.HeapChurn, err = churn(2); err != nil {
		return r, err
	}

	// Watchers that never read, each on a connection of its own.
	var streams []grpc.ServerStreamingClient[v1.WatchFlowsResponse]
	wctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()
	for range g.Watchers {
		conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return r, err
		}
		defer conn.Close()
		s, err := v1.NewFlowServiceClient(conn).WatchFlows(wctx, &v1.WatchFlowsRequest{})
		if err != nil {
			return r, fmt.Errorf("watch: %w", err)
		}
		streams = append(streams, s)
	}
	peak, err := churn(3)
	if err != nil {
		return r, err
	}
	r.HeapPeak = peak
	// Read what each watcher has: a cut one ends with ABORTED; one that
	// was not cut blocks for the next change, until the watchers stop.
	var cut sync.WaitGroup
	var cutMu sync.Mutex
	for _, s := range streams {
		cut.Go(func() {
			for {
				if _, err := s.Recv(); err != nil {
					if status.Code(err) == codes.Aborted {
						cutMu.Lock()
						r.WatchersCut++
						cutMu.Unlock()
					}
					return
				}
			}
		})
	}
	// A cut watcher's client sees ABORTED once it has read what was sent
	// before the cut (the snapshot first): give them time, then stop.
	drained := make(chan struct{})
	go func() { cut.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(30 * time.Second):
	}
	stopWatchers()
	<-drained

	// Listers and timed single-flow applies.
	lctx, stopListers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range g.Listers {
		wg.Go(func() {
			token := ""
			for lctx.Err() == nil {
				resp, err := d.flows.ListFlows(lctx, &v1.ListFlowsRequest{PageSize: 1000, PageToken: token})
				if err != nil {
					return
				}
				mu.Lock()
				r.Pages++
				mu.Unlock()
				token = resp.GetNextPageToken()
			}
		})
	}
	end := time.Now().Add(g.Duration)
	for i := 0; time.Now().Before(end); i++ {
		start := time.Now()
		if err := apply([]*v1.Flow{greedyFlow(g.Flows+i%100, uint32(4+i))}); err != nil {
			stopListers()
			wg.Wait()
			return r, fmt.Errorf("single-flow apply: %w", err)
		}
		r.Applies = append(r.Applies, time.Since(start))
		time.Sleep(5 * time.Millisecond)
	}
	stopListers()
	wg.Wait()
	slices.Sort(r.Applies)
	r.Served = servedApplies(filepath.Join(g.Dir, "audit.json"), g.Flows)
	return r, nil
}

// servedApplies reads the durations of the one-flow applies (flow IDs from
// the first beyond the installed ones) from the daemon's audit records.
func servedApplies(path string, installed int) []time.Duration {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Method     string   `json:"method"`
			Flows      int      `json:"flows"`
			IDs        []string `json:"ids"`
			DurationMs float64  `json:"duration_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || !strings.HasSuffix(rec.Method, "/ApplyFlows") || rec.Flows != 1 {
			continue
		}
		out = append(out, time.Duration(rec.DurationMs*float64(time.Millisecond)))
	}
	slices.Sort(out)
	return out
}

// greedyFlow is flow i at a version carried in its destination port.
func greedyFlow(i int, version uint32) *v1.Flow {
	port := 1 + version%60000
	return &v1.Flow{Id: fmt.Sprintf("g%07d", i), Port: "pf0vf0", Priority: uint32(1 + i%1000),
		Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", Ipv4Dst: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), DstPort: &port},
		Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}
}

// heapInUse scrapes go_memstats_heap_inuse_bytes from the daemon.
func heapInUse(addr string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, errors.New("no go_memstats_heap_inuse_bytes in the metrics")
}
