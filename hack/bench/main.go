// Command bench measures offloadd on the emulated backend and prints one
// table; every figure also goes to a JSON file. Reference runs happen in
// the same process, so ratios hold on a noisy machine.
//
//	go run ./hack/bench [-out _out/bench] [-flows 100000] [-mem-flows 1000000]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured number.
type Figure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	Note   string  `json:"note,omitempty"`
}

type report struct {
	Machine map[string]string `json:"machine"`
	Figures []Figure          `json:"figures"`
}

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

	rep := report{Machine: machine()}
	add := func(f Figure) {
		rep.Figures = append(rep.Figures, f)
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

	check(os.MkdirAll(*out, 0o755))
	path := filepath.Join(*out, "bench.json")
	data, _ := json.MarshalIndent(rep, "", "  ")
	check(os.WriteFile(path, append(data, '\n'), 0o644))
	printTable(rep)
	fmt.Printf("\n(figures written to %s)\n", path)
}

func printTable(rep report) {
	fmt.Printf("\nmachine: %s, %s cores, Go %s\n\n", rep.Machine["cpu"], rep.Machine["cores"], rep.Machine["go"])
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FIGURE\tVALUE\tUNIT\tTARGET\tMET")
	for _, f := range rep.Figures {
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		fmt.Fprintf(w, "%s\t%.2f\t%s\t%s\t%s\n", f.Name, f.Value, f.Unit, f.Target, met)
	}
	w.Flush()
}

func machine() map[string]string {
	m := map[string]string{"go": runtime.Version(), "cores": fmt.Sprint(runtime.NumCPU()), "date": time.Now().UTC().Format(time.RFC3339)}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func met(ok bool) *bool { return &ok }
