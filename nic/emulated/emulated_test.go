package emulated_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/nictest"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestConformance(t *testing.T) {
	reg := nic.NewRegistry()
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) {
			nictest.Run(t, func(t *testing.T) nic.Device {
				cfg := emulated.DefaultConfig()
				cfg.Profile = name
				d, err := emulated.New(cfg, reg)
				require.NoError(t, err)
				return d
			})
		})
	}
	t.Run("small-table-two-ports-no-tunnel", func(t *testing.T) {
		nictest.Run(t, func(t *testing.T) nic.Device {
			cfg := emulated.DemoConfig()
			cfg.Ports, cfg.Tunnels = 2, nil
			d, err := emulated.New(cfg, reg)
			require.NoError(t, err)
			return d
		})
	})
}

// newDevice builds a device from cfg and closes it when the test ends.
func newDevice(t *testing.T, cfg emulated.Config) *emulated.Device {
	t.Helper()
	d, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// drop is an IPv4 TCP rule to 10.0.x.y/32 on port, action drop; every
// profile offloads it.
func drop(id, port string, i int) *flow.Flow {
	return &flow.Flow{ID: id, Port: port, Priority: 1,
		Match: flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
			IPDst:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			DstPort: flow.Masked16{Value: 80, Mask: 0xffff}},
		Actions: []flow.Action{{Kind: flow.ActDrop}}}
}

func adds(fs ...*flow.Flow) []nic.Op {
	ops := make([]nic.Op, len(fs))
	for i, f := range fs {
		ops[i] = nic.Op{Kind: nic.OpAdd, Flow: f}
	}
	return ops
}

func program(t *testing.T, d nic.Device, plane flow.Plane, ops ...nic.Op) []error {
	t.Helper()
	errs := d.Program(context.Background(), plane, ops)
	require.Len(t, errs, len(ops))
	return errs
}

func mustProgram(t *testing.T, d nic.Device, plane flow.Plane, ops ...nic.Op) {
	t.Helper()
	for i, err := range program(t, d, plane, ops...) {
		require.NoError(t, err, "op %d", i)
	}
}

func ids(t *testing.T, d nic.Device, plane flow.Plane) []string {
	t.Helper()
	fs, err := d.Flows(context.Background(), plane)
	require.NoError(t, err)
	out := make([]string, len(fs))
	for i, in := range fs {
		out[i] = in.Flow.ID
	}
	return out
}

// nextEvent waits for one event.
func nextEvent(t *testing.T, d nic.Device) nic.Event {
	t.Helper()
	select {
	case ev, ok := <-d.Events():
		require.True(t, ok, "events closed")
		return ev
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no event within 5s")
	}
	return nic.Event{}
}

// noEvent checks that no event arrives for a short while.
func noEvent(t *testing.T, d nic.Device) {
	t.Helper()
	select {
	case ev := <-d.Events():
		require.Failf(t, "unexpected event", "%+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

// eventLog renders events as "added pf0vf0" lines.
func eventLog(t *testing.T, d nic.Device, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		ev := nextEvent(t, d)
		switch ev.Kind {
		case nic.EventPortAdded:
			out[i] = "added " + ev.Port.Name
		case nic.EventPortRemoved:
			out[i] = "removed " + ev.Port.Name
		case nic.EventPortChanged:
			out[i] = "changed " + ev.Port.Name
		case nic.EventCapacityFreed:
			out[i] = "capacity-freed"
		}
	}
	return out
}

func TestPortsAndInfo(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.Ports, cfg.NumVFs = 2, 3
	d := newDevice(t, cfg)

	var got []string
	for _, p := range d.Ports() {
		got = append(got, fmt.Sprintf("%s %s phys=%s pf=%d vf=%d pci=%s mac=%x peer=%s sw=%s up=%t port=%d",
			p.Name, p.Kind, p.PhysPortName, p.PF, p.VF, p.PCIAddress, p.MAC, p.Peer, p.SwitchID, p.Up, p.TunnelDstPort))
	}
	sw := "00420ffffe000000"
	require.Equal(t, []string{
		"p0 uplink phys=p0 pf=0 vf=-1 pci=0000:08:00.0 mac=02420f000000 peer= sw=" + sw + " up=true port=0",
		"p1 uplink phys=p1 pf=1 vf=-1 pci=0000:08:00.1 mac=02420f000001 peer= sw=" + sw + " up=true port=0",
		"pf0vf0 representor phys=pf0vf0 pf=0 vf=0 pci=0000:08:00.2 mac=02420f020000 peer=enp8s0f0v0 sw=" + sw + " up=true port=0",
		"pf0vf1 representor phys=pf0vf1 pf=0 vf=1 pci=0000:08:00.3 mac=02420f020001 peer=enp8s0f0v1 sw=" + sw + " up=true port=0",
		"pf0vf2 representor phys=pf0vf2 pf=0 vf=2 pci=0000:08:00.4 mac=02420f020002 peer=enp8s0f0v2 sw=" + sw + " up=true port=0",
		"enp8s0f0v0 vf phys= pf=0 vf=0 pci=0000:08:00.2 mac=02420f010000 peer=pf0vf0 sw= up=true port=0",
		"enp8s0f0v1 vf phys= pf=0 vf=1 pci=0000:08:00.3 mac=02420f010001 peer=pf0vf1 sw= up=true port=0",
		"enp8s0f0v2 vf phys= pf=0 vf=2 pci=0000:08:00.4 mac=02420f010002 peer=pf0vf2 sw= up=true port=0",
		"vxlan0 tunnel phys= pf=-1 vf=-1 pci= mac=02420f030000 peer= sw= up=true port=4789",
	}, got)

	info := d.Info()
	assert.Equal(t, nic.Info{Name: "p0", Driver: "mlx5_core", Model: d.Profile().Model, Profile: "mlx5-cx6dx",
		PCIAddress: "0000:08:00.0", FirmwareVersion: info.FirmwareVersion, SwitchID: sw, Emulated: true,
		EswitchMode: nic.EswitchSwitchdev, NumVFs: 3, TotalVFs: 64}, info)
	assert.NotEmpty(t, info.FirmwareVersion)

	// VFs run past function 7 into the next device number.
	cfg = emulated.DefaultConfig()
	cfg.NumVFs, cfg.PCIAddress, cfg.FirmwareVersion = 10, "0000:3b:00.0", "1.2.3"
	d = newDevice(t, cfg)
	vf, err := d.VF(9)
	require.NoError(t, err)
	assert.Equal(t, emulated.VF{Index: 9, PCIAddress: "0000:3b:01.2", Netdev: "enp59s0f0v9", Representor: "pf0vf9",
		Config: vf.Config}, vf)
	assert.Equal(t, "1.2.3", d.Info().FirmwareVersion)
}

func TestTableFullThenDeleteFreesCapacity(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.HWTableSize = 4
	d := newDevice(t, cfg)

	var fs []*flow.Flow
	for i := range 5 {
		fs = append(fs, drop(fmt.Sprintf("f%d", i), "pf0vf0", i))
	}
	errs := program(t, d, flow.Hardware, adds(fs...)...)
	for i := range 4 {
		require.NoError(t, errs[i])
	}
	var re *nic.RefusedError
	require.ErrorAs(t, errs[4], &re)
	assert.Equal(t, nic.RefusedNoSpace, re.Kind)
	assert.Equal(t, syscall.ENOSPC, re.Errno)
	assert.Equal(t, "hardware flow table full (4 entries)", re.Message)
	assert.ErrorIs(t, errs[4], syscall.ENOSPC)
	used, total := d.Capacity()
	assert.Equal(t, [2]int{4, 4}, [2]int{used, total})
	noEvent(t, d)

	// The software plane has no limit.
	mustProgram(t, d, flow.Software, adds(fs...)...)

	// A failed delete frees nothing and says nothing.
	require.ErrorIs(t, program(t, d, flow.Hardware, nic.Op{Kind: nic.OpDelete, Flow: drop("nope", "pf0vf0", 9)})[0], nic.ErrNotFound)
	noEvent(t, d)

	// Two deletes in one call give one event.
	mustProgram(t, d, flow.Hardware, nic.Op{Kind: nic.OpDelete, Flow: fs[0]}, nic.Op{Kind: nic.OpDelete, Flow: fs[1]})
	assert.Equal(t, nic.Event{Kind: nic.EventCapacityFreed}, nextEvent(t, d))
	noEvent(t, d)
	mustProgram(t, d, flow.Hardware, adds(fs[4])...)
	used, _ = d.Capacity()
	assert.Equal(t, 3, used)
}

func TestCapacityEventsCoalesceAndNeverBlock(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.HWTableSize = 1
	d := newDevice(t, cfg)
	// Nobody reads events while thousands of deletes free capacity.
	for i := range 5000 {
		f := drop(fmt.Sprintf("f%d", i), "pf0vf0", i)
		mustProgram(t, d, flow.Hardware, nic.Op{Kind: nic.OpAdd, Flow: f})
		mustProgram(t, d, flow.Hardware, nic.Op{Kind: nic.OpDelete, Flow: f})
	}
	// The backlog is what the channel buffers (16) plus one waiting, not 5000.
	n := 0
	for {
		select {
		case ev := <-d.Events():
			require.Equal(t, nic.EventCapacityFreed, ev.Kind)
			n++
			continue
		case <-time.After(50 * time.Millisecond):
		}
		break
	}
	assert.GreaterOrEqual(t, n, 1)
	assert.LessOrEqual(t, n, 17)
}

func TestSetTableSize(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.HWTableSize = 4
	d := newDevice(t, cfg)
	mustProgram(t, d, flow.Hardware, adds(drop("a", "p0", 1), drop("b", "p0", 2), drop("c", "p0", 3))...)

	require.NoError(t, d.SetTableSize(2))
	used, total := d.Capacity()
	assert.Equal(t, [2]int{3, 2}, [2]int{used, total}, "shrinking keeps installed flows")
	var re *nic.RefusedError
	require.ErrorAs(t, program(t, d, flow.Hardware, adds(drop("d", "p0", 4))...)[0], &re)
	assert.Equal(t, nic.RefusedNoSpace, re.Kind)
	noEvent(t, d)

	require.NoError(t, d.SetTableSize(10))
	assert.Equal(t, nic.Event{Kind: nic.EventCapacityFreed}, nextEvent(t, d))
	mustProgram(t, d, flow.Hardware, adds(drop("d", "p0", 4))...)

	require.NoError(t, d.SetTableSize(0))
	_, total = d.Capacity()
	assert.Equal(t, 4, total, "0 restores the configured size")
	assert.Equal(t, 4, d.Profile().HWTableSize)
	require.Error(t, d.SetTableSize(-1))
}

func TestHardwareRefusesWhatTheProfileRefuses(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	f := drop("ct-new", "pf0vf0", 1)
	f.Match.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew}
	reasons := d.Profile().Check(f, nil)
	require.NotEmpty(t, reasons)

	err := program(t, d, flow.Hardware, adds(f)...)[0]
	var re *nic.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, &nic.RefusedError{Kind: nic.RefusedUnsupported, Errno: syscall.EOPNOTSUPP, Message: reasons[0].Message}, re)
	assert.Contains(t, err.Error(), `hardware add flow "ct-new"`)

	// A VF netdev is not an eswitch port: the profile sees port kinds.
	err = program(t, d, flow.Hardware, adds(drop("on-vf", "enp8s0f0v0", 1))...)[0]
	require.ErrorAs(t, err, &re)
	assert.Equal(t, nic.RefusedUnsupported, re.Kind)
	assert.Contains(t, re.Message, "enp8s0f0v0")

	mustProgram(t, d, flow.Software, adds(f, drop("on-vf", "enp8s0f0v0", 1))...)
}

func TestUnknownPortAndBadFlows(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
		noPrio := drop("no-prio", "p0", 1)
		noPrio.Priority = 0
		errs := program(t, d, plane,
			nic.Op{Kind: nic.OpAdd, Flow: drop("x", "pf0vf99", 1)},
			nic.Op{Kind: nic.OpAdd, Flow: nil},
			nic.Op{Kind: nic.OpAdd, Flow: drop("", "p0", 1)},
			nic.Op{Kind: nic.OpAdd, Flow: noPrio},
			nic.Op{Kind: 0, Flow: drop("y", "p0", 1)},
		)
		var re *nic.RefusedError
		require.ErrorAs(t, errs[0], &re, plane.String())
		assert.Equal(t, nic.RefusedDevice, re.Kind)
		assert.Equal(t, `no such port "pf0vf99"`, re.Message)
		require.Error(t, errs[1])
		require.ErrorAs(t, errs[2], &re)
		assert.Equal(t, syscall.EINVAL, re.Errno)
		require.ErrorAs(t, errs[3], &re)
		assert.Equal(t, syscall.EINVAL, re.Errno)
		require.Error(t, errs[4])
		assert.Empty(t, ids(t, d, plane))
	}
	errs := d.Program(context.Background(), flow.Plane(7), adds(drop("a", "p0", 1)))
	require.Error(t, errs[0])
	_, err := d.Flows(context.Background(), flow.Plane(7))
	require.Error(t, err)
}

func TestFaultInjection(t *testing.T) {
	chain1 := uint32(1)
	tests := []struct {
		name    string
		fault   emulated.Fault
		refused []*flow.Flow
		taken   []*flow.Flow
	}{
		{
			name:    "by port",
			fault:   emulated.Fault{Name: "f", Match: emulated.FaultMatch{Port: "pf0vf3"}, Errno: syscall.EIO, Message: "firmware command failed"},
			refused: []*flow.Flow{drop("a", "pf0vf3", 1)},
			taken:   []*flow.Flow{drop("b", "pf0vf2", 1)},
		},
		{
			name:    "by id prefix",
			fault:   emulated.Fault{Name: "f", Match: emulated.FaultMatch{IDPrefix: "tenant-a/"}, Errno: syscall.ENOMEM, Message: "out of steering memory"},
			refused: []*flow.Flow{drop("tenant-a/1", "pf0vf0", 1), drop("tenant-a/2", "pf0vf1", 2)},
			taken:   []*flow.Flow{drop("tenant-b/1", "pf0vf0", 3)},
		},
		{
			name:  "by chain",
			fault: emulated.Fault{Name: "f", Match: emulated.FaultMatch{Chain: &chain1}, Errno: syscall.EOPNOTSUPP, Message: "chain 1 is busy"},
			refused: []*flow.Flow{func() *flow.Flow {
				f := drop("c1", "pf0vf0", 1)
				f.Chain = 1
				return f
			}()},
			taken: []*flow.Flow{drop("c0", "pf0vf0", 1)},
		},
		{
			name:  "by action and port together",
			fault: emulated.Fault{Name: "f", Match: emulated.FaultMatch{Port: "pf0vf1", ActionKind: flow.ActRedirect}, Errno: syscall.EOPNOTSUPP, Message: "mirred to this port is not supported"},
			refused: []*flow.Flow{func() *flow.Flow {
				f := drop("r1", "pf0vf1", 1)
				f.Actions = []flow.Action{{Kind: flow.ActRedirect, Port: "p0"}}
				return f
			}()},
			taken: []*flow.Flow{drop("d1", "pf0vf1", 2), func() *flow.Flow {
				f := drop("r0", "pf0vf0", 1)
				f.Actions = []flow.Action{{Kind: flow.ActRedirect, Port: "p0"}}
				return f
			}()},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, emulated.DefaultConfig())
			require.NoError(t, d.AddFault(tc.fault))
			for _, f := range tc.refused {
				err := program(t, d, flow.Hardware, adds(f)...)[0]
				var re *nic.RefusedError
				require.ErrorAs(t, err, &re, f.ID)
				assert.Equal(t, nic.Refusal(tc.fault.Errno, tc.fault.Message), re)
				assert.ErrorIs(t, err, tc.fault.Errno)
			}
			mustProgram(t, d, flow.Hardware, adds(tc.taken...)...)
			// A hardware fault leaves the software plane alone.
			mustProgram(t, d, flow.Software, adds(tc.refused...)...)
			require.NoError(t, d.RemoveFault(tc.fault.Name))
			mustProgram(t, d, flow.Hardware, adds(tc.refused...)...)
		})
	}
}

func TestFaultCountReplaceAndSoftware(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	require.NoError(t, d.AddFault(emulated.Fault{Name: "twice", Errno: syscall.EBUSY, Count: 2}))
	require.ErrorIs(t, d.AddFault(emulated.Fault{Name: "twice", Errno: syscall.EIO}), nic.ErrExists)
	require.Error(t, d.AddFault(emulated.Fault{Name: "no-errno"}))
	require.Error(t, d.AddFault(emulated.Fault{Errno: syscall.EIO}))
	assert.Equal(t, []emulated.Fault{{Name: "twice", Errno: syscall.EBUSY, Count: 2}}, d.Faults())

	errs := program(t, d, flow.Hardware, adds(drop("a", "p0", 1), drop("b", "p0", 2), drop("c", "p0", 3))...)
	var re *nic.RefusedError
	require.ErrorAs(t, errs[0], &re)
	assert.Equal(t, nic.RefusedDevice, re.Kind)
	require.ErrorIs(t, errs[1], syscall.EBUSY)
	require.NoError(t, errs[2], "the fault is used up")
	assert.Empty(t, d.Faults())
	require.ErrorIs(t, d.RemoveFault("twice"), nic.ErrNotFound)

	// Replace is refused too and keeps the installed copy.
	require.NoError(t, d.AddFault(emulated.Fault{Name: "sw", Plane: flow.Software, Match: emulated.FaultMatch{IDPrefix: "s"}, Errno: syscall.ENOBUFS}))
	mustProgram(t, d, flow.Hardware, nic.Op{Kind: nic.OpDelete, Flow: drop("c", "p0", 3)})
	mustProgram(t, d, flow.Hardware, adds(drop("s1", "p0", 1))...)
	require.ErrorIs(t, program(t, d, flow.Software, adds(drop("s1", "p0", 1))...)[0], syscall.ENOBUFS)
	require.NoError(t, d.RemoveFault("sw"))
	mustProgram(t, d, flow.Software, adds(drop("s1", "p0", 1))...)
	require.NoError(t, d.AddFault(emulated.Fault{Name: "sw", Plane: flow.Software, Errno: syscall.ENOBUFS}))
	require.ErrorIs(t, program(t, d, flow.Software, nic.Op{Kind: nic.OpReplace, Flow: drop("s1", "p0", 5)})[0], syscall.ENOBUFS)
	fs, err := d.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	assert.True(t, fs[0].Flow.Equal(drop("s1", "p0", 1)))
	// Deletes pass faults.
	mustProgram(t, d, flow.Software, nic.Op{Kind: nic.OpDelete, Flow: drop("s1", "p0", 5)})
}

func TestLatency(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	d.SetLatency(80 * time.Millisecond)
	start := time.Now()
	mustProgram(t, d, flow.Hardware, adds(drop("a", "p0", 1))...)
	assert.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond)

	start = time.Now()
	mustProgram(t, d, flow.Software, adds(drop("a", "p0", 1))...)
	assert.Less(t, time.Since(start), 50*time.Millisecond, "software has no latency")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	errs := d.Program(ctx, flow.Hardware, adds(drop("b", "p0", 2)))
	require.ErrorIs(t, errs[0], context.DeadlineExceeded)
	assert.Equal(t, []string{"a"}, ids(t, d, flow.Hardware))

	d.SetLatency(0)
	start = time.Now()
	mustProgram(t, d, flow.Hardware, adds(drop("b", "p0", 2))...)
	assert.Less(t, time.Since(start), 50*time.Millisecond)
}

func TestPaceInserts(t *testing.T) {
	reg := nic.NewRegistry()
	p := nic.Generic()
	p.Name, p.InsertRate = "paced", 2000
	require.NoError(t, reg.Register(p))
	cfg := emulated.DefaultConfig()
	cfg.Profile, cfg.PaceInserts = "paced", true
	d, err := emulated.New(cfg, reg)
	require.NoError(t, err)
	defer d.Close()

	var fs []*flow.Flow
	for i := range 300 {
		fs = append(fs, drop(fmt.Sprintf("f%d", i), "p0", i))
	}
	start := time.Now()
	mustProgram(t, d, flow.Hardware, adds(fs[:150]...)...)
	mustProgram(t, d, flow.Hardware, adds(fs[150:]...)...)
	assert.GreaterOrEqual(t, time.Since(start), 140*time.Millisecond, "300 inserts at 2000/s")

	start = time.Now()
	mustProgram(t, d, flow.Software, adds(fs...)...)
	assert.Less(t, time.Since(start), 50*time.Millisecond, "the software plane is not paced")
}

func TestLegacyMode(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.NumVFs = 2
	d := newDevice(t, cfg)
	ctx := context.Background()
	mustProgram(t, d, flow.Hardware, adds(drop("hw-rep", "pf0vf0", 1), drop("hw-up", "p0", 2))...)
	mustProgram(t, d, flow.Software, adds(drop("sw-rep", "pf0vf1", 1), drop("sw-up", "p0", 2))...)

	require.NoError(t, d.SetEswitchMode(ctx, nic.EswitchLegacy))
	assert.Equal(t, []string{"removed pf0vf0", "changed enp8s0f0v0", "removed pf0vf1", "changed enp8s0f0v1"}, eventLog(t, d, 4))
	noEvent(t, d)
	assert.Equal(t, nic.EswitchLegacy, d.Info().EswitchMode)
	for _, p := range d.Ports() {
		assert.NotEqual(t, nic.PortRepresentor, p.Kind, p.Name)
		if p.Kind == nic.PortVF {
			assert.Empty(t, p.Peer)
		}
	}
	vf, err := d.VF(0)
	require.NoError(t, err)
	assert.Empty(t, vf.Representor)

	// The eswitch FDB is gone with its flows; the software flows on the
	// representors went with their netdevs.
	assert.Empty(t, ids(t, d, flow.Hardware))
	assert.Equal(t, []string{"sw-up"}, ids(t, d, flow.Software))
	for _, op := range []nic.Op{{Kind: nic.OpAdd, Flow: drop("x", "p0", 3)}, {Kind: nic.OpDelete, Flow: drop("hw-up", "p0", 2)}} {
		err := program(t, d, flow.Hardware, op)[0]
		var re *nic.RefusedError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, nic.RefusedUnsupported, re.Kind)
		assert.Equal(t, "eswitch is in legacy mode", re.Message)
	}
	mustProgram(t, d, flow.Software, adds(drop("sw-up2", "p0", 3))...)
	require.NoError(t, d.SetEswitchMode(ctx, nic.EswitchLegacy), "same mode is a no-op")
	noEvent(t, d)

	require.NoError(t, d.SetEswitchMode(ctx, nic.EswitchSwitchdev))
	assert.Equal(t, []string{"added pf0vf0", "changed enp8s0f0v0", "added pf0vf1", "changed enp8s0f0v1", "capacity-freed"}, eventLog(t, d, 5))
	p, ok := d.Port("pf0vf1")
	require.True(t, ok)
	assert.Equal(t, "enp8s0f0v1", p.Peer)
	mustProgram(t, d, flow.Hardware, adds(drop("hw-rep", "pf0vf0", 1))...)
}

func TestNumVFs(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.NumVFs, cfg.TotalVFs = 2, 4
	d := newDevice(t, cfg)
	mustProgram(t, d, flow.Hardware, adds(drop("hw", "pf0vf1", 1), drop("up", "p0", 1))...)
	mustProgram(t, d, flow.Software, adds(drop("sw", "enp8s0f0v0", 1))...)

	require.ErrorIs(t, d.SetNumVFs(3), syscall.EBUSY, "non-zero to non-zero")
	require.ErrorIs(t, d.SetNumVFs(5), syscall.ERANGE)
	require.ErrorIs(t, d.SetNumVFs(-1), syscall.ERANGE)
	require.NoError(t, d.SetNumVFs(2), "same count is a no-op")
	noEvent(t, d)

	require.NoError(t, d.SetNumVFs(0))
	assert.Equal(t, []string{"capacity-freed", "removed enp8s0f0v0", "removed pf0vf0", "removed enp8s0f0v1", "removed pf0vf1"}, eventLog(t, d, 5))
	assert.Equal(t, []string{"up"}, ids(t, d, flow.Hardware))
	assert.Empty(t, ids(t, d, flow.Software))
	assert.Equal(t, 0, d.Info().NumVFs)
	_, err := d.VF(0)
	require.ErrorIs(t, err, nic.ErrNotFound)

	require.NoError(t, d.SetNumVFs(4))
	log := eventLog(t, d, 8)
	assert.Equal(t, []string{"added pf0vf0", "added enp8s0f0v0", "added pf0vf1", "added enp8s0f0v1"}, log[:4])
	assert.Len(t, d.VFs(), 4)
	assert.Equal(t, 4, d.NumVFs())

	// In legacy mode new VFs come without representors.
	require.NoError(t, d.SetNumVFs(0))
	eventLog(t, d, 8)
	require.NoError(t, d.SetEswitchMode(context.Background(), nic.EswitchLegacy))
	require.NoError(t, d.SetNumVFs(1))
	assert.Equal(t, []string{"added enp8s0f0v0"}, eventLog(t, d, 1))
}

func TestSetVF(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	before, err := d.VF(3)
	require.NoError(t, err)
	assert.Equal(t, emulated.VFConfig{MAC: [6]byte{0x02, 0x42, 0x0f, 0x01, 0x00, 0x03}}, before.Config)

	mac := [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	want := emulated.VFConfig{MAC: mac, VLAN: 100, QoS: 3, Trust: true, SpoofChk: true,
		LinkState: emulated.VFLinkDisable, MinTxRate: 100, MaxTxRate: 1000}
	require.NoError(t, d.SetVF(3, want))
	ev := nextEvent(t, d)
	assert.Equal(t, nic.EventPortChanged, ev.Kind)
	assert.Equal(t, "enp8s0f0v3", ev.Port.Name)
	assert.Equal(t, mac, ev.Port.MAC)
	assert.False(t, ev.Port.Up, "link state disable")
	got, err := d.VF(3)
	require.NoError(t, err)
	assert.Equal(t, want, got.Config)
	p, _ := d.Port("enp8s0f0v3")
	assert.Equal(t, ev.Port, p)

	require.NoError(t, d.SetVF(3, want), "same config")
	noEvent(t, d)
	// A VLAN change alone still reports the VF.
	want.VLAN = 200
	require.NoError(t, d.SetVF(3, want))
	assert.Equal(t, "enp8s0f0v3", nextEvent(t, d).Port.Name)

	// The zero MAC restores the default.
	require.NoError(t, d.SetVF(3, emulated.VFConfig{}))
	assert.Equal(t, before.Config.MAC, nextEvent(t, d).Port.MAC)

	bad := []struct {
		name string
		cfg  emulated.VFConfig
	}{
		{"multicast mac", emulated.VFConfig{MAC: [6]byte{0x01, 0, 0x5e, 0, 0, 1}}},
		{"vlan", emulated.VFConfig{VLAN: 4096}},
		{"qos", emulated.VFConfig{VLAN: 1, QoS: 8}},
		{"qos without vlan", emulated.VFConfig{QoS: 1}},
		{"rates", emulated.VFConfig{MinTxRate: 10, MaxTxRate: 5}},
		{"link state", emulated.VFConfig{LinkState: 9}},
	}
	for _, tc := range bad {
		require.ErrorIs(t, d.SetVF(0, tc.cfg), syscall.EINVAL, tc.name)
	}
	require.ErrorIs(t, d.SetVF(8, emulated.VFConfig{}), nic.ErrNotFound)
	_, err = d.VF(-1)
	require.ErrorIs(t, err, nic.ErrNotFound)
	noEvent(t, d)

	st, ok := emulated.ParseVFLinkState("enable")
	require.True(t, ok)
	assert.Equal(t, "enable", st.String())
}

func TestCounters(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	f := drop("a", "pf0vf0", 1)
	mustProgram(t, d, flow.Hardware, adds(f)...)
	mustProgram(t, d, flow.Software, adds(f)...)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	require.NoError(t, d.AddCounters(flow.Hardware, "a", 10, 10*100, t1))
	require.NoError(t, d.AddCounters(flow.Hardware, "a", 1, 10, t1.Add(-time.Second)))
	require.NoError(t, d.AddCounters(flow.Software, "a", 10, 10*100, t1))
	require.ErrorIs(t, d.AddCounters(flow.Software, "b", 1, 1, t1), nic.ErrNotFound)

	hw, err := d.Flows(context.Background(), flow.Hardware)
	require.NoError(t, err)
	assert.Equal(t, nic.Counters{Packets: 11, Bytes: 10 * (100 - emulated.L2HeaderLen), LastUsed: t1}, hw[0].Counters,
		"hardware bytes leave out the L2 header; a frame shorter than it counts 0; last used never goes back")
	sw, err := d.Flows(context.Background(), flow.Software)
	require.NoError(t, err)
	assert.Equal(t, nic.Counters{Packets: 10, Bytes: 1000, LastUsed: t1}, sw[0].Counters)

	// Replace keeps the counters.
	mustProgram(t, d, flow.Hardware, nic.Op{Kind: nic.OpReplace, Flow: drop("a", "pf0vf0", 2)})
	hw, err = d.Flows(context.Background(), flow.Hardware)
	require.NoError(t, err)
	assert.Equal(t, uint64(11), hw[0].Counters.Packets)
}

func TestConcurrentProgram(t *testing.T) {
	cfg := emulated.DefaultConfig()
	cfg.HWTableSize = 1000
	d := newDevice(t, cfg)
	const workers, batches, batch = 8, 10, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				var fs []*flow.Flow
				for i := range batch {
					n := (w*batches+b)*batch + i
					fs = append(fs, drop(fmt.Sprintf("w%d-%d", w, n), fmt.Sprintf("pf0vf%d", w), n))
				}
				for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
					for i, err := range d.Program(context.Background(), plane, adds(fs...)) {
						if plane == flow.Hardware && errors.Is(err, syscall.ENOSPC) {
							mu.Lock()
							refused++
							mu.Unlock()
							continue
						}
						assert.NoError(t, err, fs[i].ID)
					}
				}
				_ = d.AddCounters(flow.Software, fs[0].ID, 1, 100, time.Now())
				_, _ = d.Flows(context.Background(), flow.Hardware)
				d.Capacity()
				if w == 0 && b == 5 {
					_ = d.SetTableSize(900)
					_ = d.SetVF(0, emulated.VFConfig{VLAN: 5})
				}
			}
		})
	}
	// Drain events meanwhile, as the engine would.
	go func() {
		for range d.Events() {
		}
	}()
	wg.Wait()
	used, total := d.Capacity()
	assert.Equal(t, 900, total)
	assert.Equal(t, workers*batches*batch, used+refused)
	assert.Len(t, ids(t, d, flow.Software), workers*batches*batch)
}

func TestCloseStopsEverything(t *testing.T) {
	d := newDevice(t, emulated.DefaultConfig())
	require.NoError(t, d.Close())
	require.ErrorIs(t, d.SetEswitchMode(context.Background(), nic.EswitchLegacy), nic.ErrClosed)
	require.ErrorIs(t, d.SetNumVFs(0), nic.ErrClosed)
	require.ErrorIs(t, d.SetVF(0, emulated.VFConfig{}), nic.ErrClosed)
	require.ErrorIs(t, d.SetTableSize(1), nic.ErrClosed)
	require.ErrorIs(t, d.AddFault(emulated.Fault{Name: "x", Errno: syscall.EIO}), nic.ErrClosed)
	require.ErrorIs(t, d.AddCounters(flow.Software, "a", 1, 1, time.Now()), nic.ErrClosed)
	_, ok := <-d.Events()
	assert.False(t, ok)

	// Concurrent Closes all return after Events is closed.
	d = newDevice(t, emulated.DefaultConfig())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			assert.NoError(t, d.Close())
			_, ok := <-d.Events()
			assert.False(t, ok)
		})
	}
	wg.Wait()
}

func TestLoadConfig(t *testing.T) {
	cfg, err := emulated.LoadConfig(filepath.Join("testdata", "demo.yaml"))
	require.NoError(t, err)
	chain := uint32(2)
	want := emulated.DefaultConfig()
	want.NumVFs, want.HWTableSize, want.Latency = 4, 64, emulated.Duration(2*time.Millisecond)
	want.Tunnels = []emulated.TunnelConfig{{Name: "vxlan0", Type: "vxlan", DstPort: 4789}, {Name: "vxlan1", DstPort: 4790}}
	want.Faults = []emulated.FaultSpec{{Name: "ct-busy", Plane: "hardware", Match: emulated.FaultMatchSpec{Port: "pf0vf3", Chain: &chain, Action: "ct"},
		Errno: "EBUSY", Message: "ct table busy", Count: 3}}
	assert.Equal(t, want, cfg)

	d, err := emulated.New(cfg, nil)
	require.NoError(t, err)
	defer d.Close()
	p, ok := d.Port("vxlan1")
	require.True(t, ok)
	assert.Equal(t, uint16(4790), p.TunnelDstPort)
	f, err := cfg.Faults[0].Fault()
	require.NoError(t, err)
	assert.Equal(t, []emulated.Fault{f}, d.Faults())
	assert.Equal(t, emulated.Fault{Name: "ct-busy", Plane: flow.Hardware, Errno: syscall.EBUSY, Message: "ct table busy", Count: 3,
		Match: emulated.FaultMatch{Port: "pf0vf3", Chain: &chain, ActionKind: flow.ActCT}}, f)

	_, err = emulated.LoadConfig(filepath.Join("testdata", "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		errs []string
	}{
		{"defaults", ``, nil},
		{"unknown field", `numVF: 3`, []string{`unknown field "numVF"`}},
		{"bad duration", `latency: soon`, []string{`duration "soon"`}},
		{"ranges", "ports: 0\nnumVFs: 9\ntotalVFs: 8\nhwTableSize: -1\nlatency: -1s", []string{
			"ports: 0 is not between 1 and 16",
			"numVFs: 9 is not between 0 and totalVFs (8)",
			"hwTableSize: -1 is negative",
			"latency: -1s is negative",
		}},
		{"identity", "profile: ''\neswitchMode: offload\nbaseMAC: 01:00:00:00:00:01\npciAddress: 08:00.0", []string{
			"profile: must not be empty",
			`eswitchMode: "offload" is not switchdev or legacy`,
			`baseMAC: "01:00:00:00:00:01" is a multicast address`,
			`pciAddress: "08:00.0" is not a PCI address like 0000:08:00.0`,
		}},
		{"pci range", "pciAddress: 0000:ff:1f.7\ntotalVFs: 8", []string{"pciAddress: 0000:ff:1f.7 leaves no room"}},
		{"tunnels", "tunnels:\n- {name: p0}\n- {name: pf0vf1}\n- {name: t, type: gre}\n- {name: t}\n- {name: ''}\n- {name: a/b}\n- {name: g, type: geneve}\n- {name: w, type: wire}", []string{
			`tunnels[0].name: "p0" collides with a port name`,
			`tunnels[1].name: "pf0vf1" collides with a port name`,
			`tunnels[2].type: "gre" is not emulated: the emulated datapath encapsulates and decapsulates VXLAN only`,
			`tunnels[6].type: "geneve" is not emulated: the emulated datapath encapsulates and decapsulates VXLAN only`,
			`tunnels[7].type: "wire" is not a tunnel type (vxlan)`,
			`tunnels[3].name: "t" collides with a port name`,
			"tunnels[4].name: must not be empty",
			`tunnels[5].name: "a/b" is not a valid netdev name`,
		}},
		{"faults", "faults:\n- {name: a, plane: both, errno: EWHAT, count: -1, match: {action: jump}}\n- {name: a, errno: '5'}\n- {errno: ''}", []string{
			`faults[0].plane: "both" is not hardware or software`,
			`faults[0].match.action: unknown action kind "jump"`,
			`faults[0].errno: unknown errno "EWHAT"`,
			"faults[0].count: -1 is negative",
			`faults[1].name: duplicate fault name "a"`,
			"faults[2].name: must not be empty",
			"faults[2].errno: must not be empty",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := emulated.ParseConfig([]byte(tc.yaml))
			if tc.errs == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range tc.errs {
				assert.Contains(t, err.Error(), e)
			}
		})
	}

	cfg := emulated.DefaultConfig()
	cfg.Profile = "no-such-nic"
	_, err := emulated.New(cfg, nil)
	require.ErrorContains(t, err, `profile: unknown profile "no-such-nic"`)
}

func TestFlags(t *testing.T) {
	cfg := emulated.DefaultConfig()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.AddFlags(fs, "emulated-")
	require.NoError(t, fs.Parse([]string{"--emulated-profile=ice-e810", "--emulated-num-vfs=2", "--emulated-hw-table-size=64",
		"--emulated-eswitch-mode=legacy", "--emulated-latency=5ms", "--emulated-pace-inserts"}))
	want := emulated.DefaultConfig()
	want.Profile, want.NumVFs, want.HWTableSize, want.EswitchMode = "ice-e810", 2, 64, "legacy"
	want.Latency, want.PaceInserts = emulated.Duration(5*time.Millisecond), true
	assert.Equal(t, want, cfg)
	require.NoError(t, cfg.Validate())
}

func TestDefaults(t *testing.T) {
	require.NoError(t, emulated.DefaultConfig().Validate())
	require.NoError(t, emulated.DemoConfig().Validate())
	assert.Equal(t, emulated.DemoHWTableSize, emulated.DemoConfig().HWTableSize)
	d := newDevice(t, emulated.DefaultConfig())
	_, total := d.Capacity()
	assert.Equal(t, d.Profile().HWTableSize, total)
	assert.Len(t, d.VFs(), 8)
	_, ok := d.Port("vxlan0")
	assert.True(t, ok)
}
