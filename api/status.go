package api

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// StateToProto converts an engine state.
func StateToProto(s offload.State) v1.FlowState {
	switch s {
	case offload.StatePending:
		return v1.FlowState_FLOW_STATE_PENDING
	case offload.StateHardware:
		return v1.FlowState_FLOW_STATE_HARDWARE
	case offload.StateSoftware:
		return v1.FlowState_FLOW_STATE_SOFTWARE
	case offload.StateFailed:
		return v1.FlowState_FLOW_STATE_FAILED
	}
	return v1.FlowState_FLOW_STATE_UNSPECIFIED
}

// StateFromProto converts a wire state; ok is false for UNSPECIFIED and
// unknown values.
func StateFromProto(s v1.FlowState) (offload.State, bool) {
	switch s {
	case v1.FlowState_FLOW_STATE_PENDING:
		return offload.StatePending, true
	case v1.FlowState_FLOW_STATE_HARDWARE:
		return offload.StateHardware, true
	case v1.FlowState_FLOW_STATE_SOFTWARE:
		return offload.StateSoftware, true
	case v1.FlowState_FLOW_STATE_FAILED:
		return offload.StateFailed, true
	}
	return 0, false
}

func outcomeToProto(o offload.Outcome) v1.ApplyOutcome {
	switch o {
	case offload.OutcomeCreated:
		return v1.ApplyOutcome_APPLY_OUTCOME_CREATED
	case offload.OutcomeUpdated:
		return v1.ApplyOutcome_APPLY_OUTCOME_UPDATED
	case offload.OutcomeUnchanged:
		return v1.ApplyOutcome_APPLY_OUTCOME_UNCHANGED
	case offload.OutcomeFailed:
		return v1.ApplyOutcome_APPLY_OUTCOME_FAILED
	case offload.OutcomeInvalid:
		return v1.ApplyOutcome_APPLY_OUTCOME_INVALID
	case offload.OutcomeAborted:
		return v1.ApplyOutcome_APPLY_OUTCOME_ABORTED
	}
	return v1.ApplyOutcome_APPLY_OUTCOME_UNSPECIFIED
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func countersToProto(c nic.Counters) *v1.Counters {
	if c == (nic.Counters{}) {
		return nil // never hit: the message's zero value says as much
	}
	return &v1.Counters{Packets: c.Packets, Bytes: c.Bytes, LastUsed: timestamp(c.LastUsed)}
}

// reasonsToProto converts reasons about f, naming wire fields.
func reasonsToProto(f *flow.Flow, rs []nic.Reason) []*v1.Reason {
	if len(rs) == 0 {
		return nil
	}
	out := make([]*v1.Reason, len(rs))
	for i, r := range rs {
		out[i] = &v1.Reason{Code: string(r.Code), Field: reasonField(f, r), Message: r.Message}
	}
	return out
}

// reasonField is the wire name of the field reason r about f is about.
func reasonField(f *flow.Flow, r nic.Reason) string {
	if f == nil {
		return r.Field
	}
	return WireField(f, r.Field)
}

// StatusToProto converts a flow's status. A zero Status (no flow) is nil.
func StatusToProto(s offload.Status) *v1.FlowStatus {
	st := statusToProto(s)
	if st != nil {
		st.Flow = FlowToProto(s.Flow)
	}
	return st
}

// statusToProto converts a status without its flow.
func statusToProto(s offload.Status) *v1.FlowStatus {
	if s.Flow == nil {
		return nil
	}
	return statusInto(new(v1.FlowStatus), new(timestamppb.Timestamp), s)
}

// statusInto fills st (and ts for its update time) from s and returns st;
// batches pass elements of slices to save an allocation each.
func statusInto(st *v1.FlowStatus, ts *timestamppb.Timestamp, s offload.Status) *v1.FlowStatus {
	st.State = StateToProto(s.State)
	st.Reasons = reasonsToProto(s.Flow, s.Reasons)
	st.Generation = s.Generation
	st.Hardware = countersToProto(s.HW)
	st.Software = countersToProto(s.SW)
	st.Device = s.Device
	if !s.Updated.IsZero() {
		ts.Seconds, ts.Nanos = s.Updated.Unix(), int32(s.Updated.Nanosecond())
		st.Updated = ts
	}
	return st
}

// violationsToProto converts violations about f (paths relative to f, or
// already prefixed) to wire violations under path ("flows[3]").
func violationsToProto(f *flow.Flow, path string, vs []flow.Violation) []*v1.FieldViolation {
	if len(vs) == 0 {
		return nil
	}
	out := make([]*v1.FieldViolation, len(vs))
	for i, v := range vs {
		field := v.Field
		if !strings.HasPrefix(field, path+".") && field != path {
			if f != nil {
				field = WireField(f, field)
			}
			field = joinPath(path, field)
		}
		out[i] = &v1.FieldViolation{Field: field, Description: v.Reason}
	}
	return out
}

// describeResult is one line about a failed or invalid result.
func describeResult(i int, r *v1.ApplyResult) string {
	head := fmt.Sprintf("flows[%d]", i)
	if r.GetId() != "" {
		head += fmt.Sprintf(" (id %q)", r.GetId())
	}
	switch r.GetOutcome() {
	case v1.ApplyOutcome_APPLY_OUTCOME_INVALID:
		parts := make([]string, len(r.GetViolations()))
		for k, v := range r.GetViolations() {
			parts[k] = v.GetField() + ": " + v.GetDescription()
		}
		return head + " invalid: " + strings.Join(parts, "; ")
	case v1.ApplyOutcome_APPLY_OUTCOME_FAILED:
		return head + " failed: " + r.GetError()
	}
	return head + " " + strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "APPLY_OUTCOME_"))
}
