package offload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

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
}

// Engine holds the desired state of every flow and places each in a plane.
// Apply and Delete are serialized; List, Get and Watch may run concurrently.
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

	mu       sync.RWMutex
	ports    map[string]portRef
	flows    map[string]*entry
	chains   map[chainKey]int // flows per (port, chain), for goto checks
	draining map[string]string
	watchers map[*Watcher]struct{}
	closed   bool

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
	state   State
	// spilled marks a software flow that hardware refused for capacity or a
	// device error: a candidate for promotion.
	spilled bool
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
		log:      cfg.Logger,
		now:      cfg.Now,
		store:    cfg.Store,
		devs:     cfg.Devices,
		ports:    map[string]portRef{},
		flows:    map[string]*entry{},
		chains:   map[chainKey]int{},
		draining: map[string]string{},
		watchers: map[*Watcher]struct{}{},
		freed:    make(chan struct{}, 1),
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
	e.mu.RLock()
	out := make([]Status, 0, len(e.flows))
	for id, en := range e.flows {
		if f.Port != "" && en.flow.Port != f.Port ||
			f.State != nil && en.state != *f.State ||
			f.IDPrefix != "" && !strings.HasPrefix(id, f.IDPrefix) ||
			f.Chain != nil && en.flow.Chain != *f.Chain {
			continue
		}
		out = append(out, e.status(id, en))
	}
	e.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Flow.ID < out[j].Flow.ID })
	return out
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
	f = f.Clone()
	flow.Normalize(f)
	e.mu.RLock()
	defer e.mu.RUnlock()
	var x Explanation
	if old, ok := e.flows[f.ID]; ok {
		st := e.status(f.ID, old)
		x.Installed = &st
		x.Changed = !old.flow.Equal(f)
	} else {
		x.Changed = true
	}
	x.Violations = flow.Validate(f, portsView{e})
	x.Violations = append(x.Violations, e.gotoViolations(f, nil)...)
	if len(x.Violations) > 0 {
		x.State = StateFailed
		return x
	}
	dev := e.ports[f.Port].dev
	x.Reasons = e.hardwareReasons(f, dev)
	if len(x.Reasons) == 0 {
		used, total := e.devs[dev].Capacity()
		inHW := x.Installed != nil && x.Installed.State == StateHardware
		if total > 0 && used >= total && !inHW {
			x.Reasons = []nic.Reason{{Code: nic.ReasonCapacity, Message: fmt.Sprintf("hardware flow table is full (%d of %d entries)", used, total)}}
		}
	}
	switch {
	case len(x.Reasons) == 0:
		x.State = StateHardware
	case f.Policy == flow.PolicyHardwareOnly:
		x.State = StateFailed
	default:
		x.State = StateSoftware
	}
	return x
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
		if e.chains[k] == 0 && !batch[k] {
			out = append(out, flow.Violation{
				Field:  fmt.Sprintf("actions[%d].chain", i),
				Reason: fmt.Sprintf("goto chain %d, which has no rules on port %s", a.Chain, f.Port),
			})
		}
	}
	return out
}

func (e *Engine) addChain(f *flow.Flow, n int) {
	k := chainKey{f.Port, f.Chain}
	e.chains[k] += n
	if e.chains[k] <= 0 {
		delete(e.chains, k)
	}
}

// Summary is an aggregate view of the flows, cheap to take at any scale.
type Summary struct {
	// States counts flows per device and state.
	States map[string]map[State]int
	// Reasons counts flows not in hardware by their first reason's code.
	Reasons map[nic.ReasonCode]int
	// Packets and Bytes sum the flows' counters per device and plane.
	Packets, Bytes map[string][2]uint64
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
		if len(en.reasons) > 0 {
			s.Reasons[en.reasons[0].Code]++
		}
		p, b := s.Packets[name], s.Bytes[name]
		p[flow.Hardware] += en.hw.Packets
		p[flow.Software] += en.sw.Packets
		b[flow.Hardware] += en.hw.Bytes
		b[flow.Software] += en.sw.Bytes
		s.Packets[name], s.Bytes[name] = p, b
	}
	return s
}
