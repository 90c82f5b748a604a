package main

import (
	"fmt"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
)

// benchFlows returns n distinct flows: ACLs and VXLAN encaps, alternating,
// spread over the 8 representors of the default emulated NIC.
func benchFlows(n int, prefix string) []*v1.Flow {
	out := make([]*v1.Flow, n)
	for i := range out {
		port := fmt.Sprintf("pf0vf%d", i%8)
		dst := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		prio := uint32(i%4000 + 1)
		if i%2 == 0 {
			dport := uint32(i%50000 + 1)
			out[i] = &v1.Flow{Id: fmt.Sprintf("%sacl-%07d", prefix, i), Port: port, Priority: prio,
				Match:   &v1.Match{EthType: "ipv4", Ipv4Dst: dst, IpProto: "tcp", DstPort: &dport},
				Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}
			continue
		}
		out[i] = &v1.Flow{Id: fmt.Sprintf("%sencap-%07d", prefix, i), Port: port, Priority: prio,
			Match: &v1.Match{EthType: "ipv4", Ipv4Dst: dst},
			Actions: []*v1.Action{
				{Action: &v1.Action_TunnelEncap{TunnelEncap: &v1.TunnelEncap{Vni: uint32(i%4096 + 1), Src: "192.0.2.1", Dst: "198.51.100.10"}}},
				{Action: &v1.Action_Redirect{Redirect: &v1.Redirect{Port: "vxlan0"}}},
			}}
	}
	return out
}
