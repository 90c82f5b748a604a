package datapath_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// Placement must never change a packet's fate. For random flow sets,
// profiles, hardware table sizes and traffic, world A applies the flows
// through the engine with their own policy (auto or software-only), so
// that some run in hardware, some spill or are refused and some are kept
// out by the ordering rule; world B applies the same flows all
// software-only. Every packet must end the same way in both: verdict, the
// frames that left, and the rule that dropped it.

// eqSeedEnv replays one case: OFFLOADD_EQUIV_SEED=123 go test -run TestPlacementEquivalence.
const eqSeedEnv = "OFFLOADD_EQUIV_SEED"

var (
	eqProfiles = []string{nic.ProfileMLX5ConnectX6Dx, nic.ProfileMLX5BlueField2, nic.ProfileNFPAgilioCX, nic.ProfileICEE810}
	// 0 keeps the profile's (large) table; the small ones make flows spill.
	eqTableSizes = []int{1, 2, 3, 4, 6, 8, 12, 0, 0, 0}
	// eqNoNeigh is a tunnel endpoint without a neighbour entry: encap to it
	// misses in hardware and is dropped (with a solicitation) in software.
	eqNoNeigh   = netip.MustParseAddr("198.51.100.99")
	eqSNAT      = netip.MustParseAddr("192.0.2.50")
	eqQuiet     = slog.New(slog.NewTextHandler(io.Discard, nil))
	eqDropRule  = regexp.MustCompile(`^flow (\S+) drops it$`)
	eqNeighbors = []datapath.Neighbour{{IP: remoteVTEP, MAC: remoteMAC}, {IP: vtep2, MAC: gwMAC}}
)

// eqPkt is one injected packet and the clock advance before it.
type eqPkt struct {
	port, spec string
	gap        time.Duration
}

func (p eqPkt) String() string { return fmt.Sprintf("+%v on %s: %s", p.gap, p.port, p.spec) }

// eqCase is one scenario: both worlds are built from it alone. World A
// reaches the final flows step by step, as a controller would: a first
// batch with decoys (flows that take room, then go) and older versions of
// some flows, a second batch with the rest and the final versions, the
// decoys' delete, then maybe a promotion pass. World B applies the final
// flows in one batch.
type eqCase struct {
	seed      uint64
	profile   string
	tableSize int
	flows     []*flow.Flow
	late      []bool       // the flow comes in the second batch
	older     []*flow.Flow // an older version in the first batch (of late flows), or nil
	decoys    []*flow.Flow
	promote   bool
	pkts      []eqPkt
}

// without returns c without flow i.
func (c *eqCase) without(i int) *eqCase {
	d := *c
	d.flows = slices.Delete(slices.Clone(c.flows), i, i+1)
	d.late = slices.Delete(slices.Clone(c.late), i, i+1)
	d.older = slices.Delete(slices.Clone(c.older), i, i+1)
	return &d
}

// oneBatch returns c with world A applying the final flows in one batch.
func (c *eqCase) oneBatch() *eqCase {
	d := *c
	d.late, d.older, d.decoys, d.promote = make([]bool, len(c.flows)), make([]*flow.Flow, len(c.flows)), nil, false
	return &d
}

func (c *eqCase) staged() bool {
	return len(c.decoys) > 0 || c.promote || slices.Contains(c.late, true)
}

func (c *eqCase) withPkts(ps []eqPkt) *eqCase {
	d := *c
	d.pkts = ps
	return &d
}

// eqGen makes cases. It reuses propGen's ACL matches, rewrites and
// random packets.
type eqGen struct {
	*propGen
}

func newEqGen(seed uint64, ports portSet) *eqGen {
	return &eqGen{&propGen{r: rand.New(rand.NewPCG(seed, seed^0x6a09e667f3bcc909)), ports: ports}}
}

func (g *eqGen) newCase(seed uint64) *eqCase {
	c := &eqCase{seed: seed, profile: pick(g.propGen, eqProfiles...), tableSize: pick(g.propGen, eqTableSizes...)}
	c.flows = g.flowSet(4 + g.r.IntN(17))
	c.late, c.older = make([]bool, len(c.flows)), make([]*flow.Flow, len(c.flows))
	if g.chance(0.6) {
		g.stage(c)
	}
	c.pkts = g.traffic()
	return c
}

// stage spreads c's flows over two batches, with older versions, decoys
// and a promotion pass.
func (g *eqGen) stage(c *eqCase) {
	for i, f := range c.flows {
		c.late[i] = g.chance(0.4)
		if !c.late[i] || !g.chance(0.4) {
			continue
		}
		o := f.Clone()
		switch g.r.IntN(3) {
		case 0:
			o.Priority = g.prio()
		case 1:
			o.Policy = pick(g.propGen, flow.PolicyAuto, flow.PolicySoftwareOnly)
		default:
			o.Actions = []flow.Action{drop()}
		}
		c.older[i] = o
	}
	// A goto in the first batch needs a rule of its target chain there.
	for moved := true; moved; {
		moved = false
		for i, f := range c.flows {
			for _, a := range f.Actions {
				if a.Kind != flow.ActGoto || c.late[i] {
					continue
				}
				if !slices.ContainsFunc(c.flows, func(t *flow.Flow) bool {
					j := slices.Index(c.flows, t)
					return t.Port == f.Port && t.Chain == a.Chain && !c.late[j]
				}) {
					c.late[i], moved = true, true
				}
			}
		}
	}
	for range g.r.IntN(5) {
		d := g.oneFlow()
		d.ID = fmt.Sprintf("decoy%d", len(c.decoys))
		flow.Normalize(d)
		if len(flow.Validate(d, g.ports)) == 0 {
			c.decoys = append(c.decoys, d)
		}
	}
	c.promote = g.chance(0.5)
}

// flowSet makes n valid flows (plus rules for goto targets that have none).
func (g *eqGen) flowSet(n int) []*flow.Flow {
	var out []*flow.Flow
	add := func(f *flow.Flow) bool {
		f.ID = fmt.Sprintf("f%02d", len(out))
		if f.Policy == flow.PolicyAuto && g.chance(0.15) {
			f.Policy = flow.PolicySoftwareOnly
		}
		flow.Normalize(f)
		if len(flow.Validate(f, g.ports)) > 0 {
			return false
		}
		out = append(out, f)
		return true
	}
	for tries := 0; len(out) < n && tries < 50*n; tries++ {
		add(g.oneFlow())
	}
	// Catch-alls late in chain 0 make most packets hit something, and
	// overlap with everything before them.
	for _, port := range []string{rep0, rep1, up, vx} {
		if !g.chance(0.5) {
			continue
		}
		f := &flow.Flow{Port: port, Priority: 6 + uint16(g.r.IntN(2))}
		if g.chance(0.5) {
			f.Match = ipv4(f.Match)
		}
		f.Actions = []flow.Action{pick(g.propGen, redirect(g.target(port)), redirect(g.target(port)), drop())}
		if port == vx {
			f.Match.TunDstPort = flow.Some[uint16](4789)
			f.Actions = append([]flow.Action{{Kind: flow.ActTunnelDecap}}, f.Actions...)
		}
		add(f)
	}
	// Every goto target gets a rule: the engine refuses gotos to empty chains.
	for i := 0; i < len(out); i++ {
		for _, a := range out[i].Actions {
			if a.Kind != flow.ActGoto || slices.ContainsFunc(out, func(f *flow.Flow) bool {
				return f.Port == out[i].Port && f.Chain == a.Chain
			}) {
				continue
			}
			for tries := 0; tries < 50; tries++ {
				var f *flow.Flow
				if slices.ContainsFunc(out[i].Actions, func(a flow.Action) bool { return a.Kind == flow.ActCT }) {
					f = g.ctPost(out[i].Port, a.Chain)
				} else {
					f = g.acl(out[i].Port, a.Chain)
				}
				if add(f) {
					break
				}
			}
		}
	}
	return out
}

func (g *eqGen) prio() uint16 { return uint16(1 + g.r.IntN(6)) }

func (g *eqGen) oneFlow() *flow.Flow {
	switch k := g.r.IntN(20); {
	case k < 7:
		port := pick(g.propGen, rep0, rep1, up, vx)
		chain := uint32(0)
		if g.chance(0.2) {
			chain = uint32(1 + g.r.IntN(2))
		}
		return g.acl(port, chain)
	case k < 9:
		return g.encap()
	case k < 11:
		return g.decap()
	case k < 14:
		return g.ctPre()
	default:
		return g.ctPost(pick(g.propGen, rep0, rep1, up), uint32(1+g.r.IntN(2)))
	}
}

// target is where a rule on port sends packets: towards the other side.
func (g *eqGen) target(port string) string {
	if port == up || port == vx {
		return pick(g.propGen, rep0, rep1)
	}
	return pick(g.propGen, up, up, rep0, rep1)
}

func (g *eqGen) encapAction() flow.Action {
	return flow.Action{Kind: flow.ActTunnelEncap, Encap: &flow.TunnelEncap{VNI: pick[uint32](g.propGen, 100, 200),
		Src: localVTEP, Dst: pick(g.propGen, remoteVTEP, remoteVTEP, vtep2, eqNoNeigh), TTL: pick[uint8](g.propGen, 0, 32)}}
}

// acl is a stateless rule: propGen's match, header changes, a verdict.
func (g *eqGen) acl(port string, chain uint32) *flow.Flow {
	f := &flow.Flow{Port: port, Chain: chain, Priority: g.prio(), Match: g.match(port)}
	for range g.r.IntN(3) {
		switch g.r.IntN(11) {
		case 0, 1:
			f.Actions = append(f.Actions, flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: pick[uint16](g.propGen, 10, 99)}})
		case 2, 3:
			f.Actions = append(f.Actions, flow.Action{Kind: flow.ActVLANPop})
		case 4, 5:
			f.Actions = append(f.Actions, mirror(pick(g.propGen, rep0, rep1, up)))
		case 6:
			f.Actions = append(f.Actions, flow.Action{Kind: flow.ActCT, CT: &flow.CT{Clear: true}})
		default:
			f.Actions = append(f.Actions, rewrite(g.rewrite(f)))
		}
	}
	switch g.r.IntN(9) {
	case 8:
		// Back in at another port's ingress, in the plane it ran in.
		f.Actions = append(f.Actions, flow.Action{Kind: flow.ActRedirect, Port: pick(g.propGen, rep0, rep1, up), Ingress: true})
	case 0:
		f.Actions = append(f.Actions, drop())
	case 1:
		f.Actions = append(f.Actions, accept())
	case 2:
		if chain < 2 {
			f.Actions = append(f.Actions, gotoC(chain+1+uint32(g.r.IntN(int(2-chain)))))
			break
		}
		f.Actions = append(f.Actions, drop())
	case 3:
		f.Actions = append(f.Actions, g.encapAction(), redirect(vx))
	default:
		f.Actions = append(f.Actions, redirect(g.target(port)))
	}
	if port == vx && g.chance(0.7) {
		f.Actions = append([]flow.Action{{Kind: flow.ActTunnelDecap}}, f.Actions...)
	}
	return f
}

// encap sends a VM's traffic to a remote subnet into the overlay.
func (g *eqGen) encap() *flow.Flow {
	m := ipv4(flow.Match{IPDst: pfx(pick(g.propGen, "10.0.1.0/24", "10.0.2.0/24", "10.0.1.5/32"))})
	if g.chance(0.4) {
		m.IPProto = pick[uint8](g.propGen, flow.ProtoTCP, flow.ProtoUDP)
	}
	f := &flow.Flow{Port: pick(g.propGen, rep0, rep1), Priority: g.prio(), Match: m}
	f.Actions = []flow.Action{g.encapAction(), redirect(vx)}
	if g.chance(0.2) {
		f.Actions = slices.Insert(f.Actions, 0, mirror(up))
	}
	return f
}

// decap takes the overlay's traffic off the tunnel device to a VM.
func (g *eqGen) decap() *flow.Flow {
	var m flow.Match
	if g.chance(0.95) {
		m.TunDstPort = flow.Some[uint16](4789)
	}
	if g.chance(0.7) {
		m.TunID = flow.Some(pick[uint32](g.propGen, 100, 200))
	}
	if g.chance(0.6) {
		m.TunDst = netip.PrefixFrom(localVTEP, 32)
	}
	if g.chance(0.5) {
		m.EthDst = flow.MaskedMAC{Addr: pick(g.propGen, vf0MAC, vf1MAC), Mask: full}
	}
	if g.chance(0.3) {
		m = ipv4(m)
		m.IPProto = pick[uint8](g.propGen, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP)
	}
	f := &flow.Flow{Port: vx, Priority: g.prio(), Match: m}
	f.Actions = []flow.Action{{Kind: flow.ActTunnelDecap}}
	if g.chance(0.2) {
		f.Actions = append(f.Actions, flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 10}})
	}
	f.Actions = append(f.Actions, redirect(pick(g.propGen, rep0, rep1)))
	return f
}

func (g *eqGen) ctAction(m *flow.Match, commit bool) flow.Action {
	c := &flow.CT{Zone: pick[uint16](g.propGen, 1, 2), Commit: commit}
	if commit && g.chance(0.3) {
		c.Mark = flow.Masked32{Value: pick[uint32](g.propGen, 0x5, 0x7), Mask: 0xf}
	}
	if (m.IPProto == flow.ProtoTCP || m.IPProto == flow.ProtoUDP) && g.chance(0.15) {
		c.NAT = flow.NAT{Kind: flow.NATSrc, AddrMin: eqSNAT, PortMin: 20000, PortMax: 20009}
	}
	return flow.Action{Kind: flow.ActCT, CT: c}
}

// ctPre sends traffic through conntrack, then on to a chain of ct_state rules.
func (g *eqGen) ctPre() *flow.Flow {
	port := pick(g.propGen, rep0, rep1, up)
	m := ipv4(flow.Match{IPProto: pick[uint8](g.propGen, flow.ProtoTCP, flow.ProtoTCP, flow.ProtoUDP, 0)})
	if g.chance(0.3) {
		if port == up {
			m.IPDst = pfx(pick(g.propGen, "10.0.0.0/24", "10.0.0.1/32"))
		} else {
			m.IPSrc = pfx(pick(g.propGen, "10.0.0.0/24", "10.0.0.2/32"))
		}
	}
	f := &flow.Flow{Port: port, Priority: g.prio(), Match: m}
	if g.chance(0.15) {
		// ct commit straight to the other side, no goto.
		f.Actions = []flow.Action{g.ctAction(&f.Match, true), redirect(g.target(port))}
		return f
	}
	f.Actions = []flow.Action{g.ctAction(&f.Match, g.chance(0.2)), gotoC(uint32(1 + g.r.IntN(2)))}
	return f
}

// ctPost matches the conntrack state a ct action before it set.
func (g *eqGen) ctPost(port string, chain uint32) *flow.Flow {
	trk, est, nw, rpl, inv := flow.CTTracked, flow.CTEstablished, flow.CTNew, flow.CTReply, flow.CTInvalid
	st := pick(g.propGen,
		ctState(trk|est, trk|est), ctState(trk|est, trk|est), ctState(trk|nw, trk|nw), ctState(trk|nw, trk|nw),
		ctState(trk|est|rpl, trk|est|rpl), ctState(trk|est, trk|est|rpl), ctState(trk|inv, trk|inv),
		ctState(trk, trk), ctState(0, trk))
	m := ipv4(flow.Match{CTState: st})
	if g.chance(0.5) {
		m.IPProto = pick[uint8](g.propGen, flow.ProtoTCP, flow.ProtoUDP)
	}
	if g.chance(0.2) {
		m.CTZone = flow.Some(pick[uint16](g.propGen, 1, 2))
	}
	if g.chance(0.15) {
		m.CTMark = flow.Masked32{Value: 0x5, Mask: 0xf}
	}
	if m.IPProto == flow.ProtoTCP && g.chance(0.2) {
		m.DstPort = port16(pick[uint16](g.propGen, 80, 1234))
	}
	f := &flow.Flow{Port: port, Chain: chain, Priority: g.prio(), Match: m}
	switch {
	case st.Value&nw != 0 && g.chance(0.6):
		f.Actions = []flow.Action{g.ctAction(&f.Match, true), redirect(g.target(port))}
	case chain == 1 && g.chance(0.1):
		f.Actions = []flow.Action{g.ctAction(&f.Match, false), gotoC(2)}
	default:
		f.Actions = []flow.Action{pick(g.propGen, redirect(g.target(port)), redirect(g.target(port)), redirect(g.target(port)), drop(), accept())}
	}
	return f
}

// eqConn is a connection between a VM and the far side of the uplink,
// maybe through the overlay.
type eqConn struct {
	proto           string
	vf              string
	vfMAC           [6]byte
	vmIP, remIP     string
	vmPort, remPort int
	vmStarts        bool
	vni             string // the far side's packets come VXLAN-wrapped with this VNI
}

func (g *eqGen) conn() eqConn {
	c := eqConn{proto: pick(g.propGen, "tcp", "tcp", "tcp", "udp", "udp", "icmp"),
		remIP: pick(g.propGen, "10.0.1.5", "10.0.2.2", "192.0.2.99"), vmPort: pick(g.propGen, 1234, 40000, 40001),
		remPort: pick(g.propGen, 80, 53, 1234), vmStarts: g.chance(0.6)}
	if g.chance(0.5) {
		c.vf, c.vfMAC, c.vmIP = vf0, vf0MAC, "10.0.0.1"
	} else {
		c.vf, c.vfMAC, c.vmIP = vf1, vf1MAC, "10.0.0.2"
	}
	if g.chance(0.3) {
		c.vni = pick(g.propGen, "100", "200")
	}
	return c
}

// pkt builds one packet of c in a direction; extra are spec keys.
func (c eqConn) pkt(fromVM bool, extra string) eqPkt {
	src, dst, sport, dport := c.remIP, c.vmIP, c.remPort, c.vmPort
	port := up
	if fromVM {
		src, dst, sport, dport, port = c.vmIP, c.remIP, c.vmPort, c.remPort, c.vf
	}
	s := []string{c.proto, "src=" + src, "dst=" + dst}
	if c.proto != "icmp" {
		s = append(s, "sport="+strconv.Itoa(sport), "dport="+strconv.Itoa(dport))
	}
	if !fromVM {
		s = append(s, "eth_dst="+macString(c.vfMAC))
		if c.vni != "" {
			s = append(s, "vni="+c.vni, "tun_src="+remoteVTEP.String(), "tun_dst="+localVTEP.String())
		}
	}
	if extra != "" {
		s = append(s, extra)
	}
	return eqPkt{port: port, spec: strings.Join(s, ",")}
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// script is a connection's packets in order: handshake, data, close.
func (g *eqGen) script(c eqConn) []eqPkt {
	o, r := c.vmStarts, !c.vmStarts // from the VM: the opener, the answerer
	type st struct {
		fromVM bool
		extra  string
	}
	var steps []st
	switch c.proto {
	case "tcp":
		steps = []st{{o, "flags=S"}, {r, "flags=SA"}, {o, "flags=A"}, {o, "flags=PA,payload=GET"},
			{r, "flags=PA,payload=OK"}, {r, "flags=PA,payload=OK2"}, {o, "flags=A"}, {o, "flags=FA"}, {r, "flags=FA"}, {o, "flags=A"}}
		steps = steps[:3+g.r.IntN(len(steps)-2)]
		if g.chance(0.1) {
			steps = append(steps, st{pick(g.propGen, o, r), "flags=R"})
		}
		if g.chance(0.1) {
			steps = slices.Delete(steps, 1, 2) // the SYN-ACK is lost
		}
	case "udp":
		steps = []st{{o, ""}, {r, ""}, {o, ""}, {r, ""}, {o, ""}, {r, ""}}
	default:
		steps = []st{{o, "type=8,id=7"}, {r, "type=0,id=7"}, {o, "type=8,id=7"}, {r, "type=0,id=7"}}
	}
	out := make([]eqPkt, len(steps))
	for i, s := range steps {
		out[i] = c.pkt(s.fromVM, s.extra)
	}
	return out
}

func (g *eqGen) gap() time.Duration {
	switch k := g.r.IntN(20); {
	case k < 14:
		return time.Duration(g.r.IntN(20)) * time.Millisecond
	case k < 19:
		return time.Duration(g.r.IntN(500)) * time.Millisecond
	default:
		// Past UDP's stream time: replied UDP flows become assured and offload.
		return 2*time.Second + time.Duration(g.r.IntN(1000))*time.Millisecond
	}
}

// traffic interleaves a few connections' scripts with random packets.
func (g *eqGen) traffic() []eqPkt {
	var queues [][]eqPkt
	for range 2 + g.r.IntN(5) {
		queues = append(queues, g.script(g.conn()))
	}
	var out []eqPkt
	for len(queues) > 0 {
		if g.chance(0.2) {
			port, spec := g.packet()
			out = append(out, eqPkt{port: port, spec: spec, gap: g.gap()})
			continue
		}
		i := g.r.IntN(len(queues))
		p := queues[i][0]
		p.gap = g.gap()
		out = append(out, p)
		if queues[i] = queues[i][1:]; len(queues[i]) == 0 {
			queues = slices.Delete(queues, i, i+1)
		}
	}
	return out
}

// eqWorld is one engine over one emulated NIC and a datapath over it.
type eqWorld struct {
	dev   *emulated.Device
	dp    *datapath.Datapath
	clock *datapath.ManualClock
	eng   *offload.Engine
	res   []offload.Result
}

// newEqWorld applies c's flows (all software-only with softwareOnly).
func newEqWorld(c *eqCase, softwareOnly bool) (*eqWorld, error) {
	cfg := emulated.DefaultConfig()
	cfg.Profile, cfg.HWTableSize = c.profile, c.tableSize
	dev, err := emulated.New(cfg, nil)
	if err != nil {
		return nil, err
	}
	w := &eqWorld{dev: dev, clock: datapath.NewManualClock(t0)}
	if w.dp, err = datapath.New(dev, datapath.Config{Now: w.clock.Now, Neighbours: eqNeighbors}); err != nil {
		_ = dev.Close()
		return nil, err
	}
	if w.eng, err = offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: eqQuiet, Now: w.clock.Now}); err != nil {
		_ = dev.Close()
		return nil, err
	}
	if softwareOnly || !c.staged() {
		fs := make([]*flow.Flow, len(c.flows))
		for i, f := range c.flows {
			fs[i] = f.Clone()
			if softwareOnly {
				fs[i].Policy = flow.PolicySoftwareOnly
			}
		}
		if w.res, err = w.eng.Apply(context.Background(), fs, offload.ApplyOptions{}); err != nil {
			w.close()
			return nil, err
		}
		return w, nil
	}
	if err := w.applyStaged(c); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// applyStaged reaches c's flows in steps (see eqCase) and sets w.res to
// one result per flow, from the batch that applied its final version.
func (w *eqWorld) applyStaged(c *eqCase) error {
	ctx := context.Background()
	first := slices.Clone(c.decoys)
	var second []*flow.Flow
	var at []int // index in c.flows of each flow of second
	for i, f := range c.flows {
		switch {
		case !c.late[i]:
			first = append(first, f)
		case c.older[i] != nil:
			first = append(first, c.older[i])
			fallthrough
		default:
			second = append(second, f)
			at = append(at, i)
		}
	}
	w.res = make([]offload.Result, len(c.flows))
	res, err := w.eng.Apply(ctx, first, offload.ApplyOptions{})
	if err != nil {
		return err
	}
	for _, r := range res[len(c.decoys):] {
		if i := slices.IndexFunc(c.flows, func(f *flow.Flow) bool { return f.ID == r.ID }); i >= 0 && !c.late[i] {
			w.res[i] = r
		}
	}
	if res, err = w.eng.Apply(ctx, second, offload.ApplyOptions{}); err != nil {
		return err
	}
	for k, r := range res {
		w.res[at[k]] = r
		if r.Outcome == offload.OutcomeUpdated || r.Outcome == offload.OutcomeUnchanged {
			w.res[at[k]].Outcome = offload.OutcomeCreated // the final version is in place
		}
	}
	ids := make([]string, len(c.decoys))
	for i, d := range c.decoys {
		ids[i] = d.ID
	}
	if _, err := w.eng.Delete(ctx, ids); err != nil {
		return err
	}
	if c.promote {
		if _, err := w.eng.PromoteSpilled(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (w *eqWorld) close() {
	_ = w.eng.Close()
	_ = w.dev.Close()
}

// eqStats counts what a run saw, to show the cases exercise something.
type eqStats struct {
	packets, injectErrors, hardwareOnly, mixed int
	verdicts                                   map[datapath.Verdict]int
}

func (s *eqStats) String() string {
	return fmt.Sprintf("%d packets (%d not injectable), in world A %d fully in hardware and %d partly; verdicts %v",
		s.packets, s.injectErrors, s.hardwareOnly, s.mixed, s.verdicts)
}

// eqMismatch is the first packet whose fate differs.
type eqMismatch struct {
	i    int
	diff string
	a, b *datapath.Trace
}

// runEqCase runs c's packets through both worlds and returns the first
// mismatch, or nil. An error is a problem of the setup, not a mismatch.
func runEqCase(c *eqCase, stats *eqStats) (*eqMismatch, error) {
	a, err := newEqWorld(c, false)
	if err != nil {
		return nil, err
	}
	defer a.close()
	b, err := newEqWorld(c, true)
	if err != nil {
		return nil, err
	}
	defer b.close()
	for i := range c.flows {
		ra, rb := a.res[i], b.res[i]
		// Invalid flows are invalid in both; an auto flow never fails.
		if ra.Outcome != offload.OutcomeCreated || rb.Outcome != offload.OutcomeCreated {
			return nil, fmt.Errorf("flow %s: outcome %s (%v %v) placed, %s (%v %v) software only",
				ra.ID, ra.Outcome, ra.Err, ra.Violations, rb.Outcome, rb.Err, rb.Violations)
		}
	}
	for i, p := range c.pkts {
		a.clock.Advance(p.gap)
		b.clock.Advance(p.gap)
		ta, errA := a.dp.InjectSpec(p.port, p.spec)
		tb, errB := b.dp.InjectSpec(p.port, p.spec)
		if errA != nil || errB != nil {
			if (errA == nil) != (errB == nil) {
				return &eqMismatch{i: i, diff: fmt.Sprintf("inject error %v placed, %v software only", errA, errB), a: ta, b: tb}, nil
			}
			if stats != nil {
				stats.injectErrors++
			}
			continue
		}
		if stats != nil {
			stats.packets++
			stats.verdicts[ta.Verdict]++
			if ta.Verdict == datapath.VerdictUpcall && os.Getenv("EQDBG") != "" {
				fmt.Println("UPCALL", p.port, p.spec, ta.Reason)
			}
			if !ta.SoftwarePath {
				stats.hardwareOnly++
			} else if slices.ContainsFunc(ta.Steps, func(s datapath.Step) bool {
				return s.Kind == datapath.StepRule && s.Matched && s.Plane == flow.Hardware
			}) {
				stats.mixed++
			}
		}
		if d := eqCompare(ta, tb); d != "" {
			return &eqMismatch{i: i, diff: d, a: ta, b: tb}, nil
		}
	}
	return nil, nil
}

// eqCompare compares two packets' outcomes; "" when they are the same.
func eqCompare(a, b *datapath.Trace) string {
	if a.Verdict != b.Verdict {
		return fmt.Sprintf("verdict %s placed, %s software only", a.Verdict, b.Verdict)
	}
	fa, fb := eqDropFlow(a), eqDropFlow(b)
	if fa != fb {
		return fmt.Sprintf("dropped by flow %q placed, by %q software only", fa, fb)
	}
	if fa == "" && a.Reason != b.Reason {
		return fmt.Sprintf("reason %q placed, %q software only", a.Reason, b.Reason)
	}
	oa, ob := eqOutputs(a), eqOutputs(b)
	if !slices.Equal(oa, ob) {
		return fmt.Sprintf("outputs differ\nplaced:\n  %s\nsoftware only:\n  %s", strings.Join(oa, "\n  "), strings.Join(ob, "\n  "))
	}
	return ""
}

// eqDropFlow is the flow that dropped the packet, if a rule did.
func eqDropFlow(t *datapath.Trace) string {
	if t.Verdict != datapath.VerdictDropped {
		return ""
	}
	if m := eqDropRule.FindStringSubmatch(t.Reason); m != nil {
		return m[1]
	}
	return ""
}

// eqOutputs is the multiset of outputs as sorted strings: port, kind,
// whether a mirror made it, and the exact frame. The VXLAN source port
// hash and checksums are not normalised: both worlds hash with the same
// seed, so the bytes must be identical.
func eqOutputs(t *datapath.Trace) []string {
	out := make([]string, len(t.Outputs))
	for i, o := range t.Outputs {
		out[i] = fmt.Sprintf("%s %s mirror=%v %s [%s]", o.Port, o.Kind, o.Mirror, datapath.Describe(o.Frame), hex.EncodeToString(o.Frame))
	}
	slices.Sort(out)
	return out
}

// eqShrink removes flows, then packets, one at a time while a mismatch
// persists, until nothing more can go.
func eqShrink(c *eqCase, m *eqMismatch) (*eqCase, *eqMismatch) {
	fails := func(d *eqCase) *eqMismatch {
		if m, err := runEqCase(d, nil); err == nil && m != nil {
			return m
		}
		return nil
	}
	c = c.withPkts(slices.Clone(c.pkts[:m.i+1]))
	if d := c.oneBatch(); c.staged() {
		if mm := fails(d); mm != nil {
			c, m = d.withPkts(slices.Clone(d.pkts[:mm.i+1])), mm
		}
	}
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(c.decoys); {
			d := *c
			d.decoys = slices.Delete(slices.Clone(c.decoys), i, i+1)
			if mm := fails(&d); mm != nil {
				c, m, progress = d.withPkts(slices.Clone(d.pkts[:mm.i+1])), mm, true
				continue
			}
			i++
		}
		if c.promote {
			d := *c
			d.promote = false
			if mm := fails(&d); mm != nil {
				c, m, progress = d.withPkts(slices.Clone(d.pkts[:mm.i+1])), mm, true
			}
		}
		for i := range c.older {
			if c.older[i] == nil {
				continue
			}
			d := *c
			d.older = slices.Clone(c.older)
			d.older[i] = nil
			if mm := fails(&d); mm != nil {
				c, m, progress = d.withPkts(slices.Clone(d.pkts[:mm.i+1])), mm, true
			}
		}
		for i := 0; i < len(c.flows); {
			d := c.without(i)
			if mm := fails(d); mm != nil {
				c, m, progress = d.withPkts(slices.Clone(d.pkts[:mm.i+1])), mm, true
				continue
			}
			i++
		}
		for i := 0; i < len(c.pkts); {
			ps := slices.Clone(c.pkts)
			if i+1 < len(ps) {
				ps[i+1].gap += ps[i].gap // later packets keep their time
			}
			d := c.withPkts(slices.Delete(ps, i, i+1))
			if mm := fails(d); mm != nil {
				c, m, progress = d.withPkts(slices.Clone(d.pkts[:mm.i+1])), mm, true
				continue
			}
			i++
		}
	}
	return c, m
}

// eqReport describes a minimal failing case: flows with world A's
// placements, the packets, and both traces of the last one.
func eqReport(c *eqCase, m *eqMismatch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "placement changed a packet's fate: %s\n", m.diff)
	if c.seed != 0 {
		fmt.Fprintf(&b, "seed %d (replay: %s=%d), ", c.seed, eqSeedEnv, c.seed)
	}
	fmt.Fprintf(&b, "profile %s, hardware table size %d\n", c.profile, c.tableSize)
	b.WriteString("flows (placement in world A):\n")
	b.WriteString(eqDescribe(c))
	if c.staged() {
		b.WriteString("world A applied them in steps:\n")
		for i, f := range c.flows {
			if c.late[i] {
				fmt.Fprintf(&b, "  %s in the second batch\n", f.ID)
			}
			if c.older[i] != nil {
				fmt.Fprintf(&b, "  %s first as %s\n", f.ID, prototext.MarshalOptions{}.Format(api.FlowToProto(c.older[i])))
			}
		}
		for _, d := range c.decoys {
			fmt.Fprintf(&b, "  decoy in the first batch, then deleted: %s\n", prototext.MarshalOptions{}.Format(api.FlowToProto(d)))
		}
		fmt.Fprintf(&b, "  PromoteSpilled at the end: %v\n", c.promote)
	}
	b.WriteString("packets:\n")
	for i, p := range c.pkts {
		fmt.Fprintf(&b, "  %d %s\n", i, p)
	}
	if m.a != nil {
		fmt.Fprintf(&b, "\nworld A (placed):\n%s", m.a)
	}
	if m.b != nil {
		fmt.Fprintf(&b, "\nworld B (software only):\n%s", m.b)
	}
	return b.String()
}

func eqDescribe(c *eqCase) string {
	var b strings.Builder
	states := map[string]offload.Status{}
	if w, err := newEqWorld(c, false); err == nil {
		for _, st := range w.eng.List(offload.Filter{}) {
			states[st.Flow.ID] = st
		}
		w.close()
	}
	for _, f := range c.flows {
		fmt.Fprintf(&b, "  %s port %s chain %d prio %d policy %s\n    %s\n", f.ID, f.Port, f.Chain, f.Priority, f.Policy,
			prototext.MarshalOptions{}.Format(api.FlowToProto(f)))
		if st, ok := states[f.ID]; ok {
			fmt.Fprintf(&b, "    -> %s", st.State)
			for _, r := range st.Reasons {
				fmt.Fprintf(&b, " [%s: %s]", r.Code, r.Message)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func eqPorts(t testing.TB) portSet {
	dev, err := emulated.New(emulated.DefaultConfig(), nil)
	require.NoError(t, err)
	defer dev.Close()
	ports := portSet{}
	for _, p := range dev.Ports() {
		ports[p.Name] = p.Kind
	}
	return ports
}

// eqSeeds are the fixed seeds plus some from the clock, or the one the
// environment names. OFFLOADD_EQUIV_CASES=N runs N clock seeds instead of
// the usual few, for longer hunts.
func eqSeeds(t *testing.T) []uint64 {
	if s := os.Getenv(eqSeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, eqSeedEnv)
		return []uint64{seed}
	}
	fixed, random := 160, 40
	if testing.Short() {
		fixed, random = 40, 10
	}
	if s := os.Getenv("OFFLOADD_EQUIV_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "OFFLOADD_EQUIV_CASES")
		random = n
	}
	var seeds []uint64
	for i := range fixed {
		seeds = append(seeds, uint64(i+1))
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("seeds from the clock: %d..%d (replay one with %s=N)", base, base+uint64(random)-1, eqSeedEnv)
	for i := range random {
		seeds = append(seeds, base+uint64(i))
	}
	return seeds
}

func TestPlacementEquivalence(t *testing.T) {
	ports := eqPorts(t)
	stats := &eqStats{verdicts: map[datapath.Verdict]int{}}
	placed := map[string]int{}
	start := time.Now()
	seeds := eqSeeds(t)
	for _, seed := range seeds {
		c := newEqGen(seed, ports).newCase(seed)
		m, err := runEqCase(c, stats)
		require.NoError(t, err, "seed %d", seed)
		if m != nil {
			c, m = eqShrink(c, m)
			t.Fatal(eqReport(c, m))
		}
		if w, err := newEqWorld(c, false); err == nil {
			for _, st := range w.eng.List(offload.Filter{}) {
				k := st.State.String()
				if len(st.Reasons) > 0 {
					k += "/" + string(st.Reasons[0].Code)
				}
				placed[k]++
			}
			w.close()
		}
	}
	t.Logf("%d cases in %v: %s; flows placed in world A: %v",
		len(seeds), time.Since(start).Round(time.Millisecond), stats, placed)
}

// TestPlacementEquivalenceBugs keeps minimal reproducers of the mismatches
// TestPlacementEquivalence found in the engine, fixed since: an uplink
// rule that runs only in software comes before the tunnel device's rules.
func TestPlacementEquivalenceBugs(t *testing.T) {
	udp := ipv4(flow.Match{IPProto: flow.ProtoUDP})
	// nfp needs an exact outer destination on tunnel rules.
	decapToVM0 := &flow.Flow{ID: "decap", Port: vx, Priority: 1,
		Match:   flow.Match{TunDstPort: flow.Some[uint16](4789), TunDst: netip.PrefixFrom(localVTEP, 32)},
		Actions: []flow.Action{{Kind: flow.ActTunnelDecap}, redirect(rep0)}}
	overlay := eqPkt{port: up, spec: "udp,src=10.0.1.5,dst=10.0.0.1,vni=100,tun_src=198.51.100.10,tun_dst=192.0.2.1"}
	for _, tc := range []struct {
		name, profile string
		uplink        *flow.Flow
		tableSize     int
		uplinkLate    bool // apply the uplink rule in a second batch
	}{
		// The user asked for software only: the uplink rule takes VXLAN
		// frames up to the host stack in software; in hardware the
		// tunnel device's rule decapsulates them to VM 0 first.
		{"software-only uplink rule", nic.ProfileMLX5ConnectX6Dx,
			&flow.Flow{ID: "up-host", Port: up, Priority: 1, Match: udp, Actions: []flow.Action{accept()}, Policy: flow.PolicySoftwareOnly}, 0, false},
		// nfp does not offload accept: the auto rule goes to software
		// on its own, with the same effect.
		{"uplink rule the profile refuses", nic.ProfileNFPAgilioCX,
			&flow.Flow{ID: "up-host", Port: up, Priority: 1, Match: udp, Actions: []flow.Action{accept()}}, 0, false},
		// The tunnel rule took the one hardware entry; the uplink rule,
		// applied after it, spills to software for room.
		{"uplink rule spilled for room", nic.ProfileMLX5ConnectX6Dx,
			&flow.Flow{ID: "up-host", Port: up, Priority: 1, Match: udp, Actions: []flow.Action{accept()}}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &eqCase{profile: tc.profile, tableSize: tc.tableSize, flows: []*flow.Flow{tc.uplink, decapToVM0},
				late: []bool{tc.uplinkLate, false}, older: make([]*flow.Flow, 2), pkts: []eqPkt{overlay}}
			m, err := runEqCase(c, nil)
			require.NoError(t, err)
			require.Nil(t, m, "a tunnel-device rule in hardware must not take VXLAN frames before an overlapping "+
				"uplink chain-0 rule that runs only in software:\n%s", func() string {
				if m == nil {
					return ""
				}
				return eqReport(c, m)
			}())
		})
	}
}

// Hardware-only flows are not miss-safe by design: they have no software
// copy. These pin down how they differ from software and what their
// status says.
func TestHardwareOnlyFlowsMayDiffer(t *testing.T) {
	ctx := context.Background()
	tcp := ipv4(flow.Match{IPProto: flow.ProtoTCP})
	est, nw := ctState(flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished), ctState(flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew)
	with := func(m flow.Match, st flow.Masked16) flow.Match { m.CTState = st; return m }
	hwOnly := func(f *flow.Flow) *flow.Flow { f.Policy = flow.PolicyHardwareOnly; return f }
	pair := func(t *testing.T, c *eqCase) (a, b *eqWorld) {
		a, err := newEqWorld(c, false)
		require.NoError(t, err)
		t.Cleanup(a.close)
		b, err = newEqWorld(c, true)
		require.NoError(t, err)
		t.Cleanup(b.close)
		return a, b
	}
	send := func(t *testing.T, a, b *eqWorld, port, spec string) (ta, tb *datapath.Trace) {
		a.clock.Advance(10 * time.Millisecond)
		b.clock.Advance(10 * time.Millisecond)
		ta, err := a.dp.InjectSpec(port, spec)
		require.NoError(t, err)
		tb, err = b.dp.InjectSpec(port, spec)
		require.NoError(t, err)
		return ta, tb
	}
	status := func(t *testing.T, w *eqWorld, id string) offload.Status {
		require.NoError(t, w.eng.RefreshStats(ctx))
		st, ok := w.eng.Get(id)
		require.True(t, ok, id)
		return st
	}

	t.Run("a ct action that misses resumes in software", func(t *testing.T) {
		// The hardware-only ct rule has no software copy; the datapath
		// resumes its actions in software at the ct action, as kernels
		// since 6.4 do (act_ct restores the miss to the action), so
		// packets of connections not offloaded yet still get through.
		toRemote := "tcp,src=10.0.0.1,dst=10.0.1.5,sport=40000,dport=80"
		fromRemote := "tcp,src=10.0.1.5,dst=10.0.0.1,sport=80,dport=40000"
		in := tcp
		in.IPDst = pfx("10.0.0.1/32")
		c := &eqCase{profile: nic.ProfileMLX5ConnectX6Dx, flows: []*flow.Flow{
			hwOnly(fl("ct-hw", rep0, 0, 1, tcp, ct(1, false), gotoC(1))),
			fl("est", rep0, 1, 1, with(tcp, est), redirect(up)),
			fl("new", rep0, 1, 2, with(tcp, nw), ct(1, true), redirect(up)),
			fl("in-ct", up, 0, 1, in, ct(1, false), gotoC(1)),
			fl("in-est", up, 1, 1, with(tcp, est), redirect(rep0)),
		}}
		a, b := pair(t, c)
		for _, r := range a.res {
			require.Equal(t, offload.OutcomeCreated, r.Outcome, r.ID)
		}
		st := status(t, a, "ct-hw")
		assert.Equal(t, offload.StateHardware, st.State)
		assert.Empty(t, st.Reasons)
		for _, plane := range []flow.Plane{flow.Software, flow.Both} {
			fs, err := a.dev.Flows(ctx, plane)
			require.NoError(t, err)
			assert.False(t, slices.ContainsFunc(fs, func(in nic.Installed) bool { return in.Flow.ID == "ct-hw" }),
				"ct-hw has no %s copy", plane)
		}
		steps := []struct {
			port, spec string
			software   bool
		}{
			{vf0, toRemote + ",flags=S", true},
			{up, fromRemote + ",flags=SA", true},
			{vf0, toRemote + ",flags=A", true}, // establishes; the connection is offloaded
			{vf0, toRemote + ",flags=PA,payload=GET", false},
			{up, fromRemote + ",flags=PA,payload=OK", false},
			{vf0, toRemote + ",flags=FA", true},
		}
		for i, s := range steps {
			ta, tb := send(t, a, b, s.port, s.spec)
			require.Empty(t, eqCompare(ta, tb), "packet %d\n%s\n%s", i, ta, tb)
			assert.Equal(t, datapath.VerdictForwarded, ta.Verdict, "packet %d\n%s", i, ta)
			assert.Equal(t, s.software, ta.SoftwarePath, "packet %d\n%s", i, ta)
			if s.port == vf0 {
				assert.Equal(t, "hardware:ct-hw", matchedIDs(ta)[0], "packet %d", i)
			}
			if s.software && s.port == vf0 {
				assert.True(t, slices.ContainsFunc(ta.Steps, func(st datapath.Step) bool {
					return st.Kind == datapath.StepMiss && st.FlowID == "" && strings.Contains(st.Text, "actions[0] of ct-hw")
				}), "packet %d: the ct action missed and resumed in software\n%s", i, ta)
			}
		}
		// Every hit counts in hardware: there is no software copy to count in.
		st = status(t, a, "ct-hw")
		assert.Equal(t, uint64(4), st.HW.Packets)
		assert.Zero(t, st.SW.Packets)
	})

	t.Run("pending for room: its packets miss", func(t *testing.T) {
		// One hardware entry: "allow" takes it, "deny" waits as pending,
		// and SSH is not dropped but goes to the slow path.
		ssh, web := tcp, tcp
		ssh.DstPort, web.DstPort = port16(22), port16(80)
		c := &eqCase{profile: nic.ProfileMLX5ConnectX6Dx, tableSize: 1, flows: []*flow.Flow{
			hwOnly(fl("allow", rep0, 0, 1, web, redirect(up))),
			hwOnly(fl("deny", rep0, 0, 2, ssh, drop())),
		}}
		a, b := pair(t, c)
		assert.Equal(t, offload.StateHardware, status(t, a, "allow").State)
		st := status(t, a, "deny")
		assert.Equal(t, offload.StatePending, st.State)
		require.NotEmpty(t, st.Reasons)
		assert.Equal(t, nic.ReasonCapacity, st.Reasons[0].Code)
		ta, tb := send(t, a, b, vf0, "tcp,dport=22")
		assert.Equal(t, datapath.VerdictUpcall, ta.Verdict, ta.String())
		assert.Equal(t, datapath.VerdictDropped, tb.Verdict, tb.String())
		ta, tb = send(t, a, b, vf0, "tcp,dport=80")
		assert.Empty(t, eqCompare(ta, tb))
		assert.False(t, ta.SoftwarePath)
	})

	t.Run("refused by the profile: failed, not installed", func(t *testing.T) {
		// nfp runs ct commit in software only: a hardware-only flow with
		// it fails and is not installed anywhere.
		c := &eqCase{profile: nic.ProfileNFPAgilioCX, flows: []*flow.Flow{
			hwOnly(fl("commit", rep0, 0, 1, tcp, ct(1, true), redirect(up))),
		}}
		a, b := pair(t, c)
		r := a.res[0]
		assert.Equal(t, offload.OutcomeFailed, r.Outcome)
		var pe *offload.PlacementError
		require.ErrorAs(t, r.Err, &pe)
		require.NotEmpty(t, pe.Reasons)
		assert.Equal(t, nic.ReasonUnsupportedValue, pe.Reasons[0].Code, pe.Reasons[0].Message)
		_, ok := a.eng.Get("commit")
		assert.False(t, ok, "a failed new flow is not kept")
		ta, tb := send(t, a, b, vf0, "tcp")
		assert.Equal(t, datapath.VerdictUpcall, ta.Verdict)
		assert.Equal(t, datapath.VerdictForwarded, tb.Verdict)
	})

	t.Run("it shadows an earlier software rule and its reason says so", func(t *testing.T) {
		// The ordering rule keeps auto flows out of hardware behind a
		// software-only rule, not hardware-only ones: "fwd" takes DNS in
		// hardware before "tap" can mirror it. Hardware-only is the
		// user's call; the flow's reason names the rule it goes before.
		dns := ipv4(flow.Match{IPProto: flow.ProtoUDP, DstPort: port16(53)})
		tap := fl("tap", rep0, 0, 1, dns, mirror(rep1), redirect(up))
		tap.Policy = flow.PolicySoftwareOnly
		c := &eqCase{profile: nic.ProfileMLX5ConnectX6Dx, flows: []*flow.Flow{tap, hwOnly(fl("fwd", rep0, 0, 2, ipv4(flow.Match{}), redirect(up)))}}
		a, b := pair(t, c)
		st := status(t, a, "fwd")
		assert.Equal(t, offload.StateHardware, st.State)
		require.NotEmpty(t, st.Reasons, "a reason names the rule it goes before")
		assert.Equal(t, offload.ReasonHardwareOnlyFirst, st.Reasons[0].Code)
		assert.Contains(t, st.Reasons[0].Message, "flow tap")
		ta, tb := send(t, a, b, vf0, "udp,dport=53")
		assert.Len(t, ta.Outputs, 1, "no mirror copy in hardware\n%s", ta)
		assert.Len(t, tb.Outputs, 2, "the mirror copy and the packet in software\n%s", tb)
	})
}
