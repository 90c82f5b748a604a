package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/offloadd/offloadd/api"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeDatapath records InjectPacket requests and answers by verdict: a
// frame whose first byte is 0xdd is dropped, everything else forwarded.
type fakeDatapath struct {
	v1.UnimplementedDatapathServiceServer
	mu   sync.Mutex
	reqs []*v1.InjectPacketRequest
}

func (f *fakeDatapath) InjectPacket(_ context.Context, req *v1.InjectPacketRequest) (*v1.InjectPacketResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, proto.Clone(req).(*v1.InjectPacketRequest))
	f.mu.Unlock()
	if req.GetSpec() == "bad" {
		return nil, status.Error(codes.InvalidArgument, `packet spec "bad": unknown keyword`)
	}
	v := v1.PacketVerdict_PACKET_VERDICT_FORWARDED
	if len(req.GetFrame()) > 0 && req.GetFrame()[0] == 0xdd {
		v = v1.PacketVerdict_PACKET_VERDICT_DROPPED
	}
	return &v1.InjectPacketResponse{Trace: &v1.PacketTrace{InPort: req.GetPort(), Verdict: v},
		Text: "trace of " + req.GetPort() + "\n"}, nil
}

func (f *fakeDatapath) GetDatapathStats(_ context.Context, req *v1.GetDatapathStatsRequest) (*v1.GetDatapathStatsResponse, error) {
	return &v1.GetDatapathStatsResponse{Ports: []*v1.PortDatapathStats{
		{Port: "p0", Device: "p0", RxPackets: 3, RxBytes: 300, TxPackets: 1, TxBytes: 100},
		{Port: "pf0vf0", Device: "p0", RxPackets: 2, Drops: 1, Upcalls: 1},
	}}, nil
}

func serveDatapath(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "octl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	gs := grpc.NewServer()
	register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return sock
}

func writePcap(t *testing.T, frames ...[]byte) string {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	require.NoError(t, w.WriteFileHeader(65535, layers.LinkTypeEthernet))
	for _, f := range frames {
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(f), Length: len(f)}, f))
	}
	p := filepath.Join(t.TempDir(), "in.pcap")
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o600))
	return p
}

func TestTraceCommand(t *testing.T) {
	fd := &fakeDatapath{}
	sock := serveDatapath(t, func(gs *grpc.Server) { v1.RegisterDatapathServiceServer(gs, fd) })
	ctx := context.Background()
	env := map[string]string{socketEnv: sock}

	r := runCLI(t, ctx, env, "", "trace", "--port", "pf0vf0", "tcp,dst=10.0.0.2,dport=80")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "trace of pf0vf0\n", r.stdout)
	require.Len(t, fd.reqs, 1)
	assert.Equal(t, "tcp,dst=10.0.0.2,dport=80", fd.reqs[0].GetSpec())

	r = runCLI(t, ctx, env, "", "trace", "--port", "p0", "--frame", "02:42:0f:00:00:00")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, []byte{2, 0x42, 0x0f, 0, 0, 0}, fd.reqs[1].GetFrame())

	// A pcap: every packet in order, then a summary.
	a, b := bytes.Repeat([]byte{0xaa}, 60), bytes.Repeat([]byte{0xdd}, 64)
	pc := writePcap(t, a, b, a)
	r = runCLI(t, ctx, env, "", "trace", "--port", "p0", "--pcap", pc)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "=== packet 1 of 3\ntrace of p0\n\n=== packet 2 of 3\ntrace of p0\n\n=== packet 3 of 3\ntrace of p0\n\n"+
		"3 packets: 1 dropped, 2 forwarded\n", r.stdout)
	require.Len(t, fd.reqs, 5)
	assert.Equal(t, b, fd.reqs[3].GetFrame())

	// JSON: one message, or a list for a pcap.
	r = runCLI(t, ctx, env, "", "trace", "--port", "pf0vf0", "-o", "json", "udp")
	require.Equal(t, exitOK, r.code, r.stderr)
	var one map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &one))
	assert.Equal(t, "PACKET_VERDICT_FORWARDED", one["trace"].(map[string]any)["verdict"])
	r = runCLI(t, ctx, env, "", "trace", "--port", "p0", "-o", "json", "--pcap", pc)
	require.Equal(t, exitOK, r.code, r.stderr)
	var list []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	require.Len(t, list, 3)
	assert.Equal(t, "PACKET_VERDICT_DROPPED", list[1]["trace"].(map[string]any)["verdict"])
	r = runCLI(t, ctx, env, "", "trace", "--port", "p0", "-o", "yaml", "--pcap", pc)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "- text: |")

	// Stats.
	r = runCLI(t, ctx, env, "", "trace", "stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "PORT    DEVICE  RX PKTS  RX BYTES  TX PKTS  TX BYTES  DROPS  UPCALLS  DELIVERED\n"+
		"p0      p0      3        300       1        100       0      0        0\n"+
		"pf0vf0  p0      2        0         0        0         1      1        0\n", r.stdout)
}

func TestTraceUsageAndErrors(t *testing.T) {
	fd := &fakeDatapath{}
	sock := serveDatapath(t, func(gs *grpc.Server) { v1.RegisterDatapathServiceServer(gs, fd) })
	env := map[string]string{socketEnv: sock}
	ctx := context.Background()
	notPcap := filepath.Join(t.TempDir(), "x.pcap")
	require.NoError(t, os.WriteFile(notPcap, []byte("definitely not a pcap"), 0o600))
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"trace", "--port", "p0"}, exitUsage, "trace needs a packet"},
		{[]string{"trace", "tcp"}, exitUsage, "--port is required"},
		{[]string{"trace", "--port", "p0", "tcp", "udp"}, exitUsage, `unexpected argument "udp"`},
		{[]string{"trace", "--port", "p0", "tcp", "--frame", "00"}, exitUsage, "give one of"},
		{[]string{"trace", "--port", "p0", "--frame", "zz"}, exitUsage, "--frame"},
		{[]string{"trace", "--port", "p0", "--pcap", "/nonexistent.pcap"}, exitUsage, "read pcap"},
		{[]string{"trace", "--port", "p0", "--pcap", notPcap}, exitUsage, "read pcap"},
		{[]string{"trace", "--port", "p0", "bad"}, exitFailure, "inject packet: InvalidArgument: packet spec \"bad\""},
	} {
		r := runCLI(t, ctx, env, "", tc.args...)
		assert.Equal(t, tc.code, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg, "%v", tc.args)
	}
}

// TestTraceAgainstEmulatedDatapath runs the command against the real
// DatapathService over an emulated NIC.
func TestTraceAgainstEmulatedDatapath(t *testing.T) {
	dev, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	ssh := &flow.Flow{ID: "acl-ssh", Port: "pf0vf0", Priority: 10, Match: flow.Match{EthType: flow.EthTypeIPv4,
		IPProto: flow.ProtoTCP, DstPort: flow.Masked16{Value: 22, Mask: 0xffff}}, Actions: []flow.Action{{Kind: flow.ActDrop}}}
	for _, err := range dev.Program(context.Background(), flow.Hardware, []nic.Op{{Kind: nic.OpAdd, Flow: ssh}}) {
		require.NoError(t, err)
	}
	dp, err := datapath.New(dev, datapath.Config{})
	require.NoError(t, err)
	sock := serveDatapath(t, api.NewDatapathService(map[string]api.Datapath{"p0": dp}).Register)
	env := map[string]string{socketEnv: sock}

	r := runCLI(t, context.Background(), env, "", "trace", "--port", "pf0vf0", "tcp,src=10.0.0.10,dst=10.0.1.5,dport=22")
	require.Equal(t, exitOK, r.code, r.stderr)
	for _, want := range []string{"pf0vf0 ingress", "hardware pf0vf0 chain 0", "prio 10 acl-ssh: match", "drop: flow acl-ssh drops it",
		"Verdict: dropped in hardware: flow acl-ssh drops it (fully offloaded)"} {
		assert.Contains(t, r.stdout, want)
	}
	r = runCLI(t, context.Background(), env, "", "trace", "--port", "pf0vf0", "udp")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.True(t, strings.Contains(r.stdout, "Verdict: upcall in software"), r.stdout)
	r = runCLI(t, context.Background(), env, "", "trace", "stats", "--port", "pf0vf0")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "pf0vf0  p0      2        ")

	// Real NICs have no datapath: Unimplemented, with the reason.
	none := serveDatapath(t, api.NewDatapathService(nil).Register)
	r = runCLI(t, context.Background(), map[string]string{socketEnv: none}, "", "trace", "--port", "p0", "udp")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "Unimplemented: the datapath service needs the emulated backend")
}
