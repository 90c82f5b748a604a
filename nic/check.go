package nic

import (
	"fmt"
	"strings"

	"github.com/offloadd/offloadd/offload/flow"
)

// Check reports why the hardware p describes would not take f. It returns
// nil when f is offloadable and otherwise every reason found, in this
// order: unsupported match keys (in key order), unsupported actions (in list
// order), chain and priority limits, ports that are not on the eswitch, then
// each of p.Rules in order. ports may be nil when port kinds are unknown.
//
// f is expected to be valid (flow.Validate); Check does not repeat
// validation. The real kernel's answer always wins over Check.
func (p *Profile) Check(f *flow.Flow, ports PortKinds) []Reason {
	var out []Reason
	if missing := f.Match.Keys() &^ p.MatchKeys; missing != 0 {
		for _, k := range missing.Slice() {
			out = append(out, Reason{Code: ReasonUnsupportedKey, Field: "match." + k.String(),
				Message: fmt.Sprintf("%s does not offload matching on %s", p.label(), k)})
		}
	}
	for i := range f.Actions {
		if k := f.Actions[i].Kind; !p.Actions.Has(k) {
			out = append(out, Reason{Code: ReasonUnsupportedAction, Field: actionField(i),
				Message: fmt.Sprintf("%s does not offload the %s action", p.label(), k)})
		}
	}
	out = append(out, p.checkLimits(f)...)
	out = append(out, checkPorts(f, ports)...)
	for _, r := range p.Rules {
		out = append(out, r.Check(f, ports)...)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// label names the driver and model in messages: "mlx5_core on ConnectX-5".
func (p *Profile) label() string {
	switch {
	case p.Driver == "":
		return "the " + p.Name + " profile"
	case p.Model == "":
		return p.Driver
	}
	return p.Driver + " on " + p.Model
}

// checkLimits applies MaxChain and MaxPriority to the flow and its goto
// targets. Without goto offload only chain 0 is reachable in hardware.
func (p *Profile) checkLimits(f *flow.Flow) []Reason {
	var out []Reason
	switch {
	case p.MaxChain != 0 && f.Chain > p.MaxChain:
		out = append(out, Reason{Code: ReasonChainLimit, Field: "chain",
			Message: fmt.Sprintf("%s offloads chains 0-%d only, not chain %d", p.label(), p.MaxChain, f.Chain)})
	case f.Chain != 0 && !p.Actions.Has(flow.ActGoto):
		out = append(out, Reason{Code: ReasonChainLimit, Field: "chain",
			Message: fmt.Sprintf("%s does not offload goto, so a rule in chain %d is never reached in hardware", p.label(), f.Chain)})
	}
	if p.MaxPriority != 0 && f.Priority > p.MaxPriority {
		out = append(out, Reason{Code: ReasonPriorityLimit, Field: "priority",
			Message: fmt.Sprintf("%s offloads priorities 1-%d only, not %d", p.label(), p.MaxPriority, f.Priority)})
	}
	if p.MaxChain != 0 {
		for i := range f.Actions {
			if a := &f.Actions[i]; a.Kind == flow.ActGoto && a.Chain > p.MaxChain {
				out = append(out, Reason{Code: ReasonChainLimit, Field: actionField(i),
					Message: fmt.Sprintf("%s offloads goto to chains 0-%d only, not chain %d", p.label(), p.MaxChain, a.Chain)})
			}
		}
	}
	return out
}

// checkPorts refuses VF netdevs as ingress or redirect/mirror targets: they
// are the VM side of a representor, not ports of the eswitch.
func checkPorts(f *flow.Flow, ports PortKinds) []Reason {
	if ports == nil {
		return nil
	}
	var out []Reason
	if f.Port != "" && ports(f.Port) == PortVF {
		out = append(out, Reason{Code: ReasonPort, Field: "port",
			Message: fmt.Sprintf("%s is a VF netdev, not an eswitch port; install the rule on its representor", f.Port)})
	}
	for i := range f.Actions {
		a := &f.Actions[i]
		if (a.Kind == flow.ActRedirect || a.Kind == flow.ActMirror) && a.Port != "" && ports(a.Port) == PortVF {
			out = append(out, Reason{Code: ReasonPort, Field: actionField(i),
				Message: fmt.Sprintf("%s to %s: a VF netdev is not an eswitch port; use its representor", a.Kind, a.Port)})
		}
	}
	return out
}

func actionField(i int) string { return flow.ActionPath(i) }

// firstAction returns the index of the first action of kind k that keep
// accepts (nil keep: any), or -1.
func firstAction(f *flow.Flow, k flow.ActionKind, keep func(*flow.Action) bool) int {
	for i := range f.Actions {
		if a := &f.Actions[i]; a.Kind == k && (keep == nil || keep(a)) {
			return i
		}
	}
	return -1
}

// isCT reports whether a is a ct action that tracks (not ct clear).
func isCT(a *flow.Action) bool { return a.CT != nil && !a.CT.Clear }

// protoName names an IP protocol for messages.
func protoName(p uint8) string {
	switch p {
	case 0:
		return "any protocol"
	case flow.ProtoICMP:
		return "icmp"
	case flow.ProtoTCP:
		return "tcp"
	case flow.ProtoUDP:
		return "udp"
	case flow.ProtoSCTP:
		return "sctp"
	case flow.ProtoICMPv6:
		return "icmpv6"
	}
	return fmt.Sprintf("ip_proto %d", p)
}

// ctStateNames lists the required (+) bits of mask in flag order: "+new, +rel".
func ctStateNames(bits uint16) []string {
	var out []string
	for _, b := range []struct {
		bit  uint16
		name string
	}{
		{flow.CTTracked, "+trk"}, {flow.CTEstablished, "+est"}, {flow.CTNew, "+new"},
		{flow.CTRelated, "+rel"}, {flow.CTReply, "+rpl"}, {flow.CTInvalid, "+inv"},
	} {
		if bits&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return out
}

// joinAnd joins words as "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
