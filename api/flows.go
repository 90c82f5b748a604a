package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// List page sizes.
const (
	defaultPageSize = 1000
	maxPageSize     = 10000
)

// maxErrorLines bounds the per-flow lines in a rejected batch's status
// message; the details carry every result.
const maxErrorLines = 20

type flowService struct {
	v1.UnimplementedFlowServiceServer
	s *Server
}

// engineError maps an engine error that is not about single flows.
func engineError(op string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, offload.ErrClosed), errors.Is(err, offload.ErrNotDurable):
		return status.Errorf(codes.Unavailable, "%s: %v", op, err)
	}
	return status.Errorf(codes.Internal, "%s: %v", op, err)
}

// fail logs an engine error the client cannot act on, then maps it.
func (fs *flowService) fail(op string, err error) error {
	st := engineError(op, err)
	if status.Code(st) == codes.Internal {
		fs.s.log.Error(op, "err", err)
	}
	return st
}

// ApplyFlows converts every flow, applies the valid ones through the
// engine and merges the results back into request order.
func (fs *flowService) ApplyFlows(ctx context.Context, req *v1.ApplyFlowsRequest) (*v1.ApplyFlowsResponse, error) {
	a, err := fs.applyFlows(ctx, batchFromProto(req))
	if err != nil {
		return nil, err
	}
	return a.toProto(), nil
}

func (fs *flowService) applyFlows(ctx context.Context, b *applyBatch) (*applyAnswer, error) {
	n := len(b.flows)
	lim := &fs.s.limits
	if n > lim.MaxFlowsPerRequest {
		fs.s.hits.Hit(LimitFlowsPerRequest, "method", "ApplyFlows", "flows", n, "max", lim.MaxFlowsPerRequest)
		return nil, status.Errorf(codes.ResourceExhausted, "apply flows: %d flows in one request, over the limit of %d; send them in batches of at most %d",
			n, lim.MaxFlowsPerRequest, lim.MaxFlowsPerRequest)
	}
	if est := sendEstimate(b.size, n); b.includeFlows && est > lim.MaxSendMsgSize {
		// Refused before anything is applied: the flows would be
		// installed and the answer then fail to be sent.
		fs.s.hits.Hit(LimitSendMsgSize, "method", "ApplyFlows", "flows", n, "estimate", est, "max", lim.MaxSendMsgSize)
		return nil, status.Errorf(codes.ResourceExhausted, "apply flows: with include_flows the answer would be about %s, over the %s limit on a message; "+
			"leave include_flows unset (GetFlow or ListFlows read the flows back) or send fewer flows per request; nothing was applied",
			mib(est), mib(lim.MaxSendMsgSize))
	}
	a := &applyAnswer{ids: b.ids, results: make([]answer, n)}
	var (
		valid   = make([]*flow.Flow, 0, n)
		index   = make([]int, 0, n) // request position of valid[k]
		invalid int
		first   = make(map[string]int, n)
	)
	for i, f := range b.flows {
		vs := b.violations[i]
		if j, dup := first[f.ID]; dup && f.ID != "" {
			vs = append(vs, flow.Violation{Field: "id", Reason: fmt.Sprintf("duplicate of flows[%d] in the same batch", j)})
		} else {
			first[f.ID] = i
		}
		if len(vs) > 0 {
			path := fmt.Sprintf("flows[%d]", i)
			a.results[i] = answer{outcome: v1.ApplyOutcome_APPLY_OUTCOME_INVALID, violations: violationsToProto(f, path, prefixViolations(path, vs))}
			invalid++
			continue
		}
		valid = append(valid, f)
		index = append(index, i)
	}
	if b.atomic && invalid > 0 {
		for i := range a.results {
			if a.results[i].outcome == v1.ApplyOutcome_APPLY_OUTCOME_UNSPECIFIED {
				a.results[i].outcome = v1.ApplyOutcome_APPLY_OUTCOME_ABORTED
			}
		}
		return nil, rejected(a.toProto(), nil)
	}
	var (
		results        []offload.Result
		engineRejected bool
	)
	if len(valid) > 0 {
		var err error
		// The flows were converted for this call alone: hand them over.
		results, err = fs.s.engine.Apply(ctx, valid, offload.ApplyOptions{Atomic: b.atomic, Owned: true})
		if err != nil && !errors.Is(err, offload.ErrBatchRejected) {
			return nil, fs.fail("apply flows", err)
		}
		engineRejected = err != nil
		if len(results) != len(valid) {
			return nil, status.Errorf(codes.Internal, "apply flows: engine returned %d results for %d flows", len(results), len(valid))
		}
	}
	var failures []error
	for k := range results {
		r := &results[k]
		i := index[k]
		out := &a.results[i]
		out.outcome = outcomeToProto(r.Outcome)
		if r.Status.Flow != nil {
			out.status = &r.Status
			out.withFlow = b.includeFlows
		}
		if len(r.Violations) > 0 {
			out.violations = violationsToProto(valid[k], fmt.Sprintf("flows[%d]", i), r.Violations)
		}
		if r.Err != nil {
			out.err = r.Err.Error()
			failures = append(failures, r.Err)
		}
	}
	if b.atomic && (engineRejected || a.rejected()) {
		fs.s.log.Info("atomic batch rejected", "flows", n, "failed", len(failures))
		return nil, rejected(a.toProto(), failures)
	}
	return a, nil
}

// rejected builds the error of an atomic batch that applied nothing:
// INVALID_ARGUMENT with BadRequest field violations when any flow is
// invalid, else FAILED_PRECONDITION, or RESOURCE_EXHAUSTED when every
// failure was a full hardware table. The message lists the failed flows;
// the details carry a BadRequest and the full ApplyFlowsResponse.
func rejected(resp *v1.ApplyFlowsResponse, failures []error) error {
	code := codes.FailedPrecondition
	if len(failures) > 0 {
		code = codes.ResourceExhausted
		for _, err := range failures {
			var pe *offload.PlacementError
			if !errors.As(err, &pe) || !pe.Capacity {
				code = codes.FailedPrecondition
			}
		}
	}
	br := &errdetails.BadRequest{}
	var lines []string
	bad := 0
	for i, r := range resp.GetResults() {
		o := r.GetOutcome()
		if o != v1.ApplyOutcome_APPLY_OUTCOME_INVALID && o != v1.ApplyOutcome_APPLY_OUTCOME_FAILED {
			continue
		}
		if o == v1.ApplyOutcome_APPLY_OUTCOME_INVALID {
			code = codes.InvalidArgument
			for _, v := range r.GetViolations() {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
		bad++
		if len(lines) < maxErrorLines {
			lines = append(lines, describeResult(i, r))
		}
	}
	msg := fmt.Sprintf("batch rejected, nothing applied: %d of %d flows invalid or failed: %s", bad, len(resp.GetResults()), strings.Join(lines, "; "))
	if bad > len(lines) {
		msg += fmt.Sprintf("; and %d more", bad-len(lines))
	}
	st := status.New(code, msg)
	var withDetails *status.Status
	var err error
	if len(br.FieldViolations) > 0 {
		withDetails, err = st.WithDetails(br, resp)
	} else {
		withDetails, err = st.WithDetails(resp)
	}
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}

// DeleteFlows removes flows by id.
func (fs *flowService) DeleteFlows(ctx context.Context, req *v1.DeleteFlowsRequest) (*v1.DeleteFlowsResponse, error) {
	for i, id := range req.GetIds() {
		if id == "" {
			return nil, status.Errorf(codes.InvalidArgument, "ids[%d]: must not be empty", i)
		}
	}
	results, err := fs.s.engine.Delete(ctx, req.GetIds())
	if err != nil {
		return nil, fs.fail("delete flows", err)
	}
	resp := &v1.DeleteFlowsResponse{Results: make([]*v1.DeleteResult, len(results))}
	for i, r := range results {
		resp.Results[i] = &v1.DeleteResult{Id: r.ID, Found: r.Found}
		if r.Err != nil {
			resp.Results[i].Error = r.Err.Error()
		}
	}
	return resp, nil
}

// ListFlows pages through the engine's sorted list; the page token is the
// last id returned, encoded.
func (fs *flowService) ListFlows(ctx context.Context, req *v1.ListFlowsRequest) (*v1.ListFlowsResponse, error) {
	var filter offload.Filter
	filter.Port = req.GetPort()
	filter.IDPrefix = req.GetIdPrefix()
	if st := req.GetState(); st != v1.FlowState_FLOW_STATE_UNSPECIFIED {
		s, ok := StateFromProto(st)
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "state: unknown flow state %d", int32(st))
		}
		filter.State = &s
	}
	if req.Chain != nil {
		c := req.GetChain()
		filter.Chain = &c
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token from ListFlows")
		}
		after = string(b)
	}
	// Pages are built MaxConcurrentLists at a time.
	select {
	case fs.s.lists <- struct{}{}:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	page, more := fs.s.engine.ListPage(filter, after, size)
	resp := &v1.ListFlowsResponse{Flows: make([]*v1.FlowStatus, 0, len(page))}
	for _, st := range page {
		resp.Flows = append(resp.Flows, StatusToProto(st))
	}
	<-fs.s.lists
	if more && len(page) > 0 {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].Flow.ID))
	}
	return resp, nil
}

// GetFlow returns one flow's status.
func (fs *flowService) GetFlow(_ context.Context, req *v1.GetFlowRequest) (*v1.GetFlowResponse, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id: must not be empty")
	}
	st, ok := fs.s.engine.Get(req.GetId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "flow %q not found", clipID(req.GetId()))
	}
	return &v1.GetFlowResponse{Status: StatusToProto(st)}, nil
}

// ExplainFlow answers where a flow would run. An invalid flow is an
// answer (state FAILED with violations), not an RPC error.
func (fs *flowService) ExplainFlow(ctx context.Context, req *v1.ExplainFlowRequest) (*v1.ExplainFlowResponse, error) {
	return fs.explain(ctx, []*v1.Flow{req.GetFlow()}, func(int) string { return "flow" })[0], nil
}

// ExplainFlows answers where each flow of a batch would run if applied
// together now.
func (fs *flowService) ExplainFlows(ctx context.Context, req *v1.ExplainFlowsRequest) (*v1.ExplainFlowsResponse, error) {
	if len(req.GetFlows()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "flows: at least one flow is required")
	}
	if n, max := len(req.GetFlows()), fs.s.limits.MaxFlowsPerRequest; n > max {
		fs.s.hits.Hit(LimitFlowsPerRequest, "method", "ExplainFlows", "flows", n, "max", max)
		return nil, status.Errorf(codes.ResourceExhausted, "explain flows: %d flows in one request, over the limit of %d", n, max)
	}
	results := fs.explain(ctx, req.GetFlows(), func(i int) string { return fmt.Sprintf("flows[%d]", i) })
	return &v1.ExplainFlowsResponse{Results: results}, nil
}

// explain converts the flows and explains the valid ones as one batch;
// path names each flow's place in the request.
func (fs *flowService) explain(ctx context.Context, in []*v1.Flow, path func(int) string) []*v1.ExplainFlowResponse {
	out := make([]*v1.ExplainFlowResponse, len(in))
	flows := make([]*flow.Flow, len(in))
	var valid []*flow.Flow
	var at []int
	for i, w := range in {
		f, vs := FlowFromProto(w, path(i))
		flows[i] = f
		if len(vs) > 0 {
			out[i] = &v1.ExplainFlowResponse{
				State:      v1.FlowState_FLOW_STATE_FAILED,
				Violations: violationsToProto(f, path(i), vs),
				Changed:    true,
			}
			if f.ID != "" {
				if st, ok := fs.s.engine.Get(f.ID); ok {
					out[i].Installed = StatusToProto(st)
				}
			}
			continue
		}
		valid = append(valid, f)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return out
	}
	for k, x := range fs.s.engine.ExplainBatch(ctx, valid) {
		i := at[k]
		f := flows[i]
		resp := &v1.ExplainFlowResponse{
			State:      StateToProto(x.State),
			Reasons:    reasonsToProto(f, x.Reasons),
			Violations: violationsToProto(f, path(i), x.Violations),
			Changed:    x.Changed,
		}
		if x.Installed != nil {
			resp.Installed = StatusToProto(*x.Installed)
		}
		out[i] = resp
	}
	return out
}

// snapshotPage is how many snapshot statuses WatchFlows reads at a time.
const snapshotPage = 256

// WatchFlows sends the snapshot, a SYNC marker, then every change until
// the client goes away or the watcher ends.
func (fs *flowService) WatchFlows(_ *v1.WatchFlowsRequest, stream grpc.ServerStreamingServer[v1.WatchFlowsResponse]) error {
	if n, max := fs.s.watchers.Add(1), fs.s.limits.MaxWatchers; n > int64(max) {
		fs.s.watchers.Add(-1)
		fs.s.hits.Hit(LimitWatchers, "max", max)
		return status.Errorf(codes.ResourceExhausted, "watch flows: %d watches are open, the limit; close one or retry later", max)
	}
	defer fs.s.watchers.Add(-1)
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	w, err := fs.s.engine.Watch(ctx)
	if err != nil {
		return fs.fail("watch flows", err)
	}
	// The snapshot in pages, each read when it is sent: a client that
	// does not read holds back a pointer per flow, not every status.
	for from := 0; from < w.SnapshotLen(); from += snapshotPage {
		for _, st := range w.SnapshotPage(from, snapshotPage) {
			if err := stream.Send(&v1.WatchFlowsResponse{Kind: v1.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT, Status: StatusToProto(st)}); err != nil {
				return err
			}
		}
	}
	if err := stream.Send(&v1.WatchFlowsResponse{Kind: v1.WatchEventKind_WATCH_EVENT_KIND_SYNC}); err != nil {
		return err
	}
	for ev := range w.C {
		kind := v1.WatchEventKind_WATCH_EVENT_KIND_UPSERT
		if ev.Kind == offload.EventDelete {
			kind = v1.WatchEventKind_WATCH_EVENT_KIND_DELETE
		}
		if err := stream.Send(&v1.WatchFlowsResponse{Kind: kind, Status: StatusToProto(ev.Status)}); err != nil {
			return err
		}
	}
	if errors.Is(w.Err(), offload.ErrWatcherLagged) {
		fs.s.log.Warn("flow watcher fell behind and was closed", "snapshot", w.SnapshotLen())
	}
	return watchEnd(w.Err(), stream.Context().Err())
}

// watchEnd maps why a watcher's channel closed to the stream's status.
func watchEnd(werr, streamErr error) error {
	switch {
	case streamErr != nil:
		return status.FromContextError(streamErr).Err()
	case errors.Is(werr, offload.ErrWatcherLagged):
		return status.Error(codes.Aborted, "watch flows: the watcher fell behind the changes; watch again")
	case errors.Is(werr, offload.ErrClosed):
		return status.Error(codes.Unavailable, "watch flows: the engine is shutting down")
	case werr == nil:
		return status.Error(codes.Unavailable, "watch flows: the watch ended")
	case errors.Is(werr, context.Canceled), errors.Is(werr, context.DeadlineExceeded):
		return status.FromContextError(werr).Err()
	}
	return status.Errorf(codes.Internal, "watch flows: %v", werr)
}
