package datapath

import (
	"fmt"
	"strings"
	"time"

	"github.com/offloadd/offloadd/offload/flow"
)

// Verdict is what became of an injected packet.
type Verdict uint8

// Verdicts.
const (
	// VerdictDropped: a drop action, a police exceed, or the datapath could
	// not send it (no neighbour, no tunnel metadata, a loop).
	VerdictDropped Verdict = iota + 1
	// VerdictForwarded: it left through a port, to the wire or to a VM.
	VerdictForwarded
	// VerdictDelivered: an accept passed it up a port's netdev to the host stack.
	VerdictDelivered
	// VerdictUpcall: it missed every table and went to the slow path.
	VerdictUpcall
)

var verdictNames = [...]string{"", "dropped", "forwarded", "delivered", "upcall"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) && v != 0 {
		return verdictNames[v]
	}
	return "unknown"
}

// OutputKind says where an output frame went.
type OutputKind uint8

// Output kinds.
const (
	// OutputWire: out of an uplink onto the wire.
	OutputWire OutputKind = iota + 1
	// OutputVM: to a VF, that is to the VM behind it.
	OutputVM
	// OutputHost: up a port's netdev to the host stack (accept).
	OutputHost
	// OutputUpcall: to the slow path after missing every table.
	OutputUpcall
)

var outputNames = [...]string{"", "wire", "vm", "host", "upcall"}

func (k OutputKind) String() string {
	if int(k) < len(outputNames) && k != 0 {
		return outputNames[k]
	}
	return "unknown"
}

// Output is one frame the datapath sent somewhere.
type Output struct {
	// Port is the uplink for the wire, the VF netdev for a VM, the port
	// whose netdev got the frame for host and upcall.
	Port  string
	Kind  OutputKind
	Plane flow.Plane
	// Mirror marks a copy made by a mirror action.
	Mirror bool
	Frame  []byte
}

// StepKind names a trace step.
type StepKind uint8

// Step kinds.
const (
	// StepPort: the packet arrives at a port's ingress.
	StepPort StepKind = iota + 1
	// StepRule: a rule was consulted (Matched says whether it matched).
	StepRule
	// StepMiss: a table had no match, or the packet moved to software.
	StepMiss
	// StepAction: an action ran; Changes has the fields it changed.
	StepAction
	// StepConntrack: a ct action's lookup.
	StepConntrack
	// StepOutput: a frame left (see Trace.Outputs).
	StepOutput
	// StepDrop: the packet was dropped.
	StepDrop
)

var stepNames = [...]string{"", "port", "rule", "miss", "action", "conntrack", "output", "drop"}

func (k StepKind) String() string {
	if int(k) < len(stepNames) && k != 0 {
		return stepNames[k]
	}
	return "unknown"
}

// Step is one thing the datapath did with a packet.
type Step struct {
	Kind StepKind
	// Depth is the nesting: 0 for the injected packet's port, one more for
	// each redirect to another port's ingress.
	Depth    int
	Plane    flow.Plane
	Port     string
	Chain    uint32
	Priority uint16
	FlowID   string
	Matched  bool
	// Action is the action as text ("redirect egress pf0vf1").
	Action  string
	Changes []Change
	CT      *CTLookup
	// Text explains misses, drops and outputs.
	Text string
}

// Change is one field an action changed; Before is empty for a header
// an action added.
type Change struct {
	Field, Before, After string
}

// CTLookup is what a ct action found.
type CTLookup struct {
	Zone uint16
	// State is the ct_state the packet got (flow.CT* bits).
	State     uint16
	Mark      uint32
	Commit    bool
	Committed bool
	Offloaded bool
	Note      string
}

// Trace is the path of one injected packet, like ovs-appctl ofproto/trace.
// Steps is empty for packets sent with Send.
type Trace struct {
	InPort string
	Time   time.Time
	Input  []byte
	Steps  []Step
	// Outputs are the frames that left, in order, with their bytes.
	Outputs []Output
	Verdict Verdict
	// Plane decided the verdict: the plane of the action that ended the
	// packet's path (software for an upcall).
	Plane flow.Plane
	// SoftwarePath is set when the packet reached the software plane at all.
	SoftwarePath bool
	// Reason explains a drop or an upcall.
	Reason string
}

// Upcalls are the outputs that went to the slow path.
func (t *Trace) Upcalls() []Output {
	var out []Output
	for _, o := range t.Outputs {
		if o.Kind == OutputUpcall {
			out = append(out, o)
		}
	}
	return out
}

// String renders the trace for people.
func (t *Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Packet on %s: %s (%d bytes)\n", t.InPort, Describe(t.Input), len(t.Input))
	if len(t.Steps) > 0 {
		b.WriteString("\n")
	}
	type chainKey struct {
		depth int
		plane flow.Plane
		port  string
		chain uint32
	}
	var cur chainKey
	haveChain := false
	for _, s := range t.Steps {
		ind := strings.Repeat("  ", 2*s.Depth)
		switch s.Kind {
		case StepPort:
			haveChain = false
			fmt.Fprintf(&b, "%s%s ingress%s\n", ind, s.Port, optText(s.Text))
		case StepRule:
			k := chainKey{s.Depth, s.Plane, s.Port, s.Chain}
			if !haveChain || k != cur {
				fmt.Fprintf(&b, "%s  %s %s chain %d\n", ind, s.Plane, s.Port, s.Chain)
				cur, haveChain = k, true
			}
			res := "no match"
			if s.Matched {
				res = "match"
			}
			fmt.Fprintf(&b, "%s    prio %d %s: %s\n", ind, s.Priority, s.FlowID, res)
		case StepAction:
			fmt.Fprintf(&b, "%s      %s%s\n", ind, s.Action, changesText(s.Changes))
		case StepConntrack:
			c := s.CT
			fmt.Fprintf(&b, "%s      ct zone %d: %s", ind, c.Zone, CTStateString(c.State))
			if c.Mark != 0 {
				fmt.Fprintf(&b, " mark 0x%x", c.Mark)
			}
			if c.Note != "" {
				fmt.Fprintf(&b, " (%s)", c.Note)
			}
			b.WriteString("\n")
		case StepMiss:
			haveChain = false
			fmt.Fprintf(&b, "%s  %s\n", ind, s.Text)
		case StepOutput, StepDrop:
			fmt.Fprintf(&b, "%s      -> %s\n", ind, s.Text)
		}
	}
	if len(t.Outputs) > 0 {
		b.WriteString("\nOutputs:\n")
		for _, o := range t.Outputs {
			mirror := ""
			if o.Mirror {
				mirror = ", mirror"
			}
			fmt.Fprintf(&b, "  %s %s (%s%s), %d bytes: %s\n", o.Port, o.Kind, o.Plane, mirror, len(o.Frame), Describe(o.Frame))
		}
	}
	fmt.Fprintf(&b, "\nVerdict: %s in %s", t.Verdict, t.Plane)
	if t.Reason != "" {
		fmt.Fprintf(&b, ": %s", t.Reason)
	}
	if !t.SoftwarePath {
		b.WriteString(" (fully offloaded)")
	}
	b.WriteString("\n")
	return b.String()
}

func optText(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func changesText(cs []Change) string {
	if len(cs) == 0 {
		return ""
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		if c.Before == "" {
			parts[i] = c.Field + " " + c.After
			continue
		}
		parts[i] = fmt.Sprintf("%s %s -> %s", c.Field, c.Before, c.After)
	}
	return ": " + strings.Join(parts, ", ")
}

// CTStateString renders ct_state bits like tc: "+trk+est+rpl", "-trk" for none.
func CTStateString(st uint16) string {
	if st == 0 {
		return "-trk"
	}
	var b strings.Builder
	for _, x := range []struct {
		bit  uint16
		name string
	}{{flow.CTTracked, "+trk"}, {flow.CTNew, "+new"}, {flow.CTEstablished, "+est"},
		{flow.CTRelated, "+rel"}, {flow.CTReply, "+rpl"}, {flow.CTInvalid, "+inv"}} {
		if st&x.bit != 0 {
			b.WriteString(x.name)
		}
	}
	return b.String()
}
