package authz

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

func tlsID(name string) Identity { return Identity{Transport: TransportTLS, Name: name} }

func TestPolicyBindingsValidate(t *testing.T) {
	for _, b := range []Binding{
		{Identity: "uid:x", Roles: []Role{RoleReader}},
		{Identity: "node-a", Roles: []Role{RoleReader}},
		{Identity: "dns:a", Roles: []Role{"root"}},
		{Identity: "dns:a"},
		{Identity: "dns:a", Roles: []Role{RoleAdmin}, IDPrefixes: []string{"t-"}},
		{Identity: "dns:a", Roles: []Role{RoleReader}, Ports: []string{"p0"}},
	} {
		_, err := NewPolicy([]Binding{b}, nil, nil)
		assert.Error(t, err, "%+v", b)
	}
	_, err := NewPolicy([]Binding{{Identity: "spiffe://x/y", Roles: []Role{RoleAdmin}}, {Identity: "gid:10", Roles: []Role{RoleReader}},
		{Identity: "anonymous", Roles: []Role{RoleReader}}, {Identity: "cn:ctl", Roles: []Role{RoleOperator}}}, nil, nil)
	require.NoError(t, err)
}

func TestPolicyUnixAdminsAndGroups(t *testing.T) {
	p, err := NewPolicy([]Binding{{Identity: "gid:100", Roles: []Role{RoleReader}}}, []uint32{0}, nil)
	require.NoError(t, err)
	root := Identity{Transport: TransportUnix, Name: "uid:0", GID: 0}
	user := Identity{Transport: TransportUnix, Name: "uid:1000", GID: 100}
	other := Identity{Transport: TransportUnix, Name: "uid:1001", GID: 101}
	apply := v1.FlowService_ApplyFlows_FullMethodName
	list := v1.FlowService_ListFlows_FullMethodName
	assert.NoError(t, p.Authorize(root, apply, &v1.ApplyFlowsRequest{}))
	assert.NoError(t, p.Authorize(user, list, nil))
	assert.Error(t, p.Authorize(user, apply, &v1.ApplyFlowsRequest{}))
	assert.Error(t, p.Authorize(other, list, nil))
	assert.Error(t, p.Authorize(other, "/offloadd.v1.FlowService/Unknown", nil))
	assert.NoError(t, p.Authorize(root, "/offloadd.v1.FlowService/Unknown", nil), "admin reaches Unimplemented")
	assert.NoError(t, p.Authorize(other, "/grpc.health.v1.Health/Check", nil), "health is for any trusted caller")
}

func TestPolicyOperatorScope(t *testing.T) {
	ports := func(ids []string) map[string]string {
		out := map[string]string{}
		for _, id := range ids {
			switch id {
			case "tenant-a-1":
				out[id] = "pf0vf0"
			case "tenant-a-2":
				out[id] = "pf0vf9"
			}
		}
		return out
	}
	p, err := NewPolicy([]Binding{{Identity: "cn:tenant-a", Roles: []Role{RoleOperator}, IDPrefixes: []string{"tenant-a-"}, Ports: []string{"pf0vf0", "pf0vf1"}}}, nil, ports)
	require.NoError(t, err)
	id := tlsID("cn:tenant-a")
	apply := v1.FlowService_ApplyFlows_FullMethodName
	del := v1.FlowService_DeleteFlows_FullMethodName
	flow := func(id, port string) *v1.Flow { return &v1.Flow{Id: id, Port: port} }

	assert.NoError(t, p.Authorize(id, apply, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{flow("tenant-a-1", "pf0vf0"), flow("tenant-a-3", "pf0vf1")}}))
	err = p.Authorize(id, apply, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{flow("tenant-a-1", "pf0vf0"), flow("tenant-b-1", "pf0vf0")}})
	assert.ErrorContains(t, err, `flows[1]: flow "tenant-b-1" is outside`)
	assert.ErrorContains(t, p.Authorize(id, apply, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{flow("tenant-a-1", "pf0vf2")}}), `on port "pf0vf2"`)
	assert.NoError(t, p.Authorize(id, del, &v1.DeleteFlowsRequest{Ids: []string{"tenant-a-1", "tenant-a-gone"}}))
	assert.ErrorContains(t, p.Authorize(id, del, &v1.DeleteFlowsRequest{Ids: []string{"tenant-a-2"}}), `on port "pf0vf9"`)
	assert.ErrorContains(t, p.Authorize(id, del, &v1.DeleteFlowsRequest{Ids: []string{"other"}}), "outside")
	assert.NoError(t, p.Authorize(id, v1.FlowService_ListFlows_FullMethodName, nil), "reads are unscoped")
	assert.ErrorContains(t, p.Authorize(id, v1.VfService_AllocateVf_FullMethodName, &v1.AllocateVfRequest{}), "changes no flows")
}

func TestIDsDigest(t *testing.T) {
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", IDsDigest(nil))
	// printf 'a\nb' | sha256sum
	assert.Equal(t, "7e18f737311b2dc3b2f269dd78396b0351f14fb66efa879f768cb23181883c78", IDsDigest([]string{"a", "b"}))
	args := Arguments(&v1.DeleteFlowsRequest{Ids: make([]string, 17)})
	assert.Equal(t, "flows", args[0].Key)
	assert.Equal(t, "ids_sha256", args[1].Key)
}

// batch stands in for api.ApplyFlowsBatch.
type batch struct{ ids, ports []string }

func (b batch) FlowIDs() []string   { return b.ids }
func (b batch) FlowPorts() []string { return b.ports }
func (b batch) Atomic() bool        { return true }

func TestPolicyScopesFastPathBatches(t *testing.T) {
	p, err := NewPolicy([]Binding{{Identity: "cn:t", Roles: []Role{RoleOperator}, IDPrefixes: []string{"t-"}, Ports: []string{"pf0vf0"}}}, nil, nil)
	require.NoError(t, err)
	apply := v1.FlowService_ApplyFlows_FullMethodName
	assert.NoError(t, p.Authorize(tlsID("cn:t"), apply, batch{[]string{"t-1"}, []string{"pf0vf0"}}))
	assert.ErrorContains(t, p.Authorize(tlsID("cn:t"), apply, batch{[]string{"t-1", "u-1"}, []string{"pf0vf0", "pf0vf0"}}), "flows[1]")
	assert.ErrorContains(t, p.Authorize(tlsID("cn:t"), apply, batch{[]string{"t-1"}, []string{""}}), "on port")
	args := Arguments(batch{[]string{"t-1"}, []string{"pf0vf0"}})
	require.Len(t, args, 3)
	assert.Equal(t, "ids", args[1].Key)
	assert.Equal(t, "atomic", args[2].Key)
}
