// Package api is offloadd's gRPC server adapter: it converts between the
// wire messages of package offloaddv1 and the domain types of offload/flow,
// offload and nic, with validation errors that carry full request field
// paths, and serves FlowService and NodeService on top of a flow engine and
// the node's devices, which it reaches through the small FlowEngine and
// NodeInfo interfaces. Placement decisions belong to the engine, not here.
// ServerOptions installs a codec that decodes ApplyFlows requests straight
// from the wire into domain flows; without it the server is only slower.
// Interceptors normally see the protobuf request, which costs that fast
// path; a Server built WithBatchInterceptors hands them an *ApplyFlowsBatch
// instead (the daemon's authorization does so). Access control itself is
// package api/authz.
package api
