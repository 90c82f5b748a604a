package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux"
	"github.com/offloadd/offloadd/nic/linux/rtnl"
	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/offloadd/offloadd/offload/store"
)

// filterKey names one installed filter.
type filterKey struct {
	ifindex int32
	chain   uint32
	prio    uint16
	handle  uint32
}

// filterState is what must not change across a restart: the rule, its
// cookie, and the index of every action. A filter deleted and added
// again, or replaced, gets new action indexes even with the same handle.
type filterState struct {
	flow    *flow.Flow
	cookie  string
	actions []uint32
}

// snapshot dumps every filter of the bed's devices.
func (b *bed) snapshot(ctx context.Context) (map[filterKey]filterState, error) {
	c, err := rtnl.Dial(b.ns)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := map[filterKey]filterState{}
	var enc tcflower.Encoder
	for _, d := range b.devs {
		enc.Reset()
		msgs, err := c.Dump(ctx, tcflower.RTMGetTFilter, enc.Dump(b.ifindex[d], 0))
		if err != nil {
			return nil, fmt.Errorf("dump filters of %s: %w", d, err)
		}
		for _, m := range msgs {
			f, err := tcflower.Decode(m, b.portName)
			if err != nil {
				return nil, fmt.Errorf("decode a filter of %s: %w", d, err)
			}
			if f.Flow == nil || len(f.Flow.Actions) == 0 {
				continue // the empty head of a filter list
			}
			st := filterState{flow: f.Flow, cookie: string(f.Cookie)}
			for _, a := range f.Actions {
				st.actions = append(st.actions, a.Index)
			}
			out[filterKey{f.Ifindex, f.Chain, f.Priority, f.Handle}] = st
		}
	}
	return out, nil
}

// changed counts the filters that differ between two snapshots: missing,
// added, or with another rule, cookie or action index.
func changed(before, after map[filterKey]filterState) int {
	n := 0
	for k, a := range before {
		b, ok := after[k]
		if !ok || a.cookie != b.cookie || !slices.Equal(a.actions, b.actions) || !a.flow.Equal(b.flow) {
			n++
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			n++
		}
	}
	return n
}

func (b *bed) deviceConfig() linux.Config {
	var ports []nic.Port
	for i, d := range b.devs[1:] {
		ports = append(ports, nic.Port{Name: d, Kind: nic.PortRepresentor, VF: i, SwitchID: "bench"})
	}
	return linux.Config{Uplink: b.devs[0], Ports: ports, NetNS: b.ns,
		Tunnel: &linux.TunnelConfig{Name: tunnelDev, DstPort: vxlanPort}, Log: quiet}
}

// restartResult is what the restart run measured.
type restartResult struct {
	rules int
	// apply is the engine's Apply of every rule (setup, for scale).
	apply time.Duration
	// device is linux.New + Adopt + Flows(software) on the installed rules.
	device      time.Duration
	deviceFound int
	// restore is store open + linux.New + offload.New + Restore.
	restore time.Duration
	report  offload.RestoreReport
	// changedDevice and changedRestore count filters that differ from
	// before the restart, after the device-level and the engine-level
	// adoption.
	changedDevice, changedRestore int
	handlesDiffer                 int
}

// restart installs n rules through an engine with a bbolt store, stops
// it (filters stay), and measures two restarts: the nic/linux Device
// alone (Adopt + Flows) and the engine (Restore from the store). Each
// must change no filter: same handles, rules, cookies, action indexes.
func restart(ctx context.Context, b *bed, n int, dir string) (restartResult, error) {
	res := restartResult{rules: n}
	rules := buildRules(n, len(b.devs))
	statePath := filepath.Join(dir, "state.db")
	cfg := b.deviceConfig()

	st, err := store.Open(statePath)
	if err != nil {
		return res, err
	}
	dev, err := linux.New(cfg)
	if err != nil {
		_ = st.Close()
		return res, fmt.Errorf("open nic/linux device: %w", err)
	}
	eng, err := offload.New(offload.Config{Devices: []nic.Device{dev}, Store: st, Logger: quiet})
	if err != nil {
		_ = dev.Close()
		_ = st.Close()
		return res, fmt.Errorf("new engine: %w", err)
	}
	flows := make([]*flow.Flow, n)
	ids := make([]string, n)
	for i, r := range rules {
		flows[i], ids[i] = r.f, r.f.ID
	}
	start := time.Now()
	for off := 0; off < n && err == nil; off += chunk {
		var results []offload.Result
		results, err = eng.Apply(ctx, flows[off:min(off+chunk, n)], offload.ApplyOptions{})
		for _, r := range results {
			if err == nil && (r.Outcome != offload.OutcomeCreated || r.Status.State != offload.StateSoftware) {
				err = fmt.Errorf("apply flow %s: outcome %d, state %s, err %v, violations %v",
					r.ID, r.Outcome, r.Status.State, r.Err, r.Violations)
			}
		}
	}
	res.apply = time.Since(start)
	_ = eng.Close()
	_ = dev.Close()
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close state file: %w", cerr)
	}
	if err != nil {
		return res, err
	}
	before, err := b.snapshot(ctx)
	if err != nil {
		return res, err
	}
	if len(before) != n {
		return res, fmt.Errorf("%d filters installed, want %d", len(before), n)
	}
	handleOf := map[string]uint32{}
	for k, s := range before {
		handleOf[s.cookie] = k.handle
	}

	if _, err := settle(30 * time.Second); err != nil {
		return res, err
	}
	start = time.Now()
	dev, err = linux.New(cfg)
	if err != nil {
		return res, fmt.Errorf("open nic/linux device after restart: %w", err)
	}
	dev.Adopt(ids)
	inst, err := dev.Flows(ctx, flow.Software)
	res.device = time.Since(start)
	_ = dev.Close()
	if err != nil {
		return res, fmt.Errorf("read software flows after restart: %w", err)
	}
	res.deviceFound = len(inst)
	for _, in := range inst {
		ck := tcflower.CookieFor(in.Flow.ID)
		if handleOf[string(ck[:])] != in.Handle {
			res.handlesDiffer++
		}
	}
	mid, err := b.snapshot(ctx)
	if err != nil {
		return res, err
	}
	res.changedDevice = changed(before, mid)

	if _, err := settle(30 * time.Second); err != nil {
		return res, err
	}
	start = time.Now()
	st, err = store.Open(statePath)
	if err != nil {
		return res, err
	}
	defer st.Close()
	dev, err = linux.New(cfg)
	if err != nil {
		return res, fmt.Errorf("open nic/linux device after restart: %w", err)
	}
	defer dev.Close()
	eng, err = offload.New(offload.Config{Devices: []nic.Device{dev}, Store: st, Logger: quiet})
	if err != nil {
		return res, fmt.Errorf("new engine after restart: %w", err)
	}
	defer eng.Close()
	res.report, err = eng.Restore(ctx)
	res.restore = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return res, err
	}
	res.changedRestore = changed(before, after)
	return res, nil
}

// figures turns the restart result into report figures.
func (r restartResult) figures() []Figure {
	zero := func(name string, v int, note string) Figure {
		met := v == 0
		return Figure{Name: name, Value: float64(v), Unit: "rules", Target: "0", Met: &met, Note: note}
	}
	n := r.rules
	adoptedOK := r.report.Adopted == n && r.deviceFound == n
	pfx := fmt.Sprintf("restart %d: ", n)
	return []Figure{
		{Name: pfx + "engine Apply (setup)", Value: float64(n) / r.apply.Seconds(), Unit: "rules/s",
			Note: fmt.Sprintf("%.2f s; software plane, bbolt store", r.apply.Seconds())},
		{Name: pfx + "Device New+Adopt+Flows", Value: r.device.Seconds(), Unit: "s",
			Note: fmt.Sprintf("%.0f rules/s; %d of %d found", float64(n)/r.device.Seconds(), r.deviceFound, n)},
		{Name: pfx + "engine Restore", Value: r.restore.Seconds(), Unit: "s",
			Note: fmt.Sprintf("%.0f rules/s; store open, device, engine, Restore", float64(n)/r.restore.Seconds())},
		{Name: pfx + "adopted by Restore", Value: float64(r.report.Adopted), Unit: "rules",
			Target: fmt.Sprint(n), Met: &adoptedOK,
			Note: fmt.Sprintf("installed %d, orphans %d, pending %d", r.report.Installed, r.report.Orphans, r.report.Pending)},
		zero(pfx+"changed by Device Adopt+Flows", r.changedDevice+r.handlesDiffer,
			"filters whose handle, rule, cookie or action index moved"),
		zero(pfx+"changed by engine Restore", r.changedRestore+r.report.Installed+r.report.Orphans,
			"filters whose handle, rule, cookie or action index moved, plus re-placed and orphaned flows"),
	}
}
