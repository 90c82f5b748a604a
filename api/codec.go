package api

import (
	"context"
	"slices"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ServerOptions are the gRPC server options the API wants: a codec that
// decodes ApplyFlows requests straight into domain flows (protobuf for
// everything else). A server without them works the same, only slower.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(codec{proto: encoding.GetCodecV2("proto")})}
}

// codec is protobuf with a fast path for ApplyFlows requests and answers.
type codec struct{ proto encoding.CodecV2 }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if a, ok := v.(*applyAnswer); ok {
		return a.marshal()
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*applyFlowsRequest)
	if !ok {
		err := c.proto.Unmarshal(data, v)
		if m, ok := v.(proto.Message); ok && err != nil && ours(m) {
			// gRPC would answer INTERNAL; guardDecoding answers
			// INVALID_ARGUMENT from the mark.
			markMalformed(m, err)
			return nil
		}
		return err
	}
	r.ours = true
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if b, ok := decodeApplyFlows(buf.ReadOnlyData()); ok {
		b.size = len(buf.ReadOnlyData())
		r.batch = b
		return nil
	}
	if err := proto.Unmarshal(buf.ReadOnlyData(), r.ApplyFlowsRequest); err != nil {
		r.err = err
	}
	return nil
}

func (codec) Name() string { return "proto" }

// applyFlowsRequest is what the ApplyFlows handler decodes into: the
// converted batch with the server's codec, the protobuf message with any
// other.
type applyFlowsRequest struct {
	*v1.ApplyFlowsRequest
	batch *applyBatch
	ours  bool  // decoded by codec, which can also write an *applyAnswer
	err   error // why the request could not be decoded
}

func (r *applyFlowsRequest) decodeError() error { return r.err }

func (r *applyFlowsRequest) toBatch() *applyBatch {
	if r.batch != nil {
		return r.batch
	}
	return batchFromProto(r.ApplyFlowsRequest)
}

// flowServiceDesc is FlowService with ApplyFlows served by
// applyFlowsHandler.
func flowServiceDesc() *grpc.ServiceDesc {
	desc := v1.FlowService_ServiceDesc
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "ApplyFlows" {
			desc.Methods[i].Handler = applyFlowsHandler
		}
	}
	return &desc
}

// applyFlowsHandler decodes and answers with the fast path unless an
// interceptor is installed: interceptors see the protobuf request and
// response as usual. (A stats handler's InPayload still carries the
// wrapper, whose protobuf message is empty when the fast path decoded the
// request, and its OutPayload an *applyAnswer, which is no protobuf
// message.)
func applyFlowsHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	fs := srv.(*flowService)
	if interceptor != nil && fs.s.batchInterceptors {
		return applyFlowsBatchIntercepted(fs, ctx, dec, interceptor)
	}
	if interceptor != nil {
		in := new(v1.ApplyFlowsRequest)
		if err := dec(in); err != nil {
			return nil, err
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: v1.FlowService_ApplyFlows_FullMethodName}
		return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
			return fs.ApplyFlows(ctx, req.(*v1.ApplyFlowsRequest))
		})
	}
	in := &applyFlowsRequest{ApplyFlowsRequest: new(v1.ApplyFlowsRequest)}
	if err := dec(in); err != nil {
		return nil, err
	}
	a, err := fs.applyFlows(ctx, in.toBatch())
	switch {
	case err != nil:
		return nil, err
	case !in.ours:
		return a.toProto(), nil
	}
	return a, nil
}

// ApplyFlowsBatch is what interceptors see of an ApplyFlows request that
// the server's codec decoded, on a Server built WithBatchInterceptors: the
// flows' IDs and ingress ports, without a protobuf message to build. The
// response they see is then opaque (the codec writes it); interceptors
// must pass the request on unchanged.
type ApplyFlowsBatch struct{ b *applyBatch }

// FlowIDs are the flows' IDs in request order.
func (r *ApplyFlowsBatch) FlowIDs() []string { return r.b.ids }

// FlowPorts are the flows' ingress ports in request order ("" for a flow
// that could not be read).
func (r *ApplyFlowsBatch) FlowPorts() []string {
	out := make([]string, len(r.b.flows))
	for i, f := range r.b.flows {
		if f != nil {
			out[i] = f.Port
		}
	}
	return out
}

// Atomic reports whether the batch is all-or-nothing.
func (r *ApplyFlowsBatch) Atomic() bool { return r.b.atomic }

// applyFlowsBatchIntercepted keeps the codec's fast path under
// interceptors that understand *ApplyFlowsBatch. A request the codec left
// to protobuf reaches them as *v1.ApplyFlowsRequest, as usual.
func applyFlowsBatchIntercepted(fs *flowService, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := &applyFlowsRequest{ApplyFlowsRequest: new(v1.ApplyFlowsRequest)}
	if err := dec(in); err != nil {
		return nil, err
	}
	var req any = in.ApplyFlowsRequest
	if in.batch != nil {
		req = &ApplyFlowsBatch{b: in.batch}
	}
	info := &grpc.UnaryServerInfo{Server: fs, FullMethod: v1.FlowService_ApplyFlows_FullMethodName}
	return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		var b *applyBatch
		switch r := req.(type) {
		case *ApplyFlowsBatch:
			b = r.b
		case *v1.ApplyFlowsRequest:
			b = batchFromProto(r)
		default:
			return nil, status.Errorf(codes.Internal, "apply flows: an interceptor passed on a %T", req)
		}
		a, err := fs.applyFlows(ctx, b)
		switch {
		case err != nil:
			return nil, err
		case !in.ours:
			return a.toProto(), nil
		}
		return a, nil
	})
}
