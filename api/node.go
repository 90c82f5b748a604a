package api

import (
	"context"
	"sort"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type nodeService struct {
	v1.UnimplementedNodeServiceServer
	s *Server
}

// devices returns the node's devices sorted by name.
func (ns *nodeService) devices() []nic.Device {
	devs := append([]nic.Device(nil), ns.s.node.Devices()...)
	sort.SliceStable(devs, func(i, j int) bool { return devs[i].Info().Name < devs[j].Info().Name })
	return devs
}

// GetNode describes the node and its NICs.
func (ns *nodeService) GetNode(context.Context, *v1.GetNodeRequest) (*v1.GetNodeResponse, error) {
	node := &v1.Node{Hostname: ns.s.hostname, Version: ns.s.version}
	for _, d := range ns.devices() {
		node.Nics = append(node.Nics, NicToProto(d))
	}
	return &v1.GetNodeResponse{Node: node}, nil
}

// NicToProto describes one device.
func NicToProto(d nic.Device) *v1.Nic {
	info := d.Info()
	used, total := d.Capacity()
	n := &v1.Nic{
		Name:            info.Name,
		Driver:          info.Driver,
		Model:           info.Model,
		Profile:         info.Profile,
		PciAddress:      info.PCIAddress,
		FirmwareVersion: info.FirmwareVersion,
		SwitchId:        info.SwitchID,
		Emulated:        info.Emulated,
		EswitchMode:     eswitchModeToProto(info.EswitchMode),
		NumVfs:          uint32(max(info.NumVFs, 0)),
		TotalVfs:        uint32(max(info.TotalVFs, 0)),
		HardwareTable:   &v1.HardwareTable{Used: uint64(max(used, 0)), Total: uint64(max(total, 0))},
	}
	if p := d.Profile(); p != nil {
		n.Capabilities = CapabilitiesToProto(p)
	}
	return n
}

func eswitchModeToProto(m nic.EswitchMode) v1.EswitchMode {
	switch m {
	case nic.EswitchLegacy:
		return v1.EswitchMode_ESWITCH_MODE_LEGACY
	case nic.EswitchSwitchdev:
		return v1.EswitchMode_ESWITCH_MODE_SWITCHDEV
	}
	return v1.EswitchMode_ESWITCH_MODE_UNSPECIFIED
}

// allActions lists every action kind, in declaration order.
var allActions = []flow.ActionKind{
	flow.ActDrop, flow.ActAccept, flow.ActRedirect, flow.ActMirror, flow.ActVLANPush, flow.ActVLANPop,
	flow.ActTunnelEncap, flow.ActTunnelDecap, flow.ActCT, flow.ActGoto, flow.ActRewrite, flow.ActPolice,
}

// CapabilitiesToProto lists what a profile offloads, with keys and actions
// named like the wire fields.
func CapabilitiesToProto(p *nic.Profile) *v1.Capabilities {
	c := &v1.Capabilities{
		MaxChain:    p.MaxChain,
		MaxPriority: uint32(p.MaxPriority),
		Notes:       append([]string(nil), p.Notes...),
	}
	p.MatchKeys.Each(func(k flow.Key) { c.MatchKeys = append(c.MatchKeys, k.String()) })
	for _, a := range allActions {
		if p.Actions.Has(a) {
			c.Actions = append(c.Actions, a.String())
		}
	}
	for _, r := range p.Rules {
		c.Rules = append(c.Rules, r.Name)
	}
	return c
}

// ListPorts lists the ports of every NIC, or of one.
func (ns *nodeService) ListPorts(_ context.Context, req *v1.ListPortsRequest) (*v1.ListPortsResponse, error) {
	resp := &v1.ListPortsResponse{}
	found := false
	for _, d := range ns.devices() {
		name := d.Info().Name
		if req.GetDevice() != "" && req.GetDevice() != name {
			continue
		}
		found = true
		ports := d.Ports()
		sort.SliceStable(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
		for _, p := range ports {
			resp.Ports = append(resp.Ports, PortToProto(p, name))
		}
	}
	if req.GetDevice() != "" && !found {
		return nil, status.Errorf(codes.NotFound, "device %q not found", req.GetDevice())
	}
	return resp, nil
}

// PortToProto describes one port of the named device.
func PortToProto(p nic.Port, device string) *v1.Port {
	out := &v1.Port{
		Name:          p.Name,
		Kind:          portKindToProto(p.Kind),
		PhysPortName:  p.PhysPortName,
		SwitchId:      p.SwitchID,
		Pf:            uint32(max(p.PF, 0)),
		PciAddress:    p.PCIAddress,
		Mtu:           uint32(max(p.MTU, 0)),
		Up:            p.Up,
		Peer:          p.Peer,
		Device:        device,
		TunnelDstPort: uint32(p.TunnelDstPort),
	}
	if p.VF >= 0 {
		vf := uint32(p.VF)
		out.Vf = &vf
	}
	if p.MAC != ([6]byte{}) {
		out.Mac = formatMAC(p.MAC)
	}
	return out
}

func portKindToProto(k nic.PortKind) v1.PortKind {
	switch k {
	case nic.PortUplink:
		return v1.PortKind_PORT_KIND_UPLINK
	case nic.PortRepresentor:
		return v1.PortKind_PORT_KIND_REPRESENTOR
	case nic.PortVF:
		return v1.PortKind_PORT_KIND_VF
	case nic.PortTunnel:
		return v1.PortKind_PORT_KIND_TUNNEL
	}
	return v1.PortKind_PORT_KIND_UNSPECIFIED
}
