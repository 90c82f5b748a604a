package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/offloadd/offloadd/api/flowfile"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/api/tcsyntax"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Defaults.
const (
	defaultSocket = "/run/offloadd/offloadd.sock"
	socketEnv     = "OFFLOADD_SOCKET"
	// maxMsgSize matches the daemon's limit: a 10,000-flow batch fits.
	maxMsgSize = 64 << 20
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries an exit code; msg (if any) is printed to stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failed is exit status 1 with a message.
func failed(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

// rpcError reports a failed RPC as "op: Code: message".
func rpcError(op string, err error) error {
	st := status.Convert(err)
	return failed("%s: %s: %s", op, st.Code(), st.Message())
}

// cli holds the global flags, the I/O streams and the connection.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	socket  string
	addr    string
	output  string
	timeout time.Duration
	// tls is how TCP connections authenticate (--cert, --key, --ca, --server-name, --insecure).
	tls tlsFlags
	// cfgErr is a config file that could not be read, reported before any command runs.
	cfgErr error

	conn *grpc.ClientConn
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := c.rootCmd(getenv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if c.conn != nil {
		c.conn.Close()
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintf(stderr, "offloadctl: %v\n", ee.err)
		if ee.code == exitUsage {
			fmt.Fprintln(stderr, "Run 'offloadctl --help' for usage.")
		}
		return ee.code
	}
	// Anything cobra reports itself (unknown command, bad arguments) is usage.
	fmt.Fprintf(stderr, "offloadctl: %v\nRun 'offloadctl --help' for usage.\n", err)
	return exitUsage
}

func (c *cli) rootCmd(getenv func(string) string) *cobra.Command {
	file, err := loadConfig(getenv)
	c.cfgErr = err
	sock := getenv(socketEnv)
	if sock == "" {
		sock = file.Socket
	}
	if sock == "" {
		sock = defaultSocket
	}
	root := &cobra.Command{
		Use:           "offloadctl",
		Short:         "Talk to offloadd, the SmartNIC offload manager",
		Long:          "offloadctl shows where offloadd placed each flow (NIC hardware or the kernel's software path) and why, and installs, explains, deletes and watches flows.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if c.cfgErr != nil {
				return usageErrorf("%v", c.cfgErr)
			}
			switch c.output {
			case "table", "json", "yaml":
			case "tc":
				// Only flows print as tc commands.
				if p := cmd.CommandPath(); p != "offloadctl flows list" && p != "offloadctl flows get" {
					return usageErrorf("-o tc: only flows list and flows get print tc commands")
				}
			default:
				return usageErrorf("-o %q: want table, json, yaml or tc", c.output)
			}
			if c.timeout <= 0 {
				return usageErrorf("--timeout must be positive")
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitUsage, err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&c.socket, "socket", sock, "unix socket of offloadd (env "+socketEnv+")")
	pf.StringVar(&c.addr, "addr", file.Addr, "host:port of offloadd over TCP (mTLS), instead of --socket")
	c.tls.addFlags(pf, file)
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table, json, yaml, or tc (flows list and get)")
	pf.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of each request (not of flows watch)")
	root.AddCommand(c.nodeCmd(), c.portsCmd(), c.flowsCmd(), c.migrateCmd(), c.traceCmd(), c.vfsCmd())
	return root
}

// client connects lazily; the first RPC reports an unreachable daemon.
func (c *cli) client() (*grpc.ClientConn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	target := "unix:" + c.socket
	if c.addr != "" {
		target = c.addr
	}
	conn, err := c.dial(target)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

// dial connects to a daemon: a unix socket as is (the daemon knows the
// caller by its uid), a TCP address with mTLS (or plaintext with --insecure).
func (c *cli) dial(target string) (*grpc.ClientConn, error) {
	creds, err := c.tls.credentials(target)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)))
	if err != nil {
		return nil, usageErrorf("connect to %s: %v", target, err)
	}
	return conn, nil
}

func (c *cli) flowClient() (v1.FlowServiceClient, error) {
	conn, err := c.client()
	if err != nil {
		return nil, err
	}
	return v1.NewFlowServiceClient(conn), nil
}

func (c *cli) nodeClient() (v1.NodeServiceClient, error) {
	conn, err := c.client()
	if err != nil {
		return nil, err
	}
	return v1.NewNodeServiceClient(conn), nil
}

// rpcContext bounds one request by --timeout.
func (c *cli) rpcContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), c.timeout)
}

// jsonOptions print field names as in the .proto and in flow files.
var jsonOptions = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}

// printMessage prints m as JSON or YAML.
func printMessage(w io.Writer, format string, m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return printJSON(w, format, b)
}

// printJSON prints JSON as is, or converted to YAML.
func printJSON(w io.Writer, format string, b []byte) error {
	if format == "yaml" {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return fmt.Errorf("convert to YAML: %w", err)
		}
		_, err = w.Write(y)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", b)
	return err
}

// flowSource is a flow file that can be read more than once, one flow at
// a time: the named file, or stdin spooled to a temporary file.
type flowSource struct {
	name  string
	path  string
	spool bool
	// tc says the file holds tc filter commands (api/tcsyntax), not YAML or JSON.
	tc bool
}

// openFlows opens a flow file; "-" is stdin, copied to a temporary file
// so that it can be parsed whole before anything is sent.
func (c *cli) openFlows(path string) (*flowSource, error) {
	if path != "-" {
		return &flowSource{name: path, path: path}, nil
	}
	f, err := os.CreateTemp("", "offloadctl-flows-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("spool stdin: %w", err)
	}
	src := &flowSource{name: "stdin", path: f.Name(), spool: true}
	_, err = io.Copy(f, c.stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		src.close()
		return nil, fmt.Errorf("spool stdin to %s: %w", f.Name(), err)
	}
	return src, nil
}

func (s *flowSource) close() {
	if s.spool {
		_ = os.Remove(s.path)
	}
}

// each reads the flows in batches of n (0: one at a time, nothing kept)
// and calls fn with each; it returns how many flows were read.
func (s *flowSource) each(n int, fn func([]*v1.Flow) error) (int, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return 0, fmt.Errorf("open flow file: %w", err)
	}
	defer f.Close()
	if s.tc {
		flows, err := readTC(f, s.name)
		if err != nil {
			return 0, err
		}
		total := len(flows)
		for len(flows) > 0 && n > 0 {
			k := min(n, len(flows))
			if err := fn(flows[:k]); err != nil {
				return 0, err
			}
			flows = flows[k:]
		}
		return total, nil
	}
	d := flowfile.NewDecoder(f)
	var batch []*v1.Flow
	total := 0
	for {
		fl, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return total, fmt.Errorf("%s: %w", s.name, err)
		}
		total++
		if n == 0 {
			continue
		}
		batch = append(batch, fl)
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return total, err
			}
			batch = nil
		}
	}
	if len(batch) > 0 {
		return total, fn(batch)
	}
	return total, nil
}

// readTC reads tc filter commands (add or replace) as flows.
func readTC(r io.Reader, name string) ([]*v1.Flow, error) {
	rules, err := tcsyntax.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s:\n%w", name, err)
	}
	flows := make([]*v1.Flow, 0, len(rules))
	for _, rl := range rules {
		if rl.Op == tcsyntax.OpDelete {
			return nil, fmt.Errorf("%s: line %d: tc filter del: apply creates and replaces flows; remove flows with offloadctl flows delete %s", name, rl.Line, rl.Flow.GetId())
		}
		flows = append(flows, rl.Flow)
	}
	return flows, nil
}

// openTC opens a file of tc filter commands; "-" is stdin.
func (c *cli) openTC(path string) (io.ReadCloser, string, error) {
	if path == "-" {
		return io.NopCloser(c.stdin), "stdin", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", usageErrorf("open tc file: %v", err)
	}
	return f, path, nil
}

// readTCFlows reads the flows of a file of tc filter commands.
func (c *cli) readTCFlows(path string) ([]*v1.Flow, error) {
	r, name, err := c.openTC(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	flows, err := readTC(r, name)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return flows, nil
}

// readTCIDs reads the flow ids of every rule (add, replace or del) of a
// file of tc filter commands.
func (c *cli) readTCIDs(path string) ([]string, error) {
	r, name, err := c.openTC(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rules, err := tcsyntax.Parse(r)
	if err != nil {
		return nil, usageErrorf("%s:\n%v", name, err)
	}
	ids := make([]string, len(rules))
	for i, rl := range rules {
		ids[i] = rl.Flow.GetId()
	}
	return ids, nil
}

// readFlows reads a flow file; "-" is stdin.
func (c *cli) readFlows(path string) ([]*v1.Flow, error) {
	var (
		flows []*v1.Flow
		err   error
	)
	if path == "-" {
		flows, err = flowfile.Read(c.stdin, "stdin")
	} else {
		flows, err = flowfile.ReadFile(path)
	}
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return flows, nil
}

func (c *cli) nodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "node",
		Short: "Show the node, its NICs and what each offloads",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := c.nodeClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := nc.GetNode(ctx, &v1.GetNodeRequest{})
			if err != nil {
				return rpcError("get node", err)
			}
			if c.output != "table" {
				return printMessage(c.stdout, c.output, resp.GetNode())
			}
			renderNode(c.stdout, resp.GetNode())
			return nil
		},
	}
}

func (c *cli) portsCmd() *cobra.Command {
	var device string
	cmd := &cobra.Command{
		Use:   "ports",
		Short: "List the ports of every NIC: uplinks, representors, VFs, tunnels",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := c.nodeClient()
			if err != nil {
				return err
			}
			ctx, cancel := c.rpcContext(cmd)
			defer cancel()
			resp, err := nc.ListPorts(ctx, &v1.ListPortsRequest{Device: device})
			if err != nil {
				return rpcError("list ports", err)
			}
			if c.output != "table" {
				return printMessage(c.stdout, c.output, resp)
			}
			renderPorts(c.stdout, resp.GetPorts())
			return nil
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "only the ports of this NIC")
	return cmd
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// stateNames are the --state values.
var stateNames = map[string]v1.FlowState{
	"pending":  v1.FlowState_FLOW_STATE_PENDING,
	"hardware": v1.FlowState_FLOW_STATE_HARDWARE,
	"software": v1.FlowState_FLOW_STATE_SOFTWARE,
	"failed":   v1.FlowState_FLOW_STATE_FAILED,
}

func parseState(s string) (v1.FlowState, error) {
	if st, ok := stateNames[strings.ToLower(s)]; ok {
		return st, nil
	}
	return 0, usageErrorf("--state %q: want pending, hardware, software or failed", s)
}
