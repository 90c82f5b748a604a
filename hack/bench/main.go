// Command bench measures offloadd on the emulated backend and prints one
// table; every figure also goes to a JSON file. Reference runs happen in
// the same process, so ratios hold on a noisy machine.
//
//	go run ./hack/bench [-out _out/bench] [-flows 100000] [-mem-flows 1000000] [-restart-flows 1000000] [-only part]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/offloadd/offloadd/hack/bench/report"
)

// Figure is one measured number.
type Figure = report.Figure

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	out := flag.String("out", "_out/bench", "directory for bench.json")
	nFlows := flag.Int("flows", 100000, "flows for the insertion and restart runs")
	batch := flag.Int("batch", 1000, "flows per ApplyFlows batch")
	memFlows := flag.Int("mem-flows", 1000000, "flows for the memory run")
	memBatch := flag.Int("mem-batch", 100000, "flows per Apply in the memory run (each batch's plan sorts the chains it touches: at 1,000 a million flows take too long)")
	restartFlows := flag.Int("restart-flows", 1000000, "flows for the large restart run")
	flag.IntVar(&latencyRounds, "latency-rounds", latencyRounds, "daemons the latency run uses (samples pooled)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the whole run here")
	flag.IntVar(&inflight, "inflight", inflight, "batches the client keeps in flight")
	only := flag.String("only", "", "run these parts, comma-separated: insertion, grpc, client, latency, restart, restart-large, memory (default all but grpc)")
	flag.BoolVar(&latencyPersist, "latency-persist", latencyPersist, "persist desired state in the latency run, as the daemon does")
	if clientMain(os.Args[1:]) || latencyMain(os.Args[1:]) {
		return
	}
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, err := os.Create(*memProfile)
			check(err)
			check(pprof.Lookup("allocs").WriteTo(f, 0))
			check(f.Close())
		}()
	}
	ctx := context.Background()

	rep := report.New()
	add := func(f Figure) {
		rep.Add(f)
		fmt.Fprintf(os.Stderr, "  %-48s %14.1f %s\n", f.Name, f.Value, f.Unit)
	}
	step := func(name string) { fmt.Fprintf(os.Stderr, "== %s\n", name) }

	type part struct {
		name, title string
		run         func() ([]Figure, error)
	}
	parts := []part{
		{"insertion", fmt.Sprintf("insertion: %d flows in batches of %d", *nFlows, *batch),
			func() ([]Figure, error) { return insertion(ctx, *nFlows, *batch, sideBoth) }},
		{"grpc", fmt.Sprintf("insertion over gRPC only: %d flows in batches of %d", *nFlows, *batch),
			func() ([]Figure, error) { return insertion(ctx, *nFlows, *batch, sideGRPC) }},
		{"client", fmt.Sprintf("insertion over gRPC from a client process: %d flows in batches of %d", *nFlows, *batch),
			func() ([]Figure, error) { return separateClient(ctx, *nFlows, *batch) }},
		{"latency", fmt.Sprintf("latency: GetFlow, ListFlows and 1-flow ApplyFlows while %d flows are applied in batches of %d, and at rest", *nFlows, *batch),
			func() ([]Figure, error) { return latency(ctx, *nFlows, *batch) }},
		{"restart", fmt.Sprintf("restart: load and place %d persisted flows", *nFlows),
			func() ([]Figure, error) { return restart(ctx, *nFlows) }},
		{"restart-large", fmt.Sprintf("restart: load and place %d persisted flows", *restartFlows),
			func() ([]Figure, error) { return restart(ctx, *restartFlows) }},
		{"memory", fmt.Sprintf("memory: %d flows in batches of %d", *memFlows, *memBatch),
			func() ([]Figure, error) { return memory(ctx, *memFlows, *memBatch) }},
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(*only, ",") {
		if name != "" {
			want[name] = true
		}
	}
	for name := range want {
		if !slices.ContainsFunc(parts, func(p part) bool { return p.name == name }) {
			check(fmt.Errorf("-only: no part %q", name))
		}
	}
	for _, p := range parts {
		if len(want) == 0 && p.name == "grpc" || len(want) > 0 && !want[p.name] {
			continue
		}
		step(p.title)
		figs, err := p.run()
		check(err)
		for _, f := range figs {
			add(f)
		}
	}

	path, err := rep.Write(*out, "bench.json")
	check(err)
	rep.Print(os.Stdout)
	fmt.Printf("\n(figures written to %s)\n", path)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var met = report.Met
