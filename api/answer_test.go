package api

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// randomAnswer is an answer with every kind of result: invalid, failed,
// in software with reasons, counted in both planes, with flows.
func randomAnswer(t *testing.T, r *rand.Rand, n int) *applyAnswer {
	t.Helper()
	var flows []*flow.Flow
	for _, js := range canonicalFlows {
		f, vs := FlowFromProto(wireFlow(t, js), "")
		require.Empty(t, vs)
		flows = append(flows, f)
	}
	str := func() string {
		return []string{"", "x", "pf0vf3", "a longer string with ünïcode", string(make([]byte, 200))}[r.IntN(5)]
	}
	when := func() time.Time {
		switch r.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(0, int64(r.IntN(1e9)))
		case 2:
			return time.Unix(-int64(r.IntN(1e9)), 0) // before 1970
		}
		return time.Unix(int64(r.Uint32()), int64(r.IntN(1e9)))
	}
	counters := func() nic.Counters {
		if r.IntN(3) == 0 {
			return nic.Counters{}
		}
		return nic.Counters{Packets: r.Uint64() >> r.IntN(64), Bytes: r.Uint64() >> r.IntN(64), LastUsed: when()}
	}
	a := &applyAnswer{ids: make([]string, n), results: make([]answer, n)}
	for i := range a.results {
		a.ids[i] = str()
		res := &a.results[i]
		res.outcome = v1.ApplyOutcome(r.IntN(7))
		if r.IntN(5) > 0 {
			f := flows[r.IntN(len(flows))]
			s := &offload.Status{Flow: f, State: offload.State(r.IntN(5)), Generation: r.Uint64() >> r.IntN(64),
				HW: counters(), SW: counters(), Device: str(), Updated: when()}
			for range r.IntN(3) {
				s.Reasons = append(s.Reasons, nic.Reason{Code: nic.ReasonCode(str()), Field: []string{"", "match.ct_state", "actions[0]"}[r.IntN(3)], Message: str()})
			}
			res.status, res.withFlow = s, r.IntN(3) == 0
		}
		for range r.IntN(3) {
			res.violations = append(res.violations, &v1.FieldViolation{Field: str(), Description: str()})
		}
		if r.IntN(4) == 0 {
			res.err = str()
		}
	}
	return a
}

// TestApplyAnswerMarshal: the codec writes an answer byte for byte as
// protobuf writes its v1 message.
func TestApplyAnswerMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 10, 100, 1000} {
		for range 20 {
			a := randomAnswer(t, r, n)
			want, err := proto.Marshal(a.toProto())
			require.NoError(t, err)
			got, err := a.marshal()
			require.NoError(t, err)
			gotBytes := got.Materialize()
			got.Free()
			require.Equal(t, string(want), string(gotBytes), "answer of %d results", n)
			var back v1.ApplyFlowsResponse
			require.NoError(t, proto.Unmarshal(gotBytes, &back))
			assert.Len(t, back.GetResults(), n)
		}
	}
}

func BenchmarkApplyAnswerMarshal(b *testing.B) {
	t := &testing.T{}
	f, _ := FlowFromProto(wireFlow(t, canonicalFlows["minimal"]), "")
	a := &applyAnswer{ids: make([]string, 1000), results: make([]answer, 1000)}
	st := offload.Status{Flow: f, State: offload.StateHardware, Generation: 1, Device: "cx6dx0", Updated: time.Now()}
	for i := range a.results {
		a.ids[i] = "flow-" + string(rune('a'+i%26))
		a.results[i] = answer{outcome: v1.ApplyOutcome_APPLY_OUTCOME_CREATED, status: &st}
	}
	b.Run("codec", func(b *testing.B) {
		for b.Loop() {
			bs, _ := a.marshal()
			bs.Free()
		}
	})
	b.Run("proto", func(b *testing.B) {
		for b.Loop() {
			_, _ = proto.Marshal(a.toProto())
		}
	})
}
