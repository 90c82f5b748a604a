package daemon

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offloadd/offloadd/api/authz"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// TestAuditLog: apply, delete and drain are recorded with who, the method,
// the flows (IDs, or a digest for more than 16), the result and the
// duration; so is a denied call; reads are not.
func TestAuditLog(t *testing.T) {
	p := newPKI(t)
	n := startSecure(t, p.node(t, "a"), func(c *Config) {
		c.Policy = []authz.Binding{
			{Identity: clientID("reader"), Roles: []authz.Role{authz.RoleReader}},
			{Identity: clientID("operator"), Roles: []authz.Role{authz.RoleOperator}},
			{Identity: clientID("admin"), Roles: []authz.Role{authz.RoleAdmin}},
		}
	})
	roots := p.ca.Pool()
	opCert, rdCert, adCert := p.client(t, "operator"), p.client(t, "reader"), p.client(t, "admin")
	op := v1.NewFlowServiceClient(dialTLS(t, n.tcp, clientTLS(&opCert, roots)))
	rd := v1.NewFlowServiceClient(dialTLS(t, n.tcp, clientTLS(&rdCert, roots)))
	ad := v1.NewMigrationServiceClient(dialTLS(t, n.tcp, clientTLS(&adCert, roots)))

	_, err := op.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("f1", "pf0vf0"), dropFlow("f2", "pf0vf1")}})
	require.NoError(t, err)
	var big []*v1.Flow
	var bigIDs []string
	for i := range 20 {
		id := fmt.Sprintf("big-%02d", i)
		big = append(big, dropFlow(id, "pf0vf2"))
		bigIDs = append(bigIDs, id)
	}
	_, err = op.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: big})
	require.NoError(t, err)
	_, err = op.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: []string{"f2"}})
	require.NoError(t, err)
	_, err = ad.DrainMigration(ctx(t), &v1.DrainMigrationRequest{MigrationId: "m1", Port: "pf0vf0"})
	require.NoError(t, err)
	_, err = rd.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: []string{"f1"}})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = rd.ListFlows(ctx(t), &v1.ListFlowsRequest{})
	require.NoError(t, err)

	recs := auditRecords(t, n.audit)
	require.Len(t, recs, 5, "%v", recs)
	for _, r := range recs {
		assert.Equal(t, true, r["audit"])
		assert.Equal(t, "tls", r["transport"])
		assert.Contains(t, r, "duration_ms")
	}
	apply := recordsFor(recs, "ApplyFlows")
	require.Len(t, apply, 2)
	assert.Equal(t, clientID("operator"), apply[0]["who"])
	assert.Equal(t, "/offloadd.v1.FlowService/ApplyFlows", apply[0]["method"])
	assert.Equal(t, float64(2), apply[0]["flows"])
	assert.Equal(t, []any{"f1", "f2"}, apply[0]["ids"])
	assert.Equal(t, "OK", apply[0]["result"])
	assert.Equal(t, float64(20), apply[1]["flows"])
	assert.Equal(t, authz.IDsDigest(bigIDs), apply[1]["ids_sha256"])
	assert.NotContains(t, apply[1], "ids")

	del := recordsFor(recs, "DeleteFlows")
	require.Len(t, del, 2)
	assert.Equal(t, []any{"f2"}, del[0]["ids"])
	assert.Equal(t, false, del[0]["denied"])
	assert.Equal(t, clientID("reader"), del[1]["who"])
	assert.Equal(t, true, del[1]["denied"])
	assert.Equal(t, "PermissionDenied", del[1]["result"])
	assert.Equal(t, "WARN", del[1]["level"])
	assert.Contains(t, del[1]["error"], "needs role operator")

	drain := recordsFor(recs, "DrainMigration")
	require.Len(t, drain, 1)
	assert.Equal(t, clientID("admin"), drain[0]["who"])
	assert.Equal(t, "m1", drain[0]["migration"])
	assert.Equal(t, "pf0vf0", drain[0]["port"])
	assert.Equal(t, "OK", drain[0]["result"])
}

// TestAuditToDaemonLog: without an audit file the records go to the
// daemon's log, marked audit=true.
func TestAuditToDaemonLog(t *testing.T) {
	n := startSecure(t, TLSConfig{}, func(c *Config) { c.TCP = ""; c.AuditLog = "" })
	_, err := v1.NewFlowServiceClient(n.admin).ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("f1", "pf0vf0")}})
	require.NoError(t, err)
	assert.Contains(t, n.log.String(), "msg=audit audit=true who=uid:")
	assert.Contains(t, n.log.String(), "method=/offloadd.v1.FlowService/ApplyFlows")
}
