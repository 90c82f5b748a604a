package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

func (c *cli) flowsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Apply, list, explain, delete and watch flows",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("flows needs a subcommand: apply, list, get, dump, delete, explain or watch")
		},
	}
	cmd.AddCommand(c.applyCmd(), c.listCmd(), c.getCmd(), c.deleteCmd(), c.explainCmd(), c.watchCmd(), c.dumpCmd())
	return cmd
}

func (c *cli) applyCmd() *cobra.Command {
	var (
		file      string
		tcFile    string
		atomic    bool
		dryRun    bool
		batchSize int
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE | --tc FILE",
		Short: "Create or replace the flows of a file (YAML or JSON, or tc filter commands with --tc; - for stdin)",
		Long: "Create or replace the flows of a file by id. Each flow is reported: created, updated, unchanged, " +
			"failed or invalid, with where it runs and why. With --atomic, any failure applies nothing.\n" +
			"The whole file is parsed before anything is sent, so a mistake at its end applies nothing; " +
			"then it is sent in requests of --batch-size flows, reading it again one flow at a time " +
			"(stdin is spooled to a temporary file), so memory stays bounded. --atomic sends one request.\n" +
			"Exits 1 when any flow failed or was invalid.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" && tcFile != "" {
				return usageErrorf("give -f FILE or --tc FILE, not both")
			}
			if file == "" && tcFile == "" {
				return usageErrorf("flows apply needs -f FILE or --tc FILE")
			}
			if batchSize < 1 {
				return usageErrorf("--batch-size must be at least 1")
			}
			src, err := c.openFlows(file + tcFile)
			if err != nil {
				return err
			}
			src.tc = tcFile != ""
			defer src.close()
			n, err := src.each(0, func([]*v1.Flow) error { return nil })
			if err != nil {
				return usageErrorf("%v", err)
			}
			if dryRun {
				fmt.Fprintf(c.stdout, "%s: %d flows parse; nothing sent (--dry-run)\n", src.name, n)
				return nil
			}
			if atomic {
				batchSize = n
			}
			fc, err := c.flowClient()
			if err != nil {
				return err
			}
			var (
				all      v1.ApplyFlowsResponse
				bad, off int
				rejected *status.Status
			)
			_, err = src.each(batchSize, func(flows []*v1.Flow) error {
				ctx, cancel := c.rpcContext(cmd)
				defer cancel()
				resp, err := fc.ApplyFlows(ctx, &v1.ApplyFlowsRequest{Flows: flows, Atomic: atomic})
				if err != nil {
					// A rejected atomic batch carries every flow's result in its details.
					st := status.Convert(err)
					for _, d := range st.Details() {
						if r, ok := d.(*v1.ApplyFlowsResponse); ok {
							resp, rejected = r, st
						}
					}
					if rejected == nil {
						if off > 0 {
							return rpcError(fmt.Sprintf("apply flows[%d:%d] (flows before %d were applied)", off, off+len(flows), off), err)
						}
						return rpcError("apply flows", err)
					}
				}
				bad += countBad(resp)
				if c.output == "table" {
					renderApplyAt(c.stdout, resp, off, off == 0)
				} else {
					all.Results = append(all.Results, resp.GetResults()...)
				}
				off += len(flows)
				return nil
			})
			if err != nil {
				return err
			}
			if c.output != "table" {
				if err := printMessage(c.stdout, c.output, &all); err != nil {
					return err
				}
			}
			switch {
			case rejected != nil:
				return failed("apply flows: %s: batch rejected, nothing applied: %d of %d flows failed or were invalid",
					rejected.Code(), bad, n)
			case bad > 0:
				return failed("apply flows: %d of %d flows failed or were invalid", bad, n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "flow file, YAML or JSON (- for stdin)")
	cmd.Flags().StringVar(&tcFile, "tc", "", "file of tc filter add|replace … flower … commands (- for stdin); see docs/tc-syntax.md")
	cmd.Flags().BoolVar(&atomic, "atomic", false, "apply all flows or none, in one request")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "parse the file and report how many flows it holds; send nothing")
	cmd.Flags().IntVar(&batchSize, "batch-size", 1000, "flows per ApplyFlows request")
	return cmd
}

// countBad counts failed and invalid results.
func countBad(resp *v1.ApplyFlowsResponse) int {
	n := 0
	for _, r := range resp.GetResults() {
		switch r.GetOutcome() {
		case v1.ApplyOutcome_APPLY_OUTCOME_FAILED, v1.ApplyOutcome_APPLY_OUTCOME_INVALID:
			n++
		}
	}
	return n
}

func (c *cli) listCmd() *cobra.Command {
	var (
		req   v1.ListFlowsRequest
		state string
		chain uint32
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List flows with where they run and why",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" {
				st, err := parseState(state)
				if err != nil {
					return err
				}
				req.State = st
			}
			if cmd.Flags().Changed("chain") {
				req.Chain = &chain
			}
			all, err := c.listAll(cmd, &req)
			if err != nil {
				return err
			}
			switch c.output {
			case "table":
				renderFlows(c.stdout, all.GetFlows())
				return nil
			case "tc":
				return printTC(c.stdout, all.GetFlows())
			}
			return printMessage(c.stdout, c.output, all)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Port, "port", "", "only flows on this ingress port")
	f.StringVar(&state, "state", "", "only flows in this state: pending, hardware, software or failed")
	f.StringVar(&req.IdPrefix, "id-prefix", "", "only flows whose id starts with this")
	f.Uint32Var(&chain, "chain", 0, "only flows in this chain")
	return cmd
}

// listAll lists every page of flows that req selects.
func (c *cli) listAll(cmd *cobra.Command, req *v1.ListFlowsRequest) (*v1.ListFlowsResponse, error) {
	fc, err := c.flowClient()
	if err != nil {
		return nil, err
	}
	all := &v1.ListFlowsResponse{}
	for {
		ctx, cancel := c.rpcContext(cmd)
		resp, err := fc.ListFlows(ctx, req)
		cancel()
		if err != nil {
			return nil, rpcError("list flows", err)
		}
		all.Flows = append(all.Flows, resp.GetFlows()...)
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func (c *cli) getCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one flow in detail: match, actions, state, reasons, counters",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("flows get needs exactly one flow id")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			fc, err := c.flowClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := fc.GetFlow(ctx, &v1.GetFlowRequest{Id: args[0]})
			if err != nil {
				if status.Code(err) == codes.NotFound {
					return failed("flow %q not found", args[0])
				}
				return rpcError("get flow", err)
			}
			switch c.output {
			case "table":
				renderFlow(c.stdout, resp.GetStatus())
				return nil
			case "tc":
				return printTC(c.stdout, []*v1.FlowStatus{resp.GetStatus()})
			}
			return printMessage(c.stdout, c.output, resp.GetStatus())
		},
	}
}

func (c *cli) deleteCmd() *cobra.Command {
	var file, tcFile string
	cmd := &cobra.Command{
		Use:   "delete ID... | -f FILE | --tc FILE",
		Short: "Delete flows by id, or the flows of a file",
		Long: "Delete flows by id, or every flow named in a flow file, or every rule of a file of tc commands " +
			"(add, replace and del lines alike, by their ids). Unknown ids are reported, not errors.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := args
			given := 0
			for _, g := range []bool{file != "", tcFile != "", len(args) > 0} {
				if g {
					given++
				}
			}
			switch {
			case given > 1:
				return usageErrorf("give flow ids, -f FILE or --tc FILE, only one of them")
			case tcFile != "":
				var err error
				if ids, err = c.readTCIDs(tcFile); err != nil {
					return err
				}
			case file != "":
				flows, err := c.readFlows(file)
				if err != nil {
					return err
				}
				ids = make([]string, len(flows))
				for i, f := range flows {
					ids[i] = f.GetId()
				}
			case len(args) == 0:
				return usageErrorf("flows delete needs flow ids, -f FILE or --tc FILE")
			}
			fc, err := c.flowClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := fc.DeleteFlows(ctx, &v1.DeleteFlowsRequest{Ids: ids})
			if err != nil {
				return rpcError("delete flows", err)
			}
			bad := 0
			if c.output != "table" {
				if err := printMessage(c.stdout, c.output, resp); err != nil {
					return err
				}
				for _, r := range resp.GetResults() {
					if r.GetError() != "" {
						bad++
					}
				}
			} else {
				bad = renderDelete(c.stdout, resp)
			}
			if bad > 0 {
				return failed("delete flows: %d of %d could not be removed", bad, len(ids))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "delete the flows named in this flow file (- for stdin)")
	cmd.Flags().StringVar(&tcFile, "tc", "", "delete the flows of the rules of this file of tc commands (- for stdin)")
	return cmd
}

func (c *cli) explainCmd() *cobra.Command {
	var file, tcFile string
	cmd := &cobra.Command{
		Use:   "explain -f FILE | --tc FILE",
		Short: "Say, without changing anything, whether each flow of a file would run in hardware and why not",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				flows []*v1.Flow
				err   error
			)
			switch {
			case file != "" && tcFile != "":
				return usageErrorf("give -f FILE or --tc FILE, not both")
			case tcFile != "":
				flows, err = c.readTCFlows(tcFile)
			case file != "":
				flows, err = c.readFlows(file)
			default:
				return usageErrorf("flows explain needs -f FILE or --tc FILE")
			}
			if err != nil {
				return err
			}
			fc, err := c.flowClient()
			if err != nil {
				return err
			}
			// One batch, as apply would get it: gotos resolve within the
			// file and hardware room is consumed in apply's order.
			ctx, cancel := c.rpcContext(cmd)
			resp, err := fc.ExplainFlows(ctx, &v1.ExplainFlowsRequest{Flows: flows})
			cancel()
			if err != nil {
				return rpcError(fmt.Sprintf("explain %d flows", len(flows)), err)
			}
			xs := make([]explained, 0, len(flows))
			for i, f := range flows {
				if i < len(resp.GetResults()) {
					xs = append(xs, explained{ID: f.GetId(), Resp: resp.GetResults()[i]})
				}
			}
			if c.output != "table" {
				b, err := explainJSON(xs)
				if err != nil {
					return err
				}
				return printJSON(c.stdout, c.output, b)
			}
			renderExplain(c.stdout, xs)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "flow file, YAML or JSON (- for stdin)")
	cmd.Flags().StringVar(&tcFile, "tc", "", "file of tc filter add|replace … flower … commands (- for stdin)")
	return cmd
}

// explainJSON is [{"id": ..., "explanation": {...}}, ...].
func explainJSON(xs []explained) ([]byte, error) {
	type item struct {
		ID          string          `json:"id"`
		Explanation json.RawMessage `json:"explanation"`
	}
	items := make([]item, len(xs))
	for i, x := range xs {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(x.Resp)
		if err != nil {
			return nil, fmt.Errorf("encode explanation of %q: %w", x.ID, err)
		}
		items[i] = item{ID: x.ID, Explanation: b}
	}
	return json.MarshalIndent(items, "", "  ")
}

func (c *cli) watchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch",
		Short: "Print every flow, then every change, until interrupted",
		Long: "Print every flow as a snapshot event, a sync marker, then every change (upserts, including " +
			"placement changes, and deletions) until interrupted. -o json prints one JSON object per line.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fc, err := c.flowClient()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			stream, err := fc.WatchFlows(ctx, &v1.WatchFlowsRequest{})
			if err != nil {
				return rpcError("watch flows", err)
			}
			if c.output == "table" {
				renderWatchHeader(c.stdout)
			}
			for {
				ev, err := stream.Recv()
				_, hasDeadline := ctx.Deadline()
				switch {
				case ctx.Err() != nil:
					return nil // interrupted
				case hasDeadline && status.Code(err) == codes.DeadlineExceeded:
					return nil // gRPC's own deadline timer can fire before the context's

				case errors.Is(err, io.EOF):
					return failed("watch flows: the daemon ended the watch")
				case err != nil:
					return rpcError("watch flows", err)
				}
				if err := c.printEvent(ev); err != nil {
					return err
				}
			}
		},
	}
}

func (c *cli) printEvent(ev *v1.WatchFlowsResponse) error {
	switch c.output {
	case "json":
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode watch event: %w", err)
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	case "yaml":
		if _, err := fmt.Fprintln(c.stdout, "---"); err != nil {
			return err
		}
		return printMessage(c.stdout, "yaml", ev)
	}
	renderWatchEvent(c.stdout, ev)
	return nil
}
