package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Limits bound what clients may hold and send, so that one greedy or
// broken client cannot take the daemon's memory, file descriptors or
// goroutines. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	// MaxConnections is the most API connections open at once per
	// listener (default 256); more are closed on accept, with a log line.
	MaxConnections int
	// MaxStreamsPerConnection is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS
	// (default 128): calls in flight on one connection; a client's further
	// calls wait for one to end.
	MaxStreamsPerConnection uint32
	// MaxRecvMsgSize and MaxSendMsgSize bound one message, in bytes
	// (default 64 MiB each: a batch of 10,000 flows and its answer fit).
	MaxRecvMsgSize int
	MaxSendMsgSize int
	// MaxFlowsPerRequest bounds the flows of one ApplyFlows or
	// ExplainFlows request (default 10000).
	MaxFlowsPerRequest int
	// MaxWatchers bounds the WatchFlows streams open at once (default 64);
	// each holds a snapshot of every flow while it is sent.
	MaxWatchers int
	// MaxConcurrentLists bounds the ListFlows calls that build pages at
	// once (default 1); more wait their turn, so clients listing every
	// flow cannot take every core from changes and reads of one flow.
	MaxConcurrentLists int
	// MaxConnectionIdle closes a connection with no call for this long
	// (default 30m; WatchFlows streams count as calls).
	MaxConnectionIdle time.Duration
	// KeepaliveMinTime is the shortest interval between a client's pings
	// that is tolerated (default 10s, gRPC clients' own minimum); a
	// client that pings more often is sent GOAWAY "too_many_pings".
	// Pings without a call in flight are allowed.
	KeepaliveMinTime time.Duration
}

// DefaultLimits are the limits a daemon runs with unless configured.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:          256,
		MaxStreamsPerConnection: 128,
		MaxRecvMsgSize:          64 << 20,
		MaxSendMsgSize:          64 << 20,
		MaxFlowsPerRequest:      10000,
		MaxWatchers:             64,
		MaxConcurrentLists:      1,
		MaxConnectionIdle:       30 * time.Minute,
		KeepaliveMinTime:        10 * time.Second,
	}
}

// WithDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxConnections <= 0 {
		l.MaxConnections = d.MaxConnections
	}
	if l.MaxStreamsPerConnection == 0 {
		l.MaxStreamsPerConnection = d.MaxStreamsPerConnection
	}
	if l.MaxRecvMsgSize <= 0 {
		l.MaxRecvMsgSize = d.MaxRecvMsgSize
	}
	if l.MaxSendMsgSize <= 0 {
		l.MaxSendMsgSize = d.MaxSendMsgSize
	}
	if l.MaxFlowsPerRequest <= 0 {
		l.MaxFlowsPerRequest = d.MaxFlowsPerRequest
	}
	if l.MaxConcurrentLists <= 0 {
		l.MaxConcurrentLists = d.MaxConcurrentLists
	}
	if l.MaxWatchers <= 0 {
		l.MaxWatchers = d.MaxWatchers
	}
	if l.MaxConnectionIdle <= 0 {
		l.MaxConnectionIdle = d.MaxConnectionIdle
	}
	if l.KeepaliveMinTime <= 0 {
		l.KeepaliveMinTime = d.KeepaliveMinTime
	}
	return l
}

// ServerOptions are the gRPC server options that enforce l: message sizes,
// streams per connection, idle timeout and the keepalive policy.
func (l Limits) ServerOptions() []grpc.ServerOption {
	l = l.WithDefaults()
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(l.MaxSendMsgSize),
		grpc.MaxConcurrentStreams(l.MaxStreamsPerConnection),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: l.MaxConnectionIdle}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}),
	}
}

// Limit names, the values of the limit label of
// offloadd_api_limit_hits_total.
const (
	LimitConnections     = "connections"
	LimitRecvMsgSize     = "recv_msg_size"
	LimitFlowsPerRequest = "flows_per_request"
	LimitSendMsgSize     = "send_msg_size"
	LimitWatchers        = "watchers"
)

// LimitHits counts and logs the times a limit refused something. Its
// zero value is not usable; NewLimitHits returns one. Register it with a
// prometheus.Registry to export offloadd_api_limit_hits_total{limit}.
type LimitHits struct {
	log *slog.Logger
	c   *prometheus.CounterVec
}

var _ prometheus.Collector = (*LimitHits)(nil)

// NewLimitHits returns a counter that logs through log.
func NewLimitHits(log *slog.Logger) *LimitHits {
	if log == nil {
		log = slog.Default()
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offloadd_api_limit_hits_total",
		Help: "Requests or connections refused by an API limit, by limit.",
	}, []string{"limit"})
	for _, l := range []string{LimitConnections, LimitRecvMsgSize, LimitFlowsPerRequest, LimitSendMsgSize, LimitWatchers} {
		c.WithLabelValues(l) // exported as 0 before the first hit
	}
	return &LimitHits{log: log, c: c}
}

// Hit records that limit refused something; args describe it for the log.
func (h *LimitHits) Hit(limit string, args ...any) {
	if h == nil {
		return
	}
	h.c.WithLabelValues(limit).Inc()
	h.log.Warn("API limit hit", append([]any{"limit", limit}, args...)...)
}

// Describe implements prometheus.Collector.
func (h *LimitHits) Describe(ch chan<- *prometheus.Desc) { h.c.Describe(ch) }

// Collect implements prometheus.Collector.
func (h *LimitHits) Collect(ch chan<- prometheus.Metric) { h.c.Collect(ch) }

// LimitListener wraps inner so that at most max connections are open at
// once: a connection beyond that is closed as soon as it is accepted, and
// the hit logged and counted, rather than queued where it would hold a
// file descriptor and a goroutine anyway.
func LimitListener(inner net.Listener, max int, hits *LimitHits) net.Listener {
	return &limitListener{Listener: inner, max: max, hits: hits}
}

type limitListener struct {
	net.Listener
	max  int
	hits *LimitHits

	mu   sync.Mutex
	open int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.open >= l.max {
			l.mu.Unlock()
			l.hits.Hit(LimitConnections, "addr", l.Addr().String(), "max", l.max)
			_ = c.Close()
			continue
		}
		l.open++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

// NetConn is the connection accepted, for code that needs its type (the
// unix socket's peer credentials).
func (c *limitConn) NetConn() net.Conn { return c.Conn }

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}

// maxIDInError bounds how much of a client's ID an error echoes.
const maxIDInError = 64

// clipID shortens id for an error message: at most 64 bytes, cut at a
// rune boundary, with "…" when cut, so a huge ID is not sent back whole.
func clipID(id string) string {
	if len(id) <= maxIDInError {
		return id
	}
	cut := maxIDInError
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "…"
}

// A request the codec cannot decode must be the client's fault,
// INVALID_ARGUMENT, but gRPC answers a codec error with INTERNAL, and
// writes that status itself before the handler runs. So the codec does
// not fail on messages of this API: it resets the message and marks it
// with an unknown field, and guardDecoding, around every handler, turns
// the mark into INVALID_ARGUMENT.
const malformedField protowire.Number = protowire.MaxValidNumber

// ours reports whether m belongs to this API (and so is guarded).
func ours(m proto.Message) bool {
	return strings.HasPrefix(string(m.ProtoReflect().Descriptor().FullName()), "offloadd.v1.")
}

func markMalformed(m proto.Message, err error) {
	proto.Reset(m)
	b := protowire.AppendTag(nil, malformedField, protowire.BytesType)
	m.ProtoReflect().SetUnknown(protowire.AppendString(b, err.Error()))
}

// malformed returns the decoding error marked on v, nil when there is none.
func malformed(v any) error {
	switch m := v.(type) {
	case interface{ decodeError() error }:
		return m.decodeError()
	case proto.Message:
		u := m.ProtoReflect().GetUnknown()
		num, typ, n := protowire.ConsumeTag(u)
		if n > 0 && num == malformedField && typ == protowire.BytesType {
			if s, k := protowire.ConsumeString(u[n:]); k > 0 {
				return errors.New(s)
			}
		}
	}
	return nil
}

// requestError says why a request could not be read: INVALID_ARGUMENT for
// a malformed message (bad wire format, a string that is not UTF-8); a
// message over the size limit (RESOURCE_EXHAUSTED) is counted.
func requestError(err error, v any, method string, hits *LimitHits) error {
	if err == nil {
		if merr := malformed(v); merr != nil {
			return status.Errorf(codes.InvalidArgument, "%s: malformed request: %v", method, merr)
		}
		return nil
	}
	if status.Code(err) == codes.ResourceExhausted {
		hits.Hit(LimitRecvMsgSize, "method", method, "err", status.Convert(err).Message())
	}
	return err
}

// guardDecoding wraps every method of desc so that request decoding
// errors go through requestError.
func guardDecoding(desc *grpc.ServiceDesc, hits *LimitHits) *grpc.ServiceDesc {
	out := *desc
	out.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h, name := m.Handler, "/"+desc.ServiceName+"/"+m.MethodName
		out.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName,
			Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				return h(srv, ctx, func(v any) error { return requestError(dec(v), v, name, hits) }, ic)
			}}
	}
	out.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, s := range desc.Streams {
		h, name := s.Handler, "/"+desc.ServiceName+"/"+s.StreamName
		s.Handler = func(srv any, stream grpc.ServerStream) error {
			return h(srv, &guardedStream{ServerStream: stream, method: name, hits: hits})
		}
		out.Streams[i] = s
	}
	return &out
}

type guardedStream struct {
	grpc.ServerStream
	method string
	hits   *LimitHits
}

func (s *guardedStream) RecvMsg(m any) error {
	return requestError(s.ServerStream.RecvMsg(m), m, s.method, s.hits)
}

// sendEstimate is what an ApplyFlows answer with include_flows is
// estimated to weigh: the request's bytes (each flow is sent back) plus
// a status per flow.
func sendEstimate(reqBytes, flows int) int {
	const perResult = 160 // outcome, state, generation, a reason or two
	return reqBytes + flows*perResult
}

func mib(n int) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
