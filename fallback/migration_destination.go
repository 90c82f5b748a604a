package fallback

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// FlowsError is a batch of the migration's flows that the engine rejected
// as a whole; Results has each flow's result in bundle (or request) order.
type FlowsError struct {
	Migration string
	Results   []offload.Result
	Err       error
}

func (e *FlowsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "install flows of migration %s: %v", e.Migration, e.Err)
	n := 0
	for _, r := range e.Results {
		var why string
		switch {
		case len(r.Violations) > 0:
			why = r.Violations[0].Field + ": " + r.Violations[0].Reason
		case r.Err != nil:
			why = r.Err.Error()
		default:
			continue
		}
		if n == 5 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; flow %s: %s", r.ID, why)
		n++
	}
	return b.String()
}

// Unwrap matches the engine's error, and ErrInvalidRequest when a flow was invalid.
func (e *FlowsError) Unwrap() []error {
	for _, r := range e.Results {
		if r.Outcome == offload.OutcomeInvalid {
			return []error{e.Err, ErrInvalidRequest}
		}
	}
	return []error{e.Err}
}

// Prepare readies the destination for a workload: it reserves a VF (or
// takes req.Port), finds its representor, makes the engine keep every flow
// of the representor in software until Reoffload, and installs req.Flows
// there. Repeating it returns its result.
func (m *Migrator) Prepare(ctx context.Context, req PrepareRequest) (PrepareResult, error) {
	if req.SourcePort == "" {
		return PrepareResult{}, fmt.Errorf("prepare migration %s: no source port: %w", req.ID, ErrInvalidRequest)
	}
	if req.VF != nil {
		if err := req.VF.Validate(); err != nil {
			return PrepareResult{}, fmt.Errorf("prepare migration %s: %w: %w", req.ID, err, ErrInvalidRequest)
		}
	}
	s, err := m.begin(req.ID)
	if err != nil {
		return PrepareResult{}, fmt.Errorf("prepare migration: %w", err)
	}
	defer s.mu.Unlock()
	r := s.r
	if r == nil {
		switch {
		case req.Port == "" && m.vfs == nil:
			return PrepareResult{}, fmt.Errorf("prepare migration %s: this node has no VF pool; give the destination port: %w", req.ID, ErrInvalidRequest)
		case req.Port != "" && !m.portExists(req.Port):
			return PrepareResult{}, fmt.Errorf("prepare migration %s: no port %s on this node: %w", req.ID, req.Port, ErrInvalidRequest)
		}
		r = m.newRecord(req.ID, RoleDestination)
		r.SourcePort, r.PortMap = req.SourcePort, maps.Clone(req.PortMap)
		s.r = r
	}
	switch {
	case r.Role != RoleDestination:
		return PrepareResult{}, wrongSide("prepare", r, RoleDestination)
	case r.Step == StepAborted:
		return PrepareResult{}, finished("prepare", r)
	case r.SourcePort != req.SourcePort:
		return PrepareResult{}, fmt.Errorf("prepare migration %s: it was prepared for source port %s, not %s: %w", r.ID, r.SourcePort, req.SourcePort, ErrConflict)
	case req.Port != "" && r.Port != "" && req.Port != r.Port:
		return PrepareResult{}, fmt.Errorf("prepare migration %s: it uses port %s on this node, not %s: %w", r.ID, r.Port, req.Port, ErrConflict)
	case r.Step >= StepPrepared:
		return *r.Prepare, nil
	}

	if r.Port == "" {
		if err := m.takeVF(ctx, r, req); err != nil {
			return PrepareResult{}, err
		}
		if err := m.save(r); err != nil {
			return PrepareResult{}, err
		}
	}
	if _, err := m.eng.DrainPort(ctx, r.Port, m.why(r)); err != nil {
		return PrepareResult{}, fmt.Errorf("prepare migration %s: %w", r.ID, err)
	}
	if len(req.Flows) > 0 {
		if _, err := m.install(ctx, r, req.Flows); err != nil {
			return PrepareResult{}, err
		}
	}
	r.Prepare = &PrepareResult{Port: r.Port, VF: r.VF, Flows: m.placements(installedIDs(r.Installed, true))}
	r.Step = StepPrepared
	if err := m.save(r); err != nil {
		return PrepareResult{}, err
	}
	m.log.Info("migration prepared", "migration", r.ID, "port", r.Port, "source_port", r.SourcePort, "flows", len(r.Installed))
	return *r.Prepare, nil
}

// takeVF reserves a VF, or takes the requested port (configuring its VF
// when settings are given).
func (m *Migrator) takeVF(ctx context.Context, r *record, req PrepareRequest) error {
	var s VFSettings
	if req.VF != nil {
		s, r.VFExplicit = *req.VF, true
	}
	if req.Port == "" {
		l, err := m.vfs.Reserve(ctx, r.ID, s)
		if err != nil {
			return fmt.Errorf("prepare migration %s: %w", r.ID, err)
		}
		r.VF, r.VFReserved, r.Port = &l, true, l.Representor
		return nil
	}
	r.Port = req.Port
	if m.vfs == nil {
		return nil
	}
	l, err := m.vfs.Lookup(ctx, req.Port)
	switch {
	case errors.Is(err, nic.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("prepare migration %s: %w", r.ID, err)
	}
	l.Owner = r.ID
	r.VF = &l
	if req.VF != nil {
		l.Restore = l.Settings
		if l, err = m.vfs.Configure(ctx, l, s); err != nil {
			return fmt.Errorf("prepare migration %s: %w", r.ID, err)
		}
		r.VF, r.VFReserved = &l, true
	}
	return nil
}

// install installs flows written in source port names in software, held,
// and records them. It returns the engine's results in input order.
func (m *Migrator) install(ctx context.Context, r *record, flows []offload.StoredFlow) ([]offload.Result, error) {
	ports := maps.Clone(r.PortMap)
	if ports == nil {
		ports = map[string]string{}
	}
	ports[r.SourcePort] = r.Port
	mine := make(map[string]bool, len(r.Installed))
	for _, f := range r.Installed {
		mine[f.ID] = true
	}
	batch := make([]offload.StoredFlow, len(flows))
	var added []installedFlow
	for i, sf := range flows {
		if sf.Flow == nil {
			return nil, fmt.Errorf("install flows of migration %s: flows[%d] is empty: %w", r.ID, i, ErrInvalidRequest)
		}
		f := rewritePorts(sf.Flow, ports)
		flow.Normalize(f)
		batch[i] = offload.StoredFlow{Flow: f, Generation: sf.Generation}
		if mine[f.ID] {
			continue
		}
		mine[f.ID] = true
		st, ok := m.eng.Get(f.ID)
		switch {
		case !ok:
			added = append(added, installedFlow{ID: f.ID})
		case st.Flow.Equal(f):
			added = append(added, installedFlow{ID: f.ID, Adopted: true})
		default:
			return nil, fmt.Errorf("install flows of migration %s: flow %s is already installed on this node as a different flow (port %s) that is not part of the migration: %w",
				r.ID, f.ID, st.Flow.Port, ErrConflict)
		}
	}
	before := r.Installed
	r.Installed = append(r.Installed, added...)
	// Record the intent first: after a crash, Abort must know what to undo.
	if err := m.save(r); err != nil {
		r.Installed = before
		return nil, err
	}
	res, err := m.eng.ApplyHeld(ctx, batch, m.why(r))
	if err != nil {
		r.Installed = before
		if errors.Is(err, offload.ErrBatchRejected) {
			return res, &FlowsError{Migration: r.ID, Results: res, Err: err}
		}
		return res, fmt.Errorf("install flows of migration %s: %w", r.ID, err)
	}
	return res, nil
}

// Import installs the bundle's flows, renamed to this node's ports, in
// software (held until Reoffload), and creates or updates its conntrack
// entries. A flow ID held by a different flow that is not part of the
// migration is ErrConflict. Repeating Import with the same bundle serial
// returns its result; a bundle with a higher serial (a refreshed Export)
// replaces the imported one until Reoffload.
func (m *Migrator) Import(ctx context.Context, req ImportRequest) (ImportResult, error) {
	b := req.Bundle
	if b == nil {
		return ImportResult{}, fmt.Errorf("import migration %s: no bundle: %w", req.ID, ErrInvalidRequest)
	}
	if err := CheckBundleVersion(b.Version); err != nil {
		return ImportResult{}, fmt.Errorf("import migration %s: %w", req.ID, err)
	}
	if b.MigrationID != req.ID {
		return ImportResult{}, fmt.Errorf("import migration %s: the bundle is of migration %q: %w", req.ID, b.MigrationID, ErrInvalidRequest)
	}
	for i, c := range b.Conns {
		if err := c.Validate(); err != nil {
			return ImportResult{}, fmt.Errorf("import migration %s: conns[%d]: %w: %w", req.ID, i, err, ErrInvalidRequest)
		}
	}
	s, err := m.begin(req.ID)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import migration: %w", err)
	}
	defer s.mu.Unlock()
	r := s.r
	switch {
	case r == nil:
		return ImportResult{}, fmt.Errorf("import migration %s: unknown on this node; expected Prepare first: %w", req.ID, ErrStep)
	case r.Role != RoleDestination:
		return ImportResult{}, wrongSide("import", r, RoleDestination)
	case r.Step == StepAborted:
		return ImportResult{}, finished("import", r)
	case r.Step == StepNone:
		return ImportResult{}, expect("import", r, "Prepare")
	case b.SourcePort != r.SourcePort:
		return ImportResult{}, fmt.Errorf("import migration %s: the bundle is of source port %s, the migration was prepared for %s: %w",
			r.ID, b.SourcePort, r.SourcePort, ErrConflict)
	case r.Import != nil && b.Serial == r.Import.Serial:
		return *r.Import, nil
	case r.Import != nil && b.Serial < r.Import.Serial:
		return ImportResult{}, fmt.Errorf("import migration %s: bundle serial %d is older than the imported serial %d: %w",
			r.ID, b.Serial, r.Import.Serial, ErrConflict)
	case r.Step >= StepReoffloaded:
		return ImportResult{}, fmt.Errorf("import migration %s: the migration is %s on this node; a newer bundle can no longer be imported: %w", r.ID, r.Step, ErrStep)
	}
	if len(req.PortMap) > 0 {
		if r.PortMap == nil {
			r.PortMap = map[string]string{}
		}
		maps.Copy(r.PortMap, req.PortMap)
	}
	res, err := m.install(ctx, r, b.Flows)
	if err != nil {
		return ImportResult{}, err
	}
	out := ImportResult{Serial: b.Serial}
	inBundle := make(map[string]bool, len(res))
	for _, x := range res {
		inBundle[x.ID] = true
		switch x.Outcome {
		case offload.OutcomeCreated:
			out.Created++
		case offload.OutcomeUpdated:
			out.Updated++
		default:
			out.Unchanged++
		}
	}
	if out.Removed, err = m.removeStale(ctx, r, inBundle); err != nil {
		return ImportResult{}, err
	}
	if out.ConnsCreated, out.ConnsUpdated, err = m.importConns(ctx, r, b.Conns); err != nil {
		if serr := m.save(r); serr != nil {
			m.log.Warn("save partly imported migration", "migration", r.ID, "err", serr)
		}
		return ImportResult{}, err
	}
	if b.VF != nil && r.VF != nil && r.VFReserved && !r.VFExplicit && m.vfs != nil {
		l, err := m.vfs.Configure(ctx, *r.VF, *b.VF)
		if err != nil {
			return ImportResult{}, fmt.Errorf("import migration %s: %w", r.ID, err)
		}
		r.VF = &l
	}
	ids := make([]string, len(res))
	for i, x := range res {
		ids[i] = x.ID
	}
	out.Flows = m.placements(ids)
	r.Import, r.Step = &out, StepImported
	if err := m.save(r); err != nil {
		return ImportResult{}, err
	}
	m.log.Info("migration imported", "migration", r.ID, "port", r.Port, "serial", b.Serial,
		"flows_created", out.Created, "flows_updated", out.Updated, "conns_created", out.ConnsCreated, "conns_updated", out.ConnsUpdated)
	return out, nil
}

// removeStale deletes flows this migration created that the bundle no
// longer has, and ends the hold of adopted ones it no longer has.
func (m *Migrator) removeStale(ctx context.Context, r *record, keep map[string]bool) (int, error) {
	var gone, release []string
	kept := r.Installed[:0:0]
	for _, f := range r.Installed {
		switch {
		case keep[f.ID]:
			kept = append(kept, f)
		case f.Adopted:
			release = append(release, f.ID)
		default:
			gone = append(gone, f.ID)
		}
	}
	if len(gone) > 0 {
		res, err := m.eng.Delete(ctx, gone)
		if err != nil {
			return 0, fmt.Errorf("import migration %s: remove flows the bundle no longer has: %w", r.ID, err)
		}
		for _, d := range res {
			if d.Err != nil {
				return 0, fmt.Errorf("import migration %s: remove flow %s the bundle no longer has: %w", r.ID, d.ID, d.Err)
			}
		}
	}
	if len(release) > 0 {
		if _, err := m.eng.ReleaseHeld(ctx, release); err != nil {
			return 0, fmt.Errorf("import migration %s: %w", r.ID, err)
		}
	}
	r.Installed = kept
	return len(gone), nil
}

// importConns creates or updates the entries and records, for each entry
// first touched, what it replaced.
func (m *Migrator) importConns(ctx context.Context, r *record, conns []ConnEntry) (created, updated int, err error) {
	if len(conns) == 0 {
		return 0, 0, nil
	}
	if m.ct == nil {
		m.log.Warn("bundle has conntrack entries but this node moves no connection state", "migration", r.ID, "conns", len(conns))
		return 0, 0, nil
	}
	touched := make(map[ConnKey]bool, len(r.Conns))
	for _, c := range r.Conns {
		touched[c.Key] = true
	}
	prevs, err := m.ct.Upsert(ctx, conns)
	for i, p := range prevs {
		if i >= len(conns) || !p.Done {
			continue
		}
		if p.Existed {
			updated++
		} else {
			created++
		}
		if k := conns[i].Key(); !touched[k] {
			touched[k] = true
			ic := importedConn{Key: k}
			if p.Existed {
				prev := p.Entry
				ic.Prev = &prev
			}
			r.Conns = append(r.Conns, ic)
		}
	}
	if err != nil {
		return created, updated, fmt.Errorf("import migration %s: conntrack entries: %w", r.ID, err)
	}
	return created, updated, nil
}

// Reoffload, once the VF is attached to the guest, ends the hold on the
// destination and moves the migration's flows to hardware,
// make-before-break; flows that do not fit wait in software for the
// promoter. It reports where each flow runs. Repeating it returns its result.
func (m *Migrator) Reoffload(ctx context.Context, id string) (ReoffloadResult, error) {
	s, err := m.begin(id)
	if err != nil {
		return ReoffloadResult{}, fmt.Errorf("reoffload migration: %w", err)
	}
	defer s.mu.Unlock()
	r := s.r
	switch {
	case r == nil:
		return ReoffloadResult{}, fmt.Errorf("reoffload migration %s: unknown on this node; expected Prepare first: %w", id, ErrStep)
	case r.Role != RoleDestination:
		return ReoffloadResult{}, wrongSide("reoffload", r, RoleDestination)
	case r.Step == StepAborted:
		return ReoffloadResult{}, finished("reoffload", r)
	case r.Step >= StepReoffloaded:
		return *r.Reoffload, nil
	case r.Step == StepNone:
		return ReoffloadResult{}, expect("reoffload", r, "Prepare")
	case r.Step == StepPrepared:
		return ReoffloadResult{}, expect("reoffload", r, "Import")
	}
	m.eng.UndrainPort(r.Port)
	ids := installedIDs(r.Installed, true)
	if _, err := m.eng.ReleaseHeld(ctx, ids); err != nil {
		return ReoffloadResult{}, fmt.Errorf("reoffload migration %s: %w", r.ID, err)
	}
	res := ReoffloadResult{Flows: m.placements(ids)}
	for _, p := range res.Flows {
		switch p.State {
		case offload.StateHardware:
			res.Hardware++
		case offload.StateSoftware:
			res.Software++
		}
	}
	r.Reoffload, r.Step = &res, StepReoffloaded
	if err := m.save(r); err != nil {
		return ReoffloadResult{}, err
	}
	m.log.Info("migration re-offloaded", "migration", r.ID, "port", r.Port, "hardware", res.Hardware, "software", res.Software)
	return res, nil
}

// abortDestination removes what Prepare and Import installed, restores
// replaced conntrack entries, ends the hold and releases the VF. What is
// undone is dropped from r, so a failed Abort can be repeated.
func (m *Migrator) abortDestination(ctx context.Context, r *record) (AbortResult, error) {
	var res AbortResult
	created := installedIDs(r.Installed, false)
	if len(created) > 0 {
		dels, err := m.eng.Delete(ctx, created)
		if err != nil {
			return res, fmt.Errorf("abort migration %s: %w", r.ID, err)
		}
		for _, d := range dels {
			if d.Err != nil {
				return res, fmt.Errorf("abort migration %s: remove flow %s: %w", r.ID, d.ID, d.Err)
			}
			if d.Found {
				res.FlowsRemoved++
			}
		}
	}
	var adopted []installedFlow
	for _, f := range r.Installed {
		if f.Adopted {
			adopted = append(adopted, f)
		}
	}
	r.Installed = adopted
	if len(r.Conns) > 0 {
		var created []ConnKey
		var replaced []ConnEntry
		for _, c := range r.Conns {
			if c.Prev == nil {
				created = append(created, c.Key)
			} else {
				replaced = append(replaced, *c.Prev)
			}
		}
		if err := m.ct.Delete(ctx, created); err != nil {
			return res, fmt.Errorf("abort migration %s: remove conntrack entries: %w", r.ID, err)
		}
		if len(replaced) > 0 {
			prevs, err := m.ct.Upsert(ctx, replaced)
			if err == nil && slices.ContainsFunc(prevs, func(p ConnPrev) bool { return !p.Done }) {
				err = errors.New("not every entry was written")
			}
			if err != nil {
				return res, fmt.Errorf("abort migration %s: restore conntrack entries: %w", r.ID, err)
			}
		}
		res.ConnsRemoved, res.ConnsRestored = len(created), len(replaced)
		r.Conns = nil
	}
	if r.Port != "" {
		m.eng.UndrainPort(r.Port)
	}
	if len(adopted) > 0 {
		if _, err := m.eng.ReleaseHeld(ctx, installedIDs(adopted, true)); err != nil {
			return res, fmt.Errorf("abort migration %s: %w", r.ID, err)
		}
		r.Installed = nil
	}
	if r.VF != nil && r.VFReserved && m.vfs != nil {
		if err := m.vfs.Release(ctx, *r.VF); err != nil {
			return res, fmt.Errorf("abort migration %s: %w", r.ID, err)
		}
		r.VFReserved = false
		res.VFReleased = true
	}
	return res, nil
}
