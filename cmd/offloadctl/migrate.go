package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// migrateCmd is "offloadctl migrate": the live-migration handoff, one step
// per subcommand against the daemon of --socket/--addr, or the whole
// sequence between two daemons with "run".
func (c *cli) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move a VM's offloaded flows and connections to another node during live migration",
		Long: "Hand a workload's flows and conntrack entries from the node its VM leaves (source) to the node it goes to\n" +
			"(destination) while its SR-IOV VF is unplugged. Each step is idempotent by migration ID:\n\n" +
			"  destination  prepare ID --source-port PORT   reserve a VF, hold its flows in software\n" +
			"  source       drain ID --port PORT            every flow of the port to software\n" +
			"  source       export ID [--out FILE | --forward-to ADDR]\n" +
			"  destination  import ID --bundle FILE\n" +
			"  destination  reoffload ID                    after the VF is attached: back to hardware\n" +
			"  source       commit ID                       remove the flows, entries and VF settings\n" +
			"  both         abort ID                        before commit: roll the node back\n\n" +
			"'migrate run ID --port PORT --to ADDR' runs the whole sequence from this daemon (source) to ADDR\n" +
			"and aborts both sides when a step fails. See docs/migration.md.",
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageErrorf("migrate needs a subcommand: prepare, drain, export, import, reoffload, commit, abort, get, list or run")
		},
	}
	cmd.AddCommand(c.migratePrepareCmd(), c.migrateDrainCmd(), c.migrateExportCmd(), c.migrateImportCmd(),
		c.migrateStepCmd("reoffload", "On the destination once the VF is attached: move the flows to hardware and show where each runs"),
		c.migrateStepCmd("commit", "End the migration: on the source remove the port's flows and conntrack entries and release the VF"),
		c.migrateStepCmd("abort", "Roll this node back to before the migration (not after commit)"),
		c.migrateGetCmd(), c.migrateListCmd(), c.migrateRunCmd())
	return cmd
}

func (c *cli) migrationClient() (v1.MigrationServiceClient, error) {
	conn, err := c.client()
	if err != nil {
		return nil, err
	}
	return v1.NewMigrationServiceClient(conn), nil
}

// oneID takes the migration ID argument.
func oneID(_ *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return usageErrorf("a migration ID is required")
	case len(args) > 1:
		return usageErrorf("unexpected argument %q", args[1])
	}
	return nil
}

// vfFlags are the VF settings flags of prepare and run.
type vfFlags struct {
	s   v1.VfSettings
	cmd *cobra.Command
}

func addVFFlags(cmd *cobra.Command) *vfFlags {
	v := &vfFlags{cmd: cmd}
	f := cmd.Flags()
	f.StringVar(&v.s.Mac, "vf-mac", "", "MAC of the reserved VF (default: the source VF's, from the bundle)")
	f.Uint32Var(&v.s.Vlan, "vf-vlan", 0, "port VLAN of the reserved VF")
	f.Uint32Var(&v.s.Qos, "vf-qos", 0, "port VLAN priority of the reserved VF")
	f.BoolVar(&v.s.Trust, "vf-trust", false, "trust the reserved VF")
	f.BoolVar(&v.s.Spoofchk, "vf-spoofchk", false, "MAC spoof checking on the reserved VF")
	f.Uint32Var(&v.s.MinTxRateMbps, "vf-min-tx-rate", 0, "minimum transmit rate of the reserved VF in Mbit/s")
	f.Uint32Var(&v.s.MaxTxRateMbps, "vf-max-tx-rate", 0, "maximum transmit rate of the reserved VF in Mbit/s")
	return v
}

// settings returns the VF settings when any --vf-* flag was given.
func (v *vfFlags) settings() *v1.VfSettings {
	for _, n := range []string{"vf-mac", "vf-vlan", "vf-qos", "vf-trust", "vf-spoofchk", "vf-min-tx-rate", "vf-max-tx-rate"} {
		if v.cmd.Flags().Changed(n) {
			s := proto.Clone(&v.s).(*v1.VfSettings)
			return s
		}
	}
	return nil
}

const portMapUsage = "rename a port from the source's name to this node's, SRC=DST (repeatable; the migrating port is renamed by itself)"

func (c *cli) migratePrepareCmd() *cobra.Command {
	var (
		req   v1.PrepareMigrationRequest
		file  string
		ports map[string]string
	)
	cmd := &cobra.Command{
		Use:   "prepare ID --source-port PORT",
		Short: "On the destination: reserve a VF for the workload and hold its representor's flows in software",
		Args:  oneID,
	}
	vf := addVFFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if req.SourcePort == "" {
			return usageErrorf("migrate prepare needs --source-port")
		}
		req.MigrationId, req.PortMap, req.Vf = args[0], ports, vf.settings()
		if file != "" {
			flows, err := c.readFlows(file)
			if err != nil {
				return err
			}
			req.Flows = flows
		}
		mc, err := c.migrationClient()
		if err != nil {
			return err
		}
		ctx, cancel := c.rpcContext(cmd)
		defer cancel()
		resp, err := mc.PrepareMigration(ctx, &req)
		if err != nil {
			return rpcError("prepare migration", err)
		}
		return c.show(resp, func(w io.Writer) { fmt.Fprintln(w, prepareLine(resp)) })
	}
	f := cmd.Flags()
	f.StringVar(&req.SourcePort, "source-port", "", "the workload's port on the source node")
	f.StringVar(&req.Port, "port", "", "use this representor instead of reserving a free VF")
	f.StringVarP(&file, "file", "f", "", "flows to pre-install in software, with the source's port names (YAML or JSON; - for stdin)")
	f.StringToStringVar(&ports, "port-map", nil, portMapUsage)
	return cmd
}

func (c *cli) migrateDrainCmd() *cobra.Command {
	var port string
	cmd := &cobra.Command{
		Use:   "drain ID --port PORT",
		Short: "On the source: move every flow of the port to software and verify none is left in hardware",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			if port == "" {
				return usageErrorf("migrate drain needs --port")
			}
			mc, err := c.migrationClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := mc.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: args[0], Port: port})
			if err != nil {
				return rpcError("drain migration", err)
			}
			return c.show(resp, func(w io.Writer) { fmt.Fprintln(w, drainLine(port, resp)) })
		},
	}
	cmd.Flags().StringVar(&port, "port", "", "the workload's port (its VF representor)")
	return cmd
}

func (c *cli) migrateExportCmd() *cobra.Command {
	var (
		req   v1.ExportMigrationRequest
		out   string
		ports map[string]string
		zones []uint
	)
	cmd := &cobra.Command{
		Use:   "export ID [--out FILE | --forward-to PEER]",
		Short: "On the source: the port's flows and conntrack entries as a bundle, to a file or straight to the destination",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" && req.ForwardTo == "" {
				return usageErrorf("migrate export needs --out FILE or --forward-to PEER")
			}
			req.MigrationId, req.PortMap = args[0], ports
			for _, z := range zones {
				if z > 0xffff {
					return usageErrorf("--zones: %d > 65535", z)
				}
				req.ConntrackZones = append(req.ConntrackZones, uint32(z))
			}
			mc, err := c.migrationClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := mc.ExportMigration(ctx, &req)
			if err != nil {
				return rpcError("export migration", err)
			}
			if out != "" {
				if err := c.writeBundle(out, resp.GetBundle()); err != nil {
					return err
				}
			}
			if out == "-" {
				return nil
			}
			return c.show(resp, func(w io.Writer) {
				fmt.Fprintln(w, bundleLine(resp.GetBundle()))
				if out != "" {
					fmt.Fprintf(w, "bundle written to %s\n", out)
				}
				if fwd := resp.GetForwarded(); fwd != nil {
					fmt.Fprintf(w, "imported at %s: %s\n", req.ForwardTo, importLine(fwd))
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "write the bundle (binary MigrationBundle) to FILE; - for stdout")
	f.StringVar(&req.ForwardTo, "forward-to", "", "name of a peer in the source daemon's config (peers:), which imports the bundle at once; never an address")
	f.StringToStringVar(&ports, "port-map", nil, "with --forward-to: "+portMapUsage)
	f.UintSliceVar(&zones, "zones", nil, "conntrack zones to export (default: those the port's flows use)")
	f.StringSliceVar(&req.ConntrackAddresses, "addresses", nil, "export only conntrack entries with an address in these prefixes (the workload's)")
	f.BoolVar(&req.Refresh, "refresh", false, "take a new snapshot after an earlier export")
	return cmd
}

func (c *cli) migrateImportCmd() *cobra.Command {
	var (
		file  string
		ports map[string]string
	)
	cmd := &cobra.Command{
		Use:   "import ID --bundle FILE",
		Short: "On the destination: install the bundle's flows (in software until reoffload) and conntrack entries",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageErrorf("migrate import needs --bundle FILE")
			}
			b, err := c.readBundle(file)
			if err != nil {
				return err
			}
			mc, err := c.migrationClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := mc.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: args[0], Bundle: b, PortMap: ports})
			if err != nil {
				return rpcError("import migration", err)
			}
			return c.show(resp, func(w io.Writer) { fmt.Fprintln(w, importLine(resp)) })
		},
	}
	cmd.Flags().StringVar(&file, "bundle", "", "bundle file from 'migrate export --out' (- for stdin)")
	cmd.Flags().StringToStringVar(&ports, "port-map", nil, portMapUsage)
	return cmd
}

// migrateStepCmd is reoffload, commit or abort: an ID and nothing else.
func (c *cli) migrateStepCmd(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			mc, err := c.migrationClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			id := args[0]
			switch name {
			case "reoffload":
				resp, err := mc.ReoffloadMigration(ctx, &v1.ReoffloadMigrationRequest{MigrationId: id})
				if err != nil {
					return rpcError("reoffload migration", err)
				}
				return c.show(resp, func(w io.Writer) { renderPlacements(w, resp.GetFlows()) })
			case "commit":
				resp, err := mc.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: id})
				if err != nil {
					return rpcError("commit migration", err)
				}
				return c.show(resp, func(w io.Writer) { fmt.Fprintln(w, commitLine(resp)) })
			default:
				resp, err := mc.AbortMigration(ctx, &v1.AbortMigrationRequest{MigrationId: id})
				if err != nil {
					return rpcError("abort migration", err)
				}
				if err := c.show(resp, func(w io.Writer) { fmt.Fprintln(w, abortLine(resp)) }); err != nil {
					return err
				}
				if n := len(resp.GetNotRestored()); n > 0 {
					return failed("abort migration: %d flows that ran in hardware before are in software now: %s", n, strings.Join(resp.GetNotRestored(), ", "))
				}
				return nil
			}
		},
	}
}

func (c *cli) migrateGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one migration's state on this node",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			mc, err := c.migrationClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := mc.GetMigration(ctx, &v1.GetMigrationRequest{MigrationId: args[0]})
			if err != nil {
				return rpcError("get migration", err)
			}
			return c.show(resp.GetMigration(), func(w io.Writer) { renderMigrations(w, []*v1.Migration{resp.GetMigration()}) })
		},
	}
}

func (c *cli) migrateListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the migrations this node remembers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mc, err := c.migrationClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := mc.ListMigrations(ctx, &v1.ListMigrationsRequest{})
			if err != nil {
				return rpcError("list migrations", err)
			}
			return c.show(resp, func(w io.Writer) { renderMigrations(w, resp.GetMigrations()) })
		},
	}
}

// show prints m as JSON or YAML, or calls table.
func (c *cli) show(m proto.Message, table func(io.Writer)) error {
	if c.output != "table" {
		return printMessage(c.stdout, c.output, m)
	}
	table(c.stdout)
	return nil
}

// writeBundle writes the binary bundle; "-" is stdout.
func (c *cli) writeBundle(path string, b *v1.MigrationBundle) error {
	data, err := proto.Marshal(b)
	if err != nil {
		return failed("encode bundle: %v", err)
	}
	if path == "-" {
		_, err = c.stdout.Write(data)
	} else {
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		return failed("write bundle: %v", err)
	}
	return nil
}

// readBundle reads a binary bundle; "-" is stdin.
func (c *cli) readBundle(path string) (*v1.MigrationBundle, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(c.stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usageErrorf("read bundle: %v", err)
	}
	var b v1.MigrationBundle
	if err := proto.Unmarshal(data, &b); err != nil || b.GetVersion() == "" {
		return nil, usageErrorf("read bundle %s: not a bundle written by 'offloadctl migrate export --out'", path)
	}
	return &b, nil
}

func (c *cli) migrateRunCmd() *cobra.Command {
	var (
		to, port, forwardPeer, hook string
		relay                       bool
		ports                       map[string]string
	)
	cmd := &cobra.Command{
		Use:   "run ID --port PORT --to ADDR",
		Short: "Run the whole handoff from this daemon (source) to the daemon at ADDR, aborting both on failure",
		Long: "Run prepare (destination), drain, export (source), import (destination), [--exec], reoffload (destination)\n" +
			"and commit (source, then destination). When a step fails, abort runs on both daemons and the command\n" +
			"exits 1. --exec runs a shell command between import and reoffload, where the orchestrator moves the VM\n" +
			"and attaches the VF; it sees OFFLOADD_MIGRATION_ID, OFFLOADD_MIGRATION_PORT (destination representor),\n" +
			"OFFLOADD_MIGRATION_SOURCE_PORT and OFFLOADD_MIGRATION_VF_PCI.",
		Args: oneID,
	}
	vf := addVFFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if port == "" || to == "" {
			return usageErrorf("migrate run needs --port and --to")
		}
		src, err := c.migrationClient()
		if err != nil {
			return err
		}
		conn, err := c.dial(to)
		if err != nil {
			return err
		}
		defer conn.Close()
		r := &runner{c: c, cmd: cmd, id: args[0], src: src, dst: v1.NewMigrationServiceClient(conn), out: map[string]json.RawMessage{}}
		prep := &v1.PrepareMigrationResponse{}
		steps := []struct {
			name string
			fn   func(ctx context.Context) (proto.Message, string, error)
		}{
			{"prepare", func(ctx context.Context) (proto.Message, string, error) {
				resp, err := r.dst.PrepareMigration(ctx, &v1.PrepareMigrationRequest{MigrationId: r.id, SourcePort: port, Vf: vf.settings(), PortMap: ports})
				if resp != nil {
					prep = resp
				}
				return resp, "destination: " + prepareLine(resp), err
			}},
			{"drain", func(ctx context.Context) (proto.Message, string, error) {
				resp, err := r.src.DrainMigration(ctx, &v1.DrainMigrationRequest{MigrationId: r.id, Port: port})
				return resp, "source: " + drainLine(port, resp), err
			}},
			{"export", func(ctx context.Context) (proto.Message, string, error) {
				req := &v1.ExportMigrationRequest{MigrationId: r.id}
				if forwardPeer != "" && !relay {
					req.ForwardTo, req.PortMap = forwardPeer, ports
				}
				resp, err := r.src.ExportMigration(ctx, req)
				if err != nil {
					return resp, "", err
				}
				line := "source: " + bundleLine(resp.GetBundle())
				if resp.GetForwarded() == nil {
					imp, err := r.dst.ImportMigration(ctx, &v1.ImportMigrationRequest{MigrationId: r.id, Bundle: resp.GetBundle(), PortMap: ports})
					if err != nil {
						return resp, line, fmt.Errorf("import: %w", err)
					}
					resp.Forwarded = imp
				}
				return resp, line + "\ndestination: imported " + importLine(resp.GetForwarded()), nil
			}},
			{"exec", func(ctx context.Context) (proto.Message, string, error) {
				if hook == "" {
					return nil, "", nil
				}
				sh := exec.CommandContext(cmd.Context(), "sh", "-c", hook)
				sh.Stdout, sh.Stderr = c.stderr, c.stderr
				sh.Env = append(os.Environ(), "OFFLOADD_MIGRATION_ID="+r.id, "OFFLOADD_MIGRATION_PORT="+prep.GetPort(),
					"OFFLOADD_MIGRATION_SOURCE_PORT="+port, "OFFLOADD_MIGRATION_VF_PCI="+prep.GetVf().GetPciAddress())
				if err := sh.Run(); err != nil {
					return nil, "", fmt.Errorf("--exec %q: %w", hook, err)
				}
				return nil, "exec: " + hook, nil
			}},
			{"reoffload", func(ctx context.Context) (proto.Message, string, error) {
				resp, err := r.dst.ReoffloadMigration(ctx, &v1.ReoffloadMigrationRequest{MigrationId: r.id})
				return resp, fmt.Sprintf("destination: %d flows in hardware, %d in software", resp.GetHardware(), resp.GetSoftware()), err
			}},
			{"commit", func(ctx context.Context) (proto.Message, string, error) {
				resp, err := r.src.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: r.id})
				return resp, "source: " + commitLine(resp), err
			}},
		}
		for _, s := range steps {
			err := r.step(s.name, s.fn)
			switch {
			case err == nil:
			case s.name == "commit":
				// The workload runs at the destination now: finish, do not undo.
				return failed("migration %s: commit on the source failed: %s; the destination holds the workload, "+
					"repeat 'offloadctl migrate commit %s' on the source", r.id, errorText(err), r.id)
			default:
				return r.abort(s.name, err)
			}
		}
		// The destination's commit only ends its ability to abort; the
		// migration is done whatever it answers.
		if err := r.step("commit-destination", func(ctx context.Context) (proto.Message, string, error) {
			resp, err := r.dst.CommitMigration(ctx, &v1.CommitMigrationRequest{MigrationId: r.id})
			return resp, "destination: committed", err
		}); err != nil {
			fmt.Fprintf(c.stderr, "offloadctl: commit on the destination: %v\n", err)
		}
		return r.finish()
	}
	f := cmd.Flags()
	f.StringVar(&port, "port", "", "the workload's port on this (source) daemon")
	f.StringVar(&to, "to", "", "gRPC address of the destination daemon as offloadctl reaches it (host:port, unix:PATH)")
	f.StringVar(&forwardPeer, "forward-peer", "", "the destination's name among the source daemon's peers: the source sends the bundle itself (default: offloadctl carries it)")
	f.BoolVar(&relay, "relay", false, "carry the bundle through offloadctl even with --forward-peer")
	f.StringVar(&hook, "exec", "", "shell command to run between import and reoffload (move the VM, attach the VF)")
	f.StringToStringVar(&ports, "port-map", nil, portMapUsage)
	return cmd
}

// runner runs the steps of "migrate run" and collects their answers.
type runner struct {
	c        *cli
	cmd      *cobra.Command
	id       string
	src, dst v1.MigrationServiceClient
	out      map[string]json.RawMessage
}

func (r *runner) step(name string, fn func(ctx context.Context) (proto.Message, string, error)) error {
	start := time.Now()
	ctx, cancel := r.c.rpcContext(r.cmd)
	defer cancel()
	m, line, err := fn(ctx)
	if err != nil {
		return err
	}
	if m != nil {
		b, err := jsonOptions.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode %s answer: %w", name, err)
		}
		r.out[name] = b
	}
	if r.c.output == "table" && line != "" {
		fmt.Fprintf(r.c.stdout, "%-10s %8s  %s\n", name, time.Since(start).Round(time.Millisecond), strings.ReplaceAll(line, "\n", "\n"+strings.Repeat(" ", 21)))
	}
	return nil
}

// abort rolls both daemons back after step failed with err.
func (r *runner) abort(step string, err error) error {
	fmt.Fprintf(r.c.stderr, "offloadctl: migration %s: %s failed: %v; aborting on both nodes\n", r.id, step, oneLine(errorText(err)))
	var errs []string
	for _, side := range []struct {
		name string
		mc   v1.MigrationServiceClient
	}{{"destination", r.dst}, {"source", r.src}} {
		ctx, cancel := r.c.rpcContext(r.cmd)
		resp, aerr := side.mc.AbortMigration(ctx, &v1.AbortMigrationRequest{MigrationId: r.id})
		cancel()
		if aerr != nil {
			errs = append(errs, fmt.Sprintf("abort on the %s: %s", side.name, errorText(aerr)))
			continue
		}
		fmt.Fprintf(r.c.stderr, "offloadctl: %s: %s\n", side.name, abortLine(resp))
	}
	if len(errs) > 0 {
		return failed("migration %s: %s failed: %s; %s", r.id, step, errorText(err), strings.Join(errs, "; "))
	}
	return failed("migration %s: %s failed and was rolled back on both nodes: %s", r.id, step, errorText(err))
}

func (r *runner) finish() error {
	if r.c.output == "table" {
		fmt.Fprintf(r.c.stdout, "migration %s done\n", r.id)
		return nil
	}
	keys := make([]string, 0, len(r.out))
	for k := range r.out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%s", k, r.out[k])
	}
	b.WriteString("}")
	var pretty json.RawMessage = []byte(b.String())
	data, err := json.MarshalIndent(pretty, "", "  ")
	if err != nil {
		return failed("encode answers: %v", err)
	}
	return printJSON(r.c.stdout, r.c.output, data)
}

// errorText is an RPC error as "Code: message", other errors as they are.
func errorText(err error) string {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.err.Error()
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}

func prepareLine(r *v1.PrepareMigrationResponse) string {
	s := "ready on port " + r.GetPort()
	if vf := r.GetVf(); vf != nil {
		s += fmt.Sprintf(" (VF %d, %s", vf.GetIndex(), orDash(vf.GetPciAddress()))
		if vf.GetNetdev() != "" {
			s += ", netdev " + vf.GetNetdev()
		}
		s += ")"
	}
	if n := len(r.GetFlows()); n > 0 {
		s += fmt.Sprintf("; %d flows pre-installed in software", n)
	}
	return s
}

func drainLine(port string, r *v1.DrainMigrationResponse) string {
	return fmt.Sprintf("port %s drained: %d flows in software (%d moved from hardware, %d entering at other ports held); none left in hardware",
		port, r.GetFlows(), r.GetMoved(), r.GetHeld())
}

func bundleLine(b *v1.MigrationBundle) string {
	var content v1.MigrationBundleContent
	if err := proto.Unmarshal(b.GetContent(), &content); err != nil {
		return fmt.Sprintf("bundle version %s, %d bytes (content unreadable: %v)", b.GetVersion(), len(b.GetContent()), err)
	}
	sum := sha256.Sum256(b.GetContent())
	check := "sha256 " + hex.EncodeToString(sum[:6])
	if !strings.HasPrefix(hex.EncodeToString(b.GetSha256()), hex.EncodeToString(sum[:6])) {
		check = "CHECKSUM MISMATCH"
	}
	zones := make([]string, len(content.GetConntrackZones()))
	for i, z := range content.GetConntrackZones() {
		zones[i] = fmt.Sprint(z)
	}
	return fmt.Sprintf("bundle %s serial %d from %s port %s: %d flows, %d conntrack entries (zones %s), %d bytes, %s",
		b.GetVersion(), content.GetSerial(), orDash(content.GetSourceNode()), content.GetSourcePort(), len(content.GetFlows()),
		len(content.GetConntrack()), orDash(strings.Join(zones, ",")), len(b.GetContent()), check)
}

func importLine(r *v1.ImportMigrationResponse) string {
	return fmt.Sprintf("serial %d: flows %d created, %d updated, %d unchanged, %d removed; conntrack %d created, %d updated",
		r.GetSerial(), r.GetFlowsCreated(), r.GetFlowsUpdated(), r.GetFlowsUnchanged(), r.GetFlowsRemoved(),
		r.GetConntrackCreated(), r.GetConntrackUpdated())
}

func commitLine(r *v1.CommitMigrationResponse) string {
	s := fmt.Sprintf("committed: %d flows and %d conntrack entries removed", r.GetFlowsRemoved(), r.GetConntrackRemoved())
	if r.GetVfReleased() {
		s += ", VF released"
	}
	return s
}

func abortLine(r *v1.AbortMigrationResponse) string {
	var parts []string
	if n := r.GetFlowsRemoved(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d flows removed", n))
	}
	if n := len(r.GetFlows()); n > 0 {
		hw := 0
		for _, p := range r.GetFlows() {
			if p.GetState() == v1.FlowState_FLOW_STATE_HARDWARE {
				hw++
			}
		}
		parts = append(parts, fmt.Sprintf("%d flows back (%d in hardware)", n, hw))
	}
	if n := r.GetConntrackRemoved() + r.GetConntrackRestored(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d conntrack entries removed, %d restored", r.GetConntrackRemoved(), r.GetConntrackRestored()))
	}
	if r.GetVfReleased() {
		parts = append(parts, "VF released")
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to undo")
	}
	s := "aborted: " + strings.Join(parts, ", ")
	if n := len(r.GetNotRestored()); n > 0 {
		s += fmt.Sprintf("; %d flows not back in hardware: %s", n, strings.Join(r.GetNotRestored(), ", "))
	}
	return s
}

// renderPlacements prints each flow's placement, then a summary.
func renderPlacements(w io.Writer, ps []*v1.FlowPlacement) {
	tw := newTable(w)
	row(tw, "ID", "STATE", "GEN", "REASON")
	byState := map[v1.FlowState]int{}
	for _, p := range ps {
		byState[p.GetState()]++
		row(tw, p.GetId(), enumWord(p.GetState()), count(p.GetGeneration()), firstReason(p.GetReasons(), reasonWidth))
	}
	tw.Flush()
	fmt.Fprintln(w, summary(len(ps), byState))
}

func renderMigrations(w io.Writer, ms []*v1.Migration) {
	tw := newTable(w)
	row(tw, "ID", "ROLE", "STEP", "PORT", "SOURCE-PORT", "VF", "FLOWS", "CONNS", "UPDATED")
	for _, m := range ms {
		vf := ""
		if m.GetVf() != nil {
			vf = m.GetVf().GetPciAddress()
		}
		row(tw, m.GetId(), enumWord(m.GetRole()), enumWord(m.GetStep()), m.GetPort(), m.GetSourcePort(), vf,
			count(uint64(m.GetFlows())), count(uint64(m.GetConntrackEntries())), formatTime(m.GetUpdated()))
	}
	tw.Flush()
}
