package flow

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ChainRef names one tc chain of one port. A goto stays on its flow's
// port, so chains of different ports never reach each other by goto.
type ChainRef struct {
	Port  string
	Chain uint32
}

func (c ChainRef) String() string {
	return c.Port + " chain " + strconv.FormatUint(uint64(c.Chain), 10)
}

// BatchViolation is a Violation of the flow at Index in a batch.
type BatchViolation struct {
	Index int
	Violation
}

// gotoEdge is one goto action: flow ID's action Action on From jumps to To.
type gotoEdge struct {
	from, to ChainRef
	id       string
	action   int
	batch    int // index in the batch, -1 for an existing flow
}

// GotoLoops finds the gotos of batch that close a loop in the goto graph
// of its port: chain A holds a flow that jumps to B, B one that jumps
// back to A, directly or through more chains. The graph is made of the
// existing flows with the batch applied on top (a batch flow replaces the
// existing flow of its ID). Every goto of a batch flow that lies on a
// cycle is reported, at "actions[i].chain", with the cycle it closes.
//
// So is a goto on a path from chain 0 of more than MaxGotoDepth gotos,
// which the kernel cuts the same way.
//
// A cycle is refused even when the matches along it may be disjoint: a
// packet that follows it is dropped by the kernel after 16 gotos
// (max_reclassify_loop in __tcf_classify, logged as "reclassify loop"),
// a drop no flow's counters explain, and hardware such as mlx5 refuses a
// goto to an earlier chain anyway.
//
// Only flows with a goto action add edges, so callers may pass as
// existing only the installed flows that have one. It runs in time linear
// in the flows and gotos.
func GotoLoops(existing, batch []*Flow) []BatchViolation {
	replaced := make(map[string]bool, len(batch))
	for _, f := range batch {
		replaced[f.ID] = true
	}
	var edges []gotoEdge
	add := func(f *Flow, batch int) {
		for i := range f.Actions {
			if a := &f.Actions[i]; a.Kind == ActGoto {
				edges = append(edges, gotoEdge{from: ChainRef{f.Port, f.Chain}, to: ChainRef{f.Port, a.Chain},
					id: f.ID, action: i, batch: batch})
			}
		}
	}
	for _, f := range existing {
		if !replaced[f.ID] {
			add(f, -1)
		}
	}
	for i, f := range batch {
		add(f, i)
	}
	g := newChainGraph(edges)
	comp := g.components()
	var out []BatchViolation
	for _, e := range edges {
		if e.batch < 0 || comp[e.from] != comp[e.to] {
			continue
		}
		// e lies on a cycle: e itself, then the way back from its target.
		path := append([]uint32{e.from.Chain}, g.path(e.to, e.from, comp)...)
		if e.from == e.to {
			path = []uint32{e.from.Chain, e.to.Chain}
		}
		out = append(out, BatchViolation{Index: e.batch, Violation: Violation{
			Field:  ActionPath(e.action) + ".chain",
			Reason: fmt.Sprintf("goto chain %d closes a loop on port %s: %s", e.to.Chain, e.from.Port, chainPath(path)),
		}})
	}
	out = append(out, g.tooDeep(edges, comp)...)
	slices.SortStableFunc(out, func(a, b BatchViolation) int { return cmp.Compare(a.Index, b.Index) })
	return out
}

// MaxGotoDepth is the most gotos the kernel follows for one packet:
// __tcf_classify shoots the packet at the 17th (max_reclassify_loop).
const MaxGotoDepth = 16

// tooDeep reports the gotos of the batch that lie on a path from chain 0
// of more than MaxGotoDepth gotos: every packet that follows it is
// dropped by the kernel. Chains on cycles are left out (reported above).
func (g *chainGraph) tooDeep(edges []gotoEdge, comp map[ChainRef]int) []BatchViolation {
	n := len(g.nodes)
	size := map[int]int{}
	for _, c := range comp {
		size[c]++
	}
	acyclic := make([]bool, n)
	for v := range n {
		acyclic[v] = size[comp[g.nodes[v]]] == 1 && !slices.Contains(g.succ[v], v)
	}
	// Kahn's order over the acyclic chains.
	indeg := make([]int, n)
	for v := range n {
		for _, w := range g.succ[v] {
			if acyclic[v] && acyclic[w] {
				indeg[w]++
			}
		}
	}
	var order []int
	for v := range n {
		if acyclic[v] && indeg[v] == 0 {
			order = append(order, v)
		}
	}
	for i := 0; i < len(order); i++ {
		for _, w := range g.succ[order[i]] {
			if acyclic[w] {
				if indeg[w]--; indeg[w] == 0 {
					order = append(order, w)
				}
			}
		}
	}
	// in: most gotos from chain 0 to v (-1: not reached from chain 0);
	// out: most gotos from v on.
	in, out := make([]int, n), make([]int, n)
	for v := range n {
		in[v] = -1
		if g.nodes[v].Chain == 0 {
			in[v] = 0
		}
	}
	for _, v := range order {
		for _, w := range g.succ[v] {
			if acyclic[w] && in[v] >= 0 {
				in[w] = max(in[w], in[v]+1)
			}
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		v := order[i]
		for _, w := range g.succ[v] {
			if acyclic[w] {
				out[v] = max(out[v], out[w]+1)
			}
		}
	}
	var vs []BatchViolation
	for _, e := range edges {
		u, w := g.index[e.from], g.index[e.to]
		if e.batch < 0 || !acyclic[u] || !acyclic[w] || in[u] < 0 {
			continue
		}
		if depth := in[u] + 1 + out[w]; depth > MaxGotoDepth {
			vs = append(vs, BatchViolation{Index: e.batch, Violation: Violation{
				Field: ActionPath(e.action) + ".chain",
				Reason: fmt.Sprintf("goto chain %d is on a path of %d gotos from chain 0 on port %s; the kernel drops a packet after %d",
					e.to.Chain, depth, e.from.Port, MaxGotoDepth),
			}})
		}
	}
	return vs
}

// maxPathShown bounds the chains a loop's description lists.
const maxPathShown = 8

// chainPath describes a loop: "chain 7 → 8 → 7", long ones shortened to
// their first and last chains around "…".
func chainPath(p []uint32) string {
	var s []string
	for i, c := range p {
		if len(p) > maxPathShown && i == maxPathShown-2 {
			s = append(s, fmt.Sprintf("… (%d chains) …", len(p)-maxPathShown))
		}
		if len(p) > maxPathShown && i >= maxPathShown-2 && i < len(p)-2 {
			continue
		}
		s = append(s, strconv.FormatUint(uint64(c), 10))
	}
	return "chain " + strings.Join(s, " → ")
}

// chainGraph is the goto graph: chains and the gotos between them.
type chainGraph struct {
	nodes []ChainRef
	index map[ChainRef]int
	succ  [][]int
}

func newChainGraph(edges []gotoEdge) *chainGraph {
	g := &chainGraph{index: map[ChainRef]int{}}
	node := func(c ChainRef) int {
		if i, ok := g.index[c]; ok {
			return i
		}
		g.index[c] = len(g.nodes)
		g.nodes = append(g.nodes, c)
		g.succ = append(g.succ, nil)
		return len(g.nodes) - 1
	}
	for _, e := range edges {
		from, to := node(e.from), node(e.to)
		g.succ[from] = append(g.succ[from], to)
	}
	return g
}

// components numbers the strongly connected components (Tarjan's
// algorithm, iterative so that a long chain of gotos cannot exhaust the
// stack). Two chains are in one component when each reaches the other.
func (g *chainGraph) components() map[ChainRef]int {
	n := len(g.nodes)
	index, low, comp := make([]int, n), make([]int, n), make([]int, n)
	for i := range index {
		index[i], comp[i] = -1, -1
	}
	onStack := make([]bool, n)
	var stack []int
	next, ncomp := 0, 0
	type frame struct{ v, edge int }
	for root := range n {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			top := &call[len(call)-1]
			v := top.v
			if top.edge < len(g.succ[v]) {
				w := g.succ[v][top.edge]
				top.edge++
				switch {
				case index[w] < 0:
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				case onStack[w]:
					low[v] = min(low[v], index[w])
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				u := call[len(call)-1].v
				low[u] = min(low[u], low[v])
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == v {
						break
					}
				}
				ncomp++
			}
		}
	}
	out := make(map[ChainRef]int, n)
	for i, c := range g.nodes {
		out[c] = comp[i]
	}
	return out
}

// path is the shortest way from a to b inside their component, as the
// chains from a to b, both included.
func (g *chainGraph) path(a, b ChainRef, comp map[ChainRef]int) []uint32 {
	src, dst := g.index[a], g.index[b]
	if src == dst {
		return []uint32{a.Chain}
	}
	prev := map[int]int{src: -1}
	queue := []int{src}
	for len(queue) > 0 && !hasKey(prev, dst) {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.succ[v] {
			if _, seen := prev[w]; !seen && comp[g.nodes[w]] == comp[a] {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	var rev []uint32
	for v := dst; v >= 0; v = prev[v] {
		rev = append(rev, g.nodes[v].Chain)
	}
	slices.Reverse(rev)
	return rev
}

func hasKey(m map[int]int, k int) bool { _, ok := m[k]; return ok }

// ChainTargets maps every chain that some flow jumps to, to the IDs of
// the flows that jump there, sorted.
func ChainTargets(flows []*Flow) map[ChainRef][]string {
	out := map[ChainRef][]string{}
	for _, f := range flows {
		for i := range f.Actions {
			if a := &f.Actions[i]; a.Kind == ActGoto {
				k := ChainRef{f.Port, a.Chain}
				if ids := out[k]; len(ids) == 0 || ids[len(ids)-1] != f.ID {
					out[k] = append(ids, f.ID)
				}
			}
		}
	}
	for k, ids := range out {
		slices.Sort(ids)
		out[k] = slices.Compact(ids)
	}
	return out
}

// DeleteViolation is why the flow ID may not be deleted.
type DeleteViolation struct {
	ID     string
	Reason string
}

// StrandedGotos checks a deletion of the flows named by del from
// existing: deleting the last rules of a chain that a remaining flow
// jumps to would leave that goto pointing at an empty chain, where
// classification ends with no verdict and the packet goes on to the
// kernel's stack unfiltered (hardware misses to software, which finds
// nothing either); applying such a goto is refused for the same reason.
// It returns one violation per deleted flow that empties
// such a chain, naming up to three of the flows that jump there.
//
// Callers may pass as existing only the flows of the chains that del
// touches and the flows with a goto action.
func StrandedGotos(existing []*Flow, del []string) []DeleteViolation {
	gone := make(map[string]bool, len(del))
	for _, id := range del {
		gone[id] = true
	}
	left := map[ChainRef]int{}
	var remaining []*Flow
	for _, f := range existing {
		if !gone[f.ID] {
			left[ChainRef{f.Port, f.Chain}]++
			remaining = append(remaining, f)
		}
	}
	targets := ChainTargets(remaining)
	var out []DeleteViolation
	for _, f := range existing {
		k := ChainRef{f.Port, f.Chain}
		if !gone[f.ID] || left[k] > 0 || len(targets[k]) == 0 {
			continue
		}
		from := targets[k]
		more := ""
		if len(from) > 3 {
			from, more = from[:3], fmt.Sprintf(" and %d more", len(targets[k])-3)
		}
		out = append(out, DeleteViolation{ID: f.ID, Reason: fmt.Sprintf(
			"it is the last rule of %s, which %s still jump%s to; delete or change %s first",
			k, strings.Join(from, ", ")+more, plural(len(targets[k]) == 1), them(len(targets[k]) == 1))})
	}
	return out
}

func plural(one bool) string {
	if one {
		return "s"
	}
	return ""
}

func them(one bool) string {
	if one {
		return "it"
	}
	return "them"
}
