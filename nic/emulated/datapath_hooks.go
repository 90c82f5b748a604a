package emulated

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// PortChain names one tc chain of one ingress port.
type PortChain struct {
	Port  string
	Chain uint32
}

// FlowTable is a read-only snapshot of one plane's flows in tc order: per
// ingress port and chain, by priority, ties by flow ID. The flows are the
// device's own stored copies; callers must not modify them.
type FlowTable struct {
	plane  flow.Plane
	gen    uint64
	n      int
	chains map[PortChain][]*flow.Flow
}

// Plane is the plane the snapshot was taken from.
func (t *FlowTable) Plane() flow.Plane { return t.plane }

// Generation identifies the table contents: it changes whenever a flow is
// added, replaced or removed, so equal generations mean equal contents.
func (t *FlowTable) Generation() uint64 { return t.gen }

// Len is the number of flows.
func (t *FlowTable) Len() int { return t.n }

// Chain returns the flows of one chain of port in tc order (nil when the
// chain has none). The slice is shared: do not modify it.
func (t *FlowTable) Chain(port string, chain uint32) []*flow.Flow {
	return t.chains[PortChain{Port: port, Chain: chain}]
}

// Chains calls fn for every non-empty chain, in port then chain order.
func (t *FlowTable) Chains(fn func(pc PortChain, flows []*flow.Flow)) {
	keys := make([]PortChain, 0, len(t.chains))
	for k := range t.chains {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b PortChain) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Chain, b.Chain))
	})
	for _, k := range keys {
		fn(k, t.chains[k])
	}
}

// FlowTable returns plane's flows sorted in tc order without copying them.
// The snapshot is cached and rebuilt on the first call after a change, so
// Program stays as fast as before and a packet path that calls FlowTable
// per packet pays one read lock when nothing changed.
func (d *Device) FlowTable(plane flow.Plane) (*FlowTable, error) {
	if plane != flow.Hardware && plane != flow.Software {
		return nil, fmt.Errorf("flow table: unknown plane %d", plane)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, fmt.Errorf("%s flow table: %w", plane, nic.ErrClosed)
	}
	// A plane runs the copies put only there and the flow.Both copies
	// (in hardware: those hardware took).
	t, both := &d.tables[plane], &d.tables[flow.Both]
	gen := t.gen + both.gen
	if ft := t.index.Load(); ft != nil && ft.gen == gen {
		return ft, nil
	}
	// Readers racing here build equal snapshots: no writer holds the lock.
	ft := buildFlowTable(plane, gen, t, both)
	t.index.Store(ft)
	return ft, nil
}

func buildFlowTable(plane flow.Plane, gen uint64, t, both *table) *FlowTable {
	ft := &FlowTable{plane: plane, gen: gen, chains: map[PortChain][]*flow.Flow{}}
	add := func(e entry) {
		k := PortChain{Port: e.flow.Port, Chain: e.flow.Chain}
		ft.chains[k] = append(ft.chains[k], e.flow)
		ft.n++
	}
	for _, e := range t.flows {
		add(e)
	}
	for _, e := range both.flows {
		if plane == flow.Software || e.inHW {
			add(e)
		}
	}
	for _, fs := range ft.chains {
		slices.SortFunc(fs, func(a, b *flow.Flow) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.ID, b.ID))
		})
	}
	return ft
}

// TunnelPort returns the tunnel device listening on UDP port dstPort.
func (d *Device) TunnelPort(dstPort uint16) (nic.Port, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var best nic.Port
	found := false
	for _, p := range d.ports {
		// Ports live in a map: take the smallest name for a stable answer.
		if p.Kind == nic.PortTunnel && p.TunnelDstPort == dstPort && (!found || p.Name < best.Name) {
			best, found = p, true
		}
	}
	return best, found
}
