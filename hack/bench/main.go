// Command bench measures offloadd on the emulated backend and prints one
// table; every figure also goes to a JSON file. Reference runs happen in
// the same process, so ratios hold on a noisy machine.
//
//	go run ./hack/bench [-out _out/bench] [-flows 100000] [-mem-flows 1000000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

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
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()

	rep := report.New()
	add := func(f Figure) {
		rep.Add(f)
		fmt.Fprintf(os.Stderr, "  %-48s %14.1f %s\n", f.Name, f.Value, f.Unit)
	}
	step := func(name string) { fmt.Fprintf(os.Stderr, "== %s\n", name) }

	step(fmt.Sprintf("insertion: %d flows in batches of %d", *nFlows, *batch))
	ins, err := insertion(ctx, *nFlows, *batch)
	check(err)
	for _, f := range ins {
		add(f)
	}
	step(fmt.Sprintf("restart: load and place %d persisted flows", *nFlows))
	rs, err := restart(ctx, *nFlows, *batch)
	check(err)
	for _, f := range rs {
		add(f)
	}
	step(fmt.Sprintf("memory: %d flows", *memFlows))
	mem, err := memory(ctx, *memFlows, *batch)
	check(err)
	for _, f := range mem {
		add(f)
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
