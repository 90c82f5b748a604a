package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// settleMax bounds the wait for the kernel to finish freeing the last
// run's filters.
const settleMax = 60 * time.Second

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func pick(keys []string) ([]method, error) {
	all := methods()
	if len(keys) == 0 {
		return all, nil
	}
	var out []method
	for _, k := range keys {
		found := false
		for _, m := range all {
			if m.key == k {
				out = append(out, m)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown method %q", k)
		}
	}
	return out, nil
}

// measure waits for the machine to go idle, then times one method on a
// fresh bed.
func measure(ctx context.Context, m method, devs int, rules []rule, workers int, verify bool, prof string) (Sample, error) {
	if _, err := settle(settleMax); err != nil {
		return Sample{}, err
	}
	b, err := newBed(devs)
	if err != nil {
		return Sample{}, err
	}
	defer b.close()
	return timeRun(ctx, m, b, rules, workers, verify, prof)
}

// run measures every selected method at every size, then the restart.
func run(ctx context.Context, cfg config) (*Report, error) {
	ms, err := pick(cfg.methods)
	if err != nil {
		return nil, err
	}
	workers := cfg.workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	rep := &Report{Machine: machine(os.Getenv("OFFLOADD_BENCH_HOST")), Setup: map[string]string{
		"devices":    fmt.Sprintf("%d veths + vxlan0", cfg.devs),
		"ruleset":    "50% ACL (tcp drop, udp pass), 50% VXLAN encap + redirect; chains 0-1; prios 1-4, 11-14; skip_hw; cookie on first action",
		"parallel":   fmt.Sprintf("%d workers, each owns whole devices", workers),
		"repeat":     fmt.Sprint(cfg.repeat),
		"fresh":      "new netns and devices per run; waits for the kernel to go idle between runs",
		"batch":      "rtnl.MaxBatch requests per sendmsg",
		"gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0)),
	}}
	if cfg.profiles != "" {
		if err := os.MkdirAll(cfg.profiles, 0o755); err != nil {
			return nil, fmt.Errorf("create profile dir: %w", err)
		}
	}
	if cfg.warmup > 0 {
		rules := buildRules(cfg.warmup, cfg.devs)
		for _, m := range ms {
			if _, err := measure(ctx, m, cfg.devs, rules, workers, false, ""); err != nil {
				return nil, fmt.Errorf("warm up with %d rules: %w", cfg.warmup, err)
			}
		}
		logf("kbench: warmed up every method with %d rules", cfg.warmup)
	}
	for _, n := range cfg.sizes {
		rules := buildRules(n, cfg.devs)
		byMethod := map[string][]Sample{}
		for r := range cfg.repeat {
			// Every other round runs the methods in reverse order, so
			// the pairs behind each ratio take turns going first.
			order := slices.Clone(ms)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, m := range order {
				prof := ""
				if cfg.profiles != "" && m.own {
					prof = filepath.Join(cfg.profiles, fmt.Sprintf("%s-%d-%d.pprof", m.key, n, r))
				}
				s, err := measure(ctx, m, cfg.devs, rules, workers, cfg.verify, prof)
				if err != nil {
					return nil, fmt.Errorf("insert %d rules: %w", n, err)
				}
				logf("kbench: insert %6d %-7s %8.0f rules/s  %7.2f s  %5.1f allocs/rule",
					n, m.key, s.Rate, s.Seconds, s.Allocs)
				rep.Samples = append(rep.Samples, s)
				byMethod[m.key] = append(byMethod[m.key], s)
			}
		}
		rounds := map[string][]float64{}
		for _, m := range ms {
			ss := byMethod[m.key]
			var secs, allocs []float64
			for _, s := range ss {
				rounds[m.key] = append(rounds[m.key], s.Rate)
				if s.BatchSeconds > 0 {
					rounds[m.key+":batch"] = append(rounds[m.key+":batch"], float64(s.Rules)/s.BatchSeconds)
				}
				secs, allocs = append(secs, s.Seconds), append(allocs, s.Allocs)
			}
			note := fmt.Sprintf("%.2f s", median(secs))
			if len(ss) > 1 {
				note = fmt.Sprintf("median of %d; %s", len(ss), note)
			}
			if m.own {
				note += fmt.Sprintf("; %.1f allocs/rule", median(allocs))
			}
			rep.add(Figure{Name: fmt.Sprintf("insert %d: (%s) %s", n, m.key, m.name), Value: median(rounds[m.key]),
				Unit: "rules/s", Note: note})
		}
		pfx := fmt.Sprintf("insert %d: ", n)
		for _, q := range []struct {
			num, den string
			min      float64
			note     string
		}{
			{"a", "c", 1.3, "codec, 1 socket vs tc -b"},
			{"b", "c", 1.8, fmt.Sprintf("codec, %d sockets vs tc -b", workers)},
			{"a", "e", 0.85, "codec vs kernel floor"},
			{"a-pre", "e", 0, "rtnl.Batch vs kernel floor, both pre-encoded"},
			{"a", "a-pre", 0, "cost of encoding"},
			{"a:batch", "a-pre:batch", 0, "time in rtnl.Batch only: the kernel's work on the same requests, encoded between sends vs before the clock"},
			{"b", "a", 0, "parallel scaling"},
			{"d", "c", 0, "vishvananda loop vs tc -b"},
			{"a-echo", "a", 0, "cost of NLM_F_ECHO"},
			{"a-echo", "e-echo", 0, "codec vs floor, both with echo"},
			{"device", "a", 0, "nic/linux Device vs bare codec"},
			{"c-par", "c", 0, "tc -b scaling"},
		} {
			rep.ratio(pfx+q.num+"/"+q.den, rounds[q.num], rounds[q.den], q.min, q.note)
		}
	}
	if cfg.restart > 0 {
		if _, err := settle(settleMax); err != nil {
			return nil, err
		}
		b, err := newBed(cfg.devs)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(cfg.tmp, "kbench-state-")
		if err != nil {
			b.close()
			return nil, fmt.Errorf("create state dir: %w", err)
		}
		res, err := restart(ctx, b, cfg.restart, dir)
		b.close()
		_ = os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("restart with %d rules: %w", cfg.restart, err)
		}
		for _, f := range res.figures() {
			logf("kbench: %s: %.2f %s %s", f.Name, f.Value, f.Unit, f.Note)
			rep.add(f)
		}
	}
	var keys []string
	for _, m := range ms {
		keys = append(keys, m.key+"="+m.name)
	}
	rep.Setup["methods"] = strings.Join(keys, ", ")
	return rep, nil
}
