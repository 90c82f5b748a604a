package offload

import (
	"context"
	"fmt"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// RestoreReport says what Restore found and did.
type RestoreReport struct {
	// Adopted flows were found installed as desired and left untouched.
	Adopted int
	// Installed flows were missing or different on the device and were placed again.
	Installed int
	// Pending flows name a port that does not exist (yet).
	Pending int
	// Orphans were installed copies with no desired flow; they were removed.
	Orphans int
}

// Restore loads the persisted desired state and reconciles it with what the
// devices hold: equal installed copies are adopted as they are (no delete,
// no re-add, counters kept), missing or different ones are placed again,
// and copies nobody wants are removed. Call it once, before serving.
func (e *Engine) Restore(ctx context.Context) (RestoreReport, error) {
	var rep RestoreReport
	if e.store == nil {
		return rep, nil
	}
	stored, err := e.store.Load()
	if err != nil {
		return rep, fmt.Errorf("restore desired state: %w", err)
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()

	installed := map[string][]copyRef{}
	for dev, d := range e.devs {
		if a, ok := d.(nic.Adopter); ok {
			ids := make([]string, len(stored))
			for i, s := range stored {
				ids[i] = s.Flow.ID
			}
			a.Adopt(ids)
		}
		inst, err := nic.ReadAllFlows(ctx, d)
		if err != nil {
			return rep, fmt.Errorf("restore: read flows of %s: %w", d.Info().Name, err)
		}
		for _, in := range inst {
			installed[in.Flow.ID] = append(installed[in.Flow.ID], copyRef{in, dev, in.Plane})
		}
	}

	var toPlace []*entry
	var extra []copyRef
	e.mu.Lock()
	for _, s := range stored {
		f := s.Flow
		flow.Normalize(f)
		ref, ok := e.ports[f.Port]
		en := &entry{flow: f, gen: s.Generation, dev: ref.dev, updated: stampOf(e.now())}
		e.flows[f.ID] = en
		e.link(en)
		copies := installed[f.ID]
		delete(installed, f.ID)
		if !ok {
			en.state = StatePending
			en.reasons = []nic.Reason{{Code: nic.ReasonPort, Field: "port", Message: fmt.Sprintf("port %s does not exist; the flow is installed when it appears", f.Port)}}
			rep.Pending++
			extra = append(extra, copies...)
			continue
		}
		// Keep one matching copy of a plane the flow's policy allows,
		// preferring the plane it would be placed in now.
		var keep *copyRef
		for _, plane := range adoptPlanes(f.Policy) {
			for i := range copies {
				c := copies[i]
				if keep == nil && c.plane == plane && c.dev == ref.dev && sameRule(c.inst.Flow, f) {
					keep = &copies[i]
				}
			}
		}
		for i := range copies {
			if keep != &copies[i] {
				extra = append(extra, copies[i])
			}
		}
		if keep == nil {
			toPlace = append(toPlace, en)
			rep.Installed++
			continue
		}
		rep.Adopted++
		en.plane = keep.plane
		switch keep.plane {
		case flow.Hardware:
			en.state = StateHardware
			en.seen[flow.Hardware].accumulate(&en.hw, keep.inst.Handle, keep.inst.Counters)
			continue
		case flow.Both:
			en.seen[flow.Hardware].accumulate(&en.hw, keep.inst.Handle, keep.inst.HWCounters)
			en.seen[flow.Software].accumulate(&en.sw, keep.inst.Handle, keep.inst.Counters)
			if keep.inst.InHW {
				en.state = StateHardware
				continue
			}
		default:
			en.seen[flow.Software].accumulate(&en.sw, keep.inst.Handle, keep.inst.Counters)
		}
		en.state = StateSoftware
		en.reasons = e.hardwareReasons(f, ref.dev)
		if len(en.reasons) == 0 {
			en.reasons = []nic.Reason{{Code: nic.ReasonDeviceError, Message: "adopted in software after a restart; will try hardware again"}}
			en.spilled = true
		}
	}
	e.mu.Unlock()
	// Make before break: place what has no usable copy, then remove the
	// copies nobody wants (a copy in a plane the flow no longer uses is
	// replaced in place where the device can).
	if len(toPlace) > 0 {
		e.place(ctx, toPlace)
	}
	e.removeCopies(ctx, extra)
	for _, copies := range installed {
		rep.Orphans += len(copies)
		e.removeCopies(ctx, copies)
	}
	all := map[chainKey]bool{}
	for k, cs := range e.chains {
		all[k] = true
		cs.soft.Store(true) // adopted without notify: scan each once
	}
	e.fixShadows(ctx, all)
	e.signalFreed()
	return rep, nil
}

// adoptPlanes are the planes a copy of a flow with policy p may be
// adopted from, best first.
func adoptPlanes(p flow.Policy) []flow.Plane {
	switch p {
	case flow.PolicyHardwareOnly:
		return []flow.Plane{flow.Hardware}
	case flow.PolicySoftwareOnly:
		return []flow.Plane{flow.Software}
	}
	return []flow.Plane{flow.Both, flow.Software}
}

// copyRef is one installed copy of a flow found on a device.
type copyRef struct {
	inst  nic.Installed
	dev   int
	plane flow.Plane
}

// removeCopies deletes installed copies; failures are logged.
func (e *Engine) removeCopies(ctx context.Context, copies []copyRef) {
	for _, c := range copies {
		errs := e.devs[c.dev].Program(ctx, c.plane, []nic.Op{{Kind: nic.OpDelete, Flow: c.inst.Flow}})
		if len(errs) > 0 && errs[0] != nil && !isNotFound(errs[0]) {
			e.log.Warn("remove unwanted flow copy", "flow", c.inst.Flow.ID, "plane", c.plane.String(), "err", errs[0])
		}
	}
}

// sameRule compares an installed copy with a desired flow. The placement
// policy is offloadd's own and not stored in the device (tc has no field
// for it), so it is left out.
func sameRule(installed, desired *flow.Flow) bool {
	if installed.Policy == desired.Policy {
		return installed.Equal(desired)
	}
	c := *installed
	c.Policy = desired.Policy
	return c.Equal(desired)
}
