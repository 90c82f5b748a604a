package api

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// requireSameBatch checks that the fast decoder, when it takes data,
// gives what proto.Unmarshal and FlowFromProto give.
func requireSameBatch(t *testing.T, data []byte) (fast *applyBatch) {
	t.Helper()
	fast, ok := decodeApplyFlows(data)
	req := new(v1.ApplyFlowsRequest)
	err := proto.Unmarshal(data, req)
	if !ok {
		return nil // the codec hands these to proto.Unmarshal
	}
	require.NoError(t, err, "the fast path took a request protobuf rejects")
	slow := batchFromProto(req)
	require.Equal(t, slow.ids, fast.ids)
	require.Equal(t, slow.atomic, fast.atomic)
	require.Equal(t, slow.includeFlows, fast.includeFlows)
	require.Len(t, fast.flows, len(slow.flows))
	for i := range slow.flows {
		require.True(t, slow.flows[i].Equal(fast.flows[i]), "flows[%d]:\n slow %+v\n fast %+v", i, slow.flows[i], fast.flows[i])
		require.Equal(t, slow.violations[i], fast.violations[i], "flows[%d] violations", i)
	}
	return fast
}

func canonicalRequest(t *testing.T) *v1.ApplyFlowsRequest {
	req := &v1.ApplyFlowsRequest{Atomic: true, IncludeFlows: true}
	for _, name := range slices.Sorted(maps.Keys(canonicalFlows)) {
		req.Flows = append(req.Flows, wireFlow(t, canonicalFlows[name]))
	}
	return req
}

func TestDecodeApplyFlowsCanonical(t *testing.T) {
	data, err := proto.Marshal(canonicalRequest(t))
	require.NoError(t, err)
	fast := requireSameBatch(t, data)
	require.NotNil(t, fast, "the fast path must take canonical flows")
	// Rewrites, police and NAT are left to protobuf; everything else is not.
	assert.Equal(t, 4, fast.slow, "flows decoded by proto.Unmarshal")
	assert.True(t, fast.atomic)
	assert.True(t, fast.includeFlows)
}

func TestDecodeApplyFlowsSlowCases(t *testing.T) {
	flowBytes := func(js string) []byte {
		b, err := proto.Marshal(wireFlow(t, js))
		require.NoError(t, err)
		return b
	}
	minimal := flowBytes(canonicalFlows["minimal"])
	req := func(flows ...[]byte) []byte {
		var b []byte
		for _, f := range flows {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendBytes(b, f)
		}
		return b
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(append([]byte{}, minimal...), 99, protowire.VarintType), 7)
	twoMatches := append(append([]byte{}, flowBytes(`{"id":"m","port":"p","priority":1,"match":{"eth_type":"ipv4"},"actions":[{"drop":{}}]}`)...),
		flowBytes(`{"match":{"ip_proto":"tcp"}}`)...)
	badUTF8 := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff")
	tests := []struct {
		name      string
		data      []byte
		fast      bool
		slowFlows int
	}{
		{"empty request", nil, true, 0},
		{"unknown flow field", req(minimal, unknown), true, 1},
		{"match given twice is merged", req(twoMatches), true, 1},
		{"invalid UTF-8 id", req(badUTF8), false, 0},
		{"unknown top-level field", protowire.AppendVarint(protowire.AppendTag(req(minimal), 9, protowire.VarintType), 1), false, 0},
		{"truncated", req(minimal)[:5], false, 0},
		{"atomic and include_flows", protowire.AppendVarint(protowire.AppendTag(protowire.AppendVarint(protowire.AppendTag(req(minimal), 2, protowire.VarintType), 2), 3, protowire.VarintType), 1), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast := requireSameBatch(t, tt.data)
			require.Equal(t, tt.fast, fast != nil, "fast path taken")
			if fast != nil {
				assert.Equal(t, tt.slowFlows, fast.slow)
			}
		})
	}
}

// randomMessage fills m with random values: plausible and implausible
// strings and numbers, repeated fields and oneofs, recursively.
func randomMessage(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.IntN(3) != 0 {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && m.WhichOneof(od) != nil {
			continue
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for range r.IntN(4) {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					randomMessage(r, e.Message(), depth+1)
					l.Append(e)
				}
			}
			continue
		}
		if fd.Kind() == protoreflect.MessageKind {
			if depth < 4 {
				randomMessage(r, m.Mutable(fd).Message(), depth+1)
			}
			continue
		}
		m.Set(fd, randomValue(r, fd))
	}
}

var randomStrings = []string{"", "ipv4", "ipv6", "tcp", "udp", "icmp", "arp", "0x8100", "802.1ad", "pf0vf0", "p0", "vxlan0",
	"10.0.0.1", "10.0.0.0/8", "10.0.0.0/33", "2001:db8::1", "2001:db8::/64", "fe80::1%eth0", "192.0.2.1",
	"02:00:00:00:00:01", "ff:ff:ff:00:00:00", "00:00:00:00:00:00", "+trk+est", "-trk", "+est", "bogus", "a b"}

var randomNumbers = []uint64{0, 1, 2, 7, 8, 255, 256, 4095, 4096, 4789, 65535, 65536, 1 << 31, 1<<32 - 1, 1 << 40}

func randomValue(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	n := randomNumbers[r.IntN(len(randomNumbers))]
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(randomStrings[r.IntN(len(randomStrings))])
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(r.IntN(6)))
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(n)
	}
	panic(fmt.Sprintf("randomValue: kind %v of %s", fd.Kind(), fd.FullName()))
}

func TestDecodeApplyFlowsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fastFlows := 0
	for round := range 300 {
		req := &v1.ApplyFlowsRequest{}
		randomMessage(r, req.ProtoReflect(), 0)
		for range r.IntN(8) {
			f := &v1.Flow{}
			randomMessage(r, f.ProtoReflect(), 1)
			req.Flows = append(req.Flows, f)
		}
		data, err := proto.Marshal(req)
		require.NoError(t, err)
		fast := requireSameBatch(t, data)
		require.NotNil(t, fast, "round %d: a well-formed request must take the fast path", round)
		fastFlows += len(fast.flows) - fast.slow
		// Damaged bytes: whatever the fast path takes must agree.
		for range 4 {
			bad := append([]byte{}, data...)
			if len(bad) > 0 {
				bad[r.IntN(len(bad))] ^= byte(1 << r.IntN(8))
				requireSameBatch(t, bad)
				requireSameBatch(t, bad[:r.IntN(len(bad))])
			}
		}
	}
	assert.Greater(t, fastFlows, 200, "flows the fast path decoded itself")
}

func FuzzDecodeApplyFlows(f *testing.F) {
	data, err := proto.Marshal(&v1.ApplyFlowsRequest{Flows: []*v1.Flow{{Id: "a", Port: "p", Priority: 1,
		Match:   &v1.Match{EthType: "ipv4", Ipv4Dst: "10.0.0.1", IpProto: "tcp", DstPort: proto.Uint32(80)},
		Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}}})
	require.NoError(f, err)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) { requireSameBatch(t, data) })
}

// TestApplyFlowsCodecAgrees sends the same requests to a server with the
// API's codec and to one with plain protobuf: the answers must be equal.
func TestApplyFlowsCodecAgrees(t *testing.T) {
	plain := newHarness(t)
	fast := newHarnessWith(t, ServerOptions())
	canonical := canonicalRequest(t)
	lean := proto.Clone(canonical).(*v1.ApplyFlowsRequest)
	lean.Atomic, lean.IncludeFlows = false, false
	bad := &v1.ApplyFlowsRequest{Flows: []*v1.Flow{
		wireFlow(t, `{"id":"x","port":"p","priority":1,"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.0/33"},"actions":[{"drop":{}}]}`),
		wireFlow(t, `{"id":"x","port":"p","priority":70000,"actions":[{}]}`),
		wireFlow(t, canonicalFlows["minimal"]),
	}}
	badAtomic := proto.Clone(bad).(*v1.ApplyFlowsRequest)
	badAtomic.Atomic = true
	for name, req := range map[string]*v1.ApplyFlowsRequest{
		"canonical, atomic, with flows": canonical, "canonical again": lean,
		"invalid and duplicate": bad, "invalid atomic": badAtomic, "empty": {},
	} {
		t.Run(name, func(t *testing.T) {
			want, werr := plain.flows.ApplyFlows(ctx(t), req)
			got, gerr := fast.flows.ApplyFlows(ctx(t), req)
			assert.Empty(t, cmpDiff(want, got))
			ws, gs := status.Convert(werr), status.Convert(gerr)
			assert.Equal(t, ws.Code(), gs.Code())
			assert.Equal(t, ws.Message(), gs.Message())
			require.Len(t, gs.Details(), len(ws.Details()))
			for i := range ws.Details() {
				assert.Empty(t, cmpDiff(ws.Proto().GetDetails()[i], gs.Proto().GetDetails()[i]), "detail %d", i)
			}
			if name == "invalid and duplicate" {
				require.NoError(t, gerr)
				var fields []string
				for _, v := range got.GetResults()[1].GetViolations() {
					fields = append(fields, v.GetField())
				}
				assert.Contains(t, fields, "flows[1].id", "duplicate ids are reported with the path")
			}
		})
	}
}

// TestApplyFlowsInterceptorSeesRequest: with an interceptor installed, the
// handler decodes the protobuf request so that the interceptor sees it.
func TestApplyFlowsInterceptorSeesRequest(t *testing.T) {
	var seen *v1.ApplyFlowsRequest
	intercept := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r, ok := req.(*v1.ApplyFlowsRequest); ok {
			seen = r
		}
		return h(ctx, req)
	})
	h := newHarnessWith(t, append(ServerOptions(), intercept))
	req := canonicalRequest(t)
	req.Atomic = false
	resp, err := h.flows.ApplyFlows(ctx(t), req)
	require.NoError(t, err)
	require.Len(t, resp.GetResults(), len(req.GetFlows()))
	require.NotNil(t, seen, "the interceptor saw the request")
	assert.Empty(t, cmpDiff(req, seen))
}

// TestApplyFlowsBatchInterceptor: on a server built WithBatchInterceptors
// an interceptor sees the fast path's batch (IDs, ports) and the client
// gets the same answer as without interceptors.
func TestApplyFlowsBatchInterceptor(t *testing.T) {
	var seen any
	intercept := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		seen = req
		return h(ctx, req)
	})
	req := canonicalRequest(t)
	req.Atomic = false
	plain := newHarnessWith(t, ServerOptions())
	want, err := plain.flows.ApplyFlows(ctx(t), req)
	require.NoError(t, err)

	h := newHarnessFull(t, append(ServerOptions(), intercept), []Option{WithBatchInterceptors()})
	got, err := h.flows.ApplyFlows(ctx(t), req)
	require.NoError(t, err)
	b, ok := seen.(*ApplyFlowsBatch)
	require.True(t, ok, "the interceptor saw a %T", seen)
	var ids, ports []string
	for _, f := range req.GetFlows() {
		ids, ports = append(ids, f.GetId()), append(ports, f.GetPort())
	}
	assert.Equal(t, ids, b.FlowIDs())
	assert.Equal(t, ports, b.FlowPorts())
	assert.False(t, b.Atomic())
	require.Len(t, got.GetResults(), len(want.GetResults()))
	for i := range want.GetResults() {
		assert.Equal(t, want.GetResults()[i].GetOutcome(), got.GetResults()[i].GetOutcome(), "flows[%d]", i)
		assert.Equal(t, want.GetResults()[i].GetId(), got.GetResults()[i].GetId(), "flows[%d]", i)
	}

	// Without the server's codec the interceptor gets the protobuf request.
	h = newHarnessFull(t, []grpc.ServerOption{intercept}, []Option{WithBatchInterceptors()})
	_, err = h.flows.ApplyFlows(ctx(t), req)
	require.NoError(t, err)
	assert.IsType(t, &v1.ApplyFlowsRequest{}, seen)
}

// TestDecodeApplyFlowsOwnsItsStrings: the fast path reads some strings in
// place; nothing it returns may point into the request buffer, which the
// codec hands back to its pool.
func TestDecodeApplyFlowsOwnsItsStrings(t *testing.T) {
	req := canonicalRequest(t)
	for _, js := range []string{
		`{"id":"bad-ip","port":"pf0vf0","priority":1,"match":{"eth_type":"ipv4","ipv4_dst":"10.0.0.0/x","ipv4_src":"2001:db8::1"},"actions":[{"drop":{}}]}`,
		`{"id":"bad-names","port":"pf0vf0","priority":1,"match":{"eth_type":"ipv44","ip_proto":"tcpp","ct_state":"+trk+foo","eth_src":"02:zz"},"actions":[{"drop":{}}]}`,
		`{"id":"bad-tunnel","port":"vxlan0","priority":1,"match":{"tunnel":{"src":"fe80::1%eth0","dst":"nope"}},"actions":[{"tunnel_decap":{}},{"redirect":{"port":"pf0vf1"}}]}`,
		`{"id":"bad-encap","port":"pf0vf1","priority":1,"actions":[{"tunnel_encap":{"vni":1,"src":"192.0.2.1","dst":"192.0.2.x"}},{"vlan_push":{"id":1,"proto":"802.1zz"}},{"redirect":{"port":"vxlan0"}}]}`,
	} {
		req.Flows = append(req.Flows, wireFlow(t, js))
	}
	req.Flows = append(req.Flows, benchRequest(20).GetFlows()...)
	data, err := proto.Marshal(req)
	require.NoError(t, err)
	want, ok := decodeApplyFlows(append([]byte{}, data...))
	require.True(t, ok)
	got, ok := decodeApplyFlows(data)
	require.True(t, ok)
	for i := range data {
		data[i] = 'X'
	}
	require.Equal(t, want.ids, got.ids)
	for i := range want.flows {
		require.True(t, want.flows[i].Equal(got.flows[i]), "flows[%d] changed with the buffer", i)
		require.Equal(t, want.violations[i], got.violations[i], "flows[%d] violations changed with the buffer", i)
	}
	var bad int
	for _, vs := range got.violations {
		bad += len(vs)
	}
	assert.Greater(t, bad, 8, "the invalid flows were reported")
}
