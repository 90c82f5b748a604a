package offload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// Config configures an Engine.
type Config struct {
	// Devices are the NICs the engine programs; a flow goes to the device owning its port.
	Devices []nic.Device
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Store persists desired state; nil keeps it in memory only.
	Store Store
	// Now defaults to time.Now.
	Now func() time.Time
	// WatchBuffer bounds the bytes of changes queued for one watcher that
	// does not keep up; past it the watcher ends with ErrWatcherLagged
	// and must watch again (default DefaultWatchBuffer).
	WatchBuffer int
}

// Engine holds the desired state of every flow and places each in a plane.
//
// One writer at a time (e.wmu) changes state: Apply, Delete, promotion,
// drain, hold, restore and port events. It talks to the devices without
// e.mu and takes e.mu only to commit what changed in memory, in short
// sections (commit), so List, Get, Watch and Explain, which read under
// e.mu, never wait on hardware.
type Engine struct {
	log   *slog.Logger
	now   func() time.Time
	store Store
	// kinds is portKind as one func value, made once: a method value
	// made per check would be an allocation per flow.
	kinds nic.PortKinds
	// persister writes the store; nil without one.
	persister *persister
	devs      []nic.Device
	// names are the devices' names, read once: Info may be costly.
	names []string

	// wmu is the writer's; mu guards what readers see (and counters,
	// which RefreshStats updates without being the writer).
	wmu   sync.Mutex
	mu    sync.RWMutex
	ports map[string]portRef
	flows map[string]*entry
	// byID orders the flows by ID, for List's pages.
	byID *btree.BTreeG[*entry]
	// gotoFlows are the flows with a goto action, for loop checks.
	gotoFlows map[*entry]struct{}
	chains    map[chainKey]*chainSet // flows per (port, chain)
	// retired are the counters of deleted flows per device and plane,
	// so that totals never go down.
	retired  map[int]*[2]nic.Counters
	draining map[string]string
	watchers map[*Watcher]struct{}
	closed   bool
	// watchBuffer is Config.WatchBuffer.
	watchBuffer int

	// freed is signalled (coalescing) when hardware capacity may have become free.
	freed chan struct{}
}

type portRef struct {
	port nic.Port
	dev  int
}

type chainKey struct {
	port  string
	chain uint32
}

type entry struct {
	flow    *flow.Flow
	reasons []nic.Reason
	gen     uint64
	// hw and sw are the flow's counters per plane over its whole life,
	// across copies that came and went; seen is the last reading of each
	// plane's current copy, to add only what is new.
	hw, sw  nic.Counters
	seen    [2]copyReading
	updated stamp
	dev     int
	pos     int32 // in its chainSet
	state   State
	// plane is where the flow's copy was put (flow.Both: no skip flag),
	// in StateHardware and StateSoftware.
	plane flow.Plane
	// spilled marks a software flow that hardware refused for capacity or a
	// device error: a candidate for promotion.
	spilled bool
}

// hasCopy says whether the flow has a copy installed (in e.plane).
func (en *entry) hasCopy() bool { return en.state == StateHardware || en.state == StateSoftware }

// retire keeps a deleted flow's counters in its device's totals.
func (e *Engine) retire(en *entry) {
	r := e.retired[en.dev]
	if r == nil {
		r = &[2]nic.Counters{}
		e.retired[en.dev] = r
	}
	r[flow.Hardware].Packets += en.hw.Packets
	r[flow.Hardware].Bytes += en.hw.Bytes
	r[flow.Software].Packets += en.sw.Packets
	r[flow.Software].Bytes += en.sw.Bytes
}

// commitChunk is how many flows a writer commits per hold of e.mu.
const commitChunk = 512

// commit runs fn(0..n-1) holding e.mu, releasing it every commitChunk
// calls so readers get their turn in a long batch. Callers hold e.wmu.
func (e *Engine) commit(n int, fn func(i int)) {
	for lo := 0; lo < n; lo += commitChunk {
		e.mu.Lock()
		for i := lo; i < min(lo+commitChunk, n); i++ {
			fn(i)
		}
		e.mu.Unlock()
	}
}

// locked runs fn holding e.mu. Callers hold e.wmu.
func (e *Engine) locked(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn()
}

// stamp is a time in Unix nanoseconds, 16 bytes smaller than time.Time
// in an entry kept per flow.
type stamp int64

func stampOf(t time.Time) stamp { return stamp(t.UnixNano()) }

func (s stamp) time() time.Time { return time.Unix(0, int64(s)) }

// New builds an engine over devices.
func New(cfg Config) (*Engine, error) {
	if len(cfg.Devices) == 0 {
		return nil, errors.New("new engine: no devices")
	}
	e := &Engine{
		log:       cfg.Logger,
		now:       cfg.Now,
		store:     cfg.Store,
		devs:      cfg.Devices,
		ports:     map[string]portRef{},
		flows:     map[string]*entry{},
		chains:    map[chainKey]*chainSet{},
		byID:      btree.NewG(32, func(a, b *entry) bool { return a.flow.ID < b.flow.ID }),
		gotoFlows: map[*entry]struct{}{},
		retired:   map[int]*[2]nic.Counters{},
		draining:  map[string]string{},
		watchers:  map[*Watcher]struct{}{},
		freed:     make(chan struct{}, 1),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.store != nil {
		e.persister = newPersister(e.store)
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.watchBuffer = cfg.WatchBuffer
	if e.watchBuffer <= 0 {
		e.watchBuffer = DefaultWatchBuffer
	}
	e.kinds = e.portKind
	for i, d := range e.devs {
		e.names = append(e.names, d.Info().Name)
		for _, p := range d.Ports() {
			if prev, ok := e.ports[p.Name]; ok {
				return nil, fmt.Errorf("new engine: port %s on %s and %s", p.Name, e.names[prev.dev], e.names[i])
			}
			e.ports[p.Name] = portRef{port: p, dev: i}
		}
	}
	return e, nil
}

// Devices lists the engine's NICs.
func (e *Engine) Devices() []nic.Device { return e.devs }

// CapacityFreed is signalled when hardware entries may have become free.
func (e *Engine) CapacityFreed() <-chan struct{} { return e.freed }

func (e *Engine) signalFreed() {
	select {
	case e.freed <- struct{}{}:
	default:
	}
}

// portsView adapts the engine's port map to flow.Ports.
type portsView struct{ e *Engine }

func (v portsView) HasPort(name string) bool { _, ok := v.e.ports[name]; return ok }
func (v portsView) IsTunnel(name string) bool {
	r, ok := v.e.ports[name]
	return ok && r.port.Kind == nic.PortTunnel
}

func (e *Engine) portKind(name string) nic.PortKind {
	if r, ok := e.ports[name]; ok {
		return r.port.Kind
	}
	return 0
}

// hardwareReasons is why f cannot go in hardware before asking the device.
func (e *Engine) hardwareReasons(f *flow.Flow, dev int) []nic.Reason {
	if f.Policy == flow.PolicySoftwareOnly {
		return []nic.Reason{{Code: nic.ReasonPolicy, Field: "policy", Message: "the flow asks for software only"}}
	}
	if why, ok := e.draining[f.Port]; ok {
		return []nic.Reason{{Code: nic.ReasonDraining, Field: "port", Message: fmt.Sprintf("port %s is draining to software: %s", f.Port, why)}}
	}
	d := e.devs[dev]
	if eswitchMode(d) != nic.EswitchSwitchdev {
		return []nic.Reason{{Code: nic.ReasonEswitchMode, Message: fmt.Sprintf("%s is in legacy eswitch mode; tc offload needs switchdev", e.names[dev])}}
	}
	return d.Profile().Check(f, e.kinds)
}

// eswitchModer is implemented by devices that report their eswitch mode
// more cheaply than Info does.
type eswitchModer interface{ EswitchMode() nic.EswitchMode }

func eswitchMode(d nic.Device) nic.EswitchMode {
	if m, ok := d.(eswitchModer); ok {
		return m.EswitchMode()
	}
	return d.Info().EswitchMode
}

// refusalReason turns a device error into a reason, and says whether the
// flow should be retried in hardware later.
func refusalReason(err error) (nic.Reason, bool) {
	var re *nic.RefusedError
	if errors.As(err, &re) {
		switch re.Kind {
		case nic.RefusedNoSpace:
			return nic.Reason{Code: nic.ReasonCapacity, Message: "hardware refused: " + re.Error()}, true
		case nic.RefusedUnsupported:
			return nic.Reason{Code: nic.ReasonRefused, Message: "hardware refused: " + re.Error()}, false
		}
		return nic.Reason{Code: nic.ReasonDeviceError, Message: "hardware refused: " + re.Error()}, true
	}
	return nic.Reason{Code: nic.ReasonDeviceError, Message: err.Error()}, true
}

func (e *Engine) status(id string, en *entry) Status {
	return Status{
		Flow:       en.flow,
		State:      en.state,
		Reasons:    en.reasons,
		Generation: en.gen,
		HW:         en.hw,
		SW:         en.sw,
		Device:     e.names[en.dev],
		Updated:    en.updated.time(),
	}
}

// Get returns one flow's status.
func (e *Engine) Get(id string) (Status, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	en, ok := e.flows[id]
	if !ok {
		return Status{}, false
	}
	return e.status(id, en), true
}

// List returns the statuses of the flows that match f, sorted by ID.
func (e *Engine) List(f Filter) []Status {
	out, _ := e.ListPage(f, "", 0)
	return out
}

// ListPage returns up to limit (0: no limit) statuses of the flows that
// match f whose IDs come after after, sorted by ID, and whether more
// follow. It walks the ID index from after, so a page costs the flows it
// returns and the ones the filter skips, not all of them.
func (e *Engine) ListPage(f Filter, after string, limit int) ([]Status, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []Status
	more := false
	visit := func(en *entry) bool {
		id := en.flow.ID
		if id == after {
			return true
		}
		if f.IDPrefix != "" && !strings.HasPrefix(id, f.IDPrefix) {
			// IDs with the prefix are contiguous: past them, stop.
			return id < f.IDPrefix
		}
		if f.Port != "" && en.flow.Port != f.Port ||
			f.State != nil && en.state != *f.State ||
			f.Chain != nil && en.flow.Chain != *f.Chain {
			return true
		}
		if limit > 0 && len(out) == limit {
			more = true
			return false
		}
		out = append(out, e.status(id, en))
		return true
	}
	from := max(after, f.IDPrefix)
	if from == "" {
		e.byID.Ascend(visit)
	} else {
		e.byID.AscendGreaterOrEqual(&entry{flow: &flow.Flow{ID: from}}, visit)
	}
	return out, more
}

// Count returns how many flows are in each state.
func (e *Engine) Count() map[State]int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	m := map[State]int{}
	for _, en := range e.flows {
		m[en.state]++
	}
	return m
}

// Explain says where f would be placed now and why, changing nothing.
func (e *Engine) Explain(ctx context.Context, f *flow.Flow) Explanation {
	return e.ExplainBatch(ctx, []*flow.Flow{f})[0]
}

// ExplainBatch says where each flow of a batch would be placed if Apply
// got it now, and why, changing nothing: the same validation (gotos
// resolved within the batch), the same profile checks, hardware room
// consumed in the order Apply programs, and the same ordering rule.
func (e *Engine) ExplainBatch(ctx context.Context, flows []*flow.Flow) []Explanation {
	batch := make([]*flow.Flow, len(flows))
	for i, f := range flows {
		batch[i] = f.Clone()
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	results, _ := e.validateBatch(batch)
	xs := make([]Explanation, len(batch))
	var changes []*change
	for i, f := range batch {
		x := &xs[i]
		x.Changed = true
		old := e.flows[f.ID]
		if old != nil {
			st := e.status(f.ID, old)
			x.Installed = &st
			x.Changed = !old.flow.Equal(f)
		}
		if v := results[i].Violations; len(v) > 0 {
			x.Violations, x.State = v, StateFailed
			continue
		}
		if !x.Changed && results[i].Outcome != OutcomeInvalid {
			continue // answered below, after the batch's plan
		}
		changes = append(changes, &change{i: i, f: f, dev: e.ports[f.Port].dev, old: old})
	}
	planned, p := e.plan(changes)
	for i, f := range batch {
		x := &xs[i]
		if x.Changed || len(x.Violations) > 0 {
			continue
		}
		old := e.flows[f.ID]
		x.State, x.Reasons = old.state, old.reasons
		if by, ok := p.demoted[old]; ok {
			x.State, x.Reasons = StateSoftware, []nic.Reason{shadowReason(by)}
		}
		if rs, ok := p.hwOnly[old]; ok {
			x.Reasons = rs
		}
	}
	for _, c := range planned {
		x := &xs[c.i]
		x.State, x.Reasons = c.state, c.reasons
		if c.failed() {
			x.State = StateFailed
		}
	}
	return xs
}

// gotoViolations checks that goto targets have rules, counting the batch.
func (e *Engine) gotoViolations(f *flow.Flow, batch map[chainKey]bool) []flow.Violation {
	var out []flow.Violation
	for i := range f.Actions {
		a := &f.Actions[i]
		if a.Kind != flow.ActGoto {
			continue
		}
		k := chainKey{f.Port, a.Chain}
		if e.chains[k] == nil && !batch[k] {
			out = append(out, flow.Violation{
				Field:  fmt.Sprintf("actions[%d].chain", i),
				Reason: fmt.Sprintf("goto chain %d, which has no rules on port %s", a.Chain, f.Port),
			})
		}
	}
	return out
}

// Summary is an aggregate view of the flows, cheap to take at any scale.
type Summary struct {
	// States counts flows per device and state.
	States map[string]map[State]int
	// Reasons counts flows not in hardware by their first reason's code.
	Reasons map[nic.ReasonCode]int
	// Packets and Bytes sum the flows' counters per device and plane.
	Packets, Bytes map[string][2]uint64
	// StoreFailing is set while writes of the desired state fail;
	// StoreFailures counts failed writes since start.
	StoreFailing  bool
	StoreFailures uint64
}

// Summarize aggregates the flows without copying them.
func (e *Engine) Summarize() Summary {
	s := Summary{States: map[string]map[State]int{}, Reasons: map[nic.ReasonCode]int{},
		Packets: map[string][2]uint64{}, Bytes: map[string][2]uint64{}}
	for _, n := range e.names {
		s.States[n] = map[State]int{}
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, en := range e.flows {
		name := e.names[en.dev]
		s.States[name][en.state]++
		if len(en.reasons) > 0 && en.state != StateHardware {
			s.Reasons[en.reasons[0].Code]++
		}
		p, b := s.Packets[name], s.Bytes[name]
		p[flow.Hardware] += en.hw.Packets
		p[flow.Software] += en.sw.Packets
		b[flow.Hardware] += en.hw.Bytes
		b[flow.Software] += en.sw.Bytes
		s.Packets[name], s.Bytes[name] = p, b
	}
	if err, n := e.Durability(); n > 0 {
		s.StoreFailing, s.StoreFailures = err != nil, n
	}
	for dev, r := range e.retired {
		name := e.names[dev]
		p, b := s.Packets[name], s.Bytes[name]
		for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
			p[plane] += r[plane].Packets
			b[plane] += r[plane].Bytes
		}
		s.Packets[name], s.Bytes[name] = p, b
	}
	return s
}
