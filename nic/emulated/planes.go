package emulated

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// L2HeaderLen is what hardware byte counters leave out per packet: the
// 14-byte Ethernet header (see AddCounters).
const L2HeaderLen = 14

// table is one plane's flows by ID.
type table struct {
	flows map[string]entry
	// inHW counts the flow.Both copies hardware took.
	inHW int
	next uint32 // last handle given out
	// gen counts changes to flows; FlowTable rebuilds index when it moves.
	gen   uint64
	index atomic.Pointer[FlowTable]
}

// entry is one installed copy. flow is shared with the caller and never modified.
type entry struct {
	flow     *flow.Flow
	handle   uint32
	counters nic.Counters
	// inHW and hw are a flow.Both copy's: whether hardware took it, and
	// its hits there, from its first (counters are then its software hits).
	inHW bool
	hw   *nic.Counters
}

var (
	errNilFlow    = errors.New("op has no flow")
	errUnknownOp  = errors.New("unknown op kind")
	errNoID       = nic.Refusal(syscall.EINVAL, "flow has no ID")
	errNoPriority = nic.Refusal(syscall.EINVAL, "priority 0 is not valid")
	errLegacy     = &nic.RefusedError{Kind: nic.RefusedUnsupported, Errno: syscall.EOPNOTSUPP, Message: "eswitch is in legacy mode"}
)

// Program applies ops to one plane in order and returns one error per op.
//
// Every plane: OpAdd of an ID the plane holds fails with nic.ErrExists,
// OpReplace and OpDelete of one it does not hold with nic.ErrNotFound; add
// and replace need the ingress port to exist (else a *nic.RefusedError
// with ENODEV) and pass the active faults of the software plane (skip_hw
// and both) or the hardware plane (skip_sw). Hardware admission checks
// the flow against the profile (EOPNOTSUPP with the first reason's
// message, like a kernel extack), the table size (ENOSPC) and the
// hardware faults, waits the configured latency and insert pacing, and
// refuses everything in legacy eswitch mode. In flow.Hardware a refusal
// fails the op; in flow.Both the copy is installed in software all the
// same and the op answers a *nic.NotInHWError (tc's not_in_hw), and a
// replace offers the flow to hardware again. A replace keeps the copy's
// handle and counters. Stored copies are normalized (a clone is made only
// when the caller's flow is not), as the kernel masks keys when it stores
// a filter. A cancelled ctx fails the ops not yet applied.
// Equivalent to: tc filter add|replace|del dev PORT ingress ... flower [skip_sw|skip_hw]
func (d *Device) Program(ctx context.Context, plane flow.Plane, ops []nic.Op) []error {
	errs := make([]error, len(ops))
	if len(ops) == 0 {
		return errs
	}
	if plane > flow.Both {
		failRest(errs, ops, plane, 0, fmt.Errorf("unknown plane %d", plane))
		return errs
	}
	if err := ctx.Err(); err != nil {
		failRest(errs, ops, plane, 0, err)
		return errs
	}
	if plane != flow.Software {
		if err := d.wait(ctx, ops); err != nil {
			failRest(errs, ops, plane, 0, err)
			return errs
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		failRest(errs, ops, plane, 0, nic.ErrClosed)
		return errs
	}
	if plane == flow.Hardware && d.mode != nic.EswitchSwitchdev {
		failRest(errs, ops, plane, 0, errLegacy)
		return errs
	}
	t := &d.tables[plane]
	freed := false
	for i := range ops {
		if err := ctx.Err(); err != nil {
			failRest(errs, ops, plane, i, err)
			break
		}
		if err := d.apply(t, plane, &ops[i], &freed); err != nil {
			errs[i] = opError(plane, &ops[i], err)
		}
	}
	if freed {
		d.events.push(nic.Event{Kind: nic.EventCapacityFreed})
	}
	return errs
}

// apply runs one op. Called with d.mu held for writing.
func (d *Device) apply(t *table, plane flow.Plane, op *nic.Op, freed *bool) error {
	f := op.Flow
	if f == nil {
		return errNilFlow
	}
	switch op.Kind {
	case nic.OpAdd:
		if _, ok := t.flows[f.ID]; ok {
			return nic.ErrExists
		}
		refused, err := d.admit(plane, f, false)
		if err != nil {
			return err
		}
		t.next++
		e := entry{flow: flow.Normalized(f), handle: t.next, inHW: plane == flow.Both && refused == nil}
		t.flows[f.ID] = e
		if e.inHW {
			t.inHW++
		}
		t.gen++
		if refused != nil {
			return &nic.NotInHWError{Refusal: refused}
		}
	case nic.OpReplace:
		e, ok := t.flows[f.ID]
		if !ok {
			return nic.ErrNotFound
		}
		refused, err := d.admit(plane, f, plane == flow.Hardware || e.inHW)
		if err != nil {
			return err
		}
		if plane == flow.Both {
			switch {
			case e.inHW && refused != nil:
				*freed = true
				t.inHW--
			case !e.inHW && refused == nil:
				t.inHW++
			}
			e.inHW = refused == nil
		}
		e.flow = flow.Normalized(f)
		t.flows[f.ID] = e
		t.gen++
		if refused != nil {
			return &nic.NotInHWError{Refusal: refused}
		}
	case nic.OpDelete:
		e, ok := t.flows[f.ID]
		if !ok {
			return nic.ErrNotFound
		}
		delete(t.flows, f.ID)
		t.gen++
		if e.inHW {
			t.inHW--
		}
		if plane == flow.Hardware || e.inHW {
			*freed = true
		}
	default:
		return errUnknownOp
	}
	return nil
}

// admit decides whether plane takes f. A refusal of the copy is an
// error; for flow.Both, hardware's refusal is returned apart (the copy is
// still installed in software). held: f already has a hardware entry.
func (d *Device) admit(plane flow.Plane, f *flow.Flow, held bool) (*nic.RefusedError, error) {
	switch {
	case f.ID == "":
		return nil, errNoID
	case f.Priority == 0:
		return nil, errNoPriority
	}
	if _, ok := d.ports[f.Port]; !ok {
		return nil, nic.Refusal(syscall.ENODEV, fmt.Sprintf("no such port %q", f.Port))
	}
	if plane != flow.Hardware && len(d.faults) > 0 {
		if err := d.faultFor(flow.Software, f); err != nil {
			return nil, err
		}
	}
	switch plane {
	case flow.Hardware:
		if re := d.admitHardware(f, held); re != nil {
			return nil, re
		}
	case flow.Both:
		return d.admitHardware(f, held), nil
	}
	return nil, nil
}

// admitHardware decides whether the NIC takes f: eswitch mode, profile,
// hardware faults, then room (held: f already has an entry there).
// Called with d.mu held for writing.
func (d *Device) admitHardware(f *flow.Flow, held bool) *nic.RefusedError {
	if d.mode != nic.EswitchSwitchdev {
		return errLegacy
	}
	if reasons := d.profile.Check(f, d.kinds); len(reasons) > 0 {
		return &nic.RefusedError{Kind: nic.RefusedUnsupported, Errno: syscall.EOPNOTSUPP, Message: reasons[0].Message}
	}
	if len(d.faults) > 0 {
		if err := d.faultFor(flow.Hardware, f); err != nil {
			var re *nic.RefusedError
			if errors.As(err, &re) {
				return re
			}
			return nic.Refusal(syscall.EIO, err.Error())
		}
	}
	if !held && d.tableSize > 0 && d.hwUsed() >= d.tableSize {
		return nic.Refusal(syscall.ENOSPC, fmt.Sprintf("hardware flow table full (%d entries)", d.tableSize))
	}
	return nil
}

// hwUsed counts the hardware table's entries: skip_sw copies and the
// flow.Both copies hardware took. Called with d.mu held.
func (d *Device) hwUsed() int {
	return len(d.tables[flow.Hardware].flows) + d.tables[flow.Both].inHW
}

// unoffloadBoth takes every flow.Both copy out of hardware (legacy mode).
// Called with d.mu held for writing.
func (d *Device) unoffloadBoth() {
	t := &d.tables[flow.Both]
	for id, e := range t.flows {
		if e.inHW {
			e.inHW = false
			t.flows[id] = e
			t.gen++
		}
	}
	t.inHW = 0
}

func opError(plane flow.Plane, op *nic.Op, err error) error {
	id := ""
	if op.Flow != nil {
		id = op.Flow.ID
	}
	return fmt.Errorf("%s %s flow %q: %w", plane, op.Kind, id, err)
}

// failRest sets errs[from:] to err, wrapped per op.
func failRest(errs []error, ops []nic.Op, plane flow.Plane, from int, err error) {
	for i := from; i < len(ops); i++ {
		errs[i] = opError(plane, &ops[i], err)
	}
}

// wait sleeps the hardware latency plus, with Config.PaceInserts, the time
// the profile's InsertRate needs for the batch's adds and replaces.
func (d *Device) wait(ctx context.Context, ops []nic.Op) error {
	delay := time.Duration(d.latency.Load())
	if rate := d.profile.InsertRate; d.cfg.PaceInserts && rate > 0 {
		n := 0
		for i := range ops {
			if ops[i].Kind == nic.OpAdd || ops[i].Kind == nic.OpReplace {
				n++
			}
		}
		if n > 0 {
			d.paceMu.Lock()
			now := time.Now()
			if d.paceNext.Before(now) {
				d.paceNext = now
			}
			d.paceNext = d.paceNext.Add(time.Duration(n) * time.Second / time.Duration(rate))
			delay += d.paceNext.Sub(now)
			d.paceMu.Unlock()
		}
	}
	if delay <= 0 {
		return nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// Flows lists a plane's copies in the order they were added, with their
// counters; each Flow is a clone the caller may keep.
// Equivalent to: tc -s filter show dev PORT ingress
func (d *Device) Flows(ctx context.Context, plane flow.Plane) ([]nic.Installed, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s flows: %w", plane, err)
	}
	if plane > flow.Both {
		return nil, fmt.Errorf("list flows: unknown plane %d", plane)
	}
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return nil, fmt.Errorf("list %s flows: %w", plane, nic.ErrClosed)
	}
	t := &d.tables[plane]
	out := make([]nic.Installed, 0, len(t.flows))
	for _, e := range t.flows {
		in := nic.Installed{Flow: e.flow, Plane: plane, Counters: e.counters, Handle: e.handle}
		if plane == flow.Hardware || e.inHW {
			in.InHW, in.InHWCount = true, 1
		}
		if plane == flow.Both {
			if e.hw != nil {
				in.HWCounters = *e.hw
			}
		}
		out = append(out, in)
	}
	d.mu.RUnlock()
	// Sorted outside the lock: Program need not wait for it.
	slices.SortFunc(out, func(a, b nic.Installed) int { return cmp.Compare(a.Handle, b.Handle) })
	return out, nil
}

// Capacity reports the hardware table's used and total entries (total 0:
// the profile sets no limit).
func (d *Device) Capacity() (used, total int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.hwUsed(), d.tableSize
}

// SetTableSize changes the hardware table size live; 0 restores the
// configured size (Profile().HWTableSize). Shrinking below what is
// installed keeps the installed flows and refuses adds until deletes make
// room; growing past what is installed reports EventCapacityFreed.
func (d *Device) SetTableSize(n int) error {
	if n < 0 {
		return fmt.Errorf("set hardware table size %d: negative size", n)
	}
	if n == 0 {
		n = d.profile.HWTableSize
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("set hardware table size %d: %w", n, nic.ErrClosed)
	}
	old := d.tableSize
	d.tableSize = n
	used := d.hwUsed()
	grown := old > 0 && (n == 0 || n > old)
	if grown && (n == 0 || used < n) {
		d.events.push(nic.Event{Kind: nic.EventCapacityFreed})
	}
	return nil
}

// AddCounters accounts packets and bytes to a flow's copy in plane and
// moves its last-used time forward to at. bytes are whole frames; for the
// hardware plane the 14-byte L2 header of each packet is left out, as
// offloaded byte counters do (tc shows the same for skip_sw rules on mlx5).
// An unknown flow is an error wrapping nic.ErrNotFound.
func (d *Device) AddCounters(plane flow.Plane, id string, packets, bytes uint64, at time.Time) error {
	switch plane {
	case flow.Hardware:
		if hdr := packets * L2HeaderLen; bytes > hdr {
			bytes -= hdr
		} else {
			bytes = 0
		}
	case flow.Software:
	default:
		return fmt.Errorf("add counters to flow %q: unknown plane %d", id, plane)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("add counters to %s flow %q: %w", plane, id, nic.ErrClosed)
	}
	// The copy put only in plane, else a flow.Both copy that runs there.
	t := &d.tables[plane]
	e, ok := t.flows[id]
	c := &e.counters
	if !ok {
		t = &d.tables[flow.Both]
		e, ok = t.flows[id]
		if plane == flow.Hardware && ok && e.inHW {
			if e.hw == nil {
				e.hw = &nic.Counters{}
			}
			c = e.hw
		} else if plane == flow.Hardware {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("add counters to %s flow %q: %w", plane, id, nic.ErrNotFound)
	}
	c.Packets += packets
	c.Bytes += bytes
	if at.After(c.LastUsed) {
		c.LastUsed = at
	}
	t.flows[id] = e
	return nil
}

// flushPorts removes the flows whose ingress port is in gone from both
// planes, as the kernel does when a netdev and its qdisc go away, and
// reports freed hardware entries. Called with d.mu held for writing.
func (d *Device) flushPorts(gone map[string]bool) {
	for p := range d.tables {
		t := &d.tables[p]
		n := len(t.flows)
		hw := false
		for id, e := range t.flows {
			if gone[e.flow.Port] {
				delete(t.flows, id)
				if e.inHW {
					t.inHW--
					hw = true
				}
			}
		}
		if len(t.flows) < n {
			t.gen++
		}
		if flow.Plane(p) == flow.Hardware && len(t.flows) < n || hw {
			d.events.push(nic.Event{Kind: nic.EventCapacityFreed})
		}
	}
}
