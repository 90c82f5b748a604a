package daemon

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offloadd/offloadd/api/authz"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// TestMigrationBetweenPinnedPeers: daemon A forwards a migration bundle
// to its configured peer B over mTLS, each checking the other's identity.
// A forward_to that is an address or a socket path is refused; a peer
// entry whose pinned identity is not what answers is refused; daemon C,
// with a valid certificate from the same CA but not one of B's peers, is
// refused by B.
func TestMigrationBetweenPinnedPeers(t *testing.T) {
	p := newPKI(t)
	b := startSecure(t, p.node(t, "b"), func(c *Config) {
		// B only receives: A's address is never dialed.
		c.Peers = []authz.Peer{{Name: "a", Address: tcpAddrOf(t), Identity: nodeID("a")}}
	})
	a := startSecure(t, p.node(t, "a"), func(c *Config) {
		c.Peers = []authz.Peer{
			{Name: "b", Address: b.tcp, Identity: nodeID("b")},
			{Name: "b-pinned-wrong", Address: b.tcp, Identity: nodeID("impostor")},
		}
	})
	cNode := startSecure(t, p.node(t, "c"), func(c *Config) {
		c.Peers = []authz.Peer{{Name: "b", Address: b.tcp, Identity: nodeID("b")}}
	})
	amc, bmc, cmc := v1.NewMigrationServiceClient(a.admin), v1.NewMigrationServiceClient(b.admin), v1.NewMigrationServiceClient(cNode.admin)

	_, err := v1.NewFlowServiceClient(a.admin).ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("vm1-acl", "pf0vf3")}})
	require.NoError(t, err)
	prep, err := bmc.PrepareMigration(ctx(t), &v1.PrepareMigrationRequest{MigrationId: "m1", SourcePort: "pf0vf3"})
	require.NoError(t, err)
	_, err = amc.DrainMigration(ctx(t), &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf3"})
	require.NoError(t, err)

	for _, to := range []string{b.tcp, "localhost:1", "unix:" + b.cfg.Socket, b.cfg.Socket, "c"} {
		_, err := amc.ExportMigration(ctx(t), &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: to})
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "forward_to %q: %v", to, err)
	}
	_, err = amc.ExportMigration(ctx(t), &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: "b-pinned-wrong"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "B's certificate is not the pinned identity: %v", err)
	assert.ErrorContains(t, err, "is not the configured")
	assert.Empty(t, flowIDs(t, b.admin), "nothing reached B")

	ex, err := amc.ExportMigration(ctx(t), &v1.ExportMigrationRequest{MigrationId: "m1", ForwardTo: "b"})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), ex.GetForwarded().GetFlowsCreated())
	assert.Equal(t, []string{"vm1-acl"}, flowIDs(t, b.admin))
	got, err := v1.NewFlowServiceClient(b.admin).GetFlow(ctx(t), &v1.GetFlowRequest{Id: "vm1-acl"})
	require.NoError(t, err)
	assert.Equal(t, prep.GetPort(), got.GetStatus().GetFlow().GetPort(), "renamed to B's VF representor")

	// C holds a certificate of the same CA, but B has no peer with its identity.
	_, err = v1.NewFlowServiceClient(cNode.admin).ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("c-flow", "pf0vf3")}})
	require.NoError(t, err)
	_, err = cmc.DrainMigration(ctx(t), &v1.DrainMigrationRequest{MigrationId: "m2", Port: "pf0vf3"})
	require.NoError(t, err)
	_, err = cmc.ExportMigration(ctx(t), &v1.ExportMigrationRequest{MigrationId: "m2", ForwardTo: "b"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, nodeID("c"))
	assert.Equal(t, []string{"vm1-acl"}, flowIDs(t, b.admin), "C's flow did not reach B")

	recs := recordsFor(auditRecords(t, b.audit), "ImportMigration")
	require.Len(t, recs, 2)
	assert.Equal(t, nodeID("a"), recs[0]["who"])
	assert.Equal(t, "migration-peer", recs[0]["roles"])
	assert.Equal(t, "OK", recs[0]["result"])
	assert.Equal(t, nodeID("c"), recs[1]["who"])
	assert.Equal(t, true, recs[1]["denied"])
	assert.Equal(t, "PermissionDenied", recs[1]["result"])
}
