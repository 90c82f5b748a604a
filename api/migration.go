package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"time"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/fallback"
	"github.com/offloadd/offloadd/offload"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Migrations is the live-migration handoff MigrationService serves
// (fallback.Migrator).
type Migrations interface {
	Prepare(ctx context.Context, req fallback.PrepareRequest) (fallback.PrepareResult, error)
	Drain(ctx context.Context, req fallback.DrainRequest) (fallback.DrainResult, error)
	Export(ctx context.Context, req fallback.ExportRequest) (*fallback.Bundle, error)
	Import(ctx context.Context, req fallback.ImportRequest) (fallback.ImportResult, error)
	Reoffload(ctx context.Context, id string) (fallback.ReoffloadResult, error)
	Commit(ctx context.Context, id string) (fallback.CommitResult, error)
	Abort(ctx context.Context, id string) (fallback.AbortResult, error)
	Get(id string) (fallback.Migration, error)
	List() []fallback.Migration
}

var _ Migrations = (*fallback.Migrator)(nil)

// Peers are the daemons that ExportMigration may forward a bundle to,
// named in the daemon's config with their address and the identity their
// certificate must carry. A request names a peer; it never gives an
// address, so a client cannot make the daemon dial what it likes.
type Peers interface {
	// HasPeer reports whether name is a configured peer.
	HasPeer(name string) bool
	// DialPeer connects to the peer called name, authenticating both ways.
	DialPeer(ctx context.Context, name string) (*grpc.ClientConn, error)
}

// MigrationService serves offloadd.v1.MigrationService over Migrations.
type MigrationService struct {
	v1.UnimplementedMigrationServiceServer
	m     Migrations
	log   *slog.Logger
	peers Peers
}

// MigrationOption configures a MigrationService.
type MigrationOption func(*MigrationService)

// WithMigrationLogger sets the logger; the default is slog.Default().
func WithMigrationLogger(l *slog.Logger) MigrationOption {
	return func(s *MigrationService) { s.log = l }
}

// WithPeers sets the daemons forward_to may name; the default is none, so
// every forward_to is refused.
func WithPeers(p Peers) MigrationOption {
	return func(s *MigrationService) { s.peers = p }
}

// NewMigrationService builds the service; register it with Register.
func NewMigrationService(m Migrations, opts ...MigrationOption) *MigrationService {
	s := &MigrationService{m: m}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// peerName matches a peer's name: no ':' or '/', so no address or path
// passes for one.
var peerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// checkForwardTo refuses a forward_to that is not a configured peer's name.
func (s *MigrationService) checkForwardTo(id, to string) error {
	if !peerName.MatchString(to) {
		return invalidArg("export migration %s: forward_to %q: name a peer from the daemon config, not an address or a socket path", id, to)
	}
	if s.peers == nil || !s.peers.HasPeer(to) {
		return invalidArg("export migration %s: forward_to %q is not a configured peer", id, to)
	}
	return nil
}

// Register registers the service on gs.
func (s *MigrationService) Register(gs *grpc.Server) {
	// Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
	gs.RegisterService(guardDecoding(&v1.MigrationService_ServiceDesc, nil), s)
}

// migrationError maps a handoff error to a gRPC status.
func migrationError(op string, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.New(status.FromContextError(err).Code(), op+": "+err.Error()).Err()
	case errors.Is(err, fallback.ErrInvalidRequest):
		code = codes.InvalidArgument
	case errors.Is(err, fallback.ErrStep), errors.Is(err, fallback.ErrConflict):
		code = codes.FailedPrecondition
	case errors.Is(err, fallback.ErrIncomplete), errors.Is(err, offload.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, fallback.ErrUnknown):
		code = codes.NotFound
	case errors.Is(err, fallback.ErrNoVF):
		code = codes.ResourceExhausted
	}
	st := status.New(code, op+": "+err.Error())
	var fe *fallback.FlowsError
	if errors.As(err, &fe) && code == codes.InvalidArgument {
		br := &errdetails.BadRequest{}
		for i, r := range fe.Results {
			for _, v := range r.Violations {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
					Field: fmt.Sprintf("flows[%d].%s", i, v.Field), Description: v.Reason})
			}
		}
		if d, derr := st.WithDetails(br); derr == nil {
			st = d
		}
	}
	return st.Err()
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// PrepareMigration serves the destination's first step.
func (s *MigrationService) PrepareMigration(ctx context.Context, req *v1.PrepareMigrationRequest) (*v1.PrepareMigrationResponse, error) {
	var flows []offload.StoredFlow
	var vs []*errdetails.BadRequest_FieldViolation
	for i, p := range req.GetFlows() {
		path := fmt.Sprintf("flows[%d]", i)
		f, bad := FlowFromProto(p, path)
		for _, v := range bad {
			vs = append(vs, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Reason})
		}
		flows = append(flows, offload.StoredFlow{Flow: f})
	}
	if len(vs) > 0 {
		return nil, badRequest("prepare migration", vs)
	}
	r := fallback.PrepareRequest{ID: req.GetMigrationId(), SourcePort: req.GetSourcePort(), Port: req.GetPort(),
		Flows: flows, PortMap: req.GetPortMap()}
	if req.Vf != nil {
		vf := vfSettingsFromProto(req.GetVf())
		r.VF = &vf
	}
	res, err := s.m.Prepare(ctx, r)
	if err != nil {
		return nil, migrationError("prepare migration", err)
	}
	return &v1.PrepareMigrationResponse{Migration: s.migration(r.ID), Port: res.Port, Vf: vfToProto(res.VF),
		Flows: placementsToProto(res.Flows)}, nil
}

// DrainMigration serves the source's drain.
func (s *MigrationService) DrainMigration(ctx context.Context, req *v1.DrainMigrationRequest) (*v1.DrainMigrationResponse, error) {
	res, err := s.m.Drain(ctx, fallback.DrainRequest{ID: req.GetMigrationId(), Port: req.GetPort()})
	if err != nil {
		return nil, migrationError("drain migration", err)
	}
	return &v1.DrainMigrationResponse{Migration: s.migration(req.GetMigrationId()), Flows: uint32(res.Flows),
		Moved: uint32(res.Moved), Held: uint32(res.Held)}, nil
}

// ExportMigration serves the source's export, forwarding the bundle to the
// destination's ImportMigration when asked.
func (s *MigrationService) ExportMigration(ctx context.Context, req *v1.ExportMigrationRequest) (*v1.ExportMigrationResponse, error) {
	r := fallback.ExportRequest{ID: req.GetMigrationId(), Refresh: req.GetRefresh()}
	for _, z := range req.GetConntrackZones() {
		if z > 0xffff {
			return nil, invalidArg("export migration: conntrack_zones: %d > 65535", z)
		}
		r.Zones = append(r.Zones, uint16(z))
	}
	for i, a := range req.GetConntrackAddresses() {
		p, err := parseAnyPrefix(a)
		if err != nil {
			return nil, invalidArg("export migration: conntrack_addresses[%d]: %v", i, err)
		}
		r.Addresses = append(r.Addresses, p)
	}
	to := req.GetForwardTo()
	if to != "" {
		// Before the export: a refused destination leaves the migration as it was.
		if err := s.checkForwardTo(r.ID, to); err != nil {
			return nil, err
		}
	}
	b, err := s.m.Export(ctx, r)
	if err != nil {
		return nil, migrationError("export migration", err)
	}
	pb, err := BundleToProto(b)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "export migration %s: %v", r.ID, err)
	}
	resp := &v1.ExportMigrationResponse{Migration: s.migration(r.ID), Bundle: pb}
	if to != "" {
		conn, err := s.peers.DialPeer(ctx, to)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "export migration %s: connect to %s: %v", r.ID, to, err)
		}
		defer conn.Close()
		fwd, err := v1.NewMigrationServiceClient(conn).ImportMigration(ctx,
			&v1.ImportMigrationRequest{MigrationId: r.ID, Bundle: pb, PortMap: req.GetPortMap()})
		if err != nil {
			st := status.Convert(err)
			return nil, status.Errorf(st.Code(), "export migration %s: import at %s: %s", r.ID, to, st.Message())
		}
		resp.Forwarded = fwd
		s.log.Info("migration bundle forwarded", "migration", r.ID, "to", to, "flows", len(b.Flows), "conns", len(b.Conns))
	}
	return resp, nil
}

// ImportMigration serves the destination's import.
func (s *MigrationService) ImportMigration(ctx context.Context, req *v1.ImportMigrationRequest) (*v1.ImportMigrationResponse, error) {
	if req.GetBundle() == nil {
		return nil, invalidArg("import migration %s: no bundle", req.GetMigrationId())
	}
	b, err := BundleFromProto(req.GetBundle())
	if err != nil {
		return nil, migrationError("import migration "+req.GetMigrationId(), err)
	}
	res, err := s.m.Import(ctx, fallback.ImportRequest{ID: req.GetMigrationId(), Bundle: b, PortMap: req.GetPortMap()})
	if err != nil {
		return nil, migrationError("import migration", err)
	}
	return &v1.ImportMigrationResponse{
		Migration: s.migration(req.GetMigrationId()), Serial: res.Serial,
		FlowsCreated: uint32(res.Created), FlowsUpdated: uint32(res.Updated), FlowsUnchanged: uint32(res.Unchanged),
		FlowsRemoved: uint32(res.Removed), ConntrackCreated: uint32(res.ConnsCreated), ConntrackUpdated: uint32(res.ConnsUpdated),
		Flows: placementsToProto(res.Flows),
	}, nil
}

// ReoffloadMigration serves the destination's re-offload.
func (s *MigrationService) ReoffloadMigration(ctx context.Context, req *v1.ReoffloadMigrationRequest) (*v1.ReoffloadMigrationResponse, error) {
	res, err := s.m.Reoffload(ctx, req.GetMigrationId())
	if err != nil {
		return nil, migrationError("reoffload migration", err)
	}
	return &v1.ReoffloadMigrationResponse{Migration: s.migration(req.GetMigrationId()), Hardware: uint32(res.Hardware),
		Software: uint32(res.Software), Flows: placementsToProto(res.Flows)}, nil
}

// CommitMigration serves Commit on either side.
func (s *MigrationService) CommitMigration(ctx context.Context, req *v1.CommitMigrationRequest) (*v1.CommitMigrationResponse, error) {
	res, err := s.m.Commit(ctx, req.GetMigrationId())
	if err != nil {
		return nil, migrationError("commit migration", err)
	}
	return &v1.CommitMigrationResponse{Migration: s.migration(req.GetMigrationId()), FlowsRemoved: uint32(res.FlowsRemoved),
		ConntrackRemoved: uint32(res.ConnsRemoved), VfReleased: res.VFReleased}, nil
}

// AbortMigration serves Abort on either side.
func (s *MigrationService) AbortMigration(ctx context.Context, req *v1.AbortMigrationRequest) (*v1.AbortMigrationResponse, error) {
	res, err := s.m.Abort(ctx, req.GetMigrationId())
	if err != nil {
		return nil, migrationError("abort migration", err)
	}
	return &v1.AbortMigrationResponse{Migration: s.migration(req.GetMigrationId()), FlowsRemoved: uint32(res.FlowsRemoved),
		ConntrackRemoved: uint32(res.ConnsRemoved), ConntrackRestored: uint32(res.ConnsRestored), VfReleased: res.VFReleased,
		Flows: placementsToProto(res.Flows), NotRestored: res.NotRestored}, nil
}

// GetMigration returns one migration.
func (s *MigrationService) GetMigration(_ context.Context, req *v1.GetMigrationRequest) (*v1.GetMigrationResponse, error) {
	m, err := s.m.Get(req.GetMigrationId())
	if err != nil {
		return nil, migrationError("get migration", err)
	}
	return &v1.GetMigrationResponse{Migration: MigrationToProto(m)}, nil
}

// ListMigrations returns every migration.
func (s *MigrationService) ListMigrations(context.Context, *v1.ListMigrationsRequest) (*v1.ListMigrationsResponse, error) {
	ms := s.m.List()
	out := &v1.ListMigrationsResponse{Migrations: make([]*v1.Migration, len(ms))}
	for i, m := range ms {
		out.Migrations[i] = MigrationToProto(m)
	}
	return out, nil
}

// migration is the migration's state after a step, nil if it cannot be read.
func (s *MigrationService) migration(id string) *v1.Migration {
	m, err := s.m.Get(id)
	if err != nil {
		return nil
	}
	return MigrationToProto(m)
}

func badRequest(op string, vs []*errdetails.BadRequest_FieldViolation) error {
	lines := make([]string, 0, min(len(vs), maxErrorLines))
	for i, v := range vs {
		if i == maxErrorLines {
			lines = append(lines, fmt.Sprintf("and %d more", len(vs)-i))
			break
		}
		lines = append(lines, v.GetField()+": "+v.GetDescription())
	}
	st := status.New(codes.InvalidArgument, op+": "+strings.Join(lines, "; "))
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: vs}); err == nil {
		st = d
	}
	return st.Err()
}

var migrationSteps = map[fallback.Step]v1.MigrationStep{
	fallback.StepNone:        v1.MigrationStep_MIGRATION_STEP_STARTED,
	fallback.StepPrepared:    v1.MigrationStep_MIGRATION_STEP_PREPARED,
	fallback.StepDrained:     v1.MigrationStep_MIGRATION_STEP_DRAINED,
	fallback.StepExported:    v1.MigrationStep_MIGRATION_STEP_EXPORTED,
	fallback.StepImported:    v1.MigrationStep_MIGRATION_STEP_IMPORTED,
	fallback.StepReoffloaded: v1.MigrationStep_MIGRATION_STEP_REOFFLOADED,
	fallback.StepCommitted:   v1.MigrationStep_MIGRATION_STEP_COMMITTED,
	fallback.StepAborted:     v1.MigrationStep_MIGRATION_STEP_ABORTED,
}

// MigrationToProto converts a migration's state.
func MigrationToProto(m fallback.Migration) *v1.Migration {
	role := v1.MigrationRole_MIGRATION_ROLE_UNSPECIFIED
	switch m.Role {
	case fallback.RoleSource:
		role = v1.MigrationRole_MIGRATION_ROLE_SOURCE
	case fallback.RoleDestination:
		role = v1.MigrationRole_MIGRATION_ROLE_DESTINATION
	}
	return &v1.Migration{Id: m.ID, Role: role, Step: migrationSteps[m.Step], Port: m.Port, SourcePort: m.SourcePort,
		Vf: vfToProto(m.VF), Flows: uint32(m.Flows), ConntrackEntries: uint32(m.Conns),
		Created: timestamp(m.Created), Updated: timestamp(m.Updated)}
}

func vfToProto(l *fallback.VFLease) *v1.Vf {
	if l == nil {
		return nil
	}
	return &v1.Vf{Index: uint32(l.Index), PciAddress: l.PCIAddress, Netdev: l.Netdev, Representor: l.Representor,
		Settings: vfSettingsToProto(&l.Settings)}
}

func vfSettingsToProto(s *fallback.VFSettings) *v1.VfSettings {
	if s == nil {
		return nil
	}
	return &v1.VfSettings{Mac: s.MAC, Vlan: uint32(s.VLAN), Qos: uint32(s.QoS), Trust: s.Trust, Spoofchk: s.SpoofChk,
		MinTxRateMbps: s.MinTxRate, MaxTxRateMbps: s.MaxTxRate}
}

// vfSettingsFromProto converts settings; out-of-range values are clamped
// to invalid ones that VFSettings.Validate reports.
func vfSettingsFromProto(p *v1.VfSettings) fallback.VFSettings {
	return fallback.VFSettings{MAC: p.GetMac(), VLAN: uint16(min(p.GetVlan(), 0xffff)), QoS: uint8(min(p.GetQos(), 0xff)),
		Trust: p.GetTrust(), SpoofChk: p.GetSpoofchk(), MinTxRate: p.GetMinTxRateMbps(), MaxTxRate: p.GetMaxTxRateMbps()}
}

func placementsToProto(ps []fallback.Placement) []*v1.FlowPlacement {
	out := make([]*v1.FlowPlacement, len(ps))
	for i, p := range ps {
		out[i] = &v1.FlowPlacement{Id: p.ID, State: StateToProto(p.State), Reasons: reasonsToProto(nil, p.Reasons), Generation: p.Generation}
	}
	return out
}

// BundleToProto serializes a bundle into its checksummed envelope.
func BundleToProto(b *fallback.Bundle) (*v1.MigrationBundle, error) {
	c := &v1.MigrationBundleContent{MigrationId: b.MigrationID, SourceNode: b.SourceNode, SourcePort: b.SourcePort,
		Serial: b.Serial, Exported: timestamp(b.Exported), Vf: vfSettingsToProto(b.VF)}
	c.Flows = make([]*v1.MigratedFlow, len(b.Flows))
	for i, f := range b.Flows {
		c.Flows[i] = &v1.MigratedFlow{Flow: FlowToProto(f.Flow), Generation: f.Generation}
	}
	for _, z := range b.Zones {
		c.ConntrackZones = append(c.ConntrackZones, uint32(z))
	}
	c.Conntrack = make([]*v1.ConntrackEntry, len(b.Conns))
	for i, e := range b.Conns {
		c.Conntrack[i] = connToProto(e)
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode bundle of migration %s: %w", b.MigrationID, err)
	}
	sum := sha256.Sum256(data)
	return &v1.MigrationBundle{Version: b.Version, Content: data, Sha256: sum[:]}, nil
}

// BundleFromProto checks a bundle's version and checksum and decodes it.
// Every error wraps fallback.ErrInvalidRequest; flow errors name their
// field ("flows[3].match.ipv4_dst").
func BundleFromProto(p *v1.MigrationBundle) (*fallback.Bundle, error) {
	if err := fallback.CheckBundleVersion(p.GetVersion()); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(p.GetContent())
	if len(p.GetSha256()) != sha256.Size || !bytes.Equal(sum[:], p.GetSha256()) {
		return nil, fmt.Errorf("bundle checksum mismatch: %d bytes of content do not hash to the bundle's sha256 (truncated or altered in transit): %w",
			len(p.GetContent()), fallback.ErrInvalidRequest)
	}
	var c v1.MigrationBundleContent
	if err := proto.Unmarshal(p.GetContent(), &c); err != nil {
		return nil, fmt.Errorf("decode bundle content: %v: %w", err, fallback.ErrInvalidRequest)
	}
	b := &fallback.Bundle{Version: p.GetVersion(), MigrationID: c.GetMigrationId(), SourceNode: c.GetSourceNode(),
		SourcePort: c.GetSourcePort(), Serial: c.GetSerial()}
	if c.Exported != nil {
		b.Exported = c.GetExported().AsTime()
	}
	var bad []string
	for i, mf := range c.GetFlows() {
		f, vs := FlowFromProto(mf.GetFlow(), fmt.Sprintf("flows[%d]", i))
		for _, v := range vs {
			bad = append(bad, v.String())
		}
		b.Flows = append(b.Flows, offload.StoredFlow{Flow: f, Generation: mf.GetGeneration()})
	}
	for i, z := range c.GetConntrackZones() {
		if z > 0xffff {
			bad = append(bad, fmt.Sprintf("conntrack_zones[%d]: %d > 65535", i, z))
		}
		b.Zones = append(b.Zones, uint16(z))
	}
	for i, pe := range c.GetConntrack() {
		e, err := connFromProto(pe)
		if err != nil {
			bad = append(bad, fmt.Sprintf("conntrack[%d]: %v", i, err))
		}
		b.Conns = append(b.Conns, e)
	}
	if len(bad) > 0 {
		if len(bad) > maxErrorLines {
			bad = append(bad[:maxErrorLines], fmt.Sprintf("and %d more", len(bad)-maxErrorLines))
		}
		return nil, fmt.Errorf("bundle of migration %s: %s: %w", b.MigrationID, strings.Join(bad, "; "), fallback.ErrInvalidRequest)
	}
	if c.Vf != nil {
		vf := vfSettingsFromProto(c.GetVf())
		b.VF = &vf
	}
	return b, nil
}

func connToProto(e fallback.ConnEntry) *v1.ConntrackEntry {
	p := &v1.ConntrackEntry{Zone: uint32(e.Zone), IpProto: formatIPProto(e.Proto), Original: tupleToProto(e.Orig),
		Reply: tupleToProto(e.Reply), Status: e.Status, Mark: e.Mark, TimeoutSeconds: uint32(max(e.Timeout/time.Second, 0))}
	if t := e.TCP; t != nil {
		p.Tcp = &v1.ConntrackTcp{State: t.State.String(), OriginalWindowScale: uint32(t.OrigWScale),
			ReplyWindowScale: uint32(t.ReplyWScale), OriginalFlags: uint32(t.OrigFlags), ReplyFlags: uint32(t.ReplyFlags)}
	}
	return p
}

func tupleToProto(t fallback.ConnTuple) *v1.ConntrackTuple {
	return &v1.ConntrackTuple{Src: formatAddr(t.Src), Dst: formatAddr(t.Dst), SrcPort: uint32(t.SrcPort), DstPort: uint32(t.DstPort),
		IcmpId: uint32(t.ICMPID), IcmpType: uint32(t.ICMPType), IcmpCode: uint32(t.ICMPCode)}
}

func connFromProto(p *v1.ConntrackEntry) (fallback.ConnEntry, error) {
	var e fallback.ConnEntry
	if p.GetZone() > 0xffff {
		return e, fmt.Errorf("zone %d > 65535", p.GetZone())
	}
	proto, err := parseIPProto(p.GetIpProto())
	if err != nil {
		return e, fmt.Errorf("ip_proto: %w", err)
	}
	e = fallback.ConnEntry{Zone: uint16(p.GetZone()), Proto: proto, Status: p.GetStatus(), Mark: p.GetMark(),
		Timeout: time.Duration(p.GetTimeoutSeconds()) * time.Second}
	if e.Orig, err = tupleFromProto(p.GetOriginal()); err != nil {
		return e, fmt.Errorf("original: %w", err)
	}
	if e.Reply, err = tupleFromProto(p.GetReply()); err != nil {
		return e, fmt.Errorf("reply: %w", err)
	}
	if t := p.GetTcp(); t != nil {
		st, ok := fallback.ParseTCPState(t.GetState())
		if !ok {
			return e, fmt.Errorf("tcp.state: unknown state %q", t.GetState())
		}
		if t.GetOriginalWindowScale() > 14 || t.GetReplyWindowScale() > 14 || t.GetOriginalFlags() > 0xff || t.GetReplyFlags() > 0xff {
			return e, errors.New("tcp: window scale above 14 or flags above 0xff")
		}
		e.TCP = &fallback.ConnTCP{State: st, OrigWScale: uint8(t.GetOriginalWindowScale()), ReplyWScale: uint8(t.GetReplyWindowScale()),
			OrigFlags: uint8(t.GetOriginalFlags()), ReplyFlags: uint8(t.GetReplyFlags())}
	}
	return e, nil
}

func tupleFromProto(p *v1.ConntrackTuple) (fallback.ConnTuple, error) {
	var t fallback.ConnTuple
	var err error
	if t.Src, err = netip.ParseAddr(p.GetSrc()); err != nil {
		return t, fmt.Errorf("src: %w", err)
	}
	if t.Dst, err = netip.ParseAddr(p.GetDst()); err != nil {
		return t, fmt.Errorf("dst: %w", err)
	}
	if p.GetSrcPort() > 0xffff || p.GetDstPort() > 0xffff || p.GetIcmpId() > 0xffff || p.GetIcmpType() > 0xff || p.GetIcmpCode() > 0xff {
		return t, errors.New("port, icmp id, type or code out of range")
	}
	t.SrcPort, t.DstPort, t.ICMPID = uint16(p.GetSrcPort()), uint16(p.GetDstPort()), uint16(p.GetIcmpId())
	t.ICMPType, t.ICMPCode = uint8(p.GetIcmpType()), uint8(p.GetIcmpCode())
	return t, nil
}

// parseAnyPrefix parses a prefix or a bare address (a host prefix) of either family.
func parseAnyPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
