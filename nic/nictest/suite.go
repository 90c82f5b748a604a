package nictest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/offload/flow"
)

// Run runs the conformance suite. newDevice returns a fresh device for each
// subtest; the suite closes it when the subtest ends.
func Run(t *testing.T, newDevice func(t *testing.T) nic.Device) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"Ports", testPorts},
		{"EmptyBatch", testEmptyBatch},
		{"SoftwareAddReplaceDelete", func(t *testing.T, e *env) { testAddReplaceDelete(t, e, flow.Software) }},
		{"HardwareAddReplaceDelete", func(t *testing.T, e *env) { testAddReplaceDelete(t, e, flow.Hardware) }},
		{"SoftwarePerOpErrors", func(t *testing.T, e *env) { testPerOpErrors(t, e, flow.Software) }},
		{"HardwarePerOpErrors", func(t *testing.T, e *env) { testPerOpErrors(t, e, flow.Hardware) }},
		{"SoftwareAcceptsValidFlows", testSoftwareAcceptsValid},
		{"SoftwareFailedReplaceKeepsCopy", testSoftwareFailedReplace},
		{"HardwareRefusal", testHardwareRefusal},
		{"HardwareCapacity", testCapacity},
		{"NoSkipFlag", testNoSkipFlag},
		{"CancelledContext", testCancelled},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, setup(t, newDevice))
		})
	}
}

// env is one fresh device and the ports the suite uses on it.
type env struct {
	dev    nic.Device
	ports  portSet
	in     string // ingress of plain flows: a representor or an uplink
	out    string // redirect target
	tunnel string // a tunnel device, "" if none
}

func setup(t *testing.T, newDevice func(t *testing.T) nic.Device) *env {
	t.Helper()
	dev := newDevice(t)
	require.NotNil(t, dev, "newDevice returned nil")
	t.Cleanup(func() { _ = dev.Close() })
	e := &env{dev: dev, ports: portSet{}}
	var reps, uplinks []string
	for _, p := range dev.Ports() {
		e.ports[p.Name] = p.Kind
		switch p.Kind {
		case nic.PortRepresentor:
			reps = append(reps, p.Name)
		case nic.PortUplink:
			uplinks = append(uplinks, p.Name)
		case nic.PortTunnel:
			if e.tunnel == "" {
				e.tunnel = p.Name
			}
		}
	}
	cands := append(reps, uplinks...)
	require.NotEmpty(t, cands, "the device has neither representors nor uplinks to program")
	e.in, e.out = cands[0], cands[0]
	if len(cands) > 1 {
		e.out = cands[1]
	}
	return e
}

// program runs ops and checks there is one error per op.
func (e *env) program(t *testing.T, plane flow.Plane, ops ...nic.Op) []error {
	t.Helper()
	errs := e.dev.Program(context.Background(), plane, ops)
	require.Len(t, errs, len(ops), "Program must return one error per op")
	return errs
}

func (e *env) mustProgram(t *testing.T, plane flow.Plane, ops ...nic.Op) {
	t.Helper()
	for i, err := range e.program(t, plane, ops...) {
		require.NoError(t, err, "op %d (%s %s)", i, ops[i].Kind, ops[i].Flow.ID)
	}
}

func (e *env) flows(t *testing.T, plane flow.Plane) map[string]nic.Installed {
	t.Helper()
	list, err := e.dev.Flows(context.Background(), plane)
	require.NoError(t, err)
	out := make(map[string]nic.Installed, len(list))
	for _, in := range list {
		require.NotNil(t, in.Flow)
		_, dup := out[in.Flow.ID]
		require.False(t, dup, "flow %s listed twice", in.Flow.ID)
		require.Equal(t, plane, in.Plane, "flow %s", in.Flow.ID)
		out[in.Flow.ID] = in
	}
	return out
}

// requireHolds checks that plane holds exactly want, each equal to its
// normalized form, with sane handles and in_hw flags.
func (e *env) requireHolds(t *testing.T, plane flow.Plane, want ...*flow.Flow) map[string]nic.Installed {
	t.Helper()
	got := e.flows(t, plane)
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	wantIDs := make([]string, 0, len(want))
	for _, f := range want {
		wantIDs = append(wantIDs, f.ID)
	}
	require.ElementsMatch(t, wantIDs, ids, "flows in the %s plane", plane)
	handles := map[uint32]string{}
	for _, f := range want {
		in := got[f.ID]
		norm := f.Clone()
		flow.Normalize(norm)
		require.True(t, norm.Equal(in.Flow), "flow %s read back differs:\nprogrammed %+v\nread back  %+v", f.ID, norm, in.Flow)
		require.NotZero(t, in.Handle, "flow %s has no handle", f.ID)
		if other, dup := handles[in.Handle]; dup {
			require.Failf(t, "duplicate handle", "flows %s and %s share handle %d", other, f.ID, in.Handle)
		}
		handles[in.Handle] = f.ID
		if plane == flow.Hardware {
			require.True(t, in.InHW, "hardware copy of %s is not in_hw", f.ID)
			require.NotZero(t, in.InHWCount, "hardware copy of %s has in_hw_count 0", f.ID)
		} else {
			require.False(t, in.InHW, "software copy of %s claims in_hw", f.ID)
		}
	}
	return got
}

// hardwareFlow returns a flow with id that the device's hardware takes,
// varied by i, or skips the test when the profile accepts none of the
// candidates or the hardware plane refuses the chosen one.
func (e *env) hardwareFlow(t *testing.T, id string, i int) *flow.Flow {
	t.Helper()
	p := e.dev.Profile()
	for _, f := range hardwareCandidates(id, e.in, e.out, i) {
		if p == nil || len(p.Check(f, e.ports.kind)) == 0 {
			return f
		}
	}
	t.Skipf("profile %s offloads none of the suite's basic flows", p.Name)
	return nil
}

// requireHardware skips the test unless the hardware plane takes a basic
// flow; it leaves the plane as it was.
func (e *env) requireHardware(t *testing.T) {
	t.Helper()
	f := e.hardwareFlow(t, "nictest-probe", 0xfffff)
	err := e.program(t, flow.Hardware, nic.Op{Kind: nic.OpAdd, Flow: f})[0]
	var re *nic.RefusedError
	if errors.As(err, &re) && re.Kind != nic.RefusedDevice {
		t.Skipf("hardware plane refuses a basic flow on %s: %v", e.in, err)
	}
	require.NoError(t, err, "hardware add of a basic flow")
	e.mustProgram(t, flow.Hardware, nic.Op{Kind: nic.OpDelete, Flow: f})
}

func testPorts(t *testing.T, e *env) {
	ports := e.dev.Ports()
	byName := map[string]nic.Port{}
	switchIDs := map[string]bool{}
	for _, p := range ports {
		_, dup := byName[p.Name]
		require.False(t, dup, "port %s listed twice", p.Name)
		byName[p.Name] = p
		require.NotEmpty(t, p.Name)
		if p.Kind == nic.PortUplink && p.SwitchID != "" {
			switchIDs[p.SwitchID] = true
		}
	}
	for _, p := range ports {
		switch p.Kind {
		case nic.PortRepresentor:
			assert.GreaterOrEqual(t, p.VF, 0, "representor %s has no VF index", p.Name)
			assert.NotEmpty(t, p.SwitchID, "representor %s has no switch ID", p.Name)
			if len(switchIDs) > 0 {
				assert.True(t, switchIDs[p.SwitchID], "representor %s switch ID %s is no uplink's", p.Name, p.SwitchID)
			}
		case nic.PortVF:
			assert.GreaterOrEqual(t, p.VF, 0, "VF %s has no VF index", p.Name)
		case nic.PortUplink, nic.PortTunnel:
			assert.Equal(t, -1, p.VF, "%s %s has a VF index", p.Kind, p.Name)
		default:
			assert.Failf(t, "unknown port kind", "port %s has kind %d", p.Name, p.Kind)
		}
		if peer, ok := byName[p.Peer]; ok {
			assert.Equal(t, p.Name, peer.Peer, "%s's peer %s does not point back", p.Name, p.Peer)
		}
	}
	if prof := e.dev.Profile(); prof != nil {
		assert.Equal(t, prof.Name, e.dev.Info().Profile)
	}
}

func testEmptyBatch(t *testing.T, e *env) {
	for _, plane := range []flow.Plane{flow.Software, flow.Hardware} {
		require.Empty(t, e.dev.Program(context.Background(), plane, nil))
		require.Empty(t, e.dev.Program(context.Background(), plane, []nic.Op{}))
	}
}

// planeFlow returns a flow plane takes.
func (e *env) planeFlow(t *testing.T, plane flow.Plane, id string, i int) *flow.Flow {
	if plane == flow.Hardware {
		return e.hardwareFlow(t, id, i)
	}
	return tcpDrop(id, e.in, i)
}

func testAddReplaceDelete(t *testing.T, e *env, plane flow.Plane) {
	if plane == flow.Hardware {
		e.requireHardware(t)
	}
	a := e.planeFlow(t, plane, "nictest-a", 1)
	b := e.planeFlow(t, plane, "nictest-b", 2)
	// Host bits must not survive: devices store normalized copies, and
	// read-back compares with the normalized flow.
	if b.Match.IPDst.IsValid() {
		b.Match.IPDst = netip.PrefixFrom(b.Match.IPDst.Addr(), 24)
	}
	e.mustProgram(t, plane, nic.Op{Kind: nic.OpAdd, Flow: a}, nic.Op{Kind: nic.OpAdd, Flow: b})
	got := e.requireHolds(t, plane, a, b)
	handleA := got[a.ID].Handle

	// Callers never modify a flow after Program (nic.Device), so devices
	// may keep the caller's pointer; nothing here mutates a or b.

	a2 := e.planeFlow(t, plane, "nictest-a", 3)
	e.mustProgram(t, plane, nic.Op{Kind: nic.OpReplace, Flow: a2})
	got = e.requireHolds(t, plane, a2, b)
	require.Equal(t, handleA, got[a2.ID].Handle, "handle must be stable across replace")

	// Delete needs only the ID and the port.
	e.mustProgram(t, plane, nic.Op{Kind: nic.OpDelete, Flow: &flow.Flow{ID: a2.ID, Port: a2.Port}})
	e.requireHolds(t, plane, b)
	e.mustProgram(t, plane, nic.Op{Kind: nic.OpDelete, Flow: b})
	e.requireHolds(t, plane)

	// An ID can be added again after its delete.
	e.mustProgram(t, plane, nic.Op{Kind: nic.OpAdd, Flow: b})
	e.requireHolds(t, plane, b)
}

func testPerOpErrors(t *testing.T, e *env, plane flow.Plane) {
	if plane == flow.Hardware {
		e.requireHardware(t)
	}
	a := e.planeFlow(t, plane, "nictest-a", 1)
	a2 := e.planeFlow(t, plane, "nictest-a", 9)
	b := e.planeFlow(t, plane, "nictest-b", 2)
	missing := e.planeFlow(t, plane, "nictest-missing", 3)
	ops := []nic.Op{
		{Kind: nic.OpAdd, Flow: a},
		{Kind: nic.OpAdd, Flow: a2},
		{Kind: nic.OpReplace, Flow: missing},
		{Kind: nic.OpDelete, Flow: missing},
		{Kind: nic.OpAdd, Flow: b},
		{Kind: nic.OpDelete, Flow: b},
		{Kind: nic.OpDelete, Flow: b},
	}
	errs := e.program(t, plane, ops...)
	require.NoError(t, errs[0], "add a")
	require.ErrorIs(t, errs[1], nic.ErrExists, "second add of a")
	require.ErrorIs(t, errs[2], nic.ErrNotFound, "replace of a missing flow")
	require.ErrorIs(t, errs[3], nic.ErrNotFound, "delete of a missing flow")
	require.NoError(t, errs[4], "add b")
	require.NoError(t, errs[5], "delete b")
	require.ErrorIs(t, errs[6], nic.ErrNotFound, "second delete of b")
	// The failed add left the first copy as it was.
	e.requireHolds(t, plane, a)
}

func testSoftwareAcceptsValid(t *testing.T, e *env) {
	fs := softwareFlows(e.in, e.out, e.tunnel)
	ops := make([]nic.Op, len(fs))
	for i, f := range fs {
		require.Empty(t, flow.Validate(f, e.ports), "suite flow %s must be valid", f.ID)
		ops[i] = nic.Op{Kind: nic.OpAdd, Flow: f}
	}
	e.mustProgram(t, flow.Software, ops...)
	e.requireHolds(t, flow.Software, fs...)
	for i := range ops {
		ops[i].Kind = nic.OpDelete
	}
	e.mustProgram(t, flow.Software, ops...)
	e.requireHolds(t, flow.Software)
}

func testSoftwareFailedReplace(t *testing.T, e *env) {
	a := tcpDrop("nictest-a", e.in, 1)
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpAdd, Flow: a})
	bad := tcpDrop("nictest-a", "nictest-no-such-port", 2)
	require.Error(t, e.program(t, flow.Software, nic.Op{Kind: nic.OpReplace, Flow: bad})[0],
		"replace onto a port that does not exist")
	e.requireHolds(t, flow.Software, a)
}

func testHardwareRefusal(t *testing.T, e *env) {
	p := e.dev.Profile()
	if p == nil {
		t.Skip("device has no capability profile to pick a refused flow from")
	}
	var refused *flow.Flow
	for _, f := range refusalCandidates("nictest-refused", e.ports, e.in, e.out) {
		if len(p.Check(f, e.ports.kind)) > 0 {
			refused = f
			break
		}
	}
	if refused == nil {
		t.Skipf("profile %s offloads every refusal candidate", p.Name)
	}
	require.Empty(t, flow.Validate(refused, e.ports), "suite flow must be valid")
	err := e.program(t, flow.Hardware, nic.Op{Kind: nic.OpAdd, Flow: refused})[0]
	var re *nic.RefusedError
	require.ErrorAs(t, err, &re, "hardware refusal of %s must be a *nic.RefusedError", refused.ID)
	require.Contains(t, []nic.RefusalKind{nic.RefusedUnsupported, nic.RefusedNoSpace, nic.RefusedDevice}, re.Kind)
	e.requireHolds(t, flow.Hardware)

	// The software plane takes what the hardware refused.
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpAdd, Flow: refused})
	e.requireHolds(t, flow.Software, refused)

	// A refused replace leaves the hardware copy as it was.
	e.requireHardware(t)
	ok := e.hardwareFlow(t, refused.ID, 1)
	e.mustProgram(t, flow.Hardware, nic.Op{Kind: nic.OpAdd, Flow: ok})
	err = e.program(t, flow.Hardware, nic.Op{Kind: nic.OpReplace, Flow: refused})[0]
	require.ErrorAs(t, err, &re)
	e.requireHolds(t, flow.Hardware, ok)
}

func testCapacity(t *testing.T, e *env) {
	e.requireHardware(t)
	used0, total := e.dev.Capacity()
	require.GreaterOrEqual(t, used0, 0)
	require.GreaterOrEqual(t, total, 0)
	const n = 3
	if total > 0 && total-used0 < n {
		t.Skipf("hardware table has %d of %d entries free, the test needs %d", total-used0, total, n)
	}
	ops := make([]nic.Op, n)
	for i := range ops {
		ops[i] = nic.Op{Kind: nic.OpAdd, Flow: e.hardwareFlow(t, idf("cap", i), i+1)}
	}
	e.mustProgram(t, flow.Hardware, ops...)
	used, total2 := e.dev.Capacity()
	require.Equal(t, used0+n, used, "used entries after %d adds", n)
	require.Equal(t, total, total2, "total must not change with adds")
	if total > 0 {
		require.LessOrEqual(t, used, total)
	}
	// Software flows take no hardware entries.
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpAdd, Flow: tcpDrop("nictest-sw", e.in, 1)})
	used, _ = e.dev.Capacity()
	require.Equal(t, used0+n, used, "software adds must not use hardware entries")
	// A replace takes no extra entry.
	ops[0].Kind, ops[0].Flow = nic.OpReplace, e.hardwareFlow(t, idf("cap", 0), 10)
	e.mustProgram(t, flow.Hardware, ops[0])
	used, _ = e.dev.Capacity()
	require.Equal(t, used0+n, used, "used entries after a replace")
	for i := range ops {
		ops[i].Kind = nic.OpDelete
	}
	e.mustProgram(t, flow.Hardware, ops...)
	used, _ = e.dev.Capacity()
	require.Equal(t, used0, used, "used entries after deleting all")
}

func testCancelled(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, plane := range []flow.Plane{flow.Software, flow.Hardware} {
		ops := []nic.Op{
			{Kind: nic.OpAdd, Flow: tcpDrop("nictest-a", e.in, 1)},
			{Kind: nic.OpAdd, Flow: tcpDrop("nictest-b", e.in, 2)},
		}
		errs := e.dev.Program(ctx, plane, ops)
		require.Len(t, errs, len(ops))
		for i, err := range errs {
			require.ErrorIs(t, err, context.Canceled, "%s op %d with a cancelled context", plane, i)
		}
		e.requireHolds(t, plane)
	}
}

func testConcurrent(t *testing.T, e *env) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				f := tcpDrop(idf(fmt.Sprintf("w%d", w), i), e.in, w*each+i)
				errs := e.dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: f}})
				assert.NoError(t, errs[0])
				if i%10 == 0 {
					_, err := e.dev.Flows(context.Background(), flow.Software)
					assert.NoError(t, err)
					e.dev.Capacity()
					e.dev.Ports()
				}
			}
		})
	}
	wg.Wait()
	got := e.flows(t, flow.Software)
	require.Len(t, got, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				f := &flow.Flow{ID: idf(fmt.Sprintf("w%d", w), i), Port: e.in}
				errs := e.dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpDelete, Flow: f}})
				assert.NoError(t, errs[0])
			}
		})
	}
	wg.Wait()
	e.requireHolds(t, flow.Software)
}

func testClose(t *testing.T, e *env) {
	e.mustProgram(t, flow.Software, nic.Op{Kind: nic.OpAdd, Flow: tcpDrop("nictest-a", e.in, 1)})
	events := e.dev.Events()
	require.NoError(t, e.dev.Close())
	require.NoError(t, e.dev.Close(), "a second Close must not fail")

	for _, plane := range []flow.Plane{flow.Software, flow.Hardware} {
		ops := []nic.Op{
			{Kind: nic.OpAdd, Flow: tcpDrop("nictest-b", e.in, 2)},
			{Kind: nic.OpDelete, Flow: tcpDrop("nictest-a", e.in, 1)},
		}
		errs := e.dev.Program(context.Background(), plane, ops)
		require.Len(t, errs, len(ops))
		for i, err := range errs {
			require.ErrorIs(t, err, nic.ErrClosed, "%s op %d after Close", plane, i)
		}
		_, err := e.dev.Flows(context.Background(), plane)
		require.ErrorIs(t, err, nic.ErrClosed, "Flows after Close")
	}

	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			require.Fail(t, "Events is not closed 5s after Close")
		}
	}
}
