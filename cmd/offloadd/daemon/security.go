package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/offloadd/offloadd/api/authz"
	"github.com/offloadd/offloadd/offload"
)

// insecureWarnEvery is how often plaintext TCP is logged again.
const insecureWarnEvery = time.Hour

// security is the daemon's access control: TLS files, the policy, the
// migration peers and the audit log.
type security struct {
	tls    *authz.TLSFiles // nil without TLS
	peers  *authz.PeerSet
	policy *authz.Policy
	authz  *authz.Authorizer
	creds  *authz.ServerCredentials
}

// newSecurity builds access control from cfg. Audit records go to
// cfg.AuditLog or, by default, to log; closers get the audit file.
func newSecurity(cfg Config, log *slog.Logger, eng *offload.Engine) (*security, []func() error, error) {
	s := &security{}
	var closers []func() error
	if cfg.TLS.Enabled() {
		f, err := authz.NewTLSFiles(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.ClientCA, log)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = f
	}
	peers, err := authz.NewPeerSet(cfg.Peers, s.tls,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize), grpc.MaxCallSendMsgSize(MaxMsgSize)))
	if err != nil {
		return nil, nil, err
	}
	s.peers = peers
	var admins []uint32
	if cfg.UnixRootAdmin {
		// The socket is the daemon's, mode 0600: only root and the daemon's
		// own user can open it, and both could take the daemon over anyway.
		admins = []uint32{0}
		if me := uint32(os.Geteuid()); me != 0 {
			admins = append(admins, me)
		}
	}
	bindings := append(slices.Clone(cfg.Policy), peers.Bindings()...)
	s.policy, err = authz.NewPolicy(bindings, admins, flowPorts(eng))
	if err != nil {
		return nil, nil, err
	}
	auditLog := log
	if cfg.AuditLog != "" {
		f, err := os.OpenFile(cfg.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open audit log %s: %w", cfg.AuditLog, err)
		}
		closers = append(closers, f.Close)
		auditLog = slog.New(slog.NewJSONHandler(f, nil))
	}
	s.authz = authz.NewAuthorizer(s.policy, authz.Options{Audit: authz.NewAuditor(auditLog),
		TCPReflection: cfg.TCPReflection, TCPHealth: cfg.TCPHealth})
	if s.tls != nil {
		s.creds = authz.NewServerCredentials(s.tls.ServerConfig(), false)
	} else {
		s.creds = authz.NewServerCredentials(nil, cfg.InsecureTCP)
	}
	return s, closers, nil
}

// describe says how a listener of network ("unix", "tcp") authenticates.
func (s *security) describe(network string) string {
	switch {
	case network == "unix":
		return "SO_PEERCRED uid/gid"
	case s.tls != nil:
		return "mTLS 1.3 as " + s.tls.Identity()
	}
	return "PLAINTEXT (--insecure-tcp)"
}

// serverOptions are the gRPC server options: credentials and interceptors.
func (s *security) serverOptions() []grpc.ServerOption {
	return append([]grpc.ServerOption{grpc.Creds(s.creds)}, s.authz.ServerOptions()...)
}

// flowPorts resolves existing flows' ingress ports for port-scoped deletes.
func flowPorts(eng *offload.Engine) authz.FlowPorts {
	return func(ids []string) map[string]string {
		out := make(map[string]string, len(ids))
		for _, id := range ids {
			if st, ok := eng.Get(id); ok && st.Flow != nil {
				out[id] = st.Flow.Port
			}
		}
		return out
	}
}

// warnPlaintext says that the TCP listener at addr is plaintext.
func warnPlaintext(log *slog.Logger, addr string) {
	log.Warn("the API is served in PLAINTEXT on TCP with no authentication (--insecure-tcp): anyone who reaches "+
		addr+" is the anonymous identity; configure tls (cert, key, clientCA) instead", "addr", addr)
}

// warnPlaintextEvery repeats warnPlaintext every interval until ctx ends.
func warnPlaintextEvery(ctx context.Context, log *slog.Logger, addr string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			warnPlaintext(log, addr)
		}
	}
}
