// Package offloaddv1 is the generated Go code of offloadd's gRPC API
// (protobuf package offloadd.v1): FlowService, NodeService and their
// messages. Regenerate it with hack/proto.sh; edit the .proto files, not the
// generated code. The package imports only protobuf and gRPC, so clients
// such as offloadctl use it without pulling in the daemon.
package offloaddv1
