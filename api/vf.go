package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/representor"
	"github.com/offloadd/offloadd/vfmgr"
)

// VFPools is the VF allocator VfService serves (vfmgr.Allocator).
type VFPools interface {
	Pools(ctx context.Context) ([]vfmgr.Pool, error)
	Allocate(ctx context.Context, req vfmgr.Request) (vfmgr.Allocation, error)
	Release(ctx context.Context, owner string) error
	Allocations() []vfmgr.Allocation
}

var _ VFPools = (*vfmgr.Allocator)(nil)

// VFService serves offloadd.v1.VfService over VFPools.
type VFService struct {
	v1.UnimplementedVfServiceServer
	pools VFPools
	cfg   *vfmgr.DevicePluginConfig
	log   *slog.Logger
}

// NewVFService builds the service over pools, whose pool configuration is
// cfg (for the prefixes and selectors ListPools shows). A nil pools means
// the daemon has no pool configuration: no pools are listed and AllocateVf
// fails with FAILED_PRECONDITION. log may be nil (slog.Default()).
func NewVFService(pools VFPools, cfg *vfmgr.DevicePluginConfig, log *slog.Logger) *VFService {
	if log == nil {
		log = slog.Default()
	}
	return &VFService{pools: pools, cfg: cfg, log: log}
}

// Register registers the service on gs.
func (s *VFService) Register(gs *grpc.Server) {
	// Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
	gs.RegisterService(guardDecoding(&v1.VfService_ServiceDesc, nil), s)
}

// errNoPools is the answer of a daemon without a pool configuration.
const errNoPools = "no VF pool configuration (set vfPools.config in the daemon's config file)"

// ListPools lists the configured pools with their VFs and owners.
func (s *VFService) ListPools(ctx context.Context, _ *v1.ListPoolsRequest) (*v1.ListPoolsResponse, error) {
	if s.pools == nil {
		return &v1.ListPoolsResponse{}, nil
	}
	pools, err := s.pools.Pools(ctx)
	if err != nil {
		return nil, s.vfError("list pools", err)
	}
	resources := map[string]vfmgr.ResourceConfig{}
	if s.cfg != nil {
		for _, r := range s.cfg.Resources {
			resources[r.PoolName()] = r
		}
	}
	resp := &v1.ListPoolsResponse{}
	for _, p := range pools {
		resp.Pools = append(resp.Pools, PoolToProto(p, resources[p.Name]))
	}
	return resp, nil
}

// AllocateVf validates the request and allocates.
func (s *VFService) AllocateVf(ctx context.Context, req *v1.AllocateVfRequest) (*v1.AllocateVfResponse, error) {
	if s.pools == nil {
		return nil, status.Error(codes.FailedPrecondition, "allocate vf: "+errNoPools)
	}
	r, vs := AllocateRequestFromProto(req)
	if len(vs) > 0 {
		return nil, badRequest("allocate vf", vs)
	}
	al, err := s.pools.Allocate(ctx, r)
	if err != nil {
		return nil, s.vfError("allocate vf", err)
	}
	return &v1.AllocateVfResponse{Allocation: AllocationToProto(al)}, nil
}

// ReleaseVf releases the owner's VF; an owner holding none is NOT_FOUND.
func (s *VFService) ReleaseVf(ctx context.Context, req *v1.ReleaseVfRequest) (*v1.ReleaseVfResponse, error) {
	owner := req.GetOwner()
	if v := checkOwner(owner); v != nil {
		return nil, badRequest("release vf", []*errdetails.BadRequest_FieldViolation{v})
	}
	if s.pools == nil {
		return nil, status.Errorf(codes.NotFound, "release vf: owner %q holds no VF: %s", owner, errNoPools)
	}
	var held *vfmgr.Allocation
	for _, al := range s.pools.Allocations() {
		if al.Owner == owner {
			held = &al
			break
		}
	}
	if held == nil {
		return nil, status.Errorf(codes.NotFound, "release vf: owner %q holds no VF", owner)
	}
	if err := s.pools.Release(ctx, owner); err != nil {
		return nil, s.vfError("release vf", err)
	}
	return &v1.ReleaseVfResponse{Released: AllocationToProto(*held)}, nil
}

// ListAllocations lists the held VFs, optionally of one pool.
func (s *VFService) ListAllocations(_ context.Context, req *v1.ListAllocationsRequest) (*v1.ListAllocationsResponse, error) {
	resp := &v1.ListAllocationsResponse{}
	if s.pools == nil {
		return resp, nil
	}
	for _, al := range s.pools.Allocations() {
		if req.GetPool() == "" || req.GetPool() == al.Pool {
			resp.Allocations = append(resp.Allocations, AllocationToProto(al))
		}
	}
	return resp, nil
}

// vfError maps an allocator error to a gRPC status.
func (s *VFService) vfError(op string, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.New(status.FromContextError(err).Code(), op+": "+err.Error()).Err()
	case errors.Is(err, vfmgr.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, vfmgr.ErrExhausted):
		code = codes.ResourceExhausted
	case errors.Is(err, vfmgr.ErrConflict), errors.Is(err, vfmgr.ErrUnsupported), errors.Is(err, vfmgr.ErrNotApplied),
		errors.Is(err, representor.ErrNotFound):
		// A held VF that is gone, a driver that cannot or did not take a setting.
		code = codes.FailedPrecondition
	case errors.Is(err, vfmgr.ErrNotFound):
		code = codes.NotFound
	}
	if code == codes.Internal {
		s.log.Error("VF pool request failed", "op", op, "err", err)
	}
	return status.Error(code, op+": "+err.Error())
}

// maxOwnerLen bounds an owner name: a DNS name, or a namespace/pod/interface path.
const maxOwnerLen = 253

func checkOwner(owner string) *errdetails.BadRequest_FieldViolation {
	bad := func(msg string) *errdetails.BadRequest_FieldViolation {
		return &errdetails.BadRequest_FieldViolation{Field: "owner", Description: msg}
	}
	switch {
	case owner == "":
		return bad("required")
	case len(owner) > maxOwnerLen:
		return bad(fmt.Sprintf("%d bytes, at most %d", len(owner), maxOwnerLen))
	case strings.IndexFunc(owner, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0:
		return bad(fmt.Sprintf("%q has spaces or unprintable characters", owner))
	}
	return nil
}

// driverRe is a kernel driver name as sysfs lists it under bus/pci/drivers.
var driverRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// AllocateRequestFromProto converts and checks a request; violations name
// the request's fields ("settings.mac").
func AllocateRequestFromProto(req *v1.AllocateVfRequest) (vfmgr.Request, []*errdetails.BadRequest_FieldViolation) {
	var vs []*errdetails.BadRequest_FieldViolation
	if v := checkOwner(req.GetOwner()); v != nil {
		vs = append(vs, v)
	}
	switch pool := req.GetPool(); {
	case pool == "":
		vs = append(vs, &errdetails.BadRequest_FieldViolation{Field: "pool", Description: "required"})
	case strings.Count(pool, "/") != 1 || strings.HasPrefix(pool, "/") || strings.HasSuffix(pool, "/"):
		vs = append(vs, &errdetails.BadRequest_FieldViolation{Field: "pool",
			Description: fmt.Sprintf("%q is not prefix/resource_name", pool)})
	}
	settings, driver, bad := SettingsFromProto(req.GetSettings(), "settings")
	vs = append(vs, bad...)
	return vfmgr.Request{Owner: req.GetOwner(), Pool: req.GetPool(), Settings: settings, Driver: driver}, vs
}

// SettingsFromProto converts requested VF settings (nil: none) and the
// driver; violations are prefixed with path.
func SettingsFromProto(p *v1.VfAllocationSettings, path string) (vfmgr.VFSettings, string, []*errdetails.BadRequest_FieldViolation) {
	var (
		s  vfmgr.VFSettings
		vs []*errdetails.BadRequest_FieldViolation
	)
	if p == nil {
		return s, "", nil
	}
	bad := func(field, format string, args ...any) {
		vs = append(vs, &errdetails.BadRequest_FieldViolation{Field: path + "." + field, Description: fmt.Sprintf(format, args...)})
	}
	if p.GetMac() != "" {
		hw, err := net.ParseMAC(p.GetMac())
		switch {
		case err != nil || len(hw) != 6:
			bad("mac", "%q is not a MAC address like 02:00:00:00:00:01", p.GetMac())
		case hw[0]&1 != 0 || hw.String() == "00:00:00:00:00:00":
			bad("mac", "%s is not a unicast MAC", hw)
		default:
			s.MAC = hw.String()
		}
	}
	if p.Vlan != nil || p.Qos != nil {
		v := vfmgr.VLAN{ID: int(p.GetVlan()), QoS: int(p.GetQos())}
		ok := true
		if p.GetVlan() > 4094 {
			bad("vlan", "%d is outside 0-4094", p.GetVlan())
			ok = false
		}
		switch {
		case p.GetQos() > 7:
			bad("qos", "%d is outside 0-7", p.GetQos())
			ok = false
		case p.Vlan == nil:
			bad("qos", "set only with %s.vlan", path)
			ok = false
		case p.GetQos() != 0 && p.GetVlan() == 0:
			bad("qos", "a priority needs a VLAN ID in %s.vlan", path)
			ok = false
		}
		if ok {
			s.VLAN = &v
		}
	}
	if p.Trust != nil {
		s.Trust = vfmgr.Bool(p.GetTrust())
	}
	if p.SpoofCheck != nil {
		s.SpoofChk = vfmgr.Bool(p.GetSpoofCheck())
	}
	switch p.GetLinkState() {
	case v1.VfLinkState_VF_LINK_STATE_UNSPECIFIED:
	case v1.VfLinkState_VF_LINK_STATE_AUTO:
		s.LinkState = vfmgr.LinkAuto
	case v1.VfLinkState_VF_LINK_STATE_ENABLE:
		s.LinkState = vfmgr.LinkEnable
	case v1.VfLinkState_VF_LINK_STATE_DISABLE:
		s.LinkState = vfmgr.LinkDisable
	default:
		bad("link_state", "unknown value %d", p.GetLinkState())
	}
	if p.MinTxRateMbps != nil || p.MaxTxRateMbps != nil {
		r := vfmgr.Rate{MinMbps: p.GetMinTxRateMbps(), MaxMbps: p.GetMaxTxRateMbps()}
		if r.MaxMbps != 0 && r.MinMbps > r.MaxMbps {
			bad("min_tx_rate_mbps", "%d is above %s.max_tx_rate_mbps %d", r.MinMbps, path, r.MaxMbps)
		} else {
			s.Rate = &r
		}
	}
	if d := p.GetDriver(); d != "" && !driverRe.MatchString(d) {
		bad("driver", "%q is not a driver name like vfio-pci", d)
	}
	return s, p.GetDriver(), vs
}

// SettingsToProto converts requested settings back; unset fields stay unset.
func SettingsToProto(s vfmgr.VFSettings, driver string) *v1.VfAllocationSettings {
	p := &v1.VfAllocationSettings{Mac: s.MAC, Driver: driver, LinkState: linkStateToProto(s.LinkState)}
	if s.VLAN != nil {
		id, qos := uint32(s.VLAN.ID), uint32(s.VLAN.QoS)
		p.Vlan, p.Qos = &id, &qos
	}
	p.Trust, p.SpoofCheck = s.Trust, s.SpoofChk
	if s.Rate != nil {
		lo, hi := s.Rate.MinMbps, s.Rate.MaxMbps
		p.MinTxRateMbps, p.MaxTxRateMbps = &lo, &hi
	}
	return p
}

func linkStateToProto(l vfmgr.LinkState) v1.VfLinkState {
	switch l {
	case vfmgr.LinkAuto:
		return v1.VfLinkState_VF_LINK_STATE_AUTO
	case vfmgr.LinkEnable:
		return v1.VfLinkState_VF_LINK_STATE_ENABLE
	case vfmgr.LinkDisable:
		return v1.VfLinkState_VF_LINK_STATE_DISABLE
	}
	return v1.VfLinkState_VF_LINK_STATE_UNSPECIFIED
}

// VFConfigToProto converts a VF's full configuration.
func VFConfigToProto(st vfmgr.VFState) *v1.VfConfig {
	return &v1.VfConfig{Mac: st.MAC, Vlan: uint32(st.VLAN.ID), Qos: uint32(st.VLAN.QoS), Trust: st.Trust,
		SpoofCheck: st.SpoofChk, LinkState: linkStateToProto(st.LinkState),
		MinTxRateMbps: st.Rate.MinMbps, MaxTxRateMbps: st.Rate.MaxMbps}
}

// AllocationToProto converts an allocation.
func AllocationToProto(al vfmgr.Allocation) *v1.VfAllocation {
	return &v1.VfAllocation{
		Owner: al.Owner, Pool: al.Pool, Pf: al.PF, PfPciAddress: al.PFPCI, VfIndex: uint32(al.VF),
		VfPciAddress: al.VFPCI, VfNetdev: al.Netdev, Representor: al.Representor,
		Settings: SettingsToProto(al.Settings, al.Driver), Original: VFConfigToProto(al.Original),
		OriginalDriver: al.OriginalDriver,
	}
}

// PoolToProto converts a pool and the resource it was built from (for its
// prefix and selectors; the zero value when unknown).
func PoolToProto(p vfmgr.Pool, r vfmgr.ResourceConfig) *v1.VfPool {
	out := &v1.VfPool{Name: p.Name, Prefix: r.Prefix, ResourceName: r.Name, NeedVhostNet: p.NeedVhostNet,
		VfsTotal: uint32(len(p.VFs))}
	if r.Name == "" {
		out.Prefix, out.ResourceName, _ = strings.Cut(p.Name, "/")
	}
	for _, sel := range r.Selectors {
		out.Selectors = append(out.Selectors, SelectorSummary(sel))
	}
	for _, vf := range p.VFs {
		if vf.Owner == "" {
			out.VfsFree++
		}
		out.Vfs = append(out.Vfs, &v1.VfPoolMember{Pf: vf.PF, VfIndex: uint32(vf.Index), PciAddress: vf.PCI,
			Driver: vf.Driver, Netdev: vf.Netdev, Representor: vf.Representor, Owner: vf.Owner})
	}
	return out
}

// SelectorSummary writes a selector on one line with the config file's
// field names: "vendors=15b3 devices=101e pfNames=p0#0-3".
func SelectorSummary(s vfmgr.Selector) string {
	var parts []string
	list := func(name string, vals []string) {
		if len(vals) > 0 {
			parts = append(parts, name+"="+strings.Join(vals, ","))
		}
	}
	funcs := func(name string, fs []vfmgr.FunctionSelector) {
		var vals []string
		for _, f := range fs {
			v := f.Name
			if f.VFs != nil {
				var rs []string
				for _, r := range f.VFs {
					if r.First == r.Last {
						rs = append(rs, strconv.Itoa(r.First))
					} else {
						rs = append(rs, fmt.Sprintf("%d-%d", r.First, r.Last))
					}
				}
				v += "#" + strings.Join(rs, ",")
			}
			vals = append(vals, v)
		}
		list(name, vals)
	}
	list("vendors", s.Vendors)
	list("devices", s.Devices)
	list("drivers", s.Drivers)
	list("pciAddresses", s.PCIAddresses)
	funcs("pfNames", s.PFNames)
	funcs("rootDevices", s.RootDevices)
	list("linkTypes", s.LinkTypes)
	if s.IsRDMA {
		parts = append(parts, "isRdma=true")
	}
	if s.NeedVhostNet {
		parts = append(parts, "needVhostNet=true")
	}
	if len(parts) == 0 {
		return "(every VF)"
	}
	return strings.Join(parts, " ")
}
