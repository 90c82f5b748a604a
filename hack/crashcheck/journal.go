package main

import (
	"fmt"
	"sort"
	"sync"
)

// state is what one flow ID holds: absent, or a flow whose content is
// told apart by a version (its IPv4 destination, from a counter of its
// client: never reused by a run), at a generation.
type state struct {
	present bool
	ver     uint32
	gen     uint64
}

func (s state) String() string {
	if !s.present {
		return "absent"
	}
	return fmt.Sprintf("version %d gen %d", s.ver, s.gen)
}

// sameFlow compares content, and the generation where both know it.
func sameFlow(a, b state) bool {
	if a.present != b.present {
		return false
	}
	return !a.present || a.ver == b.ver && (a.gen == 0 || b.gen == 0 || a.gen == b.gen)
}

// op is one request whose answer was lost: each ID is in its old or its
// new state after a restart, and for an atomic batch all IDs agree.
type op struct {
	atomic bool
	ids    []string
	new    map[string]state
}

// journal is the checker's model of the daemon's durable state.
type journal struct {
	mu       sync.Mutex
	acked    map[string]state // last acknowledged state; absent when missing
	unknown  []*op            // requests without an answer since the last check
	stats    stats
	problems []string
}

// stats are the run's figures.
type stats struct {
	Rounds, Kills                    int
	AckedChanges, AckedAtomicBatches int
	UnknownRequests                  int
	UnknownApplied, UnknownDropped   int
	Lost, Unexpected, Duplicates     int
	AtomicViolations                 int
	SaveErrorsLogged                 int
	FlowsAtEnd                       int
}

func newJournal() *journal { return &journal{acked: map[string]state{}} }

func (j *journal) get(id string) state {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.acked[id]
}

// ack records an acknowledged change of id.
func (j *journal) ack(id string, s state) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.acked[id] = s
	j.stats.AckedChanges++
}

func (j *journal) ackAtomic() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stats.AckedAtomicBatches++
}

// lost records a request without an answer.
func (j *journal) lost(o *op) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.unknown = append(j.unknown, o)
	j.stats.UnknownRequests++
}

// check compares what a restarted daemon lists with the journal, counts
// problems, and adopts what it found as the new acknowledged state.
// listed may name an ID twice (a duplicate).
func (j *journal) check(round int, listed []listedFlow) {
	j.mu.Lock()
	defer j.mu.Unlock()
	got := map[string]state{}
	for _, f := range listed {
		if _, dup := got[f.id]; dup {
			j.stats.Duplicates++
			j.problem("round %d: flow %s listed twice", round, f.id)
		}
		got[f.id] = f.state
	}
	pending := map[string]bool{}
	for _, o := range j.unknown {
		nNew, nOld := 0, 0
		for _, id := range o.ids {
			pending[id] = true
			g := got[id]
			isNew, isOld := sameFlow(g, o.new[id]), sameFlow(g, j.acked[id])
			switch {
			case isNew && !isOld:
				nNew++
			case isOld && !isNew:
				nOld++
			case !isNew && !isOld:
				j.stats.Lost++
				j.problem("round %d: flow %s is %v: neither its acknowledged %v nor the unanswered %v", round, id, g, j.acked[id], o.new[id])
			}
		}
		if nNew > 0 {
			j.stats.UnknownApplied++
		} else {
			j.stats.UnknownDropped++
		}
		if o.atomic && nNew > 0 && nOld > 0 {
			j.stats.AtomicViolations++
			j.problem("round %d: atomic batch of %d flows half applied: %d new, %d old", round, len(o.ids), nNew, nOld)
		}
	}
	ids := map[string]bool{}
	for id := range j.acked {
		ids[id] = true
	}
	for id := range got {
		ids[id] = true
	}
	for _, id := range sortedKeys(ids) {
		if pending[id] {
			continue
		}
		want, g := j.acked[id], got[id]
		if sameFlow(want, g) {
			continue
		}
		if want.present {
			j.stats.Lost++
			j.problem("round %d: acknowledged flow %s (%v) lost: the daemon has %v", round, id, want, g)
		} else {
			j.stats.Unexpected++
			j.problem("round %d: flow %s (%v) is back after an acknowledged delete", round, id, g)
		}
	}
	j.acked = got
	j.unknown = nil
}

func (j *journal) problem(format string, args ...any) {
	if len(j.problems) < 50 {
		j.problems = append(j.problems, fmt.Sprintf(format, args...))
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
