package authz

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Authorizer enforces a Policy on every RPC and audits.
type Authorizer struct {
	policy *Policy
	audit  *Auditor
	// tcpReflection and tcpHealth serve those services on TCP.
	tcpReflection, tcpHealth bool
}

// Options configure an Authorizer.
type Options struct {
	// Audit receives the audit records (default: slog.Default()).
	Audit *Auditor
	// TCPReflection serves gRPC reflection to TCP callers (default false;
	// the unix socket always has it).
	TCPReflection bool
	// TCPHealth serves gRPC health to TCP callers (off unless the daemon's
	// tcpHealth or --tcp-health asks for it).
	TCPHealth bool
}

// NewAuthorizer builds an Authorizer over p.
func NewAuthorizer(p *Policy, o Options) *Authorizer {
	if o.Audit == nil {
		o.Audit = NewAuditor(nil)
	}
	return &Authorizer{policy: p, audit: o.Audit, tcpReflection: o.TCPReflection, tcpHealth: o.TCPHealth}
}

// ServerOptions install the interceptors.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(a.Unary), grpc.ChainStreamInterceptor(a.Stream)}
}

// check is the decision before the handler: nil, Unimplemented for a
// service switched off on TCP, or PermissionDenied.
func (a *Authorizer) check(ctx context.Context, id Identity, method string, req any, start time.Time) error {
	if id.Transport == TransportTLS || id.Transport == TransportPlaintext {
		if isReflection(method) && !a.tcpReflection {
			return status.Error(codes.Unimplemented, "reflection is not served on TCP (start offloadd with --tcp-reflection)")
		}
		if isHealth(method) && !a.tcpHealth {
			return status.Error(codes.Unimplemented, "health is not served on TCP (tcpHealth: false)")
		}
	}
	err := a.policy.Authorize(id, method, req)
	if err == nil {
		return nil
	}
	var d *Denied
	if !errors.As(err, &d) {
		return status.Errorf(codes.Internal, "authorize %s: %v", method, err)
	}
	st := status.New(codes.PermissionDenied, "permission denied: "+d.Error())
	a.audit.Write(ctx, Record{Who: id, Roles: a.policy.Roles(id), Method: method, Code: codes.PermissionDenied,
		Err: d.Reason, Duration: time.Since(start), Denied: true, Arguments: Arguments(req)})
	return st.Err()
}

// Unary authorizes a unary call and audits it when it mutates.
func (a *Authorizer) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	id := IdentityFromContext(ctx)
	if err := a.check(ctx, id, info.FullMethod, req, start); err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if Methods[info.FullMethod].Mutating {
		r := Record{Who: id, Roles: a.policy.Roles(id), Method: info.FullMethod, Code: status.Code(err),
			Duration: time.Since(start), Arguments: Arguments(req)}
		if err != nil {
			r.Err = status.Convert(err).Message()
		}
		a.audit.Write(ctx, r)
	}
	return resp, err
}

// Stream authorizes a stream when it opens (no stream RPC mutates).
func (a *Authorizer) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	if err := a.check(ctx, IdentityFromContext(ctx), info.FullMethod, nil, time.Now()); err != nil {
		return err
	}
	return handler(srv, ss)
}
