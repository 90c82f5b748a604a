package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// TestPrivilegedDiskFull puts the state directory on a small tmpfs and
// fills it: the apply whose save fails is answered UNAVAILABLE, health
// goes NOT_SERVING and further changes are refused; when the tmpfs grows
// the backlog is saved and the daemon serves again. No acknowledged flow
// is missing from the store after a restart.
func TestPrivilegedDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })

	n := startNode(t, func(c *Config) { c.StateDir = dir })
	c := ctx(t)
	health := healthpb.NewHealthClient(n.conn)
	var acked []string
	var failed error
	for i := 0; i < 400 && failed == nil; i++ {
		var fs []*v1.Flow
		for j := range 50 {
			dport := uint32(1 + i*50 + j)
			fs = append(fs, &v1.Flow{Id: fmt.Sprintf("fill-%05d-%02d-%s", i, j, "padding-to-make-the-records-larger"), Port: "pf0vf0", Priority: 10,
				Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", DstPort: &dport},
				Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}})
		}
		_, err := n.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: fs})
		if err != nil {
			failed = err
			break
		}
		for _, f := range fs {
			acked = append(acked, f.GetId())
		}
	}
	require.Error(t, failed, "the 256 KiB tmpfs must fill up")
	assert.Equal(t, codes.Unavailable, status.Code(failed), "%v", failed)
	assert.Contains(t, status.Convert(failed).Message(), "desired state not saved")
	require.Eventually(t, func() bool {
		r, err := health.Check(c, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	}, 5*time.Second, 50*time.Millisecond, "health goes NOT_SERVING while saves fail")
	_, err := n.flows.DeleteFlows(c, &v1.DeleteFlowsRequest{Ids: acked[:1]})
	assert.Equal(t, codes.Unavailable, status.Code(err), "changes are refused while the store fails: %v", err)

	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=64m"))
	require.Eventually(t, func() bool {
		r, err := health.Check(c, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 10*time.Second, 50*time.Millisecond, "health SERVING once the backlog is saved")

	// Every acknowledged flow survives a restart.
	n.d.Shutdown(c)
	n2 := startNode(t, func(cfg *Config) { cfg.StateDir = dir })
	list, err := n2.flows.ListFlows(c, &v1.ListFlowsRequest{PageSize: 100000})
	require.NoError(t, err)
	got := map[string]bool{}
	for _, st := range list.GetFlows() {
		got[st.GetFlow().GetId()] = true
	}
	for _, id := range acked {
		require.True(t, got[id], "acknowledged flow %s lost", id)
	}
	t.Logf("%d flows acknowledged before the store filled; all %d back after the restart", len(acked), len(got))
}
