package api

import (
	"context"
	"fmt"
	"testing"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// benchRequest is a batch of n flows shaped like make bench's: ACLs and
// VXLAN encaps, alternating.
func benchRequest(n int) *v1.ApplyFlowsRequest {
	req := &v1.ApplyFlowsRequest{}
	for i := range n {
		port := fmt.Sprintf("pf0vf%d", i%8)
		dst := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		if i%2 == 0 {
			req.Flows = append(req.Flows, &v1.Flow{Id: fmt.Sprintf("acl-%07d", i), Port: port, Priority: uint32(i%4000 + 1),
				Match:   &v1.Match{EthType: "ipv4", Ipv4Dst: dst, IpProto: "tcp", DstPort: proto.Uint32(uint32(i%50000 + 1))},
				Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
			continue
		}
		req.Flows = append(req.Flows, &v1.Flow{Id: fmt.Sprintf("encap-%07d", i), Port: port, Priority: uint32(i%4000 + 1),
			Match: &v1.Match{EthType: "ipv4", Ipv4Dst: dst},
			Actions: []*v1.Action{
				{Action: &v1.Action_TunnelEncap{TunnelEncap: &v1.TunnelEncap{Vni: uint32(i%4096 + 1), Src: "192.0.2.1", Dst: "198.51.100.10"}}},
				{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: "vxlan0"}}}}})
	}
	return req
}

// BenchmarkDecodeApplyFlows compares the wire fast path with
// proto.Unmarshal and conversion, per batch of 1,000 flows.
func BenchmarkDecodeApplyFlows(b *testing.B) {
	data, err := proto.Marshal(benchRequest(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeApplyFlows(data); !ok {
				b.Fatal("slow path")
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := new(v1.ApplyFlowsRequest)
			if err := proto.Unmarshal(data, req); err != nil {
				b.Fatal(err)
			}
			batchFromProto(req)
		}
	})
}

// BenchmarkApplyFlowsIntercepted is one 1,000-flow ApplyFlows over gRPC
// (bufconn, the fake engine) with no interceptor, with one that gets the
// protobuf request (the fast path lost), and with one that gets the batch
// (WithBatchInterceptors, as the daemon's authz interceptors do).
func BenchmarkApplyFlowsIntercepted(b *testing.B) {
	req := benchRequest(1000)
	pass := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	})
	for _, tc := range []struct {
		name  string
		gopts []grpc.ServerOption
		sopts []Option
	}{
		{"none", ServerOptions(), nil},
		{"proto", append(ServerOptions(), pass), nil},
		{"batch", append(ServerOptions(), pass), []Option{WithBatchInterceptors()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarnessFull(b, tc.gopts, tc.sopts)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.flows.ApplyFlows(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
