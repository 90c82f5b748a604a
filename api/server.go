package api

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// FlowEngine is the flow engine the API serves (offload.Engine).
type FlowEngine interface {
	Apply(ctx context.Context, flows []*flow.Flow, opt offload.ApplyOptions) ([]offload.Result, error)
	Delete(ctx context.Context, ids []string) ([]offload.DeleteResult, error)
	// List returns matching statuses sorted by flow ID.
	List(f offload.Filter) []offload.Status
	// ListPage returns up to limit matching statuses with IDs after
	// after, sorted by ID, and whether more follow.
	ListPage(f offload.Filter, after string, limit int) ([]offload.Status, bool)
	Get(id string) (offload.Status, bool)
	// ExplainBatch says where each flow would go if applied together now.
	ExplainBatch(ctx context.Context, flows []*flow.Flow) []offload.Explanation
	Watch(ctx context.Context) (*offload.Watcher, error)
}

// NodeInfo lists the node's NICs.
type NodeInfo interface {
	Devices() []nic.Device
}

// Server serves FlowService and NodeService, plus gRPC health and
// reflection, on top of a FlowEngine and NodeInfo.
type Server struct {
	engine   FlowEngine
	node     NodeInfo
	log      *slog.Logger
	hostname string
	version  string
	health   *health.Server
	// batchInterceptors: interceptors see *ApplyFlowsBatch (WithBatchInterceptors).
	batchInterceptors bool
	limits            Limits
	hits              *LimitHits
	watchers          atomic.Int64
	// lists holds a token per ListFlows building a page (MaxConcurrentLists).
	lists chan struct{}
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithHostname sets the hostname GetNode reports; the default is os.Hostname().
func WithHostname(h string) Option { return func(s *Server) { s.hostname = h } }

// WithVersion sets the offloadd version GetNode reports; the default is "".
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithBatchInterceptors declares that the gRPC server's interceptors
// understand *ApplyFlowsBatch, so ApplyFlows keeps the codec's fast path
// under them (the default builds the protobuf request for interceptors,
// which costs the fast path).
func WithBatchInterceptors() Option { return func(s *Server) { s.batchInterceptors = true } }

// WithLimits sets the limits requests are held to (default
// DefaultLimits; zero fields take their default) and where hits are
// counted and logged (nil: a counter of the server's own, unexported).
// The gRPC server must enforce the same limits: pass
// limits.ServerOptions() to grpc.NewServer.
func WithLimits(l Limits, hits *LimitHits) Option {
	return func(s *Server) { s.limits, s.hits = l, hits }
}

// NewServer builds a Server. Its health status starts as SERVING.
func NewServer(engine FlowEngine, node NodeInfo, opts ...Option) *Server {
	s := &Server{engine: engine, node: node, health: health.NewServer()}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.hostname == "" {
		s.hostname, _ = os.Hostname()
	}
	s.limits = s.limits.WithDefaults()
	s.lists = make(chan struct{}, s.limits.MaxConcurrentLists)
	if s.hits == nil {
		s.hits = NewLimitHits(s.log)
	}
	s.SetServing(true)
	return s
}

// serviceNames are the services whose health is reported, "" being the
// whole server.
var serviceNames = []string{"", v1.FlowService_ServiceDesc.ServiceName, v1.NodeService_ServiceDesc.ServiceName,
	v1.MigrationService_ServiceDesc.ServiceName, v1.DatapathService_ServiceDesc.ServiceName, v1.VfService_ServiceDesc.ServiceName}

// SetServing sets the health status of every service: SERVING or
// NOT_SERVING (e.g. while the daemon shuts down).
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, n := range serviceNames {
		s.health.SetServingStatus(n, st)
	}
}

// Register registers FlowService, NodeService, grpc.health.v1.Health and
// server reflection on gs.
func (s *Server) Register(gs *grpc.Server) {
	gs.RegisterService(guardDecoding(flowServiceDesc(), s.hits), &flowService{s: s})
	gs.RegisterService(guardDecoding(&v1.NodeService_ServiceDesc, s.hits), &nodeService{s: s})
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
}
