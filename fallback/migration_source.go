package fallback

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// Drain moves every flow of the port (entering at it, or redirecting or
// mirroring to it) from hardware to software, make-before-break, and keeps
// them there. It succeeds only when the devices' hardware planes, read
// back, hold no flow of the port; otherwise it fails with ErrIncomplete and
// can be repeated. Repeating a finished Drain returns its result.
func (m *Migrator) Drain(ctx context.Context, req DrainRequest) (DrainResult, error) {
	if req.Port == "" {
		return DrainResult{}, fmt.Errorf("drain migration %s: no port: %w", req.ID, ErrInvalidRequest)
	}
	s, err := m.begin(req.ID)
	if err != nil {
		return DrainResult{}, fmt.Errorf("drain migration: %w", err)
	}
	defer s.mu.Unlock()
	r := s.r
	if r == nil {
		if !m.portExists(req.Port) {
			return DrainResult{}, fmt.Errorf("drain migration %s: no port %s on this node: %w", req.ID, req.Port, ErrInvalidRequest)
		}
		r = m.newRecord(req.ID, RoleSource)
		r.Port = req.Port
		s.r = r
	}
	switch {
	case r.Role != RoleSource:
		return DrainResult{}, wrongSide("drain", r, RoleSource)
	case r.Step == StepAborted:
		return DrainResult{}, finished("drain", r)
	case r.Port != req.Port:
		return DrainResult{}, fmt.Errorf("drain migration %s: it drains port %s on this node, not %s: %w", req.ID, r.Port, req.Port, ErrConflict)
	case r.Step >= StepDrained:
		return *r.Drain, nil
	}

	flows := m.portFlows(r.Port)
	if r.Before == nil {
		r.Before = make([]Placement, len(flows))
		for i, st := range flows {
			r.Before[i] = placementOf(st)
		}
		if m.vfs != nil {
			switch l, err := m.vfs.Lookup(ctx, r.Port); {
			case err == nil:
				r.VF = &l
			case !errors.Is(err, nic.ErrNotFound):
				return DrainResult{}, fmt.Errorf("drain migration %s: %w", r.ID, err)
			}
		}
	}
	ids, held, err := m.drainFlows(ctx, r, flows)
	if err != nil {
		if serr := m.save(r); serr != nil {
			m.log.Warn("save partly drained migration", "migration", r.ID, "err", serr)
		}
		return DrainResult{}, err
	}
	r.Drain = &DrainResult{Port: r.Port, Flows: len(ids), Moved: r.Moved, Held: len(held)}
	r.Step = StepDrained
	if err := m.save(r); err != nil {
		return DrainResult{}, err
	}
	m.log.Info("migration drained port", "migration", r.ID, "port", r.Port, "flows", len(ids), "moved", r.Moved)
	return *r.Drain, nil
}

// drainFlows drains the port, holds the given flows that enter elsewhere,
// records them, and checks the hardware planes. It returns the flows' IDs
// and those held.
func (m *Migrator) drainFlows(ctx context.Context, r *record, flows []offload.Status) (ids, held []string, err error) {
	ids = make([]string, len(flows))
	for i, st := range flows {
		ids[i] = st.Flow.ID
		if st.Flow.Port != r.Port {
			held = append(held, st.Flow.ID)
		}
	}
	r.Flows, r.Held = union(r.Flows, ids), union(r.Held, held)
	// Record the intent first: after a crash, Abort must know what to undo.
	if err := m.save(r); err != nil {
		return nil, nil, err
	}
	why := m.why(r)
	n, derr := m.eng.DrainPort(ctx, r.Port, why)
	r.Moved += n
	n, herr := m.eng.HoldInSoftware(ctx, held, why)
	r.Moved += n
	left, lerr := m.inHardware(ctx, r.Port, ids)
	switch {
	case lerr != nil:
		return nil, nil, fmt.Errorf("drain migration %s: verify port %s: %w", r.ID, r.Port, lerr)
	case len(left) > 0:
		return nil, nil, fmt.Errorf("drain migration %s: %d flows of port %s are still in hardware (%s): %w",
			r.ID, len(left), r.Port, briefIDs(left), errors.Join(ErrIncomplete, derr, herr))
	case derr != nil || herr != nil:
		return nil, nil, fmt.Errorf("drain migration %s: %w", r.ID, errors.Join(derr, herr))
	}
	return ids, held, nil
}

// Export returns the bundle: the port's flows with their generations, the
// conntrack entries of their zones (or of req.Zones), and the source VF's
// settings. Flows added to the port since Drain are drained first and
// included. Repeating Export returns the same bundle; with Refresh it
// takes a new snapshot with the next serial. The returned bundle is shared:
// callers must not modify it.
func (m *Migrator) Export(ctx context.Context, req ExportRequest) (*Bundle, error) {
	s, err := m.begin(req.ID)
	if err != nil {
		return nil, fmt.Errorf("export migration: %w", err)
	}
	defer s.mu.Unlock()
	r := s.r
	switch {
	case r == nil:
		return nil, fmt.Errorf("export migration %s: unknown on this node; expected Drain first: %w", req.ID, ErrStep)
	case r.Role != RoleSource:
		return nil, wrongSide("export", r, RoleSource)
	case r.Step == StepAborted:
		return nil, finished("export", r)
	case r.Step == StepNone:
		return nil, expect("export", r, "Drain")
	case r.Step == StepCommitted || r.Step == StepExported && !req.Refresh:
		return r.Bundle, nil
	}
	zones := req.Zones
	flows := m.portFlows(r.Port)
	if zones == nil {
		fs := make([]*flow.Flow, 0, len(flows))
		for _, st := range flows {
			fs = append(fs, st.Flow)
		}
		zones = ctZones(fs)
		if len(req.Addresses) == 0 {
			// Zone 0 is the host's own default zone: never export it whole.
			zones = slices.DeleteFunc(zones, func(z uint16) bool { return z == 0 })
		}
	} else if slices.Contains(zones, 0) && len(req.Addresses) == 0 {
		return nil, fmt.Errorf("export migration %s: zone 0 is the host's default zone; give the workload's addresses to export from it: %w", r.ID, ErrInvalidRequest)
	}
	if _, _, err := m.drainFlows(ctx, r, flows); err != nil {
		if serr := m.save(r); serr != nil {
			m.log.Warn("save migration", "migration", r.ID, "err", serr)
		}
		return nil, fmt.Errorf("export: %w", err)
	}
	var conns []ConnEntry
	if m.ct != nil && len(zones) > 0 {
		all, err := m.ct.Dump(ctx, zones)
		if err != nil {
			return nil, fmt.Errorf("export migration %s: dump conntrack zones %v: %w", r.ID, zones, err)
		}
		for _, c := range all {
			if len(req.Addresses) == 0 || c.inPrefixes(req.Addresses) {
				conns = append(conns, c)
			}
		}
	}
	b := &Bundle{Version: BundleVersion, MigrationID: r.ID, SourceNode: m.node, SourcePort: r.Port,
		Serial: 1, Exported: m.now().UTC(), Zones: zones, Conns: conns}
	if r.Bundle != nil {
		b.Serial = r.Bundle.Serial + 1
	}
	b.Flows = make([]offload.StoredFlow, len(flows))
	for i, st := range flows {
		b.Flows[i] = offload.StoredFlow{Flow: st.Flow.Clone(), Generation: st.Generation}
	}
	if r.VF != nil {
		vf := r.VF.Settings
		b.VF = &vf
	}
	r.Bundle, r.Step = b, StepExported
	if err := m.save(r); err != nil {
		return nil, err
	}
	m.log.Info("migration exported", "migration", r.ID, "port", r.Port, "serial", b.Serial,
		"flows", len(b.Flows), "conns", len(conns), "zones", zones)
	return b, nil
}

// commitSource removes the port's exported flows and conntrack entries,
// ends the drain and releases the VF.
func (m *Migrator) commitSource(ctx context.Context, r *record) (CommitResult, error) {
	res, err := m.eng.Delete(ctx, r.Flows)
	if err != nil {
		return CommitResult{}, fmt.Errorf("commit migration %s: %w", r.ID, err)
	}
	var errs []error
	for _, d := range res {
		if d.Err != nil {
			errs = append(errs, d.Err)
		}
	}
	if len(errs) > 0 {
		return CommitResult{}, fmt.Errorf("commit migration %s: remove the port's flows: %w", r.ID, errors.Join(append(errs, ErrIncomplete)...))
	}
	out := CommitResult{FlowsRemoved: len(r.Flows)}
	if m.ct != nil {
		keys := make([]ConnKey, len(r.Bundle.Conns))
		for i, c := range r.Bundle.Conns {
			keys[i] = c.Key()
		}
		if err := m.ct.Delete(ctx, keys); err != nil {
			return CommitResult{}, fmt.Errorf("commit migration %s: remove conntrack entries: %w", r.ID, err)
		}
		out.ConnsRemoved = len(r.Bundle.Conns)
	}
	if left := m.portFlows(r.Port); len(left) > 0 {
		ids := make([]string, len(left))
		for i, st := range left {
			ids[i] = st.Flow.ID
		}
		m.log.Warn("flows added to a migrated port after Export stay on the source", "migration", r.ID, "port", r.Port, "flows", briefIDs(ids))
	}
	m.eng.UndrainPort(r.Port)
	if r.VF != nil && m.vfs != nil {
		if err := m.vfs.Release(ctx, *r.VF); err != nil {
			return CommitResult{}, fmt.Errorf("commit migration %s: %w", r.ID, err)
		}
		out.VFReleased = true
	}
	return out, nil
}

// abortSource ends the drain and brings the port's flows back to hardware.
func (m *Migrator) abortSource(ctx context.Context, r *record) (AbortResult, error) {
	if r.Port == "" {
		return AbortResult{}, nil
	}
	m.eng.UndrainPort(r.Port)
	if _, err := m.eng.ReleaseHeld(ctx, r.Flows); err != nil {
		return AbortResult{}, fmt.Errorf("abort migration %s: %w", r.ID, err)
	}
	res := AbortResult{Flows: m.placements(r.Flows)}
	now := make(map[string]Placement, len(res.Flows))
	for _, p := range res.Flows {
		now[p.ID] = p
	}
	for _, b := range r.Before {
		if p, ok := now[b.ID]; ok && b.State == offload.StateHardware && p.State != offload.StateHardware {
			res.NotRestored = append(res.NotRestored, b.ID)
		}
	}
	return res, nil
}

// union returns a with the elements of b it lacks appended.
func union(a, b []string) []string {
	have := make(map[string]bool, len(a))
	for _, s := range a {
		have[s] = true
	}
	for _, s := range b {
		if !have[s] {
			a = append(a, s)
			have[s] = true
		}
	}
	return a
}
