package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// fakeVFs is a VfService that records requests and holds one allocation.
type fakeVFs struct {
	v1.UnimplementedVfServiceServer
	mu        sync.Mutex
	allocates []*v1.AllocateVfRequest
	lists     []*v1.ListAllocationsRequest
}

var heldVF = &v1.VfAllocation{Owner: "vm1", Pool: "openshift.io/mlx_sriov_a", Pf: "p0", PfPciAddress: "0000:08:00.0",
	VfIndex: 0, VfPciAddress: "0000:08:00.1", VfNetdev: "enp8s0f0v0", Representor: "pf0vf0",
	Settings:       &v1.VfAllocationSettings{Mac: "02:00:00:00:aa:01", Vlan: proto.Uint32(100), Qos: proto.Uint32(0), Trust: proto.Bool(false), Driver: "vfio-pci"},
	Original:       &v1.VfConfig{Mac: "02:42:0f:01:00:00", LinkState: v1.VfLinkState_VF_LINK_STATE_AUTO},
	OriginalDriver: "mlx5_core"}

func (f *fakeVFs) ListPools(context.Context, *v1.ListPoolsRequest) (*v1.ListPoolsResponse, error) {
	return &v1.ListPoolsResponse{Pools: []*v1.VfPool{
		{Name: "openshift.io/mlx_sriov_a", Prefix: "openshift.io", ResourceName: "mlx_sriov_a",
			Selectors: []string{"vendors=15b3 pfNames=p0#0-3"}, VfsTotal: 4, VfsFree: 3},
		{Name: "openshift.io/mlx_sriov_b", Prefix: "openshift.io", ResourceName: "mlx_sriov_b",
			Selectors: []string{"pfNames=p0#4-7", "drivers=vfio-pci"}, VfsTotal: 4, VfsFree: 4, NeedVhostNet: true},
	}}, nil
}

func (f *fakeVFs) AllocateVf(_ context.Context, req *v1.AllocateVfRequest) (*v1.AllocateVfResponse, error) {
	f.mu.Lock()
	f.allocates = append(f.allocates, req)
	f.mu.Unlock()
	if req.GetPool() == "openshift.io/full" {
		return nil, status.Error(codes.ResourceExhausted, "allocate vf: pool exhausted: all 4 VFs held")
	}
	al := proto.Clone(heldVF).(*v1.VfAllocation)
	al.Owner, al.Pool, al.Settings = req.GetOwner(), req.GetPool(), req.GetSettings()
	return &v1.AllocateVfResponse{Allocation: al}, nil
}

func (f *fakeVFs) ReleaseVf(_ context.Context, req *v1.ReleaseVfRequest) (*v1.ReleaseVfResponse, error) {
	if req.GetOwner() != "vm1" {
		return nil, status.Errorf(codes.NotFound, "release vf: owner %q holds no VF", req.GetOwner())
	}
	return &v1.ReleaseVfResponse{Released: heldVF}, nil
}

func (f *fakeVFs) ListAllocations(_ context.Context, req *v1.ListAllocationsRequest) (*v1.ListAllocationsResponse, error) {
	f.mu.Lock()
	f.lists = append(f.lists, req)
	f.mu.Unlock()
	if req.GetPool() == "openshift.io/mlx_sriov_b" {
		return &v1.ListAllocationsResponse{}, nil
	}
	return &v1.ListAllocationsResponse{Allocations: []*v1.VfAllocation{heldVF}}, nil
}

func serveVFs(t *testing.T) (*fakeVFs, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "octl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	f := &fakeVFs{}
	gs := grpc.NewServer()
	v1.RegisterVfServiceServer(gs, f)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return f, sock
}

func TestVFsPools(t *testing.T) {
	_, sock := serveVFs(t)
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "pools")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, ""+
		"POOL                      TOTAL  FREE  SELECTORS\n"+
		"openshift.io/mlx_sriov_a  4      3     vendors=15b3 pfNames=p0#0-3\n"+
		"openshift.io/mlx_sriov_b  4      4     pfNames=p0#4-7 | drivers=vfio-pci (vhost-net)\n", r.stdout)

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "json", "vfs", "pools")
	require.Equal(t, 0, r.code, r.stderr)
	var got struct {
		Pools []struct {
			Name     string `json:"name"`
			VfsTotal int    `json:"vfs_total"`
			VfsFree  int    `json:"vfs_free"`
		} `json:"pools"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Len(t, got.Pools, 2)
	assert.Equal(t, 3, got.Pools[0].VfsFree)
}

func TestVFsAllocate(t *testing.T) {
	f, sock := serveVFs(t)
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "allocate", "--owner", "vm1",
		"--pool", "openshift.io/mlx_sriov_a", "--mac", "02:00:00:00:aa:01", "--vlan", "100", "--trust=false",
		"--link-state", "enable", "--max-tx-rate", "1000", "--driver", "vfio-pci")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, ""+
		"OWNER  POOL                      PF  VF  PCI           NETDEV      REPRESENTOR  SETTINGS\n"+
		"vm1    openshift.io/mlx_sriov_a  p0  0   0000:08:00.1  enp8s0f0v0  pf0vf0       "+
		"mac 02:00:00:00:aa:01 vlan 100 trust off state enable min_tx_rate 0 max_tx_rate 1000 driver vfio-pci\n", r.stdout)
	require.Len(t, f.allocates, 1)
	want := &v1.AllocateVfRequest{Owner: "vm1", Pool: "openshift.io/mlx_sriov_a", Settings: &v1.VfAllocationSettings{
		Mac: "02:00:00:00:aa:01", Vlan: proto.Uint32(100), Trust: proto.Bool(false),
		LinkState: v1.VfLinkState_VF_LINK_STATE_ENABLE, MaxTxRateMbps: proto.Uint32(1000), Driver: "vfio-pci"}}
	assert.True(t, proto.Equal(want, f.allocates[0]), "%v", f.allocates[0])

	// Flags not given stay unset, so the daemon leaves those settings alone.
	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "-o", "yaml", "vfs", "allocate", "--owner", "vm2",
		"--pool", "openshift.io/mlx_sriov_a")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, proto.Equal(&v1.VfAllocationSettings{}, f.allocates[1].GetSettings()), "%v", f.allocates[1].GetSettings())
	var y map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(r.stdout), &y))
	assert.Equal(t, "vm2", y["allocation"].(map[string]any)["owner"])

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "allocate", "--owner", "vm3", "--pool", "openshift.io/full")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "offloadctl: allocate VF: ResourceExhausted: allocate vf: pool exhausted: all 4 VFs held\n", r.stderr)
}

func TestVFsUsageErrors(t *testing.T) {
	f, sock := serveVFs(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"vfs"}, "vfs needs a subcommand"},
		{[]string{"vfs", "allocate", "--pool", "a/b"}, "needs --owner and --pool"},
		{[]string{"vfs", "allocate", "--owner", "x", "--pool", "a/b", "--link-state", "up"}, `--link-state "up"`},
		{[]string{"vfs", "allocate", "--owner", "x", "--pool", "a/b", "--vlan", "-1"}, "invalid argument"},
		{[]string{"vfs", "release"}, "needs --owner"},
		{[]string{"vfs", "list", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			r := runCLI(t, context.Background(), nil, "", append([]string{"--socket", sock}, tt.args...)...)
			assert.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
	assert.Empty(t, f.allocates)
}

func TestVFsReleaseAndList(t *testing.T) {
	f, sock := serveVFs(t)
	r := runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "release", "--owner", "vm1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "released 0000:08:00.1 (p0 vf 0) of vm1 to pool openshift.io/mlx_sriov_a; "+
		"restored mac 02:42:0f:01:00:00 vlan 0, driver mlx5_core\n", r.stdout)

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "release", "--owner", "vm9")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "NotFound")

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "vm1    openshift.io/mlx_sriov_a  p0  0   0000:08:00.1")
	assert.Contains(t, r.stdout, "mac 02:00:00:00:aa:01 vlan 100 trust off driver vfio-pci")

	r = runCLI(t, context.Background(), nil, "", "--socket", sock, "vfs", "list", "--pool", "openshift.io/mlx_sriov_b")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "no VFs allocated\n", r.stdout)
	require.Len(t, f.lists, 2)
	assert.Equal(t, "openshift.io/mlx_sriov_b", f.lists[1].GetPool())
}
