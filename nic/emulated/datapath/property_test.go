package datapath_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

// The planes must agree: flows the hardware takes (profile.Check passes)
// give the same output bytes and verdicts whether they run in the
// hardware plane or in the software plane. ct is left out on purpose:
// hardware hands connections that are not offloaded to software by
// design, so the planes differ there. Flows on the uplink do not goto:
// a VXLAN frame that misses an uplink chain other than 0 in hardware goes
// up to software, where the tunnel device's hardware rules are not seen.

var propMACs = [][6]byte{vf0MAC, vf1MAC, upMAC, datapath.RemoteMAC}

type propGen struct {
	r       *rand.Rand
	profile *nic.Profile
	kinds   nic.PortKinds
	ports   flow.Ports
}

type portSet map[string]nic.PortKind

func (p portSet) HasPort(n string) bool  { _, ok := p[n]; return ok }
func (p portSet) IsTunnel(n string) bool { return p[n] == nic.PortTunnel }

func (g *propGen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *propGen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

func (g *propGen) match(port string) flow.Match {
	var m flow.Match
	if g.chance(0.3) {
		mac := pick(g, propMACs...)
		mask := pick(g, full, [6]byte{0xff, 0xff, 0xff, 0, 0, 0})
		if g.chance(0.5) {
			m.EthSrc = flow.MaskedMAC{Addr: mac, Mask: mask}
		} else {
			m.EthDst = flow.MaskedMAC{Addr: mac, Mask: mask}
		}
	}
	if g.chance(0.15) {
		m.VLANID = flow.Some(pick[uint16](g, 10, 20))
		if g.chance(0.3) {
			m.CVLANID = flow.Some(pick[uint16](g, 30, 40))
		}
	}
	switch g.r.IntN(10) {
	case 0, 1:
	case 2:
		m.EthType = flow.EthTypeARP
	case 3:
		m.EthType = flow.EthTypeIPv6
		if g.chance(0.5) {
			m.IPDst = pfx(pick(g, "fd00::2/128", "fd00::/64"))
		}
		m.IPProto = pick[uint8](g, 0, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMPv6)
	default:
		m.EthType = flow.EthTypeIPv4
		if g.chance(0.4) {
			m.IPSrc = pfx(pick(g, "10.0.0.0/24", "10.0.0.1/32", "10.0.1.0/24"))
		}
		if g.chance(0.4) {
			m.IPDst = pfx(pick(g, "10.0.0.2/32", "10.0.1.0/24", "10.0.2.0/24"))
		}
		m.IPProto = pick[uint8](g, 0, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoSCTP)
		if g.chance(0.15) {
			m.TTL = flow.Masked8{Value: 64, Mask: 0xff}
		}
		if g.chance(0.1) {
			m.TOS = flow.Masked8{Value: 0x10, Mask: 0xfc}
		}
		if g.chance(0.1) {
			m.Frag = flow.Masked32{Value: pick[uint32](g, 0, flow.FragIsFragment), Mask: flow.FragIsFragment}
		}
	}
	switch m.IPProto {
	case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP:
		if g.chance(0.5) {
			m.DstPort = pick(g, port16(80), port16(53), flow.Masked16{Value: 0x0100, Mask: 0xff00})
		}
		if g.chance(0.2) {
			m.SrcPort = port16(1234)
		}
		if m.IPProto == flow.ProtoTCP && g.chance(0.3) {
			m.TCPFlags = pick(g, flow.Masked16{Value: 0x02, Mask: 0x12}, flow.Masked16{Value: 0x10, Mask: 0x10})
		}
	case flow.ProtoICMP, flow.ProtoICMPv6:
		if g.chance(0.4) {
			m.ICMPType = flow.Some(pick[uint8](g, 8, 128, 3))
			if m.IPProto == flow.ProtoICMP && m.ICMPType.V == 128 {
				m.ICMPType.V = 0
			}
		}
	}
	if port == vx {
		m.TunDstPort = flow.Some[uint16](4789)
		if g.chance(0.6) {
			m.TunID = flow.Some(pick[uint32](g, 100, 200))
		}
		if g.chance(0.4) {
			m.TunDst = netip.PrefixFrom(localVTEP, 32)
		}
	}
	return m
}

func (g *propGen) actions(f *flow.Flow) []flow.Action {
	var as []flow.Action
	for range g.r.IntN(3) {
		switch g.r.IntN(6) {
		case 0:
			as = append(as, flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: pick[uint16](g, 10, 99), Prio: uint8(g.r.IntN(8))}})
		case 1:
			as = append(as, flow.Action{Kind: flow.ActVLANPop})
		case 2:
			as = append(as, mirror(pick(g, rep0, rep1, rep2, up)))
		case 3:
			pl := flow.Police{RatePackets: 20, Burst: 2, Exceed: pick(g, flow.VerdictDefault, flow.VerdictContinue, flow.VerdictPipe)}
			if g.chance(0.5) {
				pl = flow.Police{RateBytes: 4000, Burst: 300}
			}
			as = append(as, flow.Action{Kind: flow.ActPolice, Police: &pl})
		default:
			as = append(as, rewrite(g.rewrite(f)))
		}
	}
	switch g.r.IntN(7) {
	case 0:
		as = append(as, drop())
	case 1:
		as = append(as, accept())
	case 2:
		// Gotos go forward, and now and then back: validation refuses
		// only a goto to its own chain, so loops across chains reach the
		// datapath, which must cut them the same way in both planes.
		if f.Port != up && f.Chain > 0 && g.chance(0.3) {
			as = append(as, gotoC(f.Chain-1))
			break
		}
		if f.Port != up && f.Chain < 2 {
			as = append(as, gotoC(f.Chain+1))
			break
		}
		as = append(as, drop())
	case 3:
		dst := pick(g, remoteVTEP, vtep2)
		as = append(as, flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: pick[uint32](g, 100, 5000),
			Src: localVTEP, Dst: dst, TTL: pick[uint8](g, 0, 32), NoCsum: g.chance(0.3)}}, redirect(vx))
	default:
		as = append(as, redirect(pick(g, rep0, rep1, rep2, up)))
	}
	if f.Port == vx && g.chance(0.7) {
		as = append([]flow.Action{{Kind: flow.ActTunnelDecap}}, as...)
	}
	return as
}

func (g *propGen) rewrite(f *flow.Flow) flow.Rewrite {
	switch g.r.IntN(5) {
	case 0:
		return flow.Rewrite{Field: flow.RewriteEthDst, MAC: pick(g, propMACs...)}
	case 1:
		if f.Match.EthType == flow.EthTypeIPv6 {
			return flow.Rewrite{Field: flow.RewriteIPSrc, IP: netip.MustParseAddr("fd00::99")}
		}
		return flow.Rewrite{Field: pick(g, flow.RewriteIPSrc, flow.RewriteIPDst), IP: netip.MustParseAddr("10.9.9.9")}
	case 2:
		return flow.Rewrite{Field: flow.RewriteTTLDec}
	case 3:
		return flow.Rewrite{Field: pick(g, flow.RewriteSrcPort, flow.RewriteDstPort), Port: 4242}
	}
	return flow.Rewrite{Field: flow.RewriteEthSrc, MAC: pick(g, propMACs...)}
}

// flows makes n flows the profile offloads.
func (g *propGen) flows(n int) []*flow.Flow {
	var out []*flow.Flow
	for tries := 0; len(out) < n && tries < 200*n; tries++ {
		port := pick(g, rep0, rep1, rep2, up, vx)
		chain := uint32(0)
		if port != up && g.chance(0.3) {
			chain = uint32(1 + g.r.IntN(2))
		}
		f := &flow.Flow{ID: fmt.Sprintf("f%02d", len(out)), Port: port, Chain: chain, Priority: uint16(1 + g.r.IntN(5))}
		f.Match = g.match(port)
		f.Actions = g.actions(f)
		flow.Normalize(f)
		if len(flow.Validate(f, g.ports)) > 0 || g.profile.Check(f, g.kinds) != nil {
			continue
		}
		out = append(out, f)
	}
	return out
}

// packet makes a random packet spec and the port it enters.
func (g *propGen) packet() (string, string) {
	var p []string
	switch g.r.IntN(10) {
	case 0:
		p = append(p, "arp")
	case 1, 2:
		p = append(p, pick(g, "tcp", "udp", "icmp6"), "src="+pick(g, "fd00::1", "fd00::3"), "dst="+pick(g, "fd00::2", "fd00::9"))
	default:
		p = append(p, pick(g, "tcp", "udp", "icmp", "sctp"), "src="+pick(g, "10.0.0.1", "10.0.0.10", "10.0.1.5"),
			"dst="+pick(g, "10.0.0.2", "10.0.1.5", "10.0.2.2"))
		if g.chance(0.3) {
			p = append(p, "ttl="+pick(g, "1", "64"), "tos="+pick(g, "0", "0x10"))
		}
		if g.chance(0.1) {
			p = append(p, "frag="+pick(g, "first", "later"))
		}
	}
	if p[0] != "arp" {
		p = append(p, "sport="+pick(g, "1234", "5000"), "dport="+pick(g, "80", "53", "300"))
		if p[0] == "tcp" {
			p = append(p, "flags="+pick(g, "S", "SA", "A", "PA", "R"))
		}
		if p[0] == "icmp" || p[0] == "icmp6" {
			p = append(p, "type="+pick(g, "8", "0", "3", "128"))
		}
	}
	if g.chance(0.3) {
		p = append(p, "eth_src="+pick(g, "02:42:0f:01:00:00", "02:42:0f:01:00:01", "02:00:00:00:00:01"))
	}
	if g.chance(0.3) {
		p = append(p, "eth_dst="+pick(g, "02:42:0f:01:00:00", "02:42:0f:01:00:01", "02:42:0f:00:00:00"))
	}
	if g.chance(0.15) {
		p = append(p, "vlan="+pick(g, "10", "20"))
		if g.chance(0.3) {
			p = append(p, "cvlan=30")
		}
	}
	port := pick(g, rep0, rep1, rep2, up)
	if port == up && g.chance(0.5) {
		p = append(p, "vni="+pick(g, "100", "200"), "tun_dst="+pick(g, "192.0.2.1", "192.0.2.9"))
	}
	return port, strings.Join(p, ",")
}

const rep2 = "pf0vf2"

// planesAgree runs one random scenario and reports the first difference.
func planesAgree(t *testing.T, profile string, seed uint64, nflows, npkts int) {
	t.Helper()
	cfg := emulated.DefaultConfig()
	cfg.Profile = profile
	dc := datapath.Config{Neighbours: []datapath.Neighbour{{IP: remoteVTEP, MAC: remoteMAC}, {IP: vtep2, MAC: gwMAC}}}
	hw, sw := newEnv(t, cfg, dc), newEnv(t, cfg, dc)
	ports := portSet{}
	for _, p := range hw.dev.Ports() {
		ports[p.Name] = p.Kind
	}
	g := &propGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), profile: hw.dev.Profile(),
		kinds: func(n string) nic.PortKind { return ports[n] }, ports: ports}
	fs := g.flows(nflows)
	hw.program(flow.Hardware, fs...)
	sw.program(flow.Software, fs...)
	for i := range npkts {
		port, spec := g.packet()
		gap := time.Duration(g.r.IntN(40)) * time.Millisecond
		hw.clock.Advance(gap)
		sw.clock.Advance(gap)
		a, errA := hw.dp.InjectSpec(port, spec)
		b, errB := sw.dp.InjectSpec(port, spec)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("packet %d %q on %s: errors differ: %v / %v", i, spec, port, errA, errB)
		}
		if errA != nil {
			continue
		}
		if diff := compareTraces(a, b); diff != "" {
			t.Fatalf("seed %d profile %s packet %d %q on %s: %s\nflows:\n%s\nhardware plane:\n%s\nsoftware plane:\n%s",
				seed, profile, i, spec, port, diff, describeFlows(fs), a, b)
		}
	}
}

func compareTraces(a, b *datapath.Trace) string {
	if a.Verdict != b.Verdict {
		return fmt.Sprintf("verdict %s in hardware, %s in software", a.Verdict, b.Verdict)
	}
	if len(a.Outputs) != len(b.Outputs) {
		return fmt.Sprintf("%d outputs in hardware, %d in software", len(a.Outputs), len(b.Outputs))
	}
	for i := range a.Outputs {
		x, y := a.Outputs[i], b.Outputs[i]
		if x.Port != y.Port || x.Kind != y.Kind || x.Mirror != y.Mirror || !bytes.Equal(x.Frame, y.Frame) {
			return fmt.Sprintf("output %d: %s %s %s / %s %s %s", i, x.Port, x.Kind, datapath.Describe(x.Frame), y.Port, y.Kind, datapath.Describe(y.Frame))
		}
	}
	return ""
}

func describeFlows(fs []*flow.Flow) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s port %s chain %d prio %d keys %v actions", f.ID, f.Port, f.Chain, f.Priority, f.Match.Keys().Slice())
		for _, a := range f.Actions {
			fmt.Fprintf(&b, " %s", a.Kind)
			if a.Port != "" {
				fmt.Fprintf(&b, "(%s)", a.Port)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestPlanesAgree(t *testing.T) {
	iterations := 40
	if testing.Short() {
		iterations = 5
	}
	for _, profile := range []string{nic.ProfileMLX5ConnectX6Dx, nic.ProfileMLX5ConnectX5, nic.ProfileNFPAgilioCX, nic.ProfileICEE810, nic.ProfileGeneric} {
		t.Run(profile, func(t *testing.T) {
			for seed := range uint64(iterations) {
				planesAgree(t, profile, seed, 12, 60)
			}
		})
	}
}

func FuzzPlanesAgree(f *testing.F) {
	f.Add(uint64(1), uint8(8), uint8(40), uint8(0))
	f.Add(uint64(99), uint8(20), uint8(10), uint8(2))
	profiles := []string{nic.ProfileMLX5ConnectX6Dx, nic.ProfileMLX5ConnectX5, nic.ProfileNFPAgilioCX, nic.ProfileICEE810, nic.ProfileGeneric}
	f.Fuzz(func(t *testing.T, seed uint64, nflows, npkts, profile uint8) {
		planesAgree(t, profiles[int(profile)%len(profiles)], seed, 1+int(nflows%24), 1+int(npkts%64))
	})
}
