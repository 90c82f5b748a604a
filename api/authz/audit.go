package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/grpc/codes"
)

// maxAuditIDs is how many flow IDs a record lists; bigger batches are
// recorded as their count and the sha256 of their IDs joined by "\n".
const maxAuditIDs = 16

// Record is one audited call.
type Record struct {
	Who       Identity
	Roles     []string
	Method    string
	Code      codes.Code
	Err       string
	Duration  time.Duration
	Denied    bool
	Arguments []slog.Attr
}

// Auditor writes audit records to a logger of their own. Every record has
// audit=true, so the records can share a stream with the daemon's log.
type Auditor struct{ log *slog.Logger }

// NewAuditor writes records to log (slog.Default() if nil).
func NewAuditor(log *slog.Logger) *Auditor {
	if log == nil {
		log = slog.Default()
	}
	return &Auditor{log: log}
}

// Write logs one record: "audit" at info, or warn for a denied call.
func (a *Auditor) Write(ctx context.Context, r Record) {
	attrs := []slog.Attr{slog.Bool("audit", true), slog.String("who", r.Who.String()),
		slog.String("transport", string(r.Who.Transport)), slog.String("peer", r.Who.Addr),
		slog.String("roles", strings.Join(r.Roles, ",")), slog.String("method", r.Method),
		slog.String("result", r.Code.String()), slog.Bool("denied", r.Denied),
		slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000)}
	attrs = append(attrs, r.Arguments...)
	if r.Err != "" {
		attrs = append(attrs, slog.String("error", r.Err))
	}
	lvl := slog.LevelInfo
	if r.Denied {
		lvl = slog.LevelWarn
	}
	a.log.LogAttrs(ctx, lvl, "audit", attrs...)
}

// Arguments describe a request for the audit record: how many flows, which
// IDs (or their digest), the port, migration, VF owner. Flow contents are
// left out.
func Arguments(req any) []slog.Attr {
	var out []slog.Attr
	switch r := req.(type) {
	case *v1.ApplyFlowsRequest:
		ids := make([]string, len(r.GetFlows()))
		for i, f := range r.GetFlows() {
			ids[i] = f.GetId()
		}
		out = append(idAttrs(ids), slog.Bool("atomic", r.GetAtomic()))
	case FlowBatch:
		out = idAttrs(r.FlowIDs())
		if a, ok := r.(interface{ Atomic() bool }); ok {
			out = append(out, slog.Bool("atomic", a.Atomic()))
		}
	case *v1.DeleteFlowsRequest:
		out = idAttrs(r.GetIds())
	case *v1.PrepareMigrationRequest:
		ids := make([]string, len(r.GetFlows()))
		for i, f := range r.GetFlows() {
			ids[i] = f.GetId()
		}
		out = append(idAttrs(ids), slog.String("source_port", r.GetSourcePort()), slog.String("port", r.GetPort()))
	case *v1.DrainMigrationRequest:
		out = []slog.Attr{slog.String("port", r.GetPort())}
	case *v1.ExportMigrationRequest:
		out = []slog.Attr{slog.String("forward_to", r.GetForwardTo()), slog.Bool("refresh", r.GetRefresh())}
	case *v1.ImportMigrationRequest:
		out = []slog.Attr{slog.Int("bundle_bytes", len(r.GetBundle().GetContent()))}
	case *v1.AllocateVfRequest:
		out = []slog.Attr{slog.String("owner", r.GetOwner()), slog.String("pool", r.GetPool())}
	case *v1.ReleaseVfRequest:
		out = []slog.Attr{slog.String("owner", r.GetOwner())}
	case *v1.InjectPacketRequest:
		out = []slog.Attr{slog.String("port", r.GetPort())}
	}
	if m, ok := req.(interface{ GetMigrationId() string }); ok {
		out = append(out, slog.String("migration", m.GetMigrationId()))
	}
	return out
}

// idAttrs are flows=N and the IDs, or their sha256 beyond maxAuditIDs.
func idAttrs(ids []string) []slog.Attr {
	out := []slog.Attr{slog.Int("flows", len(ids))}
	if len(ids) <= maxAuditIDs {
		return append(out, slog.Any("ids", ids))
	}
	return append(out, slog.String("ids_sha256", IDsDigest(ids)))
}

// IDsDigest is the sha256 of ids joined by "\n", in hex: what the audit
// log records for a batch of more than 16 flows.
func IDsDigest(ids []string) string {
	h := sha256.New()
	for i, id := range ids {
		if i > 0 {
			h.Write([]byte{'\n'})
		}
		h.Write([]byte(id))
	}
	return hex.EncodeToString(h.Sum(nil))
}
