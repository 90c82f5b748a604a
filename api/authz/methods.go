package authz

import (
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// Rule is what calling one RPC takes.
type Rule struct {
	// Min is the least role that may call it; RoleAny lets every caller
	// whose transport is trusted (any verified certificate, any unix peer).
	Min Role
	// Mutating calls change the node; each one is audited.
	Mutating bool
}

// Methods maps the full name of every RPC the daemon serves to its rule.
// TestMethodsCoverEveryRPC fails when a service in api/offloadd/v1 gains
// an RPC that is not here; an RPC missing from it is refused to everyone
// but admin.
var Methods = map[string]Rule{
	// NodeService: what the node is.
	v1.NodeService_GetNode_FullMethodName:   {Min: RoleReader},
	v1.NodeService_ListPorts_FullMethodName: {Min: RoleReader},

	// FlowService: reading and explaining is reader; changing is operator.
	v1.FlowService_ApplyFlows_FullMethodName:   {Min: RoleOperator, Mutating: true},
	v1.FlowService_DeleteFlows_FullMethodName:  {Min: RoleOperator, Mutating: true},
	v1.FlowService_ListFlows_FullMethodName:    {Min: RoleReader},
	v1.FlowService_GetFlow_FullMethodName:      {Min: RoleReader},
	v1.FlowService_ExplainFlow_FullMethodName:  {Min: RoleReader},
	v1.FlowService_ExplainFlows_FullMethodName: {Min: RoleReader},
	v1.FlowService_WatchFlows_FullMethodName:   {Min: RoleReader},

	// DatapathService (emulated NIC): a trace injects a packet, which
	// changes conntrack and counters, so it is operator.
	v1.DatapathService_InjectPacket_FullMethodName:     {Min: RoleOperator, Mutating: true},
	v1.DatapathService_GetDatapathStats_FullMethodName: {Min: RoleReader},

	// VfService: pools and allocations are readable; handing VFs out is operator.
	v1.VfService_ListPools_FullMethodName:       {Min: RoleReader},
	v1.VfService_ListAllocations_FullMethodName: {Min: RoleReader},
	v1.VfService_AllocateVf_FullMethodName:      {Min: RoleOperator, Mutating: true},
	v1.VfService_ReleaseVf_FullMethodName:       {Min: RoleOperator, Mutating: true},

	// MigrationService: a peer daemon only forwards a bundle (import);
	// every other step drains ports or exports a VM's connections and is
	// the orchestrator's, which is admin.
	v1.MigrationService_ImportMigration_FullMethodName:    {Min: RoleMigrationPeer, Mutating: true},
	v1.MigrationService_PrepareMigration_FullMethodName:   {Min: RoleAdmin, Mutating: true},
	v1.MigrationService_DrainMigration_FullMethodName:     {Min: RoleAdmin, Mutating: true},
	v1.MigrationService_ExportMigration_FullMethodName:    {Min: RoleAdmin, Mutating: true},
	v1.MigrationService_ReoffloadMigration_FullMethodName: {Min: RoleAdmin, Mutating: true},
	v1.MigrationService_CommitMigration_FullMethodName:    {Min: RoleAdmin, Mutating: true},
	v1.MigrationService_AbortMigration_FullMethodName:     {Min: RoleAdmin, Mutating: true},
	v1.MigrationService_GetMigration_FullMethodName:       {Min: RoleReader},
	v1.MigrationService_ListMigrations_FullMethodName:     {Min: RoleReader},

	// Health is for probes: any trusted caller. Reflection describes the
	// API: reader (and off on TCP unless --tcp-reflection).
	healthpb.Health_Check_FullMethodName:                                   {Min: RoleAny},
	healthpb.Health_Watch_FullMethodName:                                   {Min: RoleAny},
	healthpb.Health_List_FullMethodName:                                    {Min: RoleAny},
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      {Min: RoleReader},
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: {Min: RoleReader},
}

// isReflection and isHealth name the services that --tcp-reflection and
// --tcp-health switch on TCP.
func isReflection(method string) bool {
	return method == reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName ||
		method == reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName
}

func isHealth(method string) bool {
	return method == healthpb.Health_Check_FullMethodName || method == healthpb.Health_Watch_FullMethodName ||
		method == healthpb.Health_List_FullMethodName
}
