package api

import (
	"encoding/binary"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// applyAnswer is an ApplyFlows answer before it takes a wire form: the
// server's codec writes it out directly (marshal), anything else gets the
// v1 message (toProto). Both give the same bytes.
type applyAnswer struct {
	ids     []string // request ids, in request order
	results []answer // one per request flow
}

// answer is one ApplyResult.
type answer struct {
	outcome    v1.ApplyOutcome
	status     *offload.Status // nil for invalid and aborted flows
	withFlow   bool            // include the canonical flow in the status
	violations []*v1.FieldViolation
	err        string
}

// rejected reports whether any flow is invalid or failed.
func (a *applyAnswer) rejected() bool {
	for i := range a.results {
		switch a.results[i].outcome {
		case v1.ApplyOutcome_APPLY_OUTCOME_INVALID, v1.ApplyOutcome_APPLY_OUTCOME_FAILED:
			return true
		}
	}
	return false
}

// toProto builds the v1 message, one allocation per message type for the
// whole batch.
func (a *applyAnswer) toProto() *v1.ApplyFlowsResponse {
	n := len(a.results)
	resp := &v1.ApplyFlowsResponse{Results: make([]*v1.ApplyResult, n)}
	outs := make([]v1.ApplyResult, n)
	statuses := make([]v1.FlowStatus, n)
	stamps := make([]timestamppb.Timestamp, n)
	for i := range a.results {
		r, out := &a.results[i], &outs[i]
		out.Id, out.Outcome, out.Violations, out.Error = a.ids[i], r.outcome, r.violations, r.err
		if r.status != nil {
			out.Status = statusInto(&statuses[i], &stamps[i], *r.status)
			if r.withFlow {
				out.Status.Flow = FlowToProto(r.status.Flow)
			}
		}
		resp.Results[i] = out
	}
	return resp
}

// Field numbers of the messages an answer is made of (flow_service.proto).
const (
	fieldResponseResults protowire.Number = 1

	fieldResultID         protowire.Number = 1
	fieldResultOutcome    protowire.Number = 2
	fieldResultStatus     protowire.Number = 3
	fieldResultViolations protowire.Number = 4
	fieldResultError      protowire.Number = 5

	fieldStatusFlow       protowire.Number = 1
	fieldStatusState      protowire.Number = 2
	fieldStatusReasons    protowire.Number = 3
	fieldStatusGeneration protowire.Number = 4
	fieldStatusHardware   protowire.Number = 5
	fieldStatusSoftware   protowire.Number = 6
	fieldStatusDevice     protowire.Number = 7
	fieldStatusUpdated    protowire.Number = 8

	fieldCountersPackets  protowire.Number = 1
	fieldCountersBytes    protowire.Number = 2
	fieldCountersLastUsed protowire.Number = 3

	fieldTimestampSeconds protowire.Number = 1
	fieldTimestampNanos   protowire.Number = 2

	fieldReasonCode    protowire.Number = 1
	fieldReasonField   protowire.Number = 2
	fieldReasonMessage protowire.Number = 3

	fieldViolationField       protowire.Number = 1
	fieldViolationDescription protowire.Number = 2
)

// marshal writes the answer in protobuf's wire form, fields in number
// order as proto.Marshal writes them, into a buffer from the pool. Each
// embedded message is written to scratch space first, which gives its
// length.
func (a *applyAnswer) marshal() (mem.BufferSlice, error) {
	pool := mem.DefaultBufferPool()
	buf := pool.Get(len(a.results) * 64)
	var w answerWriter
	b := (*buf)[:0]
	for i := range a.results {
		w.result = w.appendResult(w.result[:0], a.ids[i], &a.results[i])
		b = appendMessage(b, fieldResponseResults, w.result)
	}
	if cap(b) != cap(*buf) { // outgrew the pooled buffer
		pool.Put(buf)
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// answerWriter holds scratch space for the embedded messages of one
// result, reused from result to result.
type answerWriter struct {
	result, status, sub []byte
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendMessage writes an embedded message whose fields are in m.
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendTimestamp writes t as timestamp() converts it: nothing when zero.
func appendTimestamp(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	var m [2 * (1 + binary.MaxVarintLen64)]byte
	ts := appendVarint(m[:0], fieldTimestampSeconds, uint64(t.Unix()))
	ts = appendVarint(ts, fieldTimestampNanos, uint64(int64(t.Nanosecond())))
	return appendMessage(b, num, ts)
}

// appendCounters writes c as countersToProto converts them: nothing when
// zero.
func (w *answerWriter) appendCounters(b []byte, num protowire.Number, c nic.Counters) []byte {
	if c == (nic.Counters{}) {
		return b
	}
	m := appendVarint(w.sub[:0], fieldCountersPackets, c.Packets)
	m = appendVarint(m, fieldCountersBytes, c.Bytes)
	m = appendTimestamp(m, fieldCountersLastUsed, c.LastUsed)
	w.sub = m
	return appendMessage(b, num, m)
}

// appendStatus writes a FlowStatus as statusInto fills it.
func (w *answerWriter) appendStatus(b []byte, s *offload.Status, withFlow bool) []byte {
	if withFlow {
		w.sub, _ = proto.MarshalOptions{}.MarshalAppend(w.sub[:0], FlowToProto(s.Flow))
		b = appendMessage(b, fieldStatusFlow, w.sub)
	}
	b = appendVarint(b, fieldStatusState, uint64(StateToProto(s.State)))
	for _, r := range s.Reasons {
		m := appendString(w.sub[:0], fieldReasonCode, string(r.Code))
		m = appendString(m, fieldReasonField, reasonField(s.Flow, r))
		w.sub = appendString(m, fieldReasonMessage, r.Message)
		b = appendMessage(b, fieldStatusReasons, w.sub)
	}
	b = appendVarint(b, fieldStatusGeneration, s.Generation)
	b = w.appendCounters(b, fieldStatusHardware, s.HW)
	b = w.appendCounters(b, fieldStatusSoftware, s.SW)
	b = appendString(b, fieldStatusDevice, s.Device)
	return appendTimestamp(b, fieldStatusUpdated, s.Updated)
}

// appendResult writes the fields of one ApplyResult.
func (w *answerWriter) appendResult(b []byte, id string, r *answer) []byte {
	b = appendString(b, fieldResultID, id)
	b = appendVarint(b, fieldResultOutcome, uint64(r.outcome))
	if r.status != nil {
		w.status = w.appendStatus(w.status[:0], r.status, r.withFlow)
		b = appendMessage(b, fieldResultStatus, w.status)
	}
	for _, v := range r.violations {
		m := appendString(w.sub[:0], fieldViolationField, v.GetField())
		w.sub = appendString(m, fieldViolationDescription, v.GetDescription())
		b = appendMessage(b, fieldResultViolations, w.sub)
	}
	return appendString(b, fieldResultError, r.err)
}
