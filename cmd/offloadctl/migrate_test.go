package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// fakeMigrations is one daemon's MigrationService: it records every call
// in a log shared by both daemons of a test and fails the steps in fail.
type fakeMigrations struct {
	v1.UnimplementedMigrationServiceServer
	name string
	mu   *sync.Mutex
	log  *[]string
	fail map[string]error
	// imported is the last bundle ImportMigration received.
	imported *v1.ImportMigrationRequest
}

func (f *fakeMigrations) record(step string, req interface{ GetMigrationId() string }) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.log = append(*f.log, f.name+" "+step+" "+req.GetMigrationId())
	return f.fail[step]
}

func testBundle() *v1.MigrationBundle {
	content, _ := proto.Marshal(&v1.MigrationBundleContent{MigrationId: "m1", SourceNode: "n1", SourcePort: "pf0vf3", Serial: 1,
		Flows: []*v1.MigratedFlow{{Flow: &v1.Flow{Id: "a"}, Generation: 2}}, ConntrackZones: []uint32{5},
		Conntrack: []*v1.ConntrackEntry{{Zone: 5, IpProto: "tcp"}}})
	sum := sha256.Sum256(content)
	return &v1.MigrationBundle{Version: "1.0", Content: content, Sha256: sum[:]}
}

func (f *fakeMigrations) PrepareMigration(_ context.Context, req *v1.PrepareMigrationRequest) (*v1.PrepareMigrationResponse, error) {
	if err := f.record("prepare", req); err != nil {
		return nil, err
	}
	return &v1.PrepareMigrationResponse{Port: "pf0vf5", Vf: &v1.Vf{Index: 5, PciAddress: "0000:08:00.7", Representor: "pf0vf5",
		Settings: req.GetVf()}}, nil
}

func (f *fakeMigrations) DrainMigration(_ context.Context, req *v1.DrainMigrationRequest) (*v1.DrainMigrationResponse, error) {
	if err := f.record("drain", req); err != nil {
		return nil, err
	}
	return &v1.DrainMigrationResponse{Flows: 3, Moved: 2, Held: 1}, nil
}

func (f *fakeMigrations) ExportMigration(_ context.Context, req *v1.ExportMigrationRequest) (*v1.ExportMigrationResponse, error) {
	if err := f.record("export", req); err != nil {
		return nil, err
	}
	resp := &v1.ExportMigrationResponse{Bundle: testBundle()}
	if req.GetForwardTo() != "" {
		f.mu.Lock()
		*f.log = append(*f.log, f.name+" forward "+req.GetForwardTo())
		f.mu.Unlock()
		resp.Forwarded = &v1.ImportMigrationResponse{Serial: 1, FlowsCreated: 1}
	}
	return resp, nil
}

func (f *fakeMigrations) ImportMigration(_ context.Context, req *v1.ImportMigrationRequest) (*v1.ImportMigrationResponse, error) {
	if err := f.record("import", req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.imported = req
	f.mu.Unlock()
	return &v1.ImportMigrationResponse{Serial: 1, FlowsCreated: 1, ConntrackCreated: 1}, nil
}

func (f *fakeMigrations) ReoffloadMigration(_ context.Context, req *v1.ReoffloadMigrationRequest) (*v1.ReoffloadMigrationResponse, error) {
	if err := f.record("reoffload", req); err != nil {
		return nil, err
	}
	return &v1.ReoffloadMigrationResponse{Hardware: 1, Software: 1, Flows: []*v1.FlowPlacement{
		{Id: "a", State: v1.FlowState_FLOW_STATE_HARDWARE, Generation: 2},
		{Id: "b", State: v1.FlowState_FLOW_STATE_SOFTWARE, Generation: 1, Reasons: []*v1.Reason{{Code: "ct-state", Message: "+new stays in software"}}},
	}}, nil
}

func (f *fakeMigrations) CommitMigration(_ context.Context, req *v1.CommitMigrationRequest) (*v1.CommitMigrationResponse, error) {
	if err := f.record("commit", req); err != nil {
		return nil, err
	}
	return &v1.CommitMigrationResponse{FlowsRemoved: 3, ConntrackRemoved: 1, VfReleased: true}, nil
}

func (f *fakeMigrations) AbortMigration(_ context.Context, req *v1.AbortMigrationRequest) (*v1.AbortMigrationResponse, error) {
	if err := f.record("abort", req); err != nil {
		return nil, err
	}
	return &v1.AbortMigrationResponse{FlowsRemoved: 1, VfReleased: true}, nil
}

func (f *fakeMigrations) GetMigration(_ context.Context, req *v1.GetMigrationRequest) (*v1.GetMigrationResponse, error) {
	if req.GetMigrationId() != "m1" {
		return nil, status.Errorf(codes.NotFound, "get migration: migration %s: unknown migration", req.GetMigrationId())
	}
	return &v1.GetMigrationResponse{Migration: &v1.Migration{Id: "m1", Role: v1.MigrationRole_MIGRATION_ROLE_SOURCE,
		Step: v1.MigrationStep_MIGRATION_STEP_DRAINED, Port: "pf0vf3", Flows: 3}}, nil
}

func (f *fakeMigrations) ListMigrations(context.Context, *v1.ListMigrationsRequest) (*v1.ListMigrationsResponse, error) {
	return &v1.ListMigrationsResponse{Migrations: []*v1.Migration{{Id: "m1", Role: v1.MigrationRole_MIGRATION_ROLE_DESTINATION,
		Step: v1.MigrationStep_MIGRATION_STEP_IMPORTED, Port: "pf0vf5", SourcePort: "pf0vf3", Vf: &v1.Vf{PciAddress: "0000:08:00.7"}}}}, nil
}

// migrationPair serves a source and a destination on unix sockets.
func migrationPair(t *testing.T) (src, dst *fakeMigrations, srcSock, dstSock string, log func() []string) {
	t.Helper()
	var mu sync.Mutex
	var calls []string
	serveOne := func(name string) (*fakeMigrations, string) {
		dir, err := os.MkdirTemp("", "octl")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, name+".sock")
		lis, err := net.Listen("unix", sock)
		require.NoError(t, err)
		f := &fakeMigrations{name: name, mu: &mu, log: &calls, fail: map[string]error{}}
		gs := grpc.NewServer()
		v1.RegisterMigrationServiceServer(gs, f)
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
		return f, sock
	}
	src, srcSock = serveOne("src")
	dst, dstSock = serveOne("dst")
	return src, dst, srcSock, dstSock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := calls
		calls = nil
		return out
	}
}

func TestMigrateRun(t *testing.T) {
	ctx := context.Background()
	_, dst, srcSock, dstSock, log := migrationPair(t)
	marker := filepath.Join(t.TempDir(), "hook")
	r := runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "run", "m1", "--port", "pf0vf3", "--to", "unix:"+dstSock,
		"--forward-peer", "dst", "--vf-mac", "02:00:00:00:00:33", "--exec", "echo $OFFLOADD_MIGRATION_ID $OFFLOADD_MIGRATION_PORT $OFFLOADD_MIGRATION_VF_PCI > "+marker)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{
		"dst prepare m1", "src drain m1", "src export m1", "src forward dst",
		"dst reoffload m1", "src commit m1", "dst commit m1",
	}, log())
	for _, want := range []string{
		"prepare", "destination: ready on port pf0vf5 (VF 5, 0000:08:00.7)",
		"source: port pf0vf3 drained: 3 flows in software (2 moved from hardware, 1 entering at other ports held)",
		"source: bundle 1.0 serial 1 from n1 port pf0vf3: 1 flows, 1 conntrack entries (zones 5)",
		"destination: imported serial 1: flows 1 created",
		"destination: 1 flows in hardware, 1 in software",
		"source: committed: 3 flows and 1 conntrack entries removed, VF released",
		"migration m1 done",
	} {
		assert.Contains(t, r.stdout, want)
	}
	hook, err := os.ReadFile(marker)
	require.NoError(t, err)
	assert.Equal(t, "m1 pf0vf5 0000:08:00.7\n", string(hook))

	// --relay carries the bundle through offloadctl; -o json prints every answer.
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "-o", "json", "migrate", "run", "m1", "--port", "pf0vf3",
		"--to", "unix:"+dstSock, "--relay", "--port-map", "vxlan7=vxlan0")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{
		"dst prepare m1", "src drain m1", "src export m1", "dst import m1",
		"dst reoffload m1", "src commit m1", "dst commit m1",
	}, log())
	assert.Equal(t, map[string]string{"vxlan7": "vxlan0"}, dst.imported.GetPortMap())
	assert.True(t, proto.Equal(testBundle(), dst.imported.GetBundle()))
	var answers map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &answers), r.stdout)
	assert.Contains(t, answers, "reoffload")
	assert.Contains(t, answers, "commit-destination")
}

// TestMigrateRunAbortsBothSides fails each step in turn and checks that
// both daemons are told to abort and the command exits 1.
func TestMigrateRunAbortsBothSides(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		side, step string
		calls      []string
	}{
		{"dst", "prepare", []string{"dst prepare m1"}},
		{"src", "drain", []string{"dst prepare m1", "src drain m1"}},
		{"src", "export", []string{"dst prepare m1", "src drain m1", "src export m1"}},
		{"dst", "reoffload", []string{"dst prepare m1", "src drain m1", "src export m1", "src forward FWD", "dst reoffload m1"}},
	} {
		t.Run(tc.side+" "+tc.step, func(t *testing.T) {
			src, dst, srcSock, dstSock, log := migrationPair(t)
			f := src
			if tc.side == "dst" {
				f = dst
			}
			f.fail[tc.step] = status.Error(codes.FailedPrecondition, tc.step+" migration m1: no")
			r := runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "run", "m1", "--port", "pf0vf3", "--to", "unix:"+dstSock,
				"--forward-peer", "dst")
			assert.Equal(t, 1, r.code)
			want := append([]string{}, tc.calls...)
			for i, c := range want {
				want[i] = strings.Replace(c, "FWD", "dst", 1)
			}
			want = append(want, "dst abort m1", "src abort m1")
			assert.Equal(t, want, log())
			assert.Contains(t, r.stderr, tc.step+" failed and was rolled back on both nodes: FailedPrecondition: "+tc.step+" migration m1: no")
		})
	}

	t.Run("commit is repeated, not undone", func(t *testing.T) {
		src, _, srcSock, dstSock, log := migrationPair(t)
		src.fail["commit"] = status.Error(codes.Unavailable, "commit: busy")
		r := runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "run", "m1", "--port", "pf0vf3", "--to", "unix:"+dstSock)
		assert.Equal(t, 1, r.code)
		calls := log()
		assert.Equal(t, "src commit m1", calls[len(calls)-1])
		assert.Contains(t, r.stderr, "repeat 'offloadctl migrate commit m1' on the source")
	})

	t.Run("exec hook", func(t *testing.T) {
		_, _, srcSock, dstSock, log := migrationPair(t)
		r := runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "run", "m1", "--port", "pf0vf3", "--to", "unix:"+dstSock, "--exec", "exit 3")
		assert.Equal(t, 1, r.code)
		calls := log()
		assert.Equal(t, []string{"dst abort m1", "src abort m1"}, calls[len(calls)-2:])
		assert.NotContains(t, calls, "dst reoffload m1")
		assert.Contains(t, r.stderr, `--exec "exit 3"`)
	})

	t.Run("abort fails too", func(t *testing.T) {
		src, _, srcSock, dstSock, _ := migrationPair(t)
		src.fail["drain"] = status.Error(codes.Unavailable, "drain: busy")
		src.fail["abort"] = status.Error(codes.Internal, "abort: broken")
		r := runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "run", "m1", "--port", "pf0vf3", "--to", "unix:"+dstSock)
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stderr, "abort on the source: Internal: abort: broken")
	})
}

func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	_, dst, srcSock, dstSock, log := migrationPair(t)
	file := filepath.Join(t.TempDir(), "m1.bundle")

	r := runCLI(t, ctx, nil, "", "--socket", dstSock, "migrate", "prepare", "m1", "--source-port", "pf0vf3", "--vf-vlan", "100")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "ready on port pf0vf5 (VF 5, 0000:08:00.7)\n", r.stdout)
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "drain", "m1", "--port", "pf0vf3")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "export", "m1", "--out", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "bundle written to "+file)
	r = runCLI(t, ctx, nil, "", "--socket", dstSock, "migrate", "import", "m1", "--bundle", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, proto.Equal(testBundle(), dst.imported.GetBundle()), "the bundle survives the file")
	r = runCLI(t, ctx, nil, "", "--socket", dstSock, "migrate", "reoffload", "m1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "b   software  1    ct-state: +new stays in software")
	assert.Contains(t, r.stdout, "2 flows: 1 hardware, 1 software")
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "commit", "m1")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, ctx, nil, "", "--socket", dstSock, "migrate", "abort", "m1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "aborted: 1 flows removed, VF released\n", r.stdout)
	assert.Equal(t, []string{"dst prepare m1", "src drain m1", "src export m1", "dst import m1", "dst reoffload m1",
		"src commit m1", "dst abort m1"}, log())

	// The bundle through a pipe.
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "export", "m1", "--out", "-")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, ctx, nil, r.stdout, "--socket", dstSock, "migrate", "import", "m1", "--bundle", "-")
	require.Equal(t, 0, r.code, r.stderr)
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "export", "m1", "--forward-to", "node-b")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "imported at node-b: serial 1: flows 1 created")

	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "get", "m1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "m1  source  drained  pf0vf3")
	r = runCLI(t, ctx, nil, "", "--socket", srcSock, "migrate", "get", "m2")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "get migration: NotFound")
	r = runCLI(t, ctx, nil, "", "--socket", dstSock, "-o", "yaml", "migrate", "list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "step: MIGRATION_STEP_IMPORTED")
}

func TestMigrateUsage(t *testing.T) {
	ctx := context.Background()
	_, _, srcSock, _, log := migrationPair(t)
	bad := filepath.Join(t.TempDir(), "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not a bundle"), 0o600))
	for _, args := range [][]string{
		{"migrate"},
		{"migrate", "drain", "--port", "pf0vf3"},
		{"migrate", "drain", "m1"},
		{"migrate", "drain", "m1", "m2", "--port", "p"},
		{"migrate", "prepare", "m1"},
		{"migrate", "export", "m1"},
		{"migrate", "export", "m1", "--out", "x", "--zones", "70000"},
		{"migrate", "import", "m1"},
		{"migrate", "import", "m1", "--bundle", bad},
		{"migrate", "import", "m1", "--bundle", filepath.Join(t.TempDir(), "missing")},
		{"migrate", "run", "m1", "--port", "pf0vf3"},
	} {
		r := runCLI(t, ctx, nil, "", append([]string{"--socket", srcSock}, args...)...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}
	assert.Empty(t, log(), "usage errors send nothing")
}
