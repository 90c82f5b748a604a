package linux_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	tccorpus "github.com/offloadd/offloadd/hack/tc-corpus"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux"
	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/nic/nictest"
	"github.com/offloadd/offloadd/offload/flow"
)

// veths stand in for representors: rep0/rep0p, rep1/rep1p.
func kernelDevice(t *testing.T) (*linux.Device, string) {
	t.Helper()
	ns, name := newNetns(t)
	h := linkHandle(t, ns)
	var ports []nic.Port
	for i, n := range []string{"rep0", "rep1"} {
		addVeth(t, h, n)
		ports = append(ports, nic.Port{Name: n, Kind: nic.PortRepresentor, VF: i, SwitchID: "veth", Peer: ""})
	}
	addVeth(t, h, "p0")
	// A ConnectX-6 Dx profile lets the suite pick flows the profile
	// refuses; the veths refuse every skip_sw filter, as the kernel's
	// answer wins over any profile.
	dev, err := linux.New(linux.Config{Uplink: "p0", NetNS: ns, Ports: ports,
		Tunnel: &linux.TunnelConfig{Name: "vxlan0"}, Profile: nic.MLX5ConnectX6Dx()})
	require.NoError(t, err)
	return dev, name
}

func TestKernelConformance(t *testing.T) {
	requireKernelTier(t)
	nictest.Run(t, func(t *testing.T) nic.Device {
		dev, _ := kernelDevice(t)
		return dev
	})
}

func TestKernelHardwareRefusal(t *testing.T) {
	requireKernelTier(t)
	dev, _ := kernelDevice(t)
	t.Cleanup(func() { _ = dev.Close() })
	f := &flow.Flow{ID: "hw", Port: "rep0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP},
		Actions: []flow.Action{{Kind: flow.ActRedirect, Port: "rep1"}}}
	errs := dev.Program(context.Background(), flow.Hardware, []nic.Op{{Kind: nic.OpAdd, Flow: f}})
	var re *nic.RefusedError
	require.ErrorAs(t, errs[0], &re)
	assert.Equal(t, nic.RefusedUnsupported, re.Kind)
	assert.ErrorIs(t, errs[0], syscall.EOPNOTSUPP)
	t.Logf("veth refuses skip_sw: %v", errs[0])
	got, err := dev.Flows(context.Background(), flow.Hardware)
	require.NoError(t, err)
	assert.Empty(t, got)
	used, total := dev.Capacity()
	assert.Equal(t, 0, used)
	assert.Equal(t, 0, total)

	// The same flow goes to software, where its in_hw flag is off.
	errs = dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: f}})
	require.NoError(t, errs[0])
	got, err = dev.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.False(t, got[0].InHW)
	assert.True(t, f.Equal(got[0].Flow))
}

func TestKernelAdoptAfterRestart(t *testing.T) {
	requireKernelTier(t)
	ns, _ := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, "rep0")
	addVeth(t, h, "rep1")
	cfg := linux.Config{Uplink: "rep0", NetNS: ns, Ports: []nic.Port{{Name: "rep1", Kind: nic.PortRepresentor, VF: 1, SwitchID: "v"}}}
	dev, err := linux.New(cfg)
	require.NoError(t, err)
	var ops []nic.Op
	for i, id := range []string{"a", "b", "c"} {
		f := &flow.Flow{ID: id, Port: "rep0", Priority: uint16(10 + i), Match: flow.Match{EthType: flow.EthTypeIPv4},
			Actions: []flow.Action{{Kind: flow.ActRedirect, Port: "rep1"}}}
		ops = append(ops, nic.Op{Kind: nic.OpAdd, Flow: f})
	}
	for _, err := range dev.Program(context.Background(), flow.Software, ops) {
		require.NoError(t, err)
	}
	require.NoError(t, dev.Close())

	dev, err = linux.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })
	got, err := dev.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	require.Len(t, got, 3, "without Adopt the copies are reported as orphans")
	for _, in := range got {
		assert.True(t, strings.HasPrefix(in.Flow.ID, linux.OrphanPrefix), in.Flow.ID)
	}
	dev.Adopt([]string{"a", "b", "c", "not-installed"})
	got, err = dev.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for _, in := range got {
		want := ops[in.Flow.ID[0]-'a'].Flow
		assert.True(t, want.Equal(in.Flow), "%s read back as %+v", want.ID, in.Flow)
	}
	// Adopted copies can be deleted by ID, and the handles are not reused.
	errs := dev.Program(context.Background(), flow.Software, []nic.Op{
		{Kind: nic.OpDelete, Flow: &flow.Flow{ID: "a", Port: "rep0"}},
		{Kind: nic.OpAdd, Flow: &flow.Flow{ID: "d", Port: "rep0", Priority: 11, Match: flow.Match{EthType: flow.EthTypeIPv4,
			IPProto: flow.ProtoUDP}, Actions: []flow.Action{{Kind: flow.ActDrop}}}},
	})
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	got, err = dev.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	assert.Len(t, got, 3)
}

// tcJSON runs tc -j filter show and normalizes it: drops action indexes,
// reference counts, timestamps and statistics, which differ between two
// installs of the same rule, and the cookies of actions after the first:
// iproute2 (6.1 and later) never resets its cookie buffer in parse_action,
// so `cookie X` on one action repeats on every later one, while offloadd
// puts the cookie on the first action only.
func tcJSON(t *testing.T, tc, ns, dev string) string {
	t.Helper()
	out, err := exec.Command(tc, "-n", ns, "-j", "filter", "show", "dev", dev, "ingress").CombinedOutput()
	require.NoError(t, err, "tc filter show: %s", out)
	var v any
	require.NoError(t, json.Unmarshal(out, &v), "tc -j output: %s", out)
	var strip func(any) any
	strip = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for _, k := range []string{"index", "ref", "bind", "installed", "last_used", "first_used", "expires", "stats"} {
				delete(x, k)
			}
			if o, ok := x["order"].(float64); ok && o > 1 {
				delete(x, "cookie")
			}
			for k, e := range x {
				x[k] = strip(e)
			}
		case []any:
			for i, e := range x {
				x[i] = strip(e)
			}
		}
		return x
	}
	b, err := json.MarshalIndent(strip(v), "", " ")
	require.NoError(t, err)
	return string(b)
}

func TestKernelIproute2Equivalence(t *testing.T) {
	requireKernelTier(t)
	tc := os.Getenv("OFFLOADD_TC")
	if tc == "" {
		tc = "tc"
	}
	entries, err := tccorpus.Load()
	require.NoError(t, err)
	ns, nsName := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, tccorpus.DevPort)
	addVeth(t, h, tccorpus.PeerPort)
	dev, err := linux.New(linux.Config{Uplink: tccorpus.DevPort, NetNS: ns,
		Ports:  []nic.Port{{Name: tccorpus.PeerPort, Kind: nic.PortRepresentor, VF: 0, SwitchID: "v"}},
		Tunnel: &linux.TunnelConfig{Name: tccorpus.TunnelPort}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })
	for _, q := range []string{tccorpus.DevPort, tccorpus.TunnelPort} {
		out, err := exec.Command(tc, "-n", nsName, "qdisc", "add", "dev", q, "clsact").CombinedOutput()
		require.NoError(t, err, "tc qdisc add: %s", out)
	}
	for _, e := range entries {
		t.Run(e.Name, func(t *testing.T) {
			ck := tcflower.CookieFor(e.Name)
			args := strings.NewReplacer("$DEV", tccorpus.DevPort, "$PEER", tccorpus.PeerPort,
				"$VXLAN", tccorpus.TunnelPort, "$COOKIE", hex.EncodeToString(ck[:])).Replace(e.Args)
			port := e.Flow.Port
			cmd := append([]string{"-n", nsName, "filter", "add"}, strings.Fields(args)...)
			out, err := exec.Command(tc, cmd...).CombinedOutput()
			require.NoError(t, err, "tc %s: %s", strings.Join(cmd, " "), out)
			want := tcJSON(t, tc, nsName, port)
			out, err = exec.Command(tc, "-n", nsName, "filter", "del", "dev", port, "ingress",
				"chain", strconv.Itoa(int(e.Flow.Chain))).CombinedOutput()
			require.NoError(t, err, "tc filter del: %s", out)

			errs := dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: e.Flow}})
			require.NoError(t, errs[0], "codec install")
			got := tcJSON(t, tc, nsName, port)
			installed, err := dev.Flows(context.Background(), flow.Software)
			require.NoError(t, err)
			errs = dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpDelete, Flow: e.Flow}})
			require.NoError(t, errs[0], "codec delete")

			assert.Equal(t, want, got, "tc line: tc %s", args)
			require.Len(t, installed, 1)
			assert.True(t, e.Flow.Equal(installed[0].Flow), "read back from the kernel:\nwant %s\n got %s", show(e.Flow), show(installed[0].Flow))
		})
	}
}

// TestKernelFlowsDecodeIproute2 reads filters that tc itself installed
// with offloadd cookies: the decoder must turn iproute2's encoding (not
// only its own) into the corpus flows.
func TestKernelFlowsDecodeIproute2(t *testing.T) {
	requireKernelTier(t)
	tc := os.Getenv("OFFLOADD_TC")
	if tc == "" {
		tc = "tc"
	}
	entries, err := tccorpus.Load()
	require.NoError(t, err)
	ns, nsName := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, tccorpus.DevPort)
	addVeth(t, h, tccorpus.PeerPort)
	dev, err := linux.New(linux.Config{Uplink: tccorpus.DevPort, NetNS: ns,
		Ports:  []nic.Port{{Name: tccorpus.PeerPort, Kind: nic.PortRepresentor, VF: 0, SwitchID: "v"}},
		Tunnel: &linux.TunnelConfig{Name: tccorpus.TunnelPort}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })
	var batch bytes.Buffer
	var ids []string
	for _, q := range []string{tccorpus.DevPort, tccorpus.TunnelPort} {
		batch.WriteString("qdisc add dev " + q + " clsact\n")
	}
	for _, e := range entries {
		ck := tcflower.CookieFor(e.Name)
		args := strings.NewReplacer("$DEV", tccorpus.DevPort, "$PEER", tccorpus.PeerPort,
			"$VXLAN", tccorpus.TunnelPort, "$COOKIE", hex.EncodeToString(ck[:])).Replace(e.Args)
		// Different priorities per entry already; handles are all 1.
		batch.WriteString("filter add " + args + "\n")
		ids = append(ids, e.Name)
	}
	cmd := exec.Command(tc, "-n", nsName, "-b", "-")
	cmd.Stdin = &batch
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "tc -b: %s", out)
	dev.Adopt(ids)
	got, err := dev.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	byID := map[string]*flow.Flow{}
	for _, in := range got {
		byID[in.Flow.ID] = in.Flow
	}
	for _, e := range entries {
		f, ok := byID[e.Name]
		if !assert.True(t, ok, "%s not read back", e.Name) {
			continue
		}
		assert.True(t, e.Flow.Equal(f), "%s:\nwant %s\n got %s", e.Name, show(e.Flow), show(f))
	}
	// The device can delete what tc installed, by flow ID.
	var ops []nic.Op
	for _, e := range entries {
		ops = append(ops, nic.Op{Kind: nic.OpDelete, Flow: e.Flow})
	}
	for i, err := range dev.Program(context.Background(), flow.Software, ops) {
		if err != nil && !errors.Is(err, nic.ErrNotFound) {
			t.Errorf("delete %s: %v", ops[i].Flow.ID, err)
		}
	}
}

// show prints a flow with its actions' parameters.
func show(f *flow.Flow) string {
	s := fmt.Sprintf("%+v", f.Match)
	for _, a := range f.Actions {
		s += fmt.Sprintf("\n  %s", a.Kind)
		switch {
		case a.Police != nil:
			s += fmt.Sprintf(" %+v", *a.Police)
		case a.CT != nil:
			s += fmt.Sprintf(" %+v", *a.CT)
		case a.Rewrite != nil:
			s += fmt.Sprintf(" %+v", *a.Rewrite)
		case a.Encap != nil:
			s += fmt.Sprintf(" %+v", *a.Encap)
		default:
			s += fmt.Sprintf(" port=%s ingress=%v vlan=%+v chain=%d", a.Port, a.Ingress, a.VLAN, a.Chain)
		}
	}
	return s
}

// TestKernelExtack checks that the kernel's reason reaches the error: a
// ct_state match without +trk is refused by cls_flower with extack text.
func TestKernelExtack(t *testing.T) {
	requireKernelTier(t)
	dev, _ := kernelDevice(t)
	t.Cleanup(func() { _ = dev.Close() })
	ok := &flow.Flow{ID: "ok", Port: "rep0", Priority: 2, Match: flow.Match{EthType: flow.EthTypeIPv4},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
	bad := &flow.Flow{ID: "bad", Port: "rep0", Priority: 3, Match: flow.Match{EthType: flow.EthTypeIPv4,
		CTState: flow.Masked16{Value: flow.CTNew, Mask: flow.CTNew}}, Actions: []flow.Action{{Kind: flow.ActDrop}}}
	errs := dev.Program(context.Background(), flow.Software, []nic.Op{
		{Kind: nic.OpAdd, Flow: ok}, {Kind: nic.OpAdd, Flow: bad}, {Kind: nic.OpDelete, Flow: ok}})
	require.NoError(t, errs[0])
	var re *nic.RefusedError
	require.ErrorAs(t, errs[1], &re)
	assert.ErrorIs(t, errs[1], syscall.EINVAL)
	assert.Contains(t, re.Message, "trk", "extack text of cls_flower's ct_state check")
	require.NoError(t, errs[2], "ops after a refused one in the same batch still run")
	t.Logf("kernel refusal: %v", errs[1])
}

// TestKernelPlaneHandoff promotes a software flow to hardware with the same
// match in the same filter list. cls_flower would refuse a second filter
// with that key (EEXIST), so the device replaces the software filter's
// handle with skip_sw; a veth refuses that with EOPNOTSUPP and the software
// copy must stay as it was.
func TestKernelPlaneHandoff(t *testing.T) {
	requireKernelTier(t)
	dev, _ := kernelDevice(t)
	t.Cleanup(func() { _ = dev.Close() })
	f := &flow.Flow{ID: "promote", Port: "rep0", Priority: 5, Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoUDP},
		Actions: []flow.Action{{Kind: flow.ActRedirect, Port: "rep1"}}}
	ctx := context.Background()
	require.NoError(t, dev.Program(ctx, flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: f}})[0])
	err := dev.Program(ctx, flow.Hardware, []nic.Op{{Kind: nic.OpAdd, Flow: f}})[0]
	var re *nic.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, nic.RefusedUnsupported, re.Kind, "the handoff reached the driver instead of failing on the duplicate key: %v", err)
	sw, err := dev.Flows(ctx, flow.Software)
	require.NoError(t, err)
	require.Len(t, sw, 1)
	assert.True(t, f.Equal(sw[0].Flow))
	hw, err := dev.Flows(ctx, flow.Hardware)
	require.NoError(t, err)
	assert.Empty(t, hw)
	used, _ := dev.Capacity()
	assert.Zero(t, used)
	// A flow with another match in the same list is a plain add.
	g := f.Clone()
	g.ID, g.Match.IPProto = "other", flow.ProtoTCP
	require.NoError(t, dev.Program(ctx, flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: g}})[0])
	require.NoError(t, dev.Program(ctx, flow.Software, []nic.Op{{Kind: nic.OpDelete, Flow: f}, {Kind: nic.OpDelete, Flow: g}})[0])
}
