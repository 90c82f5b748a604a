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
	eqTableSizes = []int{1, 2, 3, 4, 5, 6, 8, 12, 0}
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

// eqCase is one scenario: both worlds are built from it alone.
type eqCase struct {
	seed      uint64
	profile   string
	tableSize int
	flows     []*flow.Flow
	pkts      []eqPkt
}

func (c *eqCase) withFlows(fs []*flow.Flow) *eqCase {
	d := *c
	d.flows = fs
	return &d
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
	c.flows = g.flowSet(4 + g.r.IntN(13))
	c.pkts = g.traffic()
	return c
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
		switch g.r.IntN(5) {
		case 0:
			f.Actions = append(f.Actions, flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: pick[uint16](g.propGen, 10, 99)}})
		case 1:
			f.Actions = append(f.Actions, flow.Action{Kind: flow.ActVLANPop})
		case 2:
			f.Actions = append(f.Actions, mirror(pick(g.propGen, rep0, rep1, up)))
		default:
			f.Actions = append(f.Actions, rewrite(g.rewrite(f)))
		}
	}
	switch g.r.IntN(8) {
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
	for range 2 + g.r.IntN(3) {
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

func (w *eqWorld) close() {
	_ = w.eng.Close()
	_ = w.dev.Close()
}

// eqMismatch is the first packet whose fate differs.
type eqMismatch struct {
	i    int
	diff string
	a, b *datapath.Trace
}

// runEqCase runs c's packets through both worlds and returns the first
// mismatch, or nil. An error is a problem of the setup, not a mismatch.
func runEqCase(c *eqCase) (*eqMismatch, error) {
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
			continue
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
		if m, err := runEqCase(d); err == nil && m != nil {
			return m
		}
		return nil
	}
	c = c.withPkts(slices.Clone(c.pkts[:m.i+1]))
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(c.flows); {
			d := c.withFlows(slices.Delete(slices.Clone(c.flows), i, i+1))
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
	fmt.Fprintf(&b, "placement changed a packet's fate: %s\nseed %d (replay: %s=%d), profile %s, hardware table size %d\n",
		m.diff, c.seed, eqSeedEnv, c.seed, c.profile, c.tableSize)
	b.WriteString("flows (placement in world A):\n")
	b.WriteString(eqDescribe(c))
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
// environment names.
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
	packets, placed := 0, map[offload.State]int{}
	for _, seed := range eqSeeds(t) {
		c := newEqGen(seed, ports).newCase(seed)
		m, err := runEqCase(c)
		require.NoError(t, err, "seed %d", seed)
		packets += len(c.pkts)
		if m != nil {
			c, m = eqShrink(c, m)
			t.Fatal(eqReport(c, m))
		}
		if w, err := newEqWorld(c, false); err == nil {
			for _, st := range w.eng.List(offload.Filter{}) {
				placed[st.State]++
			}
			w.close()
		}
	}
	t.Logf("%d packets; placements in world A: %v", packets, placed)
}
