package offload

import (
	"errors"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// State is where a flow stands.
type State uint8

const (
	// StatePending: accepted, not installed in any plane yet (e.g. its port is gone).
	StatePending State = iota
	// StateHardware: the flow runs in the NIC.
	StateHardware
	// StateSoftware: the flow runs in the kernel's software path; Reasons say why.
	StateSoftware
	// StateFailed: the flow could not be installed as asked; Reasons say why.
	StateFailed
)

var stateNames = [...]string{"pending", "hardware", "software", "failed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// ParseState parses a State name.
func ParseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s {
			return State(i), true
		}
	}
	return 0, false
}

// Status is a flow with where it runs, why, and its counters.
type Status struct {
	Flow  *flow.Flow
	State State
	// Reasons say why the flow is not in hardware (or failed); empty in hardware.
	Reasons []nic.Reason
	// Generation counts changes to the flow's definition, from 1.
	Generation uint64
	HW, SW     nic.Counters
	// Device is the NIC that owns the flow's ingress port.
	Device  string
	Updated time.Time
}

// Outcome is what Apply did with one flow.
type Outcome uint8

const (
	OutcomeCreated Outcome = iota + 1
	OutcomeUpdated
	OutcomeUnchanged
	// OutcomeFailed: valid, but could not be installed as its policy asks.
	OutcomeFailed
	// OutcomeInvalid: rejected by validation; nothing changed for it.
	OutcomeInvalid
	// OutcomeAborted: an atomic batch failed elsewhere; this flow was not applied.
	OutcomeAborted
)

var outcomeNames = [...]string{"", "created", "updated", "unchanged", "failed", "invalid", "aborted"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && o != 0 {
		return outcomeNames[o]
	}
	return "unknown"
}

// Result is the outcome for one flow of an Apply batch, in request order.
type Result struct {
	ID      string
	Outcome Outcome
	// Status is the flow's status after Apply (zero for invalid or aborted flows).
	Status Status
	// Violations are validation failures, with fields relative to the flow.
	Violations []flow.Violation
	// Err says why a valid flow failed (a *PlacementError for refusals).
	Err error
}

// ApplyOptions change how Apply treats a batch.
type ApplyOptions struct {
	// Atomic applies all flows or none: any invalid or failed flow rolls the batch back.
	Atomic bool
	// Owned hands the flows over: the caller will not touch them again, so
	// the engine keeps them instead of copying each one.
	Owned bool
}

// DeleteResult is the outcome for one ID of a Delete batch.
type DeleteResult struct {
	ID    string
	Found bool
	Err   error
}

// Filter selects flows for List; zero fields match everything.
type Filter struct {
	Port     string
	State    *State
	IDPrefix string
	Chain    *uint32
}

// Explanation is the answer of a dry run.
type Explanation struct {
	// State is where the flow would be placed now.
	State   State
	Reasons []nic.Reason
	// Violations are validation failures; State is StateFailed when there are any.
	Violations []flow.Violation
	// Installed is the current status of a flow with the same ID, if any.
	Installed *Status
	// Changed reports whether applying would change the installed flow.
	Changed bool
}

// EventKind names a watch event.
type EventKind uint8

const (
	// EventUpsert: a flow was created, changed, or changed placement or reasons.
	EventUpsert EventKind = iota + 1
	// EventDelete: a flow was deleted; Status holds its last state.
	EventDelete
)

// Event is one change seen by a watcher.
type Event struct {
	Kind   EventKind
	Status Status
}

// PlacementError says why a valid flow could not be placed as its policy asks.
type PlacementError struct {
	ID      string
	Reasons []nic.Reason
	// Capacity is true when the hardware table was full.
	Capacity bool
	// Err is the device's error, if any.
	Err error
}

func (e *PlacementError) Error() string {
	msg := "flow " + e.ID + " cannot be placed"
	for i, r := range e.Reasons {
		if i == 0 {
			msg += ": "
		} else {
			msg += "; "
		}
		msg += r.String()
	}
	return msg
}

func (e *PlacementError) Unwrap() error { return e.Err }

// Sentinel errors.
var (
	// ErrBatchRejected: an atomic batch had a failure, so nothing was applied.
	ErrBatchRejected = errors.New("batch rejected, nothing applied")
	// ErrWatcherLagged: a watcher fell too far behind and was closed; watch again.
	ErrWatcherLagged = errors.New("watcher fell behind")
	// ErrNotFound: no flow or port with that name.
	ErrNotFound = errors.New("not found")
	// ErrInUse: a flow another flow depends on (the last rule of a chain
	// a goto jumps to) cannot be deleted alone.
	ErrInUse = errors.New("in use")
	// ErrNotDurable: the desired state could not be saved, so the change
	// is not acknowledged (or, while the store fails, not made at all).
	ErrNotDurable = errors.New("desired state not saved")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("engine closed")
)
