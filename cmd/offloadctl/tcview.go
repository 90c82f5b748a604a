package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/api/tcsyntax"
	"github.com/spf13/cobra"
)

// printTC prints flows as the tc commands that re-create them (-o tc),
// each after a "# id:" line, so that the output is a file for
// "flows apply --tc".
func printTC(w io.Writer, sts []*v1.FlowStatus) error {
	flows := make([]*v1.Flow, len(sts))
	for i, st := range sts {
		flows[i] = st.GetFlow()
	}
	if err := tcsyntax.Print(w, flows); err != nil {
		return failed("print tc: %v", err)
	}
	return nil
}

func (c *cli) dumpCmd() *cobra.Command {
	var (
		offloaded, software bool
		port                string
	)
	cmd := &cobra.Command{
		Use:   "dump [--offloaded|--software]",
		Short: "One line per flow, like ovs-appctl dpctl/dump-flows: match, actions, counters, plane",
		Long: "One line per flow: dev, chain, prio and id, the match and actions in tc flower syntax, " +
			"packets and bytes of both planes (hw_packets and sw_packets split them), when a packet last " +
			"matched, the plane the flow runs in and in_hw_count (1 when in hardware). --offloaded shows " +
			"the flows in hardware, --software those in software.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &v1.ListFlowsRequest{Port: port}
			switch {
			case offloaded && software:
				return usageErrorf("give --offloaded or --software, not both")
			case offloaded:
				req.State = v1.FlowState_FLOW_STATE_HARDWARE
			case software:
				req.State = v1.FlowState_FLOW_STATE_SOFTWARE
			}
			all, err := c.listAll(cmd, req)
			if err != nil {
				return err
			}
			if c.output != "table" {
				return printMessage(c.stdout, c.output, all)
			}
			now := time.Now()
			for _, st := range all.GetFlows() {
				line, err := dumpLine(st, now)
				if err != nil {
					return failed("dump: %v", err)
				}
				fmt.Fprintln(c.stdout, line)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&offloaded, "offloaded", false, "only flows in hardware")
	f.BoolVar(&software, "software", false, "only flows in software")
	f.StringVar(&port, "port", "", "only flows on this ingress port")
	return cmd
}

// dumpLine is one flow of flows dump:
//
//	dev pf0vf0 chain 0 prio 10 id acl-ssh: match protocol ip ip_proto tcp dst_port 22 actions drop packets:5 bytes:300 hw_packets:5 sw_packets:0 used:3.2s plane:hardware in_hw_count:1
func dumpLine(st *v1.FlowStatus, now time.Time) (string, error) {
	f := st.GetFlow()
	match, err := tcsyntax.FormatMatch(f)
	if err != nil {
		return "", fmt.Errorf("flow %q: %w", f.GetId(), err)
	}
	acts, err := tcsyntax.FormatActions(f)
	if err != nil {
		return "", fmt.Errorf("flow %q: %w", f.GetId(), err)
	}
	if match == "" {
		match = "any"
	}
	hw, sw := st.GetHardware(), st.GetSoftware()
	var b strings.Builder
	fmt.Fprintf(&b, "dev %s chain %d prio %d id %s: match %s actions %s", f.GetPort(), f.GetChain(), f.GetPriority(), f.GetId(), match, acts)
	fmt.Fprintf(&b, " packets:%d bytes:%d hw_packets:%d sw_packets:%d used:%s",
		hw.GetPackets()+sw.GetPackets(), hw.GetBytes()+sw.GetBytes(), hw.GetPackets(), sw.GetPackets(), used(hw, sw, now))
	plane := strings.ToLower(strings.TrimPrefix(st.GetState().String(), "FLOW_STATE_"))
	inHW := 0
	if st.GetState() == v1.FlowState_FLOW_STATE_HARDWARE {
		inHW = 1
	}
	fmt.Fprintf(&b, " plane:%s in_hw_count:%d", plane, inHW)
	return b.String(), nil
}

// used is how long ago either plane last matched a packet, "never" when
// neither has.
func used(hw, sw *v1.Counters, now time.Time) string {
	var last time.Time
	for _, c := range []*v1.Counters{hw, sw} {
		if c.GetLastUsed() != nil {
			if t := c.GetLastUsed().AsTime(); t.After(last) {
				last = t
			}
		}
	}
	if last.IsZero() {
		return "never"
	}
	d := now.Sub(last)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
