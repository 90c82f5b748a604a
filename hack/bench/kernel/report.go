package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/offloadd/offloadd/hack/bench/report"
)

// Figure is one measured number, in the shape every offloadd benchmark writes.
type Figure = report.Figure

// Sample is one timed run of one method.
type Sample struct {
	Method  string  `json:"method"`
	Rules   int     `json:"rules"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rules_per_s"`
	// Allocs are Go heap allocations per rule (offloadd's own methods).
	Allocs float64 `json:"allocs_per_rule,omitempty"`
	// BatchSeconds is the time spent in rtnl.Batch, the kernel's work and
	// the transport (the methods that use it).
	BatchSeconds float64 `json:"batch_seconds,omitempty"`
}

// Report is what the JSON file holds.
type Report struct {
	Machine map[string]string `json:"machine"`
	Setup   map[string]string `json:"setup"`
	Figures []Figure          `json:"figures"`
	Samples []Sample          `json:"samples"`
}

func (r *Report) add(f Figure) { r.Figures = append(r.Figures, f) }

// ratio adds the median over rounds of num[i]/den[i], the two methods'
// rates in round i, as a figure; with target > 0 the figure must reach
// it. Pairing the runs of one round keeps a busy host's slow minutes from
// landing on one side of the ratio only.
func (r *Report) ratio(name string, num, den []float64, target float64, note string) {
	var per []float64
	for i := range min(len(num), len(den)) {
		if num[i] > 0 && den[i] > 0 {
			per = append(per, num[i]/den[i])
		}
	}
	if len(per) == 0 {
		return
	}
	v := median(per)
	if len(per) > 1 {
		parts := make([]string, len(per))
		for i, x := range per {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		note += fmt.Sprintf("; median of rounds %s", strings.Join(parts, ", "))
	}
	f := Figure{Name: name, Value: v, Unit: "x", Note: note}
	if target > 0 {
		met := v >= target
		f.Target, f.Met = fmt.Sprintf(">= %.2f", target), &met
	}
	r.add(f)
}

// median returns the median of xs (the mean of the middle two for an
// even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// writeTable prints the figures as one aligned table.
func writeTable(w io.Writer, rep *Report) error {
	m := rep.Machine
	fmt.Fprintf(w, "kernel VM: %s, %s vCPUs, %s (%s); host: %s\n", m["kernel"], m["vcpus"], m["cpu"], m["accel"], m["host"])
	fmt.Fprintf(w, "setup: %s\n\n", strings.Join(setupLines(rep.Setup), "; "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tTARGET\tMET\tNOTE")
	for _, f := range rep.Figures {
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, formatValue(f.Value), f.Unit, f.Target, met, f.Note)
	}
	return tw.Flush()
}

func setupLines(s map[string]string) []string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + s[k]
	}
	return out
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// writeJSON writes rep to path.
func writeJSON(path string, rep *Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// machine describes where the figures were taken; host is what the
// script that booted the VM says about the host.
func machine(host string) map[string]string {
	m := map[string]string{"go": runtime.Version(), "vcpus": fmt.Sprint(runtime.NumCPU()),
		"date": time.Now().UTC().Format(time.RFC3339), "host": host, "cpu": "unknown", "accel": "unknown"}
	if host == "" {
		m["host"] = "unknown"
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(data))
	}
	// QEMU's TCG has no hypervisor leaf a guest can read cheaply; the
	// script that boots the VM says which accelerator it used.
	if a := os.Getenv("OFFLOADD_BENCH_ACCEL"); a != "" {
		m["accel"] = a
	}
	return m
}
