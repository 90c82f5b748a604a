package datapath_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestGenerate(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware,
		fl("ssh", rep0, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoTCP, DstPort: port16(22)}), drop()),
		fl("even", rep0, 0, 2, ipv4(flow.Match{IPProto: flow.ProtoTCP, SrcPort: flow.Masked16{Value: 0, Mask: 1}}), redirect(up)),
		fl("odd", rep0, 0, 3, ipv4(flow.Match{IPProto: flow.ProtoTCP}), redirect(rep1)))
	rep, err := e.dp.Generate(datapath.Traffic{Port: rep0, Spec: "tcp,sport=1000,dport=80", Flows: 10, Count: 1000,
		Rate: 10000, Clock: e.clock})
	require.NoError(t, err)
	assert.Equal(t, 1000, rep.Sent)
	assert.Equal(t, map[datapath.Verdict]int{datapath.VerdictForwarded: 1000}, rep.Verdicts)
	assert.Equal(t, map[string]int{"p0 wire": 500, vf1 + " vm": 500}, rep.Received)
	assert.Equal(t, 1000, rep.Offloaded)
	assert.Equal(t, 999*100*time.Microsecond, rep.Elapsed)
	assert.Equal(t, uint64(500), e.counters(flow.Hardware, "even").Packets)

	rep, err = e.dp.Generate(datapath.Traffic{Port: vf0, Spec: "tcp,dport=22", Count: 3})
	require.NoError(t, err)
	assert.Equal(t, map[datapath.Verdict]int{datapath.VerdictDropped: 3}, rep.Verdicts)
	assert.Empty(t, rep.Received)

	_, err = e.dp.Generate(datapath.Traffic{Port: rep0, Spec: "tcp,what"})
	assert.ErrorContains(t, err, "unknown keyword")
	_, err = e.dp.Generate(datapath.Traffic{Port: "nope", Spec: "tcp"})
	assert.Error(t, err)
}

func TestGenerateThroughPolicer(t *testing.T) {
	e := defaultEnv(t)
	pl := flow.Police{RatePackets: 1000, Burst: 10}
	e.program(flow.Hardware, fl("limit", rep0, 0, 1, flow.Match{}, flow.Action{Kind: flow.ActPolice, Police: &pl}, redirect(up)))
	rep, err := e.dp.Generate(datapath.Traffic{Port: rep0, Spec: "udp", Flows: 50, Count: 2001, Rate: 2000, Clock: e.clock})
	require.NoError(t, err)
	assert.Equal(t, time.Second, rep.Elapsed)
	fwd := rep.Verdicts[datapath.VerdictForwarded]
	assert.InDelta(t, 1010, fwd, 2, "the rate over one second plus the burst")
	assert.Equal(t, 2001-fwd, rep.Verdicts[datapath.VerdictDropped])
}

func TestGenerateVariesFlows(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Software, fl("ct", rep0, 0, 1, ipv4(flow.Match{}), ct(1, true), redirect(up)))
	_, err := e.dp.Generate(datapath.Traffic{Port: rep0, Spec: "udp", Flows: 120000})
	require.NoError(t, err)
	assert.Equal(t, 120000, e.dp.Conntrack().Len(t0), "every flow a distinct connection")
	es := e.dp.Conntrack().Entries(t0)
	assert.Equal(t, netip.MustParseAddr("10.0.0.3"), es[len(es)-1].Orig.Src, "the source address moves every 50,000 flows")
}

// newACL programs n IPv4 ACL flows on pf0vf0 in hardware (drops for
// other destinations) ending in one that forwards to the uplink.
func newACL(b testing.TB, n int) *env {
	e := newEnv(b, emulated.DefaultConfig(), datapath.Config{})
	fs := make([]*flow.Flow, 0, n)
	for i := range n - 1 {
		fs = append(fs, fl(fmt.Sprintf("acl-%d", i), rep0, 0, uint16(i+1),
			ipv4(flow.Match{IPProto: flow.ProtoTCP, IPDst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 32), DstPort: port16(80)}),
			drop()))
	}
	fs = append(fs, fl("allow", rep0, 0, uint16(n), ipv4(flow.Match{IPProto: flow.ProtoTCP}), redirect(up)))
	e.program(flow.Hardware, fs...)
	return e
}

// BenchmarkSendACL is the datapath's packet rate for simple ACL flows: a
// TCP packet that passes a chain of n hardware ACL rules and is
// forwarded. The target is 200k packets/s on one core (5 µs per packet).
func BenchmarkSendACL(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("rules-%d", n), func(b *testing.B) {
			e := newACL(b, n)
			frame := e.mustBuild(rep0, "tcp,dst=10.0.1.5,dport=80")
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				tr, err := e.dp.Send(rep0, frame)
				if err != nil || tr.Verdict != datapath.VerdictForwarded {
					b.Fatal(err, tr.Verdict)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
		})
	}
}

// BenchmarkInjectTraced is Inject with every step recorded.
func BenchmarkInjectTraced(b *testing.B) {
	e := newACL(b, 16)
	frame := e.mustBuild(rep0, "tcp,dst=10.0.1.5,dport=80")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.dp.Inject(rep0, frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
}

// BenchmarkEncap is a frame through a hardware VXLAN encap flow.
func BenchmarkEncap(b *testing.B) {
	e := newEnv(b, emulated.DefaultConfig(), datapath.Config{Neighbours: []datapath.Neighbour{{IP: remoteVTEP, MAC: remoteMAC}}})
	e.program(flow.Hardware, encapFlow("overlay", rep0, pfx("10.0.1.0/24"), flow.TunnelEncap{VNI: 100, Src: localVTEP, Dst: remoteVTEP}))
	frame := e.mustBuild(rep0, "tcp,dst=10.0.1.5,len=1000")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.dp.Send(rep0, frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
}
