package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/representor"
	"github.com/offloadd/offloadd/vfmgr"
)

// fakeVFPools records requests and answers with err, or with an
// allocation of VF 0 built from the request.
type fakeVFPools struct {
	allocs   []vfmgr.Allocation
	pools    []vfmgr.Pool
	err      error
	requests []vfmgr.Request
	released []string
}

func (f *fakeVFPools) Pools(context.Context) ([]vfmgr.Pool, error) { return f.pools, f.err }

func (f *fakeVFPools) Allocate(_ context.Context, req vfmgr.Request) (vfmgr.Allocation, error) {
	f.requests = append(f.requests, req)
	if f.err != nil {
		return vfmgr.Allocation{}, f.err
	}
	return vfmgr.Allocation{Owner: req.Owner, Pool: req.Pool, PF: "p0", VFPCI: "0000:08:00.1", Settings: req.Settings,
		Driver: req.Driver}, nil
}

func (f *fakeVFPools) Release(_ context.Context, owner string) error {
	f.released = append(f.released, owner)
	return f.err
}

func (f *fakeVFPools) Allocations() []vfmgr.Allocation { return f.allocs }

func u32(v uint32) *uint32 { return &v }
func boolp(v bool) *bool   { return &v }

func violations(t *testing.T, err error) map[string]string {
	t.Helper()
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}

func TestAllocateVfValidation(t *testing.T) {
	valid := func() *v1.AllocateVfRequest {
		return &v1.AllocateVfRequest{Owner: "vm1/port0", Pool: "openshift.io/mlx_sriov_a"}
	}
	tests := []struct {
		name string
		mod  func(*v1.AllocateVfRequest)
		// want maps each violated field to a part of its description.
		want map[string]string
	}{
		{"no owner", func(r *v1.AllocateVfRequest) { r.Owner = "" }, map[string]string{"owner": "required"}},
		{"owner with space", func(r *v1.AllocateVfRequest) { r.Owner = "vm 1" }, map[string]string{"owner": "spaces"}},
		{"long owner", func(r *v1.AllocateVfRequest) { r.Owner = strings.Repeat("a", 254) }, map[string]string{"owner": "at most 253"}},
		{"no pool", func(r *v1.AllocateVfRequest) { r.Pool = "" }, map[string]string{"pool": "required"}},
		{"pool without prefix", func(r *v1.AllocateVfRequest) { r.Pool = "mlx_sriov_a" }, map[string]string{"pool": "prefix/resource_name"}},
		{"multicast mac", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Mac: "01:00:5e:00:00:01"} },
			map[string]string{"settings.mac": "not a unicast MAC"}},
		{"zero mac", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Mac: "00:00:00:00:00:00"} },
			map[string]string{"settings.mac": "not a unicast MAC"}},
		{"bad mac", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Mac: "zz"} },
			map[string]string{"settings.mac": "not a MAC address"}},
		{"vlan 4095", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Vlan: u32(4095)} },
			map[string]string{"settings.vlan": "outside 0-4094"}},
		{"qos 8", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Vlan: u32(10), Qos: u32(8)} },
			map[string]string{"settings.qos": "outside 0-7"}},
		{"qos without vlan", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Qos: u32(3)} },
			map[string]string{"settings.qos": "set only with settings.vlan"}},
		{"qos on vlan 0", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Vlan: u32(0), Qos: u32(3)} },
			map[string]string{"settings.qos": "needs a VLAN ID"}},
		{"min above max", func(r *v1.AllocateVfRequest) {
			r.Settings = &v1.VfAllocationSettings{MinTxRateMbps: u32(200), MaxTxRateMbps: u32(100)}
		}, map[string]string{"settings.min_tx_rate_mbps": "above settings.max_tx_rate_mbps 100"}},
		{"bad link state", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{LinkState: 9} },
			map[string]string{"settings.link_state": "unknown value 9"}},
		{"bad driver", func(r *v1.AllocateVfRequest) { r.Settings = &v1.VfAllocationSettings{Driver: "../vfio"} },
			map[string]string{"settings.driver": "not a driver name"}},
		{"several at once", func(r *v1.AllocateVfRequest) {
			r.Owner = ""
			r.Settings = &v1.VfAllocationSettings{Mac: "ff:ff:ff:ff:ff:ff", Vlan: u32(5000)}
		}, map[string]string{"owner": "required", "settings.mac": "unicast", "settings.vlan": "4094"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeVFPools{}
			s := NewVFService(fake, nil, nil)
			req := valid()
			tt.mod(req)
			_, err := s.AllocateVf(context.Background(), req)
			got := violations(t, err)
			require.Len(t, got, len(tt.want), "%v", got)
			for field, part := range tt.want {
				assert.Contains(t, got[field], part, field)
			}
			assert.Empty(t, fake.requests, "an invalid request reaches no allocator")
		})
	}
}

func TestAllocateVfConverts(t *testing.T) {
	fake := &fakeVFPools{}
	s := NewVFService(fake, nil, nil)
	settings := &v1.VfAllocationSettings{Mac: "02:AA:00:00:00:01", Vlan: u32(100), Qos: u32(2), Trust: boolp(true),
		SpoofCheck: boolp(false), LinkState: v1.VfLinkState_VF_LINK_STATE_ENABLE, MaxTxRateMbps: u32(1000), Driver: "vfio-pci"}
	resp, err := s.AllocateVf(context.Background(), &v1.AllocateVfRequest{Owner: "vm1", Pool: "openshift.io/a", Settings: settings})
	require.NoError(t, err)
	require.Len(t, fake.requests, 1)
	assert.Equal(t, vfmgr.Request{Owner: "vm1", Pool: "openshift.io/a", Driver: "vfio-pci", Settings: vfmgr.VFSettings{
		MAC: "02:aa:00:00:00:01", VLAN: &vfmgr.VLAN{ID: 100, QoS: 2}, Trust: vfmgr.Bool(true), SpoofChk: vfmgr.Bool(false),
		LinkState: vfmgr.LinkEnable, Rate: &vfmgr.Rate{MaxMbps: 1000}}}, fake.requests[0])
	// The response carries the settings as applied: the MAC normalised, the
	// rate pair complete.
	want := proto.Clone(settings).(*v1.VfAllocationSettings)
	want.Mac, want.MinTxRateMbps = "02:aa:00:00:00:01", u32(0)
	assert.True(t, proto.Equal(want, resp.GetAllocation().GetSettings()), "%v", resp.GetAllocation().GetSettings())

	// No settings at all is a request that changes nothing.
	_, err = s.AllocateVf(context.Background(), &v1.AllocateVfRequest{Owner: "vm2", Pool: "openshift.io/a"})
	require.NoError(t, err)
	assert.True(t, fake.requests[1].Settings.IsZero())
	assert.Empty(t, fake.requests[1].Driver)
}

func TestVFErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("allocate from pool a for vm: %w: all 4 VFs held", vfmgr.ErrExhausted), codes.ResourceExhausted},
		{fmt.Errorf("allocate from pool b for vm: %w: it holds x from pool a", vfmgr.ErrConflict), codes.FailedPrecondition},
		{fmt.Errorf("allocate for vm: %w: no pool \"x/y\"", vfmgr.ErrNotFound), codes.NotFound},
		{fmt.Errorf("held VF is gone: %w", representor.ErrNotFound), codes.FailedPrecondition},
		{fmt.Errorf("set vf: %w", vfmgr.ErrNotApplied), codes.FailedPrecondition},
		{fmt.Errorf("set vf: %w", vfmgr.ErrUnsupported), codes.FailedPrecondition},
		{fmt.Errorf("vlan.proto: %w", vfmgr.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("scan: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("disk full"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			s := NewVFService(&fakeVFPools{err: tt.err}, nil, slog.New(slog.DiscardHandler))
			_, err := s.AllocateVf(context.Background(), &v1.AllocateVfRequest{Owner: "vm", Pool: "x/y"})
			assert.Equal(t, tt.want, status.Code(err), "%v", err)
			assert.Contains(t, status.Convert(err).Message(), "allocate vf: "+tt.err.Error())
		})
	}
}

func TestVFServiceWithoutPools(t *testing.T) {
	ctx := context.Background()
	s := NewVFService(nil, nil, nil)
	_, err := s.AllocateVf(ctx, &v1.AllocateVfRequest{Owner: "vm1", Pool: "a/b"})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "no VF pool configuration")
	pools, err := s.ListPools(ctx, &v1.ListPoolsRequest{})
	require.NoError(t, err)
	assert.Empty(t, pools.GetPools())
	allocs, err := s.ListAllocations(ctx, &v1.ListAllocationsRequest{})
	require.NoError(t, err)
	assert.Empty(t, allocs.GetAllocations())
	_, err = s.ReleaseVf(ctx, &v1.ReleaseVfRequest{Owner: "vm1"})
	assert.Equal(t, codes.NotFound, status.Code(err))
}

func TestReleaseVf(t *testing.T) {
	ctx := context.Background()
	held := vfmgr.Allocation{Owner: "vm1", Pool: "a/b", PF: "p0", VF: 2, VFPCI: "0000:08:00.3",
		Original: vfmgr.VFState{MAC: "02:42:0f:01:00:02", LinkState: vfmgr.LinkAuto}, OriginalDriver: "mlx5_core"}
	fake := &fakeVFPools{allocs: []vfmgr.Allocation{held}}
	s := NewVFService(fake, nil, nil)

	_, err := s.ReleaseVf(ctx, &v1.ReleaseVfRequest{})
	assert.Equal(t, map[string]string{"owner": "required"}, violations(t, err))
	_, err = s.ReleaseVf(ctx, &v1.ReleaseVfRequest{Owner: "vm9"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	assert.Empty(t, fake.released)

	resp, err := s.ReleaseVf(ctx, &v1.ReleaseVfRequest{Owner: "vm1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"vm1"}, fake.released)
	assert.Equal(t, "0000:08:00.3", resp.GetReleased().GetVfPciAddress())
	assert.Equal(t, uint32(2), resp.GetReleased().GetVfIndex())
	assert.True(t, proto.Equal(&v1.VfConfig{Mac: "02:42:0f:01:00:02", LinkState: v1.VfLinkState_VF_LINK_STATE_AUTO},
		resp.GetReleased().GetOriginal()))
	assert.Equal(t, "mlx5_core", resp.GetReleased().GetOriginalDriver())

	fake.err = fmt.Errorf("release: %w", vfmgr.ErrNotApplied)
	_, err = s.ReleaseVf(ctx, &v1.ReleaseVfRequest{Owner: "vm1"})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
}

func TestListPoolsAndAllocations(t *testing.T) {
	ctx := context.Background()
	cfg, _, err := vfmgr.ParseDevicePluginConfig([]byte(`{"resourceList": [
		{"resourcePrefix": "openshift.io", "resourceName": "a", "selectors": [
			{"vendors": ["15B3"], "devices": ["101e"], "pfNames": ["p0#0-3,7"]}, {"rootDevices": ["0000:08:00.0#5"], "needVhostNet": true}]},
		{"resourceName": "b", "selectors": {}}]}`))
	require.NoError(t, err)
	fake := &fakeVFPools{
		pools: []vfmgr.Pool{
			{Name: "openshift.io/a", NeedVhostNet: true, VFs: []vfmgr.PoolVF{
				{PF: "p0", PFPCI: "0000:08:00.0", Index: 0, PCI: "0000:08:00.1", Driver: "mlx5_core", Netdev: "enp8s0f0v0", Representor: "pf0vf0", Owner: "vm1"},
				{PF: "p0", PFPCI: "0000:08:00.0", Index: 1, PCI: "0000:08:00.2", Driver: "mlx5_core", Netdev: "enp8s0f0v1", Representor: "pf0vf1"},
			}},
			{Name: "intel.com/b"},
		},
		allocs: []vfmgr.Allocation{{Owner: "vm1", Pool: "openshift.io/a"}, {Owner: "vm2", Pool: "intel.com/b"}},
	}
	s := NewVFService(fake, cfg, nil)
	resp, err := s.ListPools(ctx, &v1.ListPoolsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetPools(), 2)
	a := resp.GetPools()[0]
	assert.Equal(t, "openshift.io/a", a.GetName())
	assert.Equal(t, "openshift.io", a.GetPrefix())
	assert.Equal(t, "a", a.GetResourceName())
	assert.Equal(t, []string{"vendors=15b3 devices=101e pfNames=p0#0-3,7", "rootDevices=0000:08:00.0#5 needVhostNet=true"}, a.GetSelectors())
	assert.Equal(t, uint32(2), a.GetVfsTotal())
	assert.Equal(t, uint32(1), a.GetVfsFree())
	assert.True(t, a.GetNeedVhostNet())
	assert.Equal(t, "vm1", a.GetVfs()[0].GetOwner())
	assert.Equal(t, "enp8s0f0v1", a.GetVfs()[1].GetNetdev())
	b := resp.GetPools()[1]
	assert.Equal(t, "intel.com", b.GetPrefix())
	assert.Equal(t, []string{"(every VF)"}, b.GetSelectors())
	assert.Zero(t, b.GetVfsTotal())

	all, err := s.ListAllocations(ctx, &v1.ListAllocationsRequest{})
	require.NoError(t, err)
	assert.Len(t, all.GetAllocations(), 2)
	one, err := s.ListAllocations(ctx, &v1.ListAllocationsRequest{Pool: "intel.com/b"})
	require.NoError(t, err)
	require.Len(t, one.GetAllocations(), 1)
	assert.Equal(t, "vm2", one.GetAllocations()[0].GetOwner())

	fake.err = errors.New("sysfs gone")
	_, err = s.ListPools(ctx, &v1.ListPoolsRequest{})
	assert.Equal(t, codes.Internal, status.Code(err))
}

func TestSettingsRoundTrip(t *testing.T) {
	tests := []vfmgr.VFSettings{
		{},
		{MAC: "02:00:00:00:00:01"},
		{VLAN: &vfmgr.VLAN{ID: 7}, Trust: vfmgr.Bool(false), SpoofChk: vfmgr.Bool(true)},
		{LinkState: vfmgr.LinkDisable, Rate: &vfmgr.Rate{MinMbps: 5, MaxMbps: 50}},
	}
	for i, s := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, driver, vs := SettingsFromProto(SettingsToProto(s, "vfio-pci"), "settings")
			require.Empty(t, vs)
			assert.Equal(t, s, got)
			assert.Equal(t, "vfio-pci", driver)
		})
	}
}
