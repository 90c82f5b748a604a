package api

import (
	"context"
	"errors"
	"slices"
	"sort"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Datapath is one emulated NIC's packet datapath (*datapath.Datapath).
type Datapath interface {
	HasPort(name string) bool
	Inject(port string, frame []byte) (*datapath.Trace, error)
	BuildSpec(port, spec string) ([]byte, error)
	Stats() map[string]datapath.PortStats
}

var _ Datapath = (*datapath.Datapath)(nil)

// errNoDatapath is why a daemon without emulated NICs cannot serve.
const errNoDatapath = "the datapath service needs the emulated backend: this daemon programs real NICs, " +
	"whose packets cannot be injected (use tc and tcpdump on the node)"

// DatapathService serves offloadd.v1.DatapathService over the datapaths
// of the node's emulated NICs.
type DatapathService struct {
	v1.UnimplementedDatapathServiceServer
	devices []string // sorted
	dps     map[string]Datapath
}

// NewDatapathService serves dps, keyed by the name of the NIC each runs
// on (nic.Info.Name). With no datapaths (real NICs), every RPC answers
// UNIMPLEMENTED with the reason.
func NewDatapathService(dps map[string]Datapath) *DatapathService {
	s := &DatapathService{dps: map[string]Datapath{}}
	for name, dp := range dps {
		if dp != nil {
			s.dps[name] = dp
			s.devices = append(s.devices, name)
		}
	}
	sort.Strings(s.devices)
	return s
}

// Register registers the service on gs.
func (s *DatapathService) Register(gs *grpc.Server) {
	// Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
	gs.RegisterService(guardDecoding(&v1.DatapathService_ServiceDesc, nil), s)
}

// owner finds the datapath with a port.
func (s *DatapathService) owner(port string) (Datapath, error) {
	if len(s.dps) == 0 {
		return nil, status.Error(codes.Unimplemented, errNoDatapath)
	}
	for _, name := range s.devices {
		if dp := s.dps[name]; dp.HasPort(port) {
			return dp, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no emulated NIC has a port %q", port)
}

// InjectPacket runs one packet and returns its trace.
func (s *DatapathService) InjectPacket(_ context.Context, req *v1.InjectPacketRequest) (*v1.InjectPacketResponse, error) {
	if len(s.dps) == 0 {
		return nil, status.Error(codes.Unimplemented, errNoDatapath)
	}
	if req.GetPort() == "" {
		return nil, status.Error(codes.InvalidArgument, "inject packet: port is required")
	}
	dp, err := s.owner(req.GetPort())
	if err != nil {
		return nil, err
	}
	var frame []byte
	switch p := req.GetPacket().(type) {
	case *v1.InjectPacketRequest_Frame:
		frame = p.Frame
	case *v1.InjectPacketRequest_Spec:
		if frame, err = dp.BuildSpec(req.GetPort(), p.Spec); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "inject packet on %s: %v", req.GetPort(), err)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "inject packet: a frame or a spec is required")
	}
	tr, err := dp.Inject(req.GetPort(), frame)
	if err != nil {
		code := codes.InvalidArgument
		if errors.Is(err, nic.ErrNotFound) {
			code = codes.NotFound
		}
		return nil, status.Error(code, err.Error())
	}
	return &v1.InjectPacketResponse{Trace: TraceToProto(tr), Text: tr.String()}, nil
}

// GetDatapathStats returns per-port counters.
func (s *DatapathService) GetDatapathStats(_ context.Context, req *v1.GetDatapathStatsRequest) (*v1.GetDatapathStatsResponse, error) {
	if len(s.dps) == 0 {
		return nil, status.Error(codes.Unimplemented, errNoDatapath)
	}
	if p := req.GetPort(); p != "" {
		if _, err := s.owner(p); err != nil {
			return nil, err
		}
	}
	resp := &v1.GetDatapathStatsResponse{}
	for _, name := range s.devices {
		st := s.dps[name].Stats()
		ports := make([]string, 0, len(st))
		for p := range st {
			if req.GetPort() == "" || req.GetPort() == p {
				ports = append(ports, p)
			}
		}
		slices.Sort(ports)
		for _, p := range ports {
			c := st[p]
			resp.Ports = append(resp.Ports, &v1.PortDatapathStats{Port: p, Device: name,
				RxPackets: c.RxPackets, RxBytes: c.RxBytes, TxPackets: c.TxPackets, TxBytes: c.TxBytes,
				Drops: c.Drops, Upcalls: c.Upcalls, Delivered: c.Delivered})
		}
	}
	if len(resp.Ports) == 0 && req.GetPort() != "" {
		// A known port without traffic yet has zero counters.
		for _, name := range s.devices {
			if s.dps[name].HasPort(req.GetPort()) {
				resp.Ports = append(resp.Ports, &v1.PortDatapathStats{Port: req.GetPort(), Device: name})
				break
			}
		}
	}
	return resp, nil
}

// TraceToProto converts a datapath trace to its wire form.
func TraceToProto(tr *datapath.Trace) *v1.PacketTrace {
	out := &v1.PacketTrace{
		InPort: tr.InPort, Time: timestamppb.New(tr.Time), Input: tr.Input, InputSummary: datapath.Describe(tr.Input),
		Verdict: verdictToProto(tr.Verdict), Plane: planeToProto(tr.Plane), SoftwarePath: tr.SoftwarePath, Reason: tr.Reason,
	}
	for _, s := range tr.Steps {
		ps := &v1.TraceStep{Kind: stepKindToProto(s.Kind), Depth: uint32(s.Depth), Plane: planeToProto(s.Plane),
			Port: s.Port, Chain: s.Chain, Priority: uint32(s.Priority), FlowId: s.FlowID, Matched: s.Matched,
			Action: s.Action, Text: s.Text}
		for _, c := range s.Changes {
			ps.Changes = append(ps.Changes, &v1.FieldChange{Field: c.Field, Before: c.Before, After: c.After})
		}
		if c := s.CT; c != nil {
			ps.Conntrack = &v1.ConntrackLookup{Zone: uint32(c.Zone), State: datapath.CTStateString(c.State), Mark: c.Mark,
				Commit: c.Commit, Committed: c.Committed, Offloaded: c.Offloaded, Note: c.Note}
		}
		out.Steps = append(out.Steps, ps)
	}
	for _, o := range tr.Outputs {
		out.Outputs = append(out.Outputs, &v1.TraceOutput{Port: o.Port, Kind: outputKindToProto(o.Kind),
			Plane: planeToProto(o.Plane), Mirror: o.Mirror, Frame: o.Frame, Summary: datapath.Describe(o.Frame)})
	}
	return out
}

func verdictToProto(v datapath.Verdict) v1.PacketVerdict {
	switch v {
	case datapath.VerdictDropped:
		return v1.PacketVerdict_PACKET_VERDICT_DROPPED
	case datapath.VerdictForwarded:
		return v1.PacketVerdict_PACKET_VERDICT_FORWARDED
	case datapath.VerdictDelivered:
		return v1.PacketVerdict_PACKET_VERDICT_DELIVERED
	case datapath.VerdictUpcall:
		return v1.PacketVerdict_PACKET_VERDICT_UPCALL
	}
	return v1.PacketVerdict_PACKET_VERDICT_UNSPECIFIED
}

func planeToProto(p flow.Plane) v1.TracePlane {
	if p == flow.Hardware {
		return v1.TracePlane_TRACE_PLANE_HARDWARE
	}
	return v1.TracePlane_TRACE_PLANE_SOFTWARE
}

var stepKinds = map[datapath.StepKind]v1.TraceStepKind{
	datapath.StepPort:      v1.TraceStepKind_TRACE_STEP_KIND_PORT,
	datapath.StepRule:      v1.TraceStepKind_TRACE_STEP_KIND_RULE,
	datapath.StepMiss:      v1.TraceStepKind_TRACE_STEP_KIND_MISS,
	datapath.StepAction:    v1.TraceStepKind_TRACE_STEP_KIND_ACTION,
	datapath.StepConntrack: v1.TraceStepKind_TRACE_STEP_KIND_CONNTRACK,
	datapath.StepOutput:    v1.TraceStepKind_TRACE_STEP_KIND_OUTPUT,
	datapath.StepDrop:      v1.TraceStepKind_TRACE_STEP_KIND_DROP,
}

// stepKindToProto maps a step kind; an unknown one is UNSPECIFIED.
func stepKindToProto(k datapath.StepKind) v1.TraceStepKind { return stepKinds[k] }

func outputKindToProto(k datapath.OutputKind) v1.TraceOutputKind {
	switch k {
	case datapath.OutputWire:
		return v1.TraceOutputKind_TRACE_OUTPUT_KIND_WIRE
	case datapath.OutputVM:
		return v1.TraceOutputKind_TRACE_OUTPUT_KIND_VM
	case datapath.OutputHost:
		return v1.TraceOutputKind_TRACE_OUTPUT_KIND_HOST
	case datapath.OutputUpcall:
		return v1.TraceOutputKind_TRACE_OUTPUT_KIND_UPCALL
	}
	return v1.TraceOutputKind_TRACE_OUTPUT_KIND_UNSPECIFIED
}
