package datapath_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestTCOrderAndPlanes(t *testing.T) {
	tcp80 := ipv4(flow.Match{IPProto: flow.ProtoTCP, DstPort: port16(80)})
	tests := []struct {
		name    string
		hw, sw  []*flow.Flow
		spec    string
		matched []string
		verdict datapath.Verdict
		outPort string
	}{
		{
			name: "priority order, first match wins",
			hw: []*flow.Flow{
				fl("b", rep0, 0, 20, tcp80, redirect(up)),
				fl("a", rep0, 0, 10, ipv4(flow.Match{}), redirect(rep1)),
			},
			spec: "tcp", matched: []string{"hardware:a"}, verdict: datapath.VerdictForwarded, outPort: vf1,
		},
		{
			name: "equal priorities: by flow ID",
			hw: []*flow.Flow{
				fl("z", rep0, 0, 10, tcp80, redirect(up)),
				fl("m", rep0, 0, 10, tcp80, redirect(rep1)),
			},
			spec: "tcp", matched: []string{"hardware:m"}, verdict: datapath.VerdictForwarded, outPort: vf1,
		},
		{
			name: "goto chain",
			hw: []*flow.Flow{
				fl("to1", rep0, 0, 10, flow.Match{}, gotoC(1)),
				fl("in1", rep0, 1, 10, tcp80, drop()),
			},
			spec: "tcp", matched: []string{"hardware:to1", "hardware:in1"}, verdict: datapath.VerdictDropped,
		},
		{
			name: "hardware miss continues in software at chain 0",
			hw:   []*flow.Flow{fl("udp", rep0, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoUDP}), drop())},
			sw:   []*flow.Flow{fl("sw", rep0, 0, 50, tcp80, redirect(up))},
			spec: "tcp", matched: []string{"software:sw"}, verdict: datapath.VerdictForwarded, outPort: up,
		},
		{
			name: "hardware wins over a software rule of lower priority number",
			hw:   []*flow.Flow{fl("hw", rep0, 0, 50, tcp80, redirect(up))},
			sw:   []*flow.Flow{fl("sw", rep0, 0, 1, tcp80, drop())},
			spec: "tcp", matched: []string{"hardware:hw"}, verdict: datapath.VerdictForwarded, outPort: up,
		},
		{
			name: "goto a chain without hardware rules continues in software there",
			hw:   []*flow.Flow{fl("to2", rep0, 0, 10, flow.Match{}, gotoC(2))},
			sw: []*flow.Flow{
				fl("sw0", rep0, 0, 1, flow.Match{}, drop()),
				fl("sw2", rep0, 2, 10, tcp80, redirect(rep1)),
			},
			spec: "tcp", matched: []string{"hardware:to2", "software:sw2"}, verdict: datapath.VerdictForwarded, outPort: vf1,
		},
		{
			name: "hardware miss in a later chain continues in software at that chain",
			hw: []*flow.Flow{
				fl("to3", rep0, 0, 10, flow.Match{}, gotoC(3)),
				fl("udp3", rep0, 3, 10, ipv4(flow.Match{IPProto: flow.ProtoUDP}), drop()),
			},
			sw:   []*flow.Flow{fl("sw3", rep0, 3, 10, tcp80, redirect(up))},
			spec: "tcp", matched: []string{"hardware:to3", "software:sw3"}, verdict: datapath.VerdictForwarded, outPort: up,
		},
		{
			name: "miss everywhere is an upcall",
			hw:   []*flow.Flow{fl("udp", rep0, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoUDP}), drop())},
			spec: "tcp", verdict: datapath.VerdictUpcall, outPort: rep0,
		},
		{
			name: "goto an empty chain is an upcall",
			sw:   []*flow.Flow{fl("to9", rep0, 0, 1, flow.Match{}, gotoC(9))},
			spec: "tcp", matched: []string{"software:to9"}, verdict: datapath.VerdictUpcall, outPort: rep0,
		},
		{
			name: "accept delivers to the port's host stack",
			hw:   []*flow.Flow{fl("acc", rep0, 0, 1, flow.Match{}, accept())},
			spec: "tcp", matched: []string{"hardware:acc"}, verdict: datapath.VerdictDelivered, outPort: rep0,
		},
		{
			name: "an action list without a verdict passes the packet up",
			hw:   []*flow.Flow{fl("pop", rep0, 0, 1, flow.Match{}, flow.Action{Kind: flow.ActVLANPop})},
			spec: "tcp", matched: []string{"hardware:pop"}, verdict: datapath.VerdictDelivered, outPort: rep0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := defaultEnv(t)
			e.program(flow.Hardware, tc.hw...)
			e.program(flow.Software, tc.sw...)
			tr := e.inject(rep0, tc.spec)
			assert.Equal(t, tc.matched, matchedIDs(tr), tr.String())
			assert.Equal(t, tc.verdict, tr.Verdict, tr.String())
			if tc.outPort != "" {
				require.NotEmpty(t, tr.Outputs)
				assert.Equal(t, tc.outPort, tr.Outputs[len(tr.Outputs)-1].Port)
			}
			for _, f := range tc.hw {
				if contains(tc.matched, "hardware:"+f.ID) {
					c := e.counters(flow.Hardware, f.ID)
					assert.Equal(t, uint64(1), c.Packets, f.ID)
					assert.Equal(t, uint64(len(tr.Input)-14), c.Bytes, "hardware bytes leave out the L2 header")
				}
			}
			for _, f := range tc.sw {
				if contains(tc.matched, "software:"+f.ID) {
					c := e.counters(flow.Software, f.ID)
					assert.Equal(t, uint64(1), c.Packets, f.ID)
					assert.Equal(t, uint64(len(tr.Input)), c.Bytes)
					assert.Equal(t, t0, c.LastUsed)
				}
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestWiring(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware,
		// From VM 0: to VM 1 by redirect to its representor.
		fl("0to1", rep0, 0, 1, flow.Match{EthDst: flow.MaskedMAC{Addr: vf1MAC, Mask: full}}, redirect(rep1)),
		// From VM 0 otherwise: out of the uplink.
		fl("0out", rep0, 0, 2, flow.Match{}, redirect(up)),
		// From the wire: to VM 0.
		fl("in0", up, 0, 1, flow.Match{}, redirect(rep0)),
		// From VM 1: back in at p0's ingress.
		fl("1loop", rep1, 0, 1, flow.Match{}, flow.Action{Kind: flow.ActRedirect, Port: up, Ingress: true}),
	)
	// A VF that sends arrives at its representor.
	tr := e.inject(vf0, "udp,eth_dst=02:42:0f:01:00:01")
	require.Len(t, tr.Outputs, 1)
	assert.Equal(t, datapath.Output{Port: vf1, Kind: datapath.OutputVM, Plane: flow.Hardware, Frame: tr.Input}, tr.Outputs[0])
	assert.Equal(t, datapath.VerdictForwarded, tr.Verdict)
	assert.False(t, tr.SoftwarePath)

	tr = e.inject(rep0, "udp")
	assert.Equal(t, datapath.OutputWire, tr.Outputs[0].Kind)
	assert.Equal(t, up, tr.Outputs[0].Port)

	tr = e.inject(up, "udp")
	assert.Equal(t, vf0, tr.Outputs[0].Port)

	// VM 1 -> p0 ingress -> VM 0.
	tr = e.inject(vf1, "udp")
	require.Len(t, tr.Outputs, 1)
	assert.Equal(t, vf0, tr.Outputs[0].Port)
	assert.Equal(t, []string{"hardware:1loop", "hardware:in0"}, matchedIDs(tr))

	st := e.dp.Stats()
	assert.Equal(t, uint64(2), st[rep0].RxPackets, "sent by VM 0, injected on pf0vf0")
	assert.Equal(t, uint64(1), st[rep1].TxPackets, "to VM 1")
	assert.Equal(t, uint64(2), st[up].RxPackets)
	assert.Equal(t, uint64(1), st[up].TxPackets)
	assert.Equal(t, uint64(2), st[rep0].TxPackets)

	// A redirect loop is cut.
	e2 := defaultEnv(t)
	e2.program(flow.Software, fl("loop", rep1, 0, 1, flow.Match{}, flow.Action{Kind: flow.ActRedirect, Port: rep1, Ingress: true}))
	tr = e2.inject(rep1, "udp")
	assert.Equal(t, datapath.VerdictDropped, tr.Verdict)
	assert.Contains(t, tr.Reason, "loop")
}

func TestMirror(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware, fl("tap", rep0, 0, 1, flow.Match{}, mirror(rep1), redirect(up)))
	tr := e.inject(rep0, "tcp")
	require.Len(t, tr.Outputs, 2)
	assert.Equal(t, vf1, tr.Outputs[0].Port)
	assert.True(t, tr.Outputs[0].Mirror)
	assert.Equal(t, up, tr.Outputs[1].Port)
	assert.False(t, tr.Outputs[1].Mirror)
	assert.Equal(t, datapath.VerdictForwarded, tr.Verdict)

	// A mirror copy's drop does not decide the packet's verdict.
	e.program(flow.Hardware, fl("drop1", rep1, 0, 1, flow.Match{}, drop()))
	e.program(flow.Hardware, fl("x", up, 0, 1, flow.Match{}, flow.Action{Kind: flow.ActMirror, Port: rep1, Ingress: true}, accept()))
	tr = e.inject(up, "tcp")
	assert.Equal(t, datapath.VerdictDelivered, tr.Verdict, tr.String())
	assert.Equal(t, []string{"hardware:x", "hardware:drop1"}, matchedIDs(tr))
	assert.Equal(t, uint64(1), e.dp.Stats()[rep1].Drops)
}

func TestVLAN(t *testing.T) {
	e := defaultEnv(t)
	push := flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 100, Prio: 5}}
	e.program(flow.Hardware,
		fl("push", rep0, 0, 1, flow.Match{}, push, redirect(up)),
		fl("v100", up, 0, 1, ipv4(flow.Match{VLANID: flow.Some[uint16](100)}), flow.Action{Kind: flow.ActVLANPop}, redirect(rep1)),
		fl("qinq", up, 0, 2, ipv4(flow.Match{VLANID: flow.Some[uint16](10), CVLANID: flow.Some[uint16](20)}), redirect(rep0)),
		fl("untagged-ip", up, 0, 3, ipv4(flow.Match{}), drop()),
	)
	tr := e.inject(rep0, "udp")
	out := tr.Outputs[0].Frame
	p := decode(t, out)
	dot, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	require.True(t, ok)
	assert.Equal(t, uint16(100), dot.VLANIdentifier)
	assert.Equal(t, uint8(5), dot.Priority)
	assert.Contains(t, datapath.Describe(out), "vlan 100 prio 5")
	assert.Len(t, out, len(tr.Input)+4)

	// The tagged frame comes back: matched by VLAN, popped, to VM 1.
	tr = e.injectFrame(up, out)
	assert.Equal(t, []string{"hardware:v100"}, matchedIDs(tr))
	assert.Equal(t, tr.Outputs[0].Frame, e.mustBuild(rep0, "udp"))

	tr = e.inject(up, "udp,vlan=10,cvlan=20")
	assert.Equal(t, []string{"hardware:qinq"}, matchedIDs(tr))
	// A plain 802.1Q tag 10 does not match the QinQ rule, and not the untagged IP rule either.
	tr = e.inject(up, "udp,vlan=10")
	assert.Equal(t, datapath.VerdictUpcall, tr.Verdict, tr.String())
	tr = e.inject(up, "udp")
	assert.Equal(t, []string{"hardware:untagged-ip"}, matchedIDs(tr))
}

func (e *env) mustBuild(port, spec string) []byte {
	e.t.Helper()
	b, err := e.dp.BuildSpec(port, spec)
	require.NoError(e.t, err)
	return b
}

func TestTraceString(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware,
		fl("ssh", rep0, 0, 5, ipv4(flow.Match{IPProto: flow.ProtoTCP, DstPort: port16(22)}), drop()),
		fl("fwd", rep0, 0, 10, ipv4(flow.Match{}), rewrite(flow.Rewrite{Field: flow.RewriteTTLDec}), redirect(up)),
	)
	tr := e.inject(rep0, "tcp,src=10.0.0.10,dst=10.0.1.5,sport=1234,dport=80")
	s := tr.String()
	for _, want := range []string{
		"Packet on pf0vf0: 02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.10 > 10.0.1.5 ttl 64, tcp 1234 > 80 [S]",
		"pf0vf0 ingress",
		"hardware pf0vf0 chain 0",
		"prio 5 ssh: no match",
		"prio 10 fwd: match",
		"rewrite ttl_dec: ttl 64 -> 63",
		"redirect egress p0",
		"p0 wire (hardware)",
		"Verdict: forwarded in hardware (fully offloaded)",
	} {
		assert.Contains(t, s, want)
	}
	assert.True(t, strings.Index(s, "ssh") < strings.Index(s, "fwd"))
}

func TestInjectErrors(t *testing.T) {
	e := defaultEnv(t)
	_, err := e.dp.Inject("nope", make([]byte, 60))
	assert.ErrorContains(t, err, "not found")
	_, err = e.dp.Inject(rep0, make([]byte, 10))
	assert.ErrorContains(t, err, "shorter than an Ethernet header")
	_, err = e.dp.InjectSpec(vx, "udp")
	assert.ErrorContains(t, err, "not a VXLAN frame")
	_, err = e.dp.InjectSpec(rep0, "tcp,bogus=1")
	assert.ErrorContains(t, err, "unknown key")
}

// Packets, reprogramming, stats and conntrack export at once: the
// datapath, the device and the table must not race (run with -race).
func TestConcurrentUse(t *testing.T) {
	e := defaultEnv(t)
	webFirewall(e, true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				spec := fmt.Sprintf("tcp,src=192.0.2.%d,dst=10.0.0.14,sport=%d,dport=80,flags=S", g+1, 1000+i)
				if _, err := e.dp.InjectSpec(up, spec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			f := fl(fmt.Sprintf("x%d", i), rep0, 0, 1, flow.Match{}, drop())
			for _, err := range e.dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: f}}) {
				if err != nil {
					t.Error(err)
				}
			}
			_ = e.dp.Stats()
			_ = e.dp.Conntrack().Entries(e.clock.Now())
			e.clock.Advance(time.Millisecond)
		}
	}()
	wg.Wait()
	assert.Equal(t, 800, e.dp.Conntrack().Len(e.clock.Now()))
	assert.Equal(t, uint64(800), e.dp.Stats()[up].RxPackets)
}

// TestGotoLoopIsCut programs a loop 7 → 8 → 7 straight into the device
// tables, around validation: the packet is dropped after the kernel's
// 16 gotos instead of spinning.
func TestGotoLoopIsCut(t *testing.T) {
	for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
		t.Run(plane.String(), func(t *testing.T) {
			e := defaultEnv(t)
			e.program(plane,
				fl("enter", rep0, 0, 1, flow.Match{}, gotoC(7)),
				fl("seven", rep0, 7, 1, flow.Match{}, gotoC(8)),
				fl("eight", rep0, 8, 1, flow.Match{}, gotoC(7)))
			tr := e.inject(rep0, "udp")
			assert.Equal(t, datapath.VerdictDropped, tr.Verdict)
			assert.Equal(t, "more than 16 gotos: a loop (last to pf0vf0 chain 7)", tr.Reason)
			assert.Empty(t, tr.Outputs)
		})
	}
	// Sixteen gotos are fine, the seventeenth is not.
	for _, n := range []uint32{16, 17} {
		e := defaultEnv(t)
		for c := range n {
			e.program(flow.Software, fl(fmt.Sprint("c", c), rep0, c, 1, flow.Match{}, gotoC(c+1)))
		}
		e.program(flow.Software, fl("last", rep0, n, 1, flow.Match{}, redirect(rep1)))
		tr := e.inject(rep0, "udp")
		if n == 16 {
			assert.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.Reason)
		} else {
			assert.Equal(t, datapath.VerdictDropped, tr.Verdict)
			assert.Contains(t, tr.Reason, "more than 16 gotos")
		}
	}
	// The limit is configurable.
	e := newEnv(t, emulated.DefaultConfig(), datapath.Config{MaxGotos: 1})
	e.program(flow.Software, fl("a", rep0, 0, 1, flow.Match{}, gotoC(1)), fl("b", rep0, 1, 1, flow.Match{}, gotoC(2)),
		fl("c", rep0, 2, 1, flow.Match{}, drop()))
	assert.Equal(t, "more than 1 gotos: a loop (last to pf0vf0 chain 2)", e.inject(rep0, "udp").Reason)
}
