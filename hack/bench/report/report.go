// Package report is the shape every offloadd benchmark prints and writes:
// figures with units and targets, the machine they ran on, one table.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
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

// Met returns a pointer for Figure.Met.
func Met(ok bool) *bool { return &ok }

// Report is a set of figures and the machine they were measured on.
type Report struct {
	Machine map[string]string `json:"machine"`
	Figures []Figure          `json:"figures"`
}

// New starts a report on this machine.
func New() *Report { return &Report{Machine: Machine()} }

// Add records f.
func (r *Report) Add(f Figure) { r.Figures = append(r.Figures, f) }

// Missed reports whether any figure missed its target.
func (r *Report) Missed() bool {
	for _, f := range r.Figures {
		if f.Met != nil && !*f.Met {
			return true
		}
	}
	return false
}

// Write writes the report as JSON to dir/name.
func (r *Report) Write(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// Print writes the machine line and the figures as a table; notes follow
// it, numbered.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nmachine: %s, %s cores, Go %s", r.Machine["cpu"], r.Machine["cores"], r.Machine["go"])
	if la := r.Machine["loadavg"]; la != "" {
		fmt.Fprintf(w, ", load average %s at the start", la)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tTARGET\tMET")
	var notes []string
	for _, f := range r.Figures {
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		name := f.Name
		if f.Note != "" {
			notes = append(notes, f.Note)
			name = fmt.Sprintf("%s [%d]", name, len(notes))
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\n", name, f.Value, f.Unit, f.Target, met)
	}
	tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	for i, n := range notes {
		fmt.Fprintf(w, "[%d] %s\n", i+1, n)
	}
}

// Machine describes this machine: CPU model, cores, Go version, date,
// and the load average over 1, 5 and 15 minutes (the machines are shared).
func Machine() map[string]string {
	m := map[string]string{"go": runtime.Version(), "cores": fmt.Sprint(runtime.NumCPU()), "date": time.Now().UTC().Format(time.RFC3339)}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 3 {
			m["loadavg"] = strings.Join(f[:3], " ")
		}
	}
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
