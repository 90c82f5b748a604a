package datapath_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/api/flowfile"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// demo is the demo tenant (hack/demo/tenant.yaml) applied through the
// real engine to an emulated ConnectX-6 Dx, with a datapath over it.
type demo struct {
	*env
	eng *offload.Engine
}

var vtep2 = netip.MustParseAddr("198.51.100.11")

func newDemo(t *testing.T, cfg emulated.Config) *demo {
	t.Helper()
	e := newEnv(t, cfg, datapath.Config{Neighbours: []datapath.Neighbour{
		{IP: remoteVTEP, MAC: remoteMAC}, {IP: vtep2, MAC: gwMAC}}})
	eng, err := offload.New(offload.Config{Devices: []nic.Device{e.dev},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: e.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = eng.Close() })
	wire, err := flowfile.ReadFile("../../../hack/demo/tenant.yaml")
	require.NoError(t, err)
	flows := make([]*flow.Flow, len(wire))
	for i, w := range wire {
		f, vs := api.FlowFromProto(w, fmt.Sprintf("flows[%d]", i))
		require.Empty(t, vs, "flows[%d]", i)
		flows[i] = f
	}
	res, err := eng.Apply(context.Background(), flows, offload.ApplyOptions{})
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, offload.OutcomeCreated, r.Outcome, "%s: %v", r.ID, r.Err)
	}
	return &demo{env: e, eng: eng}
}

func (d *demo) state(id string) offload.State {
	st, ok := d.eng.Get(id)
	require.True(d.t, ok, id)
	return st.State
}

func (d *demo) stats(id string) offload.Status {
	require.NoError(d.t, d.eng.RefreshStats(context.Background()))
	st, ok := d.eng.Get(id)
	require.True(d.t, ok, id)
	return st
}

func TestDemoTenantThroughEngine(t *testing.T) {
	d := newDemo(t, emulated.DefaultConfig())
	// Placement as the engine decided it for a ConnectX-6 Dx.
	for id, want := range map[string]offload.State{
		"antispoof-ip-vf0": offload.StateHardware, "overlay-vtep1-vf0": offload.StateHardware,
		"overlay-decap-vf0": offload.StateHardware, "fw-in-ct": offload.StateHardware,
		"fw-in-est": offload.StateHardware, "fw-in-new-http": offload.StateSoftware,
		"fw-in-invalid": offload.StateSoftware, "tap-vf1": offload.StateSoftware,
		// tap-vf1 runs first in software only: VF 1's overlapping rules
		// behind it stay in software with it.
		"antispoof-ip-vf1": offload.StateSoftware, "antispoof-ip-vf2": offload.StateHardware,
	} {
		assert.Equal(t, want, d.state(id), id)
	}

	t.Run("VF0 to the overlay is VXLAN-encapsulated", func(t *testing.T) {
		tr := d.inject(vf0, "tcp,src=10.0.0.10,dst=10.0.1.5,sport=40000,dport=80,flags=S")
		require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
		assert.False(t, tr.SoftwarePath, "fully in hardware")
		assert.Equal(t, []string{"hardware:antispoof-ip-vf0", "hardware:overlay-vtep1-vf0"}, matchedIDs(tr))
		require.Len(t, tr.Outputs, 1)
		o := tr.Outputs[0]
		assert.Equal(t, up, o.Port)
		f := o.Frame
		inner := tr.Input
		want := make([]byte, 0, 50)
		want = append(want, remoteMAC[:]...)
		want = append(want, upMAC[:]...)
		want = append(want, 0x08, 0x00)
		ipLen := 20 + 8 + 8 + len(inner)
		want = append(want, 0x45, 0x00, byte(ipLen>>8), byte(ipLen), 0, 0, 0, 0, 64, 17, 0, 0)
		want = append(want, 192, 0, 2, 1, 198, 51, 100, 10)
		sport := binary.BigEndian.Uint16(f[34:36])
		udpLen := 8 + 8 + len(inner)
		want = append(want, byte(sport>>8), byte(sport), 0x12, 0xb5, byte(udpLen>>8), byte(udpLen), 0, 0)
		want = append(want, 0x08, 0, 0, 0, 0, 0, 100, 0)
		want = append(want, inner...)
		got := append([]byte(nil), f...)
		got[24], got[25] = 0, 0 // IPv4 header checksum, verified below
		got[40], got[41] = 0, 0 // UDP checksum, verified below
		assert.Equal(t, want, got)
		assert.True(t, sport >= 32768 && sport < 60999, "source port %d", sport)
		requireChecksums(t, f)

		tr = d.inject(vf0, "udp,src=10.0.0.10,dst=10.0.2.9,dport=4000")
		assert.Equal(t, gwMAC[:], tr.Outputs[0].Frame[0:6])
		assert.Equal(t, vtep2.AsSlice(), tr.Outputs[0].Frame[30:34], "second VTEP")
	})

	t.Run("decap back to VF0", func(t *testing.T) {
		inner := "tcp,eth_src=02:00:00:00:00:01,eth_dst=02:42:0f:01:00:00,src=10.0.1.5,dst=10.0.0.10,sport=80,dport=40000,flags=SA"
		tr := d.inject(up, inner+",vni=100,tun_src=198.51.100.10,tun_dst=192.0.2.1")
		require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
		assert.False(t, tr.SoftwarePath)
		require.Len(t, tr.Outputs, 1)
		assert.Equal(t, vf0, tr.Outputs[0].Port)
		assert.Equal(t, datapath.OutputVM, tr.Outputs[0].Kind)
		assert.Equal(t, d.mustBuild(up, inner), tr.Outputs[0].Frame)
		assert.Equal(t, uint64(1), d.stats("overlay-decap-vf0").HW.Packets)
	})

	t.Run("SSH dropped", func(t *testing.T) {
		tr := d.inject(vf0, "tcp,src=10.0.0.10,dst=10.0.1.5,dport=22")
		assert.Equal(t, datapath.VerdictDropped, tr.Verdict)
		assert.Equal(t, flow.Hardware, tr.Plane)
		assert.Contains(t, tr.Reason, "acl-ssh-vf0")
	})

	t.Run("spoofed sources dropped", func(t *testing.T) {
		for _, spec := range []string{
			"tcp,eth_src=02:42:0f:01:00:09,src=10.0.0.10,dst=10.0.1.5",
			"tcp,src=10.0.0.99,dst=10.0.1.5",
			"arp,eth_src=02:42:0f:01:00:09",
		} {
			tr := d.inject(vf0, spec)
			assert.Equal(t, datapath.VerdictDropped, tr.Verdict, spec)
			assert.Contains(t, tr.Reason, "antispoof-drop-vf0", spec)
		}
		tr := d.inject(vf0, "arp,src=10.0.0.10,dst=10.0.0.1")
		assert.Equal(t, datapath.VerdictDelivered, tr.Verdict, "the VM's own ARP goes to the representor's host stack")
	})

	t.Run("a software-only rule keeps its place", func(t *testing.T) {
		// tap-vf1 (software only, prio 5) mirrors DNS from VM 1: the
		// antispoof rule behind it is not in hardware, where it would
		// take the packet first.
		st, _ := d.eng.Get("antispoof-ip-vf1")
		require.NotEmpty(t, st.Reasons)
		assert.Equal(t, offload.ReasonShadowed, st.Reasons[0].Code)
		assert.Contains(t, st.Reasons[0].Message, "tap-vf1")
		tr := d.inject("enp8s0f0v1", "udp,eth_src=02:42:0f:01:00:01,src=10.0.0.11,dst=10.0.1.53,dport=53")
		assert.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
		assert.Len(t, tr.Outputs, 2, "the mirror copy and the overlay")
		assert.Equal(t, uint64(1), d.stats("tap-vf1").SW.Packets)
	})

	t.Run("web VM firewall", func(t *testing.T) {
		steps := []struct {
			name, port, spec string
			verdict          datapath.Verdict
			software         bool
		}{
			{"SYN: connection set up in software", up, toWeb + ",flags=S", datapath.VerdictForwarded, true},
			// Until the connection is offloaded its packets miss in
			// hardware at the ct action and find the +est rules'
			// software copies.
			{"SYN-ACK: software", vf4, fromWeb + ",flags=SA", datapath.VerdictForwarded, true},
			{"ACK: software, connection offloaded", up, toWeb + ",flags=A", datapath.VerdictForwarded, true},
			{"request: hardware", up, toWeb + ",flags=PA,payload=GET", datapath.VerdictForwarded, false},
			{"response: hardware", vf4, fromWeb + ",flags=PA,payload=OK", datapath.VerdictForwarded, false},
			{"response 2: hardware", vf4, fromWeb + ",flags=PA,payload=OK", datapath.VerdictForwarded, false},
			{"unsolicited: invalid, dropped", up, "tcp,src=" + client + ",dst=10.0.0.14,sport=1,dport=80,flags=A", datapath.VerdictDropped, true},
		}
		for _, s := range steps {
			d.clock.Advance(time.Millisecond)
			tr := d.inject(s.port, s.spec)
			assert.Equal(t, s.verdict, tr.Verdict, "%s\n%s", s.name, tr)
			assert.Equal(t, s.software, tr.SoftwarePath, s.name)
		}
		in, out := d.stats("fw-in-est"), d.stats("fw-out-est")
		assert.Equal(t, uint64(1), in.HW.Packets)
		assert.Equal(t, uint64(2), out.HW.Packets)
		assert.Equal(t, uint64(1), d.stats("fw-in-new-http").SW.Packets)
		assert.Equal(t, uint64(1), d.stats("fw-in-invalid").SW.Packets)
	})
}

// With the demo's small hardware table, some flows spill to software;
// packets still find them: misses continue in software at the same chain.
func TestDemoTenantWithSpill(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.HWTableSize = 12
	d := newDemo(t, cfg)
	spilled := 0
	for _, st := range d.eng.List(offload.Filter{}) {
		if st.State == offload.StateSoftware && len(st.Reasons) > 0 && st.Reasons[0].Code == nic.ReasonCapacity {
			spilled++
		}
	}
	require.Positive(t, spilled)
	for i := range 4 {
		vf := fmt.Sprintf("enp8s0f0v%d", i)
		src := fmt.Sprintf("10.0.0.1%d", i)
		tr := d.inject(vf, "tcp,src="+src+",dst=10.0.1.5,dport=80")
		assert.Equal(t, datapath.VerdictForwarded, tr.Verdict, "%s\n%s", vf, tr)
		assert.Equal(t, up, tr.Outputs[0].Port)
		tr = d.inject(vf, "tcp,src="+src+",dst=10.0.1.5,dport=22")
		assert.Equal(t, datapath.VerdictDropped, tr.Verdict, vf)
		tr = d.inject(up, fmt.Sprintf("udp,eth_dst=02:42:0f:01:00:0%d,vni=100,tun_dst=192.0.2.1", i))
		assert.Equal(t, vf, tr.Outputs[0].Port, "%s\n%s", vf, tr)
	}
}
