package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/offloadd/offloadd/api/authz"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// rpcClass is who may call an RPC, as the issue states it: "*" any
// trusted caller, "r" reader and up, "o" operator and up, "p"
// migration-peer (and admin), "a" admin only.
var rpcClass = map[string]string{
	"offloadd.v1.NodeService/GetNode":                               "r",
	"offloadd.v1.NodeService/ListPorts":                             "r",
	"offloadd.v1.FlowService/ListFlows":                             "r",
	"offloadd.v1.FlowService/GetFlow":                               "r",
	"offloadd.v1.FlowService/WatchFlows":                            "r",
	"offloadd.v1.FlowService/ExplainFlow":                           "r",
	"offloadd.v1.FlowService/ExplainFlows":                          "r",
	"offloadd.v1.FlowService/ApplyFlows":                            "o",
	"offloadd.v1.FlowService/DeleteFlows":                           "o",
	"offloadd.v1.DatapathService/InjectPacket":                      "o",
	"offloadd.v1.DatapathService/GetDatapathStats":                  "r",
	"offloadd.v1.VfService/ListPools":                               "r",
	"offloadd.v1.VfService/ListAllocations":                         "r",
	"offloadd.v1.VfService/AllocateVf":                              "o",
	"offloadd.v1.VfService/ReleaseVf":                               "o",
	"offloadd.v1.MigrationService/ImportMigration":                  "p",
	"offloadd.v1.MigrationService/PrepareMigration":                 "a",
	"offloadd.v1.MigrationService/DrainMigration":                   "a",
	"offloadd.v1.MigrationService/ExportMigration":                  "a",
	"offloadd.v1.MigrationService/ReoffloadMigration":               "a",
	"offloadd.v1.MigrationService/CommitMigration":                  "a",
	"offloadd.v1.MigrationService/AbortMigration":                   "a",
	"offloadd.v1.MigrationService/GetMigration":                     "r",
	"offloadd.v1.MigrationService/ListMigrations":                   "r",
	"grpc.health.v1.Health/Check":                                   "*",
	"grpc.health.v1.Health/Watch":                                   "*",
	"grpc.health.v1.Health/List":                                    "*",
	"grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      "r",
	"grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "r",
}

// allowedClasses are the classes each test identity may call.
var allowedClasses = map[string]string{
	"reader":         "*r",
	"operator":       "*ro",
	"migration-peer": "*p",
	"admin":          "*ropa",
	"norole":         "*",
}

// servedMethods are the descriptors of every RPC the daemon serves.
func servedMethods(t *testing.T, d *Daemon) map[string]protoreflect.MethodDescriptor {
	t.Helper()
	out := map[string]protoreflect.MethodDescriptor{}
	for svc, info := range d.grpc.GetServiceInfo() {
		desc, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		require.NoError(t, err, svc)
		sd := desc.(protoreflect.ServiceDescriptor)
		for _, m := range info.Methods {
			md := sd.Methods().ByName(protoreflect.Name(m.Name))
			require.NotNil(t, md, "%s/%s", svc, m.Name)
			out[svc+"/"+m.Name] = md
		}
	}
	return out
}

func newMessage(t *testing.T, d protoreflect.MessageDescriptor) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	require.NoError(t, err, d.FullName())
	return mt.New().Interface()
}

// call invokes one RPC with req (an empty request when nil) and returns
// its status code; a stream's code is that of its first answer.
func call(t *testing.T, conn *grpc.ClientConn, name string, md protoreflect.MethodDescriptor, req proto.Message) codes.Code {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if req == nil {
		req = newMessage(t, md.Input())
	}
	resp := newMessage(t, md.Output())
	method := "/" + name
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return status.Code(conn.Invoke(c, method, req, resp))
	}
	cs, err := conn.NewStream(c, &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}, method)
	if err != nil {
		return status.Code(err)
	}
	if err := cs.SendMsg(req); err != nil && err != io.EOF {
		return status.Code(err)
	}
	if !md.IsStreamingClient() {
		require.NoError(t, cs.CloseSend())
	}
	return status.Code(cs.RecvMsg(resp))
}

// TestRoleRPCMatrix calls every RPC the daemon serves, over mTLS, as each
// role and as an identity with no role: every cell is allowed or
// PermissionDenied as the policy says, and a denied ApplyFlows or
// DeleteFlows changes no flow.
func TestRoleRPCMatrix(t *testing.T) {
	p := newPKI(t)
	n := startSecure(t, p.node(t, "a"), func(c *Config) {
		c.TCPReflection = true
		c.Policy = []authz.Binding{
			{Identity: clientID("reader"), Roles: []authz.Role{authz.RoleReader}},
			{Identity: clientID("operator"), Roles: []authz.Role{authz.RoleOperator}},
			{Identity: clientID("migration-peer"), Roles: []authz.Role{authz.RoleMigrationPeer}},
			{Identity: clientID("admin"), Roles: []authz.Role{authz.RoleAdmin}},
		}
	})
	methods := servedMethods(t, n.d)
	var names []string
	for name := range methods {
		names = append(names, name)
		_, ok := rpcClass[name]
		assert.True(t, ok, "%s is served but has no row in this test's matrix", name)
		_, ok = authz.Methods["/"+name]
		assert.True(t, ok, "%s is served but has no entry in authz.Methods", name)
	}
	sort.Strings(names)
	require.Len(t, names, len(rpcClass), "every row of the matrix is served")

	admin := v1.NewFlowServiceClient(n.admin)
	reset := func() {
		_, err := admin.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: flowIDs(t, n.admin)})
		require.NoError(t, err)
		_, err = admin.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("seed", "pf0vf0")}})
		require.NoError(t, err)
	}
	reset()
	roots := p.ca.Pool()
	var matrix strings.Builder
	for _, role := range []string{"reader", "operator", "migration-peer", "admin", "norole"} {
		cert := p.client(t, role)
		conn := dialTLS(t, n.tcp, clientTLS(&cert, roots))
		fmt.Fprintf(&matrix, "%-15s", role)
		for _, name := range names {
			var req proto.Message
			switch name {
			case "offloadd.v1.FlowService/ApplyFlows":
				req = &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("new-"+role, "pf0vf1")}}
			case "offloadd.v1.FlowService/DeleteFlows":
				req = &v1.DeleteFlowsRequest{Ids: []string{"seed"}}
			}
			before := flowIDs(t, n.admin)
			got := call(t, conn, name, methods[name], req)
			want := strings.Contains(allowedClasses[role], rpcClass[name])
			if want {
				assert.NotContains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated, codes.Unavailable}, got,
					"%s calling %s", role, name)
				fmt.Fprint(&matrix, " +")
			} else {
				assert.Equal(t, codes.PermissionDenied, got, "%s calling %s", role, name)
				assert.Equal(t, before, flowIDs(t, n.admin), "a denied %s changed the flows", name)
				fmt.Fprint(&matrix, " -")
			}
			if req != nil {
				reset()
			}
		}
		fmt.Fprintln(&matrix)
	}
	t.Logf("columns: %s\n%s", strings.Join(names, " "), matrix.String())
}

// TestUnixPeerCredIdentity: on the unix socket the caller is its uid (and
// gid) from SO_PEERCRED. With the root-admin default off, the current
// user's uid gets exactly the role the policy gives it.
func TestUnixPeerCredIdentity(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	tests := []struct {
		name      string
		bindings  []authz.Binding
		rootAdmin bool
		list      codes.Code
		apply     codes.Code
	}{
		{"uid reader", []authz.Binding{{Identity: fmt.Sprintf("uid:%d", uid), Roles: []authz.Role{authz.RoleReader}}}, false, codes.OK, codes.PermissionDenied},
		{"gid operator", []authz.Binding{{Identity: fmt.Sprintf("gid:%d", gid), Roles: []authz.Role{authz.RoleOperator}}}, false, codes.OK, codes.OK},
		{"other uid only", []authz.Binding{{Identity: fmt.Sprintf("uid:%d", uid+1), Roles: []authz.Role{authz.RoleAdmin}}}, false, codes.PermissionDenied, codes.PermissionDenied},
		{"root and own uid admin by default", nil, true, codes.OK, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startSecure(t, TLSConfig{}, func(c *Config) {
				c.TCP = ""
				c.Policy = tt.bindings
				c.UnixRootAdmin = tt.rootAdmin
			})
			fc := v1.NewFlowServiceClient(n.admin)
			_, err := fc.ListFlows(ctx(t), &v1.ListFlowsRequest{})
			assert.Equal(t, tt.list, status.Code(err), "list: %v", err)
			_, err = fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("f1", "pf0vf0")}})
			assert.Equal(t, tt.apply, status.Code(err), "apply: %v", err)
			recs := auditRecords(t, n.audit)
			require.NotEmpty(t, recordsFor(recs, "ApplyFlows"))
			r := recordsFor(recs, "ApplyFlows")[0]
			assert.Equal(t, fmt.Sprintf("uid:%d", uid), r["who"])
			assert.Equal(t, "unix", r["transport"])
			assert.Equal(t, tt.apply != codes.OK, r["denied"])
		})
	}
}

// TestOperatorScopedToTenant: an operator scoped to an ID prefix and
// ports changes only its tenant's flows.
func TestOperatorScopedToTenant(t *testing.T) {
	p := newPKI(t)
	n := startSecure(t, p.node(t, "a"), func(c *Config) {
		c.Policy = []authz.Binding{{Identity: clientID("tenant-a"), Roles: []authz.Role{authz.RoleOperator},
			IDPrefixes: []string{"tenant-a-"}, Ports: []string{"pf0vf0", "pf0vf1"}}}
	})
	_, err := v1.NewFlowServiceClient(n.admin).ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{
		dropFlow("tenant-b-1", "pf0vf2"), dropFlow("tenant-a-elsewhere", "pf0vf3")}})
	require.NoError(t, err)
	cert := p.client(t, "tenant-a")
	fc := v1.NewFlowServiceClient(dialTLS(t, n.tcp, clientTLS(&cert, p.ca.Pool())))

	_, err = fc.ApplyFlows(ctx(t), &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("tenant-a-1", "pf0vf0"), dropFlow("tenant-a-2", "pf0vf1")}})
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		req  any
	}{
		{"another tenant's id", &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("tenant-a-3", "pf0vf0"), dropFlow("tenant-b-2", "pf0vf0")}}},
		{"a port outside the scope", &v1.ApplyFlowsRequest{Flows: []*v1.Flow{dropFlow("tenant-a-3", "pf0vf2")}}},
		{"deleting another tenant's flow", &v1.DeleteFlowsRequest{Ids: []string{"tenant-b-1"}}},
		{"deleting a flow of the prefix on another port", &v1.DeleteFlowsRequest{Ids: []string{"tenant-a-elsewhere"}}},
	} {
		before := flowIDs(t, n.admin)
		switch r := tt.req.(type) {
		case *v1.ApplyFlowsRequest:
			_, err = fc.ApplyFlows(ctx(t), r)
		case *v1.DeleteFlowsRequest:
			_, err = fc.DeleteFlows(ctx(t), r)
		}
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%s: %v", tt.name, err)
		assert.Equal(t, before, flowIDs(t, n.admin), tt.name)
	}
	_, err = fc.DeleteFlows(ctx(t), &v1.DeleteFlowsRequest{Ids: []string{"tenant-a-1"}})
	require.NoError(t, err)
	ids := flowIDs(t, n.admin)
	assert.True(t, slices.Equal([]string{"tenant-a-2", "tenant-a-elsewhere", "tenant-b-1"}, ids), "%v", ids)
	_, err = v1.NewVfServiceClient(dialTLS(t, n.tcp, clientTLS(&cert, p.ca.Pool()))).AllocateVf(ctx(t), &v1.AllocateVfRequest{Owner: "vm"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "a scoped operator changes flows only")
}
