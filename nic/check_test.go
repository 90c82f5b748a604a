package nic_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// TestCheckOrder pins the order of Check's reasons: keys, actions, chain,
// priority, goto targets, ports, then rules in order; and that every check
// runs even when an earlier one failed.
func TestCheckOrder(t *testing.T) {
	var calls []string
	rule := func(name string, code nic.ReasonCode) nic.Rule {
		return nic.Rule{Name: name, Check: func(f *flow.Flow, ports nic.PortKinds) []nic.Reason {
			calls = append(calls, name)
			return []nic.Reason{{Code: code, Field: name, Message: name}}
		}}
	}
	p := &nic.Profile{
		Name: "order", Driver: "test", Model: "T1",
		MatchKeys:   flow.Keys(flow.KeyEthType, flow.KeyIPProto),
		Actions:     flow.Actions(flow.ActDrop, flow.ActRedirect, flow.ActGoto),
		MaxChain:    2,
		MaxPriority: 10,
		Rules:       []nic.Rule{rule("first", nic.ReasonTunnel), rule("second", nic.ReasonCTState)},
	}
	f := &flow.Flow{ID: "x", Port: "vf0", Chain: 3, Priority: 11,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			IPDst: pfx("10.0.0.1/32"), DstPort: exact16(80), TCPFlags: flow.Masked16{Value: syn, Mask: syn}},
		Actions: []flow.Action{{Kind: flow.ActMirror, Port: "vf0"}, {Kind: flow.ActVLANPop}, redirect("vf0"), gotoChain(5)}}
	flow.Normalize(f)

	got := p.Check(f, portKinds)
	var fields []string
	for _, r := range got {
		fields = append(fields, string(r.Code)+" "+r.Field)
	}
	assert.Equal(t, []string{
		"unsupported-match-key match.ipv4_dst",
		"unsupported-match-key match.dst_port",
		"unsupported-match-key match.tcp_flags",
		"unsupported-action actions[0]",
		"unsupported-action actions[1]",
		"chain-limit chain",
		"priority-limit priority",
		"chain-limit actions[3]",
		"port-not-offloadable port",
		"port-not-offloadable actions[0]",
		"port-not-offloadable actions[2]",
		"tunnel-constraint first",
		"ct-state second",
	}, fields)
	assert.Equal(t, []string{"first", "second"}, calls)
	assert.Equal(t, "test on T1 does not offload matching on ipv4_dst", got[0].Message)
	assert.Equal(t, "test on T1 does not offload the mirror action", got[3].Message)
	assert.Equal(t, "test on T1 offloads priorities 1-10 only, not 11", got[6].Message)
}

// TestCheckNoLimits: zero MaxChain and MaxPriority mean no limit, and an
// offloadable flow gives nil, not an empty slice.
func TestCheckNoLimits(t *testing.T) {
	p := &nic.Profile{Name: "open", MatchKeys: flow.AllKeys, Actions: flow.Actions(flow.ActDrop, flow.ActGoto)}
	f := &flow.Flow{ID: "x", Port: "pf0vf0", Chain: 1 << 20, Priority: 65535,
		Actions: []flow.Action{gotoChain(1<<20 + 1)}}
	require.Nil(t, p.Check(f, portKinds))
	require.Nil(t, p.Check(f, nil))
}
