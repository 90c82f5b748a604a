package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// reasonWidth is how many characters of a reason a table shows.
const reasonWidth = 72

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes tab-separated cells; empty cells print as "-".
func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// enumWord turns FLOW_STATE_HARDWARE into "hardware" and
// APPLY_OUTCOME_CREATED into "created": the value name without its type
// prefix, lower case, dashes for underscores.
func enumWord(e protoreflect.Enum) string {
	d := e.Descriptor()
	v := d.Values().ByNumber(e.Number())
	if v == nil {
		return strconv.Itoa(int(e.Number()))
	}
	name := strings.TrimPrefix(string(v.Name()), upperSnake(string(d.Name()))+"_")
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// upperSnake turns "PlacementPolicy" into "PLACEMENT_POLICY".
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// truncate shortens s to at most n characters, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// firstReason is "code: message" of the first reason, truncated, with a
// count of the others.
func firstReason(rs []*v1.Reason, width int) string {
	if len(rs) == 0 {
		return ""
	}
	s := rs[0].GetCode() + ": " + oneLine(rs[0].GetMessage())
	more := ""
	if len(rs) > 1 {
		more = fmt.Sprintf(" (+%d more)", len(rs)-1)
	}
	return truncate(s, width-len(more)) + more
}

// oneLine folds whitespace runs (kernel messages may span lines) into spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func reasonLine(r *v1.Reason) string {
	s := r.GetCode() + ": "
	if r.GetField() != "" {
		s += r.GetField() + ": "
	}
	return s + oneLine(r.GetMessage())
}

func count(n uint64) string { return strconv.FormatUint(n, 10) }

// renderFlows prints the flows table, then a summary by state.
func renderFlows(w io.Writer, flows []*v1.FlowStatus) {
	tw := newTable(w)
	row(tw, "ID", "PORT", "CHAIN", "PRIO", "STATE", "HW-PKTS", "SW-PKTS", "GEN", "REASON")
	byState := map[v1.FlowState]int{}
	for _, st := range flows {
		f := st.GetFlow()
		byState[st.GetState()]++
		row(tw, f.GetId(), f.GetPort(), count(uint64(f.GetChain())), count(uint64(f.GetPriority())),
			enumWord(st.GetState()), count(st.GetHardware().GetPackets()), count(st.GetSoftware().GetPackets()),
			count(st.GetGeneration()), firstReason(st.GetReasons(), reasonWidth))
	}
	tw.Flush()
	fmt.Fprintln(w, summary(len(flows), byState))
}

// summary is "12 flows: 9 hardware, 2 software, 1 failed".
func summary(n int, byState map[v1.FlowState]int) string {
	noun := "flows"
	if n == 1 {
		noun = "flow"
	}
	s := fmt.Sprintf("%d %s", n, noun)
	var parts []string
	for _, st := range []v1.FlowState{v1.FlowState_FLOW_STATE_HARDWARE, v1.FlowState_FLOW_STATE_SOFTWARE,
		v1.FlowState_FLOW_STATE_PENDING, v1.FlowState_FLOW_STATE_FAILED} {
		if byState[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", byState[st], enumWord(st)))
		}
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// renderFlow prints one flow's status in detail.
func renderFlow(w io.Writer, st *v1.FlowStatus) {
	f := st.GetFlow()
	tw := newTable(w)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	kv("ID", f.GetId())
	kv("Port", f.GetPort())
	kv("Device", orDash(st.GetDevice()))
	kv("Chain", count(uint64(f.GetChain())))
	kv("Priority", count(uint64(f.GetPriority())))
	kv("Policy", enumWord(f.GetPolicy()))
	kv("Match", orDash(formatFields(f.GetMatch().ProtoReflect(), "")))
	kv("Actions", formatActions(f.GetActions()))
	kv("State", enumWord(st.GetState()))
	kv("Generation", count(st.GetGeneration()))
	kv("Updated", formatTime(st.GetUpdated()))
	kv("Hardware", formatCounters(st.GetHardware()))
	kv("Software", formatCounters(st.GetSoftware()))
	tw.Flush()
	if len(st.GetReasons()) > 0 {
		fmt.Fprintln(w, "Reasons:")
		for _, r := range st.GetReasons() {
			fmt.Fprintf(w, "  %s\n", reasonLine(r))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

func formatCounters(c *v1.Counters) string {
	s := fmt.Sprintf("%d packets, %d bytes", c.GetPackets(), c.GetBytes())
	if c.GetLastUsed() != nil {
		s += ", last used " + formatTime(c.GetLastUsed())
	}
	return s
}

// formatFields prints a message's set fields as "name=value" in field
// order: masks join their value ("src_port=1024/0xfc00"), nested messages
// print as "tunnel.vni=42", true booleans as their name.
func formatFields(m protoreflect.Message, prefix string) string {
	if !m.IsValid() {
		return ""
	}
	var parts []string
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) || strings.HasSuffix(string(fd.Name()), "_mask") {
			continue
		}
		name := prefix + string(fd.Name())
		v := m.Get(fd)
		switch {
		case fd.IsList():
			var items []string
			for k := 0; k < v.List().Len(); k++ {
				items = append(items, formatScalar(fd, v.List().Get(k)))
			}
			parts = append(parts, name+"="+strings.Join(items, ","))
		case fd.Kind() == protoreflect.MessageKind:
			if s := formatFields(v.Message(), name+"."); s != "" {
				parts = append(parts, s)
			} else {
				parts = append(parts, name)
			}
		case fd.Kind() == protoreflect.BoolKind && !fd.HasPresence():
			parts = append(parts, name) // only set when true
		default:
			s := name + "=" + formatScalar(fd, v)
			if mask := fields.ByName(fd.Name() + "_mask"); mask != nil && m.Has(mask) {
				s += "/" + formatMask(mask, m.Get(mask))
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

func formatScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ev := ed.Values().ByNumber(v.Enum()); ev != nil {
			name := strings.TrimPrefix(string(ev.Name()), upperSnake(string(ed.Name()))+"_")
			return strings.ReplaceAll(strings.ToLower(name), "_", "-")
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.StringKind:
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

func formatMask(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if fd.Kind() == protoreflect.StringKind {
		return v.String()
	}
	return fmt.Sprintf("0x%x", v.Uint())
}

// formatActions prints "tunnel_encap(vni=42 src=… dst=…), redirect(port=vxlan0)".
func formatActions(as []*v1.Action) string {
	if len(as) == 0 {
		return "-"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		m := a.ProtoReflect()
		fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("action"))
		if fd == nil {
			parts[i] = "?"
			continue
		}
		s := string(fd.Name())
		if g := a.GetGoto(); g != nil {
			parts[i] = fmt.Sprintf("goto(chain=%d)", g.GetChain()) // chain 0 is not "unset"
			continue
		}
		if args := formatFields(m.Get(fd).Message(), ""); args != "" {
			s += "(" + args + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}

// renderApply prints one row per request flow and, under the table, every
// violation and error in full. It returns how many flows failed or were
// invalid.
func renderApply(w io.Writer, resp *v1.ApplyFlowsResponse) int {
	return renderApplyAt(w, resp, 0, true)
}

// renderApplyAt renders one batch of a file whose first flow is the
// file's flows[offset]; header prints the column names.
func renderApplyAt(w io.Writer, resp *v1.ApplyFlowsResponse, offset int, header bool) int {
	tw := newTable(w)
	if header {
		row(tw, "ID", "OUTCOME", "STATE", "GEN", "REASON")
	}
	bad := 0
	var details []string
	for i, r := range resp.GetResults() {
		st := r.GetStatus()
		state, gen := "", ""
		if st != nil {
			state, gen = enumWord(st.GetState()), count(st.GetGeneration())
		}
		why := firstReason(st.GetReasons(), reasonWidth)
		switch r.GetOutcome() {
		case v1.ApplyOutcome_APPLY_OUTCOME_INVALID:
			bad++
			why = fmt.Sprintf("%d violation(s)", len(r.GetViolations()))
			for _, v := range r.GetViolations() {
				details = append(details, fmt.Sprintf("flows[%d] %s: invalid: %s: %s", offset+i, r.GetId(), v.GetField(), v.GetDescription()))
			}
		case v1.ApplyOutcome_APPLY_OUTCOME_FAILED:
			bad++
			why = truncate(oneLine(r.GetError()), reasonWidth)
			details = append(details, fmt.Sprintf("flows[%d] %s: failed: %s", offset+i, r.GetId(), oneLine(r.GetError())))
		}
		row(tw, r.GetId(), enumWord(r.GetOutcome()), state, gen, why)
	}
	tw.Flush()
	for _, d := range details {
		fmt.Fprintln(w, d)
	}
	return bad
}

// renderDelete prints one row per id and returns how many could not be removed.
func renderDelete(w io.Writer, resp *v1.DeleteFlowsResponse) int {
	tw := newTable(w)
	row(tw, "ID", "RESULT")
	bad := 0
	for _, r := range resp.GetResults() {
		res := "deleted"
		switch {
		case r.GetError() != "":
			res = "error: " + oneLine(r.GetError())
			bad++
		case !r.GetFound():
			res = "not found"
		}
		row(tw, r.GetId(), res)
	}
	tw.Flush()
	return bad
}

// explained is one flow of a file with the daemon's explanation.
type explained struct {
	ID   string
	Resp *v1.ExplainFlowResponse
}

// renderExplain prints where each flow would run and, below, why.
func renderExplain(w io.Writer, xs []explained) {
	tw := newTable(w)
	row(tw, "ID", "WOULD-RUN", "INSTALLED", "CHANGE", "REASON")
	var details []string
	for _, x := range xs {
		r := x.Resp
		installed := "-"
		if r.GetInstalled() != nil {
			installed = enumWord(r.GetInstalled().GetState())
		}
		change := "none"
		switch {
		case r.GetInstalled() == nil:
			change = "create"
		case r.GetChanged():
			change = "update"
		}
		why := firstReason(r.GetReasons(), reasonWidth)
		if len(r.GetViolations()) > 0 {
			why = fmt.Sprintf("invalid: %d violation(s)", len(r.GetViolations()))
		}
		row(tw, x.ID, enumWord(r.GetState()), installed, change, why)
		for _, v := range r.GetViolations() {
			details = append(details, fmt.Sprintf("%s: invalid: %s: %s", x.ID, v.GetField(), v.GetDescription()))
		}
		for _, rs := range r.GetReasons() {
			details = append(details, fmt.Sprintf("%s: %s", x.ID, reasonLine(rs)))
		}
	}
	tw.Flush()
	for _, d := range details {
		fmt.Fprintln(w, d)
	}
}

// renderNode prints the node and, per NIC, its description and capabilities.
func renderNode(w io.Writer, n *v1.Node) {
	fmt.Fprintf(w, "Hostname: %s\nVersion:  %s\n", orDash(n.GetHostname()), orDash(n.GetVersion()))
	if len(n.GetNics()) == 0 {
		fmt.Fprintln(w, "No NICs.")
		return
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	row(tw, "NIC", "DRIVER", "MODEL", "PROFILE", "PCI", "FIRMWARE", "ESWITCH", "VFS", "HW-TABLE", "EMULATED")
	for _, c := range n.GetNics() {
		emu := "no"
		if c.GetEmulated() {
			emu = "yes"
		}
		row(tw, c.GetName(), c.GetDriver(), c.GetModel(), c.GetProfile(), c.GetPciAddress(), c.GetFirmwareVersion(),
			enumWord(c.GetEswitchMode()), fmt.Sprintf("%d/%d", c.GetNumVfs(), c.GetTotalVfs()), tableUse(c.GetHardwareTable()), emu)
	}
	tw.Flush()
	for _, c := range n.GetNics() {
		caps := c.GetCapabilities()
		if caps == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s offloads (profile %s):\n", c.GetName(), orDash(c.GetProfile()))
		tw := newTable(w)
		kv := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, v) }
		kv("Match keys", orDash(strings.Join(caps.GetMatchKeys(), " ")))
		kv("Actions", orDash(strings.Join(caps.GetActions(), " ")))
		kv("Chains", limit(caps.GetMaxChain(), "0-"))
		kv("Priorities", limit(caps.GetMaxPriority(), "1-"))
		if len(caps.GetRules()) > 0 {
			kv("Checks", strings.Join(caps.GetRules(), " "))
		}
		tw.Flush()
		for _, note := range caps.GetNotes() {
			fmt.Fprintf(w, "  Note: %s\n", note)
		}
	}
}

func limit(max uint32, lead string) string {
	if max == 0 {
		return "no limit"
	}
	return lead + strconv.FormatUint(uint64(max), 10)
}

// tableUse is "used/total (pct%)", or "used/?" when the total is unknown.
func tableUse(t *v1.HardwareTable) string {
	if t.GetTotal() == 0 {
		return fmt.Sprintf("%d/?", t.GetUsed())
	}
	return fmt.Sprintf("%d/%d (%d%%)", t.GetUsed(), t.GetTotal(), t.GetUsed()*100/t.GetTotal())
}

// renderPorts prints the ports table.
func renderPorts(w io.Writer, ports []*v1.Port) {
	tw := newTable(w)
	row(tw, "NAME", "KIND", "DEVICE", "PHYS-PORT", "PF", "VF", "PCI", "MAC", "MTU", "LINK", "PEER")
	for _, p := range ports {
		vf := ""
		if p.Vf != nil {
			vf = count(uint64(p.GetVf()))
		}
		link := "down"
		if p.GetUp() {
			link = "up"
		}
		kind := enumWord(p.GetKind())
		if p.GetTunnelDstPort() != 0 {
			kind += fmt.Sprintf(" (udp/%d)", p.GetTunnelDstPort())
		}
		row(tw, p.GetName(), kind, p.GetDevice(), p.GetPhysPortName(), count(uint64(p.GetPf())), vf,
			p.GetPciAddress(), p.GetMac(), count(uint64(p.GetMtu())), link, p.GetPeer())
	}
	tw.Flush()
}

// renderWatchHeader and renderWatchEvent print a watch as a log of lines.
func renderWatchHeader(w io.Writer) {
	fmt.Fprintf(w, "%-8s %-10s %-9s %s\n", "EVENT", "STATE", "GEN", "FLOW")
}

func renderWatchEvent(w io.Writer, ev *v1.WatchFlowsResponse) {
	if ev.GetKind() == v1.WatchEventKind_WATCH_EVENT_KIND_SYNC {
		fmt.Fprintln(w, "-- synced: changes follow --")
		return
	}
	st := ev.GetStatus()
	f := st.GetFlow()
	line := fmt.Sprintf("%-8s %-10s %-9d %s on %s chain %d prio %d", enumWord(ev.GetKind()), enumWord(st.GetState()),
		st.GetGeneration(), f.GetId(), f.GetPort(), f.GetChain(), f.GetPriority())
	if r := firstReason(st.GetReasons(), reasonWidth); r != "" {
		line += ": " + r
	}
	fmt.Fprintln(w, line)
}
