package offload

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// fakeDev is an in-memory nic.Device for engine unit tests. It records
// every op as text, so tests can check make-before-break ordering.
type fakeDev struct {
	mu       sync.Mutex
	profile  *nic.Profile
	ports    []nic.Port
	planes   [3]map[string]*flow.Flow
	inHW     map[string]bool   // flow.Both copies hardware took
	handles  map[string]uint32 // per plane and ID: "hardware/a"
	next     uint32
	capacity int
	refuse   func(f *flow.Flow) error // hardware refusals beyond capacity
	log      []string
	events   chan nic.Event
	mode     nic.EswitchMode
	// gate, when set, holds every Program call until it is closed (or
	// sent on): hardware that takes its time.
	gate chan struct{}
}

func newFakeDev(capacity int) *fakeDev {
	d := &fakeDev{
		profile:  &nic.Profile{Name: "fake", MatchKeys: flow.AllKeys, Actions: ^flow.ActionSet(0)},
		capacity: capacity,
		events:   make(chan nic.Event, 16),
		mode:     nic.EswitchSwitchdev,
	}
	d.planes[0], d.planes[1], d.planes[2] = map[string]*flow.Flow{}, map[string]*flow.Flow{}, map[string]*flow.Flow{}
	d.inHW = map[string]bool{}
	d.handles = map[string]uint32{}
	for _, p := range []nic.Port{
		{Name: "p0", Kind: nic.PortUplink, VF: -1},
		{Name: "pf0vf0", Kind: nic.PortRepresentor, VF: 0},
		{Name: "pf0vf1", Kind: nic.PortRepresentor, VF: 1},
		{Name: "vxlan0", Kind: nic.PortTunnel, VF: -1},
	} {
		d.ports = append(d.ports, p)
	}
	return d
}

func (d *fakeDev) Info() nic.Info {
	return nic.Info{Name: "fake0", Driver: "fake", Profile: "fake", EswitchMode: d.mode}
}
func (d *fakeDev) Profile() *nic.Profile { return d.profile }
func (d *fakeDev) Ports() []nic.Port     { return d.ports }
func (d *fakeDev) SetEswitchMode(_ context.Context, m nic.EswitchMode) error {
	d.mode = m
	return nil
}
func (d *fakeDev) Events() <-chan nic.Event { return d.events }
func (d *fakeDev) Close() error             { return nil }
func (d *fakeDev) Capacity() (int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used(), d.capacity
}

func (d *fakeDev) used() int { return len(d.planes[flow.Hardware]) + len(d.inHW) }

// hwRefusal is why hardware would not take f (held: it has the entry).
func (d *fakeDev) hwRefusal(f *flow.Flow, held bool) error {
	if d.refuse != nil {
		if err := d.refuse(f); err != nil {
			return err
		}
	}
	if !held && d.capacity > 0 && d.used() >= d.capacity {
		return nic.Refusal(syscall.ENOSPC, "table full")
	}
	return nil
}

func (d *fakeDev) Program(_ context.Context, plane flow.Plane, ops []nic.Op) []error {
	if d.gate != nil {
		<-d.gate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	errs := make([]error, len(ops))
	t := d.planes[plane]
	for i, op := range ops {
		id := op.Flow.ID
		_, has := t[id]
		switch {
		case op.Kind == nic.OpAdd && has:
			errs[i] = fmt.Errorf("add %s: %w", id, nic.ErrExists)
		case op.Kind != nic.OpAdd && !has:
			errs[i] = fmt.Errorf("%s %s: %w", op.Kind, id, nic.ErrNotFound)
		case op.Kind == nic.OpDelete:
			delete(t, id)
			if plane == flow.Both {
				delete(d.inHW, id)
			}
		case plane == flow.Hardware && d.hwRefusal(op.Flow, op.Kind == nic.OpReplace) != nil:
			errs[i] = d.hwRefusal(op.Flow, op.Kind == nic.OpReplace)
		default:
			if plane == flow.Both {
				var re *nic.RefusedError
				if err := d.hwRefusal(op.Flow, d.inHW[id]); err == nil {
					d.inHW[id] = true
				} else if errors.As(err, &re) {
					delete(d.inHW, id)
					errs[i] = &nic.NotInHWError{Refusal: re}
				}
			}
			t[id] = op.Flow.Clone()
			if op.Kind == nic.OpAdd {
				d.next++
				d.handles[plane.String()+"/"+id] = d.next
			}
		}
		res := "ok"
		if errs[i] != nil {
			res = "err"
		}
		d.log = append(d.log, fmt.Sprintf("%s %s %s %s", plane, op.Kind, id, res))
	}
	return errs
}

func (d *fakeDev) Flows(_ context.Context, plane flow.Plane) ([]nic.Installed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []nic.Installed
	for _, f := range d.planes[plane] {
		in := nic.Installed{Flow: f, Plane: plane, InHW: plane == flow.Hardware || plane == flow.Both && d.inHW[f.ID],
			Handle: d.handles[plane.String()+"/"+f.ID], Counters: nic.Counters{Packets: 1, Bytes: 100}}
		if plane == flow.Both && in.InHW {
			// Every packet ran in hardware.
			in.HWCounters, in.Counters = in.Counters, nic.Counters{}
		}
		out = append(out, in)
	}
	return out, nil
}

// String renders both planes as sorted text.
func (d *fakeDev) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var lines []string
	for p, t := range d.planes {
		for id := range t {
			name := flow.Plane(p).String()
			if flow.Plane(p) == flow.Both && d.inHW[id] {
				name += "+in_hw"
			}
			lines = append(lines, name+" "+id)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (d *fakeDev) takeLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.log
	d.log = nil
	return l
}

func acl(id string, prio uint16, dport uint16) *flow.Flow {
	return &flow.Flow{ID: id, Port: "pf0vf0", Priority: prio,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPDst: netip.MustParsePrefix("10.0.0.0/24"),
			IPProto: flow.ProtoTCP, DstPort: flow.Masked16{Value: dport, Mask: 0xffff}},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
}
