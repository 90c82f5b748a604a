package datapath_test

import (
	"context"
	"hash/crc32"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Ports and MACs of emulated.DefaultConfig.
const (
	vf0  = "enp8s0f0v0"
	vf1  = "enp8s0f0v1"
	rep0 = "pf0vf0"
	rep1 = "pf0vf1"
	up   = "p0"
	vx   = "vxlan0"
)

var (
	upMAC  = [6]byte{0x02, 0x42, 0x0f, 0x00, 0x00, 0x00}
	vf0MAC = [6]byte{0x02, 0x42, 0x0f, 0x01, 0x00, 0x00}
	vf1MAC = [6]byte{0x02, 0x42, 0x0f, 0x01, 0x00, 0x01}
	gwMAC  = [6]byte{0x02, 0xee, 0x00, 0x00, 0x00, 0x01}
	full   = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

type env struct {
	t     testing.TB
	dev   *emulated.Device
	dp    *datapath.Datapath
	clock *datapath.ManualClock
}

func newEnv(t testing.TB, cfg emulated.Config, dc datapath.Config) *env {
	t.Helper()
	dev, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })
	clock := datapath.NewManualClock(t0)
	if dc.Now == nil {
		dc.Now = clock.Now
	}
	dp, err := datapath.New(dev, dc)
	require.NoError(t, err)
	return &env{t: t, dev: dev, dp: dp, clock: clock}
}

func defaultEnv(t testing.TB) *env { return newEnv(t, emulated.DefaultConfig(), datapath.Config{}) }

func (e *env) program(plane flow.Plane, fs ...*flow.Flow) {
	e.t.Helper()
	ops := make([]nic.Op, len(fs))
	for i, f := range fs {
		ops[i] = nic.Op{Kind: nic.OpAdd, Flow: f}
	}
	for i, err := range e.dev.Program(context.Background(), plane, ops) {
		require.NoError(e.t, err, "program %s flow %s", plane, fs[i].ID)
	}
}

func (e *env) inject(port, spec string) *datapath.Trace {
	e.t.Helper()
	tr, err := e.dp.InjectSpec(port, spec)
	require.NoError(e.t, err, "inject %q on %s", spec, port)
	return tr
}

func (e *env) injectFrame(port string, frame []byte) *datapath.Trace {
	e.t.Helper()
	tr, err := e.dp.Inject(port, frame)
	require.NoError(e.t, err)
	return tr
}

func (e *env) counters(plane flow.Plane, id string) nic.Counters {
	e.t.Helper()
	fs, err := e.dev.Flows(context.Background(), plane)
	require.NoError(e.t, err)
	for _, in := range fs {
		if in.Flow.ID == id {
			return in.Counters
		}
	}
	e.t.Fatalf("no %s flow %s", plane, id)
	return nic.Counters{}
}

// fl builds a flow.
func fl(id, port string, chain uint32, prio uint16, m flow.Match, acts ...flow.Action) *flow.Flow {
	return &flow.Flow{ID: id, Port: port, Chain: chain, Priority: prio, Match: m, Actions: acts}
}

func drop() flow.Action   { return flow.Action{Kind: flow.ActDrop} }
func accept() flow.Action { return flow.Action{Kind: flow.ActAccept} }
func gotoC(c uint32) flow.Action {
	return flow.Action{Kind: flow.ActGoto, Chain: c}
}
func redirect(port string) flow.Action { return flow.Action{Kind: flow.ActRedirect, Port: port} }
func mirror(port string) flow.Action   { return flow.Action{Kind: flow.ActMirror, Port: port} }

func ct(zone uint16, commit bool) flow.Action {
	return flow.Action{Kind: flow.ActCT, CT: &flow.CT{Zone: zone, Commit: commit}}
}

func rewrite(r flow.Rewrite) flow.Action { return flow.Action{Kind: flow.ActRewrite, Rewrite: &r} }

func ipv4(m flow.Match) flow.Match { m.EthType = flow.EthTypeIPv4; return m }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func port16(v uint16) flow.Masked16 { return flow.Masked16{Value: v, Mask: 0xffff} }

func ctState(v, mask uint16) flow.Masked16 { return flow.Masked16{Value: v, Mask: mask} }

// decode parses a frame with gopacket and fails on decode errors.
func decode(t testing.TB, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	return p
}

// requireChecksums re-parses a frame with gopacket and recomputes every
// checksum in it (inner frames of VXLAN included): IPv4 headers, and TCP,
// UDP and ICMP over the IP layer before them.
func requireChecksums(t testing.TB, frame []byte) {
	t.Helper()
	p := decode(t, frame)
	var nl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}:
			require.NoError(t, l.SetNetworkLayerForChecksum(nl))
		}
		v, ok := l.(interface {
			VerifyChecksum() (error, gopacket.ChecksumVerificationResult)
		})
		if !ok {
			continue
		}
		err, res := v.VerifyChecksum()
		require.NoError(t, err, "%s", l.LayerType())
		assert.True(t, res.Valid, "%s checksum 0x%04x, want 0x%04x", l.LayerType(), res.Actual, res.Correct)
	}
}

func outputsOf(tr *datapath.Trace, kind datapath.OutputKind) []datapath.Output {
	var out []datapath.Output
	for _, o := range tr.Outputs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func matchedIDs(tr *datapath.Trace) []string {
	var out []string
	for _, s := range tr.Steps {
		if s.Kind == datapath.StepRule && s.Matched {
			out = append(out, s.Plane.String()+":"+s.FlowID)
		}
	}
	return out
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
