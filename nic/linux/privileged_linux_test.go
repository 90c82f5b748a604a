package linux_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestPrivilegedVXLANAndPorts(t *testing.T) {
	requireRoot(t)
	ns, _ := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, "rep0")
	dev, err := linux.New(linux.Config{
		Uplink: "rep0", NetNS: ns,
		Ports:  []nic.Port{{Name: "gone0", Kind: nic.PortRepresentor, VF: 1, SwitchID: "s"}},
		Tunnel: &linux.TunnelConfig{},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })

	l, err := h.LinkByName("vxlan_sys_4789")
	require.NoError(t, err, "the device creates its VXLAN device")
	vx, ok := l.(*netlink.Vxlan)
	require.True(t, ok, "link type %s", l.Type())
	assert.True(t, vx.FlowBased, "external (collect metadata) mode")
	assert.Equal(t, 4789, vx.Port)

	var names []string
	for _, p := range dev.Ports() {
		names = append(names, p.Name)
		if p.Name == "vxlan_sys_4789" {
			assert.Equal(t, nic.PortTunnel, p.Kind)
			assert.Equal(t, uint16(4789), p.TunnelDstPort)
		}
		if p.Name == "rep0" {
			assert.Equal(t, nic.PortUplink, p.Kind)
			assert.True(t, p.Up)
		}
	}
	assert.Equal(t, []string{"rep0", "vxlan_sys_4789"}, names, "ports that exist, sorted; gone0 does not exist")

	// A second device on the same namespace keeps the existing VXLAN device.
	dev2, err := linux.New(linux.Config{Uplink: "rep0", NetNS: ns, Tunnel: &linux.TunnelConfig{}})
	require.NoError(t, err)
	require.NoError(t, dev2.Close())
}

func TestPrivilegedQdiscOnProgram(t *testing.T) {
	requireRoot(t)
	ns, _ := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, "rep0")
	dev, err := linux.New(linux.Config{Uplink: "rep0", NetNS: ns})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })

	f := &flow.Flow{ID: "q", Port: "rep0", Priority: 1, Match: flow.Match{EthType: flow.EthTypeIPv4},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
	// The filter itself may fail on a kernel without cls_flower; the qdisc
	// must be there either way.
	_ = dev.Program(context.Background(), flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: f}})
	l, err := h.LinkByName("rep0")
	require.NoError(t, err)
	qs, err := h.QdiscList(l)
	require.NoError(t, err)
	var kinds []string
	for _, q := range qs {
		kinds = append(kinds, q.Type())
	}
	assert.Contains(t, kinds, "clsact")

	got, err := dev.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	for _, in := range got {
		assert.Equal(t, "q", in.Flow.ID)
	}
}

func TestPrivilegedProgramErrors(t *testing.T) {
	requireRoot(t)
	ns, _ := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, "rep0")
	dev, err := linux.New(linux.Config{Uplink: "rep0", NetNS: ns})
	require.NoError(t, err)

	f := &flow.Flow{ID: "x", Port: "no-such-port", Priority: 1, Actions: []flow.Action{{Kind: flow.ActDrop}}}
	errs := dev.Program(context.Background(), flow.Software, []nic.Op{
		{Kind: nic.OpAdd, Flow: f},
		{Kind: nic.OpDelete, Flow: &flow.Flow{ID: "never", Port: "rep0"}},
		{Kind: nic.OpReplace, Flow: &flow.Flow{ID: "never", Port: "rep0"}},
	})
	require.Len(t, errs, 3)
	assert.ErrorContains(t, errs[0], "no-such-port")
	assert.ErrorIs(t, errs[1], nic.ErrNotFound)
	assert.ErrorIs(t, errs[2], nic.ErrNotFound)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs = dev.Program(ctx, flow.Software, []nic.Op{{Kind: nic.OpAdd, Flow: f}})
	assert.ErrorIs(t, errs[0], context.Canceled)

	require.NoError(t, dev.Close())
	require.NoError(t, dev.Close())
	errs = dev.Program(context.Background(), flow.Hardware, []nic.Op{{Kind: nic.OpAdd, Flow: f}})
	assert.ErrorIs(t, errs[0], nic.ErrClosed)
	_, err = dev.Flows(context.Background(), flow.Hardware)
	assert.ErrorIs(t, err, nic.ErrClosed)
}

func TestPrivilegedLinkEvents(t *testing.T) {
	requireRoot(t)
	ns, _ := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, "up0")
	rep := nic.Port{Name: "rep3", Kind: nic.PortRepresentor, VF: 3, SwitchID: "sw"}
	dev, err := linux.New(linux.Config{Uplink: "up0", NetNS: ns, Ports: []nic.Port{rep}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })

	next := func(want nic.EventKind, name string, match ...func(nic.Port) bool) nic.Event {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case ev := <-dev.Events():
				if ev.Kind == want && ev.Port.Name == name && (len(match) == 0 || match[0](ev.Port)) {
					return ev
				}
			case <-deadline:
				require.Failf(t, "no event", "no %d event for %s within 5s", want, name)
			}
		}
	}
	addVeth(t, h, "rep3")
	ev := next(nic.EventPortAdded, "rep3")
	assert.Equal(t, 3, ev.Port.VF)
	assert.Equal(t, nic.PortRepresentor, ev.Port.Kind)

	l, err := h.LinkByName("rep3")
	require.NoError(t, err)
	require.NoError(t, h.LinkSetMTU(l, 1400))
	next(nic.EventPortChanged, "rep3", func(p nic.Port) bool { return p.MTU == 1400 })

	require.NoError(t, h.LinkDel(l))
	next(nic.EventPortRemoved, "rep3")
	for _, p := range dev.Ports() {
		assert.NotEqual(t, "rep3", p.Name)
	}

	require.NoError(t, dev.Close())
	for range dev.Events() {
	}
}

func TestPrivilegedRefreshPorts(t *testing.T) {
	requireRoot(t)
	ns, _ := newNetns(t)
	h := linkHandle(t, ns)
	addVeth(t, h, "up0")
	refresh := func(context.Context) ([]nic.Port, error) {
		return []nic.Port{{Name: "up0p", Kind: nic.PortRepresentor, VF: 0, SwitchID: "sw"}}, nil
	}
	dev, err := linux.New(linux.Config{Uplink: "up0", NetNS: ns, RefreshPorts: refresh})
	require.NoError(t, err)
	t.Cleanup(func() { _ = dev.Close() })
	l, err := h.LinkByName("up0")
	require.NoError(t, err)
	require.NoError(t, h.LinkSetDown(l)) // any link change triggers a refresh
	require.Eventually(t, func() bool {
		for _, p := range dev.Ports() {
			if p.Name == "up0p" && p.Kind == nic.PortRepresentor {
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond)
}
