package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/cmd/offloadd/daemon"
)

// clientResult is what a client process reports on stdout.
type clientResult struct {
	Took time.Duration `json:"took"`
	CPU  time.Duration `json:"cpu"`
	Err  string        `json:"err,omitempty"`
}

// clientFlag starts the arguments of a client process.
const clientFlag = "-client-socket"

// clientMain runs the client process when args ask for one (separateClient
// starts the bench binary again with clientFlag first) and reports whether
// they did.
func clientMain(args []string) bool {
	if len(args) == 0 || args[0] != clientFlag {
		return false
	}
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	sock := fs.String(clientFlag[1:], "", "the daemon's socket")
	n := fs.Int("flows", 100000, "flows to apply")
	batch := fs.Int("batch", 1000, "flows per ApplyFlows batch")
	fs.IntVar(&inflight, "inflight", inflight, "batches in flight")
	check(fs.Parse(args))
	runClient(context.Background(), *sock, *n, *batch)
	return true
}

// runClient is the client process: it builds n flows and encodes the
// requests, says "ready", waits for a line on stdin, sends them over sock
// and reports a clientResult. Like a load generator it encodes before the
// clock starts, so that what it measures is the daemon's; it decodes and
// checks every answer.
func runClient(ctx context.Context, sock string, n, batch int) {
	reqs, err := encodeRequests(benchFlows(n, ""), batch)
	check(err)
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		check(fmt.Errorf("client: wait for go: %w", err))
	}
	cpu0 := cpuTime()
	took, err := sendRaw(ctx, sock, reqs, batch)
	res := clientResult{Took: took, CPU: cpuTime() - cpu0}
	if err != nil {
		res.Err = err.Error()
	}
	check(json.NewEncoder(os.Stdout).Encode(res))
}

// rawRequest is an ApplyFlowsRequest already in its wire form.
type rawRequest []byte

// encodeRequests encodes flows as ApplyFlows requests of batch flows each.
func encodeRequests(flows []*v1.Flow, batch int) ([]rawRequest, error) {
	var reqs []rawRequest
	for i := 0; i < len(flows); i += batch {
		b, err := proto.Marshal(&v1.ApplyFlowsRequest{Flows: flows[i:min(i+batch, len(flows))]})
		if err != nil {
			return nil, fmt.Errorf("encode ApplyFlows request at flow %d: %w", i, err)
		}
		reqs = append(reqs, b)
	}
	return reqs, nil
}

// rawCodec sends rawRequests as they are and decodes answers with protobuf.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(*r)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (rawCodec) Name() string { return "proto" }

// sendRaw sends pre-encoded ApplyFlows requests, inflight at a time, and
// checks that every flow was created.
func sendRaw(ctx context.Context, sock string, reqs []rawRequest, batch int) (time.Duration, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}),
			grpc.MaxCallRecvMsgSize(daemon.MaxMsgSize), grpc.MaxCallSendMsgSize(daemon.MaxMsgSize)))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	err = inFlight(len(reqs)*batch, batch, func(off int) error {
		resp := new(v1.ApplyFlowsResponse)
		if err := conn.Invoke(ctx, v1.FlowService_ApplyFlows_FullMethodName, &reqs[off/batch], resp); err != nil {
			return err
		}
		return allCreated(resp)
	})
	return time.Since(start), err
}

// separateClient applies n flows over gRPC from a client in its own
// process, as a controller would be, so that the daemon's CPU per flow is
// measured apart from the client's. Best of insertionRounds.
func separateClient(ctx context.Context, n, batch int) ([]Figure, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary: %w", err)
	}
	var best clientResult
	var bestDaemon time.Duration
	for round := range insertionRounds {
		dir, err := os.MkdirTemp("", "offloadd-bench")
		if err != nil {
			return nil, err
		}
		res, daemonCPU, err := func() (clientResult, time.Duration, error) {
			defer os.RemoveAll(dir)
			d, sock, err := startDaemon(ctx, dir, 2*n, true)
			if err != nil {
				return clientResult{}, 0, err
			}
			defer d.Shutdown(ctx)
			cmd := exec.CommandContext(ctx, exe, clientFlag, sock, "-flows", strconv.Itoa(n),
				"-batch", strconv.Itoa(batch), "-inflight", strconv.Itoa(inflight))
			cmd.Stderr = os.Stderr
			in, err := cmd.StdinPipe()
			if err != nil {
				return clientResult{}, 0, err
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				return clientResult{}, 0, err
			}
			if err := cmd.Start(); err != nil {
				return clientResult{}, 0, fmt.Errorf("start client: %w", err)
			}
			defer cmd.Wait()
			r := bufio.NewReader(out)
			if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
				return clientResult{}, 0, fmt.Errorf("client did not get ready: %q %v", line, err)
			}
			cpu0 := cpuTime()
			if _, err := in.Write([]byte("go\n")); err != nil {
				return clientResult{}, 0, err
			}
			var res clientResult
			if err := json.NewDecoder(r).Decode(&res); err != nil {
				return clientResult{}, 0, fmt.Errorf("read client result: %w", err)
			}
			daemonCPU := cpuTime() - cpu0
			if res.Err != "" {
				return clientResult{}, 0, fmt.Errorf("client: %s", res.Err)
			}
			return res, daemonCPU, nil
		}()
		if err != nil {
			return nil, fmt.Errorf("separate client round %d: %w", round, err)
		}
		if best.Took == 0 || res.Took < best.Took {
			best, bestDaemon = res, daemonCPU
		}
	}
	rate := float64(n) / best.Took.Seconds()
	return []Figure{
		{Name: "apply over gRPC, load generator in its own process", Value: rate, Unit: "flows/s",
			Note: fmt.Sprintf("best of %d; requests encoded before the clock starts, answers decoded and checked", insertionRounds)},
		{Name: "daemon CPU per flow over gRPC (client apart)", Value: us(bestDaemon, n), Unit: "µs",
			Note: fmt.Sprintf("client %.2f µs per flow on top", us(best.CPU, n))},
	}, nil
}
