package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// config is the command line.
type config struct {
	sizes    []int
	repeat   int
	devs     int
	workers  int
	restart  int
	warmup   int
	methods  []string
	verify   bool
	out      string
	table    string
	profiles string
	tmp      string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("kernel", flag.ContinueOnError)
	sizes := fs.String("sizes", "10000,50000", "rule counts to insert, comma separated")
	methods := fs.String("methods", "all", "methods to run, comma separated keys (e,a,a-pre,b,c,d,a-echo,e-echo,device,c-par) or all")
	c := config{}
	fs.IntVar(&c.repeat, "repeat", 5, "runs per method and size, interleaved; figures are medians")
	fs.IntVar(&c.devs, "devs", 4, "devices (veths) the rules are spread over")
	fs.IntVar(&c.workers, "workers", 0, "sockets or tc processes for the parallel methods (0: one per CPU)")
	fs.IntVar(&c.restart, "restart", 10000, "rules for the restart run (0: skip it)")
	fs.IntVar(&c.warmup, "warmup", 1000, "rules for one untimed run of every method first (0: none); TCG translates code on first use")
	fs.BoolVar(&c.verify, "verify", true, "after each run, dump the filters and check the count")
	fs.StringVar(&c.out, "out", "kernel.json", "JSON report path")
	fs.StringVar(&c.table, "table", "", "also write the table to this file")
	fs.StringVar(&c.profiles, "cpuprofile-dir", "", "write a CPU profile of each run of offloadd's methods here")
	fs.StringVar(&c.tmp, "tmp", os.TempDir(), "directory for tc batch files and the state file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, s := range strings.Split(*sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("-sizes: %q is not a positive number", s)
		}
		c.sizes = append(c.sizes, n)
	}
	if *methods != "all" {
		for _, m := range strings.Split(*methods, ",") {
			if m = strings.TrimSpace(m); m != "" {
				c.methods = append(c.methods, m)
			}
		}
	}
	switch {
	case c.repeat < 1:
		return c, fmt.Errorf("-repeat %d: want at least 1", c.repeat)
	case c.devs < 1:
		return c, fmt.Errorf("-devs %d: want at least 1", c.devs)
	case c.warmup < 0:
		return c, fmt.Errorf("-warmup %d: want 0 or more", c.warmup)
	case c.workers < 0:
		return c, fmt.Errorf("-workers %d: want 0 or more", c.workers)
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kernel bench:", err)
		os.Exit(2)
	}
	rep, err := run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kernel bench:", err)
		os.Exit(1)
	}
	var buf bytes.Buffer
	if err := writeTable(&buf, rep); err != nil {
		fmt.Fprintln(os.Stderr, "kernel bench:", err)
		os.Exit(1)
	}
	fmt.Print("\n", buf.String())
	if cfg.table != "" {
		if err := os.WriteFile(cfg.table, buf.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "kernel bench: write table:", err)
			os.Exit(1)
		}
	}
	if err := writeJSON(cfg.out, rep); err != nil {
		fmt.Fprintln(os.Stderr, "kernel bench:", err)
		os.Exit(1)
	}
	fmt.Printf("\n(figures written to %s)\n", cfg.out)
}
