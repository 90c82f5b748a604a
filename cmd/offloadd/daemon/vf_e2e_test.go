package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic/emulated"
)

const (
	demoPCIDP = "../../../hack/demo/pcidp.json"
	poolA     = "openshift.io/mlx_sriov_a"
	poolB     = "openshift.io/mlx_sriov_b"
)

// withVFPools turns on the demo pools with state in stateDir, so that a
// second daemon on the same directory sees the first one's allocations.
func withVFPools(stateDir string) func(*Config) {
	return func(c *Config) {
		c.StateDir = stateDir
		c.VFPools.Config = demoPCIDP
	}
}

func emulatedNIC(t *testing.T, n *node) *emulated.Device {
	t.Helper()
	dev, ok := n.d.Devices()[0].(*emulated.Device)
	require.True(t, ok)
	return dev
}

func poolCounts(t *testing.T, vfs v1.VfServiceClient) map[string][2]uint32 {
	t.Helper()
	resp, err := vfs.ListPools(ctx(t), &v1.ListPoolsRequest{})
	require.NoError(t, err)
	out := map[string][2]uint32{}
	for _, p := range resp.GetPools() {
		out[p.GetName()] = [2]uint32{p.GetVfsTotal(), p.GetVfsFree()}
	}
	return out
}

func u32(v uint32) *uint32 { return &v }

// TestE2EVFPools drives VfService on the emulated NIC with the demo
// device plugin config: allocation applies settings to the NIC's VF, is
// idempotent by owner, runs out, restores on release, and survives a
// daemon restart through the allocation file.
func TestE2EVFPools(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	n := startNode(t, withVFPools(stateDir))
	vfs := v1.NewVfServiceClient(n.conn)
	dev := emulatedNIC(t, n)

	h, err := healthpb.NewHealthClient(n.conn).Check(ctx(t), &healthpb.HealthCheckRequest{Service: v1.VfService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus())

	pools, err := vfs.ListPools(ctx(t), &v1.ListPoolsRequest{})
	require.NoError(t, err)
	require.Len(t, pools.GetPools(), 2)
	a := pools.GetPools()[0]
	assert.Equal(t, poolA, a.GetName())
	assert.Equal(t, "openshift.io", a.GetPrefix())
	assert.Equal(t, []string{"vendors=15b3 devices=101e pfNames=p0#0-3"}, a.GetSelectors())
	require.Len(t, a.GetVfs(), 4)
	assert.Equal(t, "0000:08:00.1", a.GetVfs()[0].GetPciAddress())
	assert.Equal(t, "pf0vf0", a.GetVfs()[0].GetRepresentor())
	assert.Equal(t, map[string][2]uint32{poolA: {4, 4}, poolB: {4, 4}}, poolCounts(t, vfs))

	original, err := dev.VF(0)
	require.NoError(t, err)
	req := &v1.AllocateVfRequest{Owner: "vm1/port0", Pool: poolA, Settings: &v1.VfAllocationSettings{
		Mac: "02:00:00:00:aa:01", Vlan: u32(100), Qos: u32(3), SpoofCheck: proto.Bool(true)}}
	resp, err := vfs.AllocateVf(ctx(t), req)
	require.NoError(t, err)
	al := resp.GetAllocation()
	assert.Equal(t, "p0", al.GetPf())
	assert.Equal(t, "0000:08:00.0", al.GetPfPciAddress())
	assert.Equal(t, uint32(0), al.GetVfIndex())
	assert.Equal(t, "0000:08:00.1", al.GetVfPciAddress())
	assert.Equal(t, "enp8s0f0v0", al.GetVfNetdev())
	assert.Equal(t, "pf0vf0", al.GetRepresentor())
	assert.Equal(t, "02:42:0f:01:00:00", al.GetOriginal().GetMac())
	assert.Equal(t, "mlx5_core", al.GetOriginalDriver())
	vf, err := dev.VF(0)
	require.NoError(t, err)
	assert.Equal(t, [6]byte{2, 0, 0, 0, 0xaa, 1}, vf.Config.MAC)
	assert.Equal(t, uint16(100), vf.Config.VLAN)
	assert.Equal(t, uint8(3), vf.Config.QoS)
	assert.True(t, vf.Config.SpoofChk)
	port, ok := dev.Port("enp8s0f0v0")
	require.True(t, ok)
	assert.Equal(t, vf.Config.MAC, port.MAC, "the VF netdev carries the MAC")

	// The same request again: the same VF, nothing else taken.
	again, err := vfs.AllocateVf(ctx(t), req)
	require.NoError(t, err)
	assert.True(t, proto.Equal(al, again.GetAllocation()), "%v\n%v", al, again.GetAllocation())
	assert.Equal(t, map[string][2]uint32{poolA: {4, 3}, poolB: {4, 4}}, poolCounts(t, vfs))

	// The owner holds a VF of pool a: asking pool b is a conflict.
	_, err = vfs.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm1/port0", Pool: poolB})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)

	// Malformed settings name their field.
	_, err = vfs.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm9", Pool: poolA,
		Settings: &v1.VfAllocationSettings{Mac: "01:00:5e:00:00:01"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	var fields []string
	for _, d := range status.Convert(err).Details() {
		for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
			fields = append(fields, v.GetField()+": "+v.GetDescription())
		}
	}
	assert.Equal(t, []string{"settings.mac: 01:00:5e:00:00:01 is not a unicast MAC"}, fields)

	_, err = vfs.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm9", Pool: "openshift.io/nope"})
	assert.Equal(t, codes.NotFound, status.Code(err), "%v", err)

	// Fill pool a; the next owner finds it exhausted.
	for _, owner := range []string{"vm2", "vm3", "vm4"} {
		_, err := vfs.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: owner, Pool: poolA,
			Settings: &v1.VfAllocationSettings{Trust: proto.Bool(true)}})
		require.NoError(t, err, owner)
	}
	_, err = vfs.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm5", Pool: poolA})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Equal(t, map[string][2]uint32{poolA: {4, 0}, poolB: {4, 4}}, poolCounts(t, vfs))

	// Release restores the VF's original settings.
	before2, err := dev.VF(1)
	require.NoError(t, err)
	assert.True(t, before2.Config.Trust)
	rel, err := vfs.ReleaseVf(ctx(t), &v1.ReleaseVfRequest{Owner: "vm2"})
	require.NoError(t, err)
	assert.Equal(t, "0000:08:00.2", rel.GetReleased().GetVfPciAddress())
	after2, err := dev.VF(1)
	require.NoError(t, err)
	def := emulated.VFConfig{MAC: [6]byte{2, 0x42, 0x0f, 1, 0, 1}}
	assert.Equal(t, def, after2.Config)
	_, err = vfs.ReleaseVf(ctx(t), &v1.ReleaseVfRequest{Owner: "vm2"})
	assert.Equal(t, codes.NotFound, status.Code(err), "%v", err)

	list, err := vfs.ListAllocations(ctx(t), &v1.ListAllocationsRequest{})
	require.NoError(t, err)
	var owners []string
	for _, a := range list.GetAllocations() {
		owners = append(owners, a.GetOwner())
	}
	assert.Equal(t, []string{"vm1/port0", "vm3", "vm4"}, owners)
	_, err = os.Stat(filepath.Join(stateDir, "vf-allocations.json"))
	require.NoError(t, err)

	// Restart on the same state directory. The new emulated NIC starts with
	// default VF settings; the allocations are still held.
	n.d.Shutdown(context.Background())
	n2 := startNode(t, withVFPools(stateDir))
	vfs2 := v1.NewVfServiceClient(n2.conn)
	dev2 := emulatedNIC(t, n2)
	list2, err := vfs2.ListAllocations(ctx(t), &v1.ListAllocationsRequest{})
	require.NoError(t, err)
	require.Len(t, list2.GetAllocations(), 3)
	assert.True(t, proto.Equal(al, list2.GetAllocations()[0]), "%v", list2.GetAllocations()[0])
	assert.Equal(t, map[string][2]uint32{poolA: {4, 1}, poolB: {4, 4}}, poolCounts(t, vfs2))

	// Asking again returns the same VF and puts its settings back on.
	again2, err := vfs2.AllocateVf(ctx(t), req)
	require.NoError(t, err)
	assert.Equal(t, "0000:08:00.1", again2.GetAllocation().GetVfPciAddress())
	vf, err = dev2.VF(0)
	require.NoError(t, err)
	assert.Equal(t, [6]byte{2, 0, 0, 0, 0xaa, 1}, vf.Config.MAC)
	assert.Equal(t, uint16(100), vf.Config.VLAN)
	// The freed VF 1 is the one a new owner gets.
	got, err := vfs2.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm6", Pool: poolA})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), got.GetAllocation().GetVfIndex())

	_, err = vfs2.ReleaseVf(ctx(t), &v1.ReleaseVfRequest{Owner: "vm1/port0"})
	require.NoError(t, err)
	vf, err = dev2.VF(0)
	require.NoError(t, err)
	assert.Equal(t, original.Config, vf.Config)
}

// TestE2EVFPoolsOff: without vfPools.config, no pools and no allocations.
func TestE2EVFPoolsOff(t *testing.T) {
	n := startNode(t, nil)
	vfs := v1.NewVfServiceClient(n.conn)
	pools, err := vfs.ListPools(ctx(t), &v1.ListPoolsRequest{})
	require.NoError(t, err)
	assert.Empty(t, pools.GetPools())
	_, err = vfs.AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm1", Pool: poolA})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "no VF pool configuration")
}

// TestE2EVFPoolsBadConfig: a config file with errors stops the daemon
// from starting, naming the file and the field.
func TestE2EVFPoolsBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "pcidp.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["p0#3-1"]}}]}`), 0o600))
	cfg := DefaultConfig()
	cfg.Socket = filepath.Join(dir, "s.sock")
	cfg.StateDir = ""
	cfg.VFPools.Config = bad
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "vfPools.config")
	assert.Contains(t, err.Error(), `resourceList[0].selectors.pfNames[0]: bad VF range "p0#3-1"`)
}
