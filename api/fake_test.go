package api

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// fakeEngine is an in-memory FlowEngine: every valid flow lands in
// hardware unless scripted otherwise.
type fakeEngine struct {
	mu sync.Mutex
	// flows is the installed state.
	flows map[string]offload.Status
	// fail scripts a placement error per flow id.
	fail map[string]error
	// violations scripts engine-side validation failures per flow id.
	violations map[string][]flow.Violation
	// rejectAll makes an atomic Apply reject the batch with every flow aborted.
	rejectAll bool
	// explain is returned by ExplainBatch for every flow.
	explain offload.Explanation
	// events feeds watchers; closing it ends them with watchErr.
	events chan offload.Event
	// applied records each Apply call's flows and options.
	applied [][]*flow.Flow
	atomic  []bool
	// explained records the flows passed to ExplainBatch.
	explained []*flow.Flow
	// filters records List filters.
	filters []offload.Filter
	now     time.Time
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		flows:      map[string]offload.Status{},
		fail:       map[string]error{},
		violations: map[string][]flow.Violation{},
		events:     make(chan offload.Event, 16),
		now:        time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func (e *fakeEngine) Apply(_ context.Context, flows []*flow.Flow, opt offload.ApplyOptions) ([]offload.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.applied = append(e.applied, flows)
	e.atomic = append(e.atomic, opt.Atomic)
	results := make([]offload.Result, len(flows))
	bad := false
	for i, f := range flows {
		results[i].ID = f.ID
		switch {
		case len(e.violations[f.ID]) > 0:
			results[i].Outcome, results[i].Violations = offload.OutcomeInvalid, e.violations[f.ID]
			bad = true
		case e.fail[f.ID] != nil:
			results[i].Outcome, results[i].Err = offload.OutcomeFailed, e.fail[f.ID]
			bad = true
		}
	}
	if opt.Atomic && (bad || e.rejectAll) {
		for i := range results {
			if results[i].Outcome == 0 {
				results[i].Outcome = offload.OutcomeAborted
			}
		}
		return results, offload.ErrBatchRejected
	}
	for i, f := range flows {
		if results[i].Outcome != 0 {
			continue
		}
		old, ok := e.flows[f.ID]
		st := offload.Status{Flow: f, State: offload.StateHardware, Generation: 1, Device: "p0", Updated: e.now}
		switch {
		case ok && old.Flow.Equal(f):
			results[i].Outcome, st = offload.OutcomeUnchanged, old
		case ok:
			results[i].Outcome, st.Generation = offload.OutcomeUpdated, old.Generation+1
		default:
			results[i].Outcome = offload.OutcomeCreated
		}
		e.flows[f.ID] = st
		results[i].Status = st
	}
	return results, nil
}

func (e *fakeEngine) Delete(_ context.Context, ids []string) ([]offload.DeleteResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]offload.DeleteResult, len(ids))
	for i, id := range ids {
		_, ok := e.flows[id]
		out[i] = offload.DeleteResult{ID: id, Found: ok}
		delete(e.flows, id)
	}
	return out, nil
}

func (e *fakeEngine) List(f offload.Filter) []offload.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.filters = append(e.filters, f)
	var out []offload.Status
	for id, st := range e.flows {
		if f.Port != "" && st.Flow.Port != f.Port || f.State != nil && st.State != *f.State ||
			!strings.HasPrefix(id, f.IDPrefix) || f.Chain != nil && st.Flow.Chain != *f.Chain {
			continue
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Flow.ID < out[j].Flow.ID })
	return out
}

// ListPage pages List as the engine does.
func (e *fakeEngine) ListPage(f offload.Filter, after string, limit int) ([]offload.Status, bool) {
	all := e.List(f)
	start := sort.Search(len(all), func(i int) bool { return all[i].Flow.ID > after })
	end := len(all)
	if limit > 0 {
		end = min(start+limit, len(all))
	}
	return all[start:end], end < len(all)
}

func (e *fakeEngine) Get(id string) (offload.Status, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.flows[id]
	return st, ok
}

func (e *fakeEngine) ExplainBatch(_ context.Context, fs []*flow.Flow) []offload.Explanation {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]offload.Explanation, len(fs))
	for i, f := range fs {
		e.explained = append(e.explained, f)
		out[i] = e.explain
	}
	return out
}

func (e *fakeEngine) Watch(context.Context) (*offload.Watcher, error) {
	snap := e.List(offload.Filter{})
	return offload.NewStaticWatcher(snap, e.events), nil
}

// fakeDevice is a nic.Device with fixed answers.
type fakeDevice struct {
	info    nic.Info
	profile *nic.Profile
	ports   []nic.Port
	used    int
	total   int
}

func (d *fakeDevice) Info() nic.Info                                        { return d.info }
func (d *fakeDevice) Profile() *nic.Profile                                 { return d.profile }
func (d *fakeDevice) Ports() []nic.Port                                     { return append([]nic.Port(nil), d.ports...) }
func (d *fakeDevice) SetEswitchMode(context.Context, nic.EswitchMode) error { return nil }
func (d *fakeDevice) Program(_ context.Context, _ flow.Plane, ops []nic.Op) []error {
	return make([]error, len(ops))
}
func (d *fakeDevice) Flows(context.Context, flow.Plane) ([]nic.Installed, error) { return nil, nil }
func (d *fakeDevice) Capacity() (int, int)                                       { return d.used, d.total }
func (d *fakeDevice) Events() <-chan nic.Event                                   { return nil }
func (d *fakeDevice) Close() error                                               { return nil }

type fakeNode []nic.Device

func (n fakeNode) Devices() []nic.Device { return n }
