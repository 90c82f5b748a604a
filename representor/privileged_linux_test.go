package representor

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/nic"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// newTestNetns creates a network namespace without moving the test's
// threads into it.
func newTestNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	ns, err := netns.New()
	require.NoError(t, err)
	require.NoError(t, netns.Set(orig))
	t.Cleanup(func() { ns.Close() })
	return ns
}

// linkScanner models every veth of a namespace as a PF whose uplink is the
// veth itself, so link changes show up as port diffs.
type linkScanner struct{ h *netlink.Handle }

func (s linkScanner) Scan(context.Context) (Snapshot, error) {
	links, err := s.h.LinkList()
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Links: map[string]Link{}}
	for _, l := range links {
		if l.Type() != "veth" {
			continue
		}
		a := l.Attrs()
		snap.PFs = append(snap.PFs, PF{Name: a.Name, Uplink: a.Name})
		snap.Links[a.Name] = Link{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Up: a.Flags&1 != 0}
	}
	slices.SortFunc(snap.PFs, func(a, b PF) int { return strings.Compare(a.Name, b.Name) })
	return snap, nil
}

func TestPrivilegedWatcherSeesVethEvents(t *testing.T) {
	requireRoot(t)
	ns := newTestNetns(t)
	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	defer h.Close()

	w, err := NewWatcher(context.Background(), WatcherConfig{
		Scanner: linkScanner{h}, Links: NetlinkLinks{Namespace: &ns}, Settle: 20 * time.Millisecond, Resync: -1,
	})
	require.NoError(t, err)
	defer w.Close()
	time.Sleep(100 * time.Millisecond) // let the subscription start

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rep0", MTU: 1500}, PeerName: "vf0"}
	require.NoError(t, h.LinkAdd(veth))
	evs := nextEvents(t, w.Events(), 2)
	assert.Equal(t, []string{"added rep0", "added vf0"}, kinds(evs))
	assert.Equal(t, nic.PortUplink, evs[0].Port.Kind)

	rep, err := h.LinkByName("rep0")
	require.NoError(t, err)
	require.NoError(t, h.LinkSetMTU(rep, 9000))
	require.NoError(t, h.LinkSetUp(rep))
	evs = nextEvents(t, w.Events(), 1)
	assert.Equal(t, []string{"changed rep0"}, kinds(evs))
	assert.Equal(t, 9000, evs[0].Port.MTU)
	// Both changes may land in one scan or in two; wait for the last state.
	deadline := time.After(5 * time.Second)
	for !evs[len(evs)-1].Port.Up {
		select {
		case ev := <-w.Events():
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("rep0 never reported up: %+v", evs)
		}
	}

	require.NoError(t, h.LinkDel(rep))
	evs = nextEvents(t, w.Events(), 2)
	assert.Equal(t, []string{"removed rep0", "removed vf0"}, kinds(evs))
}

func TestPrivilegedNetlinkLinksStopsOnCancel(t *testing.T) {
	requireRoot(t)
	ns := newTestNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NetlinkLinks{Namespace: &ns}.Watch(ctx, func() {}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

// The real scanner on the host's /sys finds no SR-IOV PF on these machines
// (virtio NICs) but must read it without error; devlink must report a
// missing device as an error naming it.
func TestPrivilegedRealSysfsAndDevlink(t *testing.T) {
	requireRoot(t)
	dl, err := NewDevlink(netns.None())
	if err != nil {
		t.Skipf("no devlink: %v", err)
	}
	defer dl.Close()
	snap, err := NewSysfsScanner("/sys", dl).Scan(context.Background())
	require.NoError(t, err)
	for _, pf := range snap.PFs {
		t.Logf("PF %s %s %s eswitch=%s (%s) vfs=%d", pf.Name, pf.PCI, pf.Driver, pf.Eswitch, pf.EswitchErr, len(pf.VFs))
	}
	_, err = dl.EswitchMode("pci", "0000:ff:1f.7")
	assert.ErrorContains(t, err, "pci/0000:ff:1f.7")
	// The port dump sriovnet is given. Without devlink instances this
	// kernel (6.18) answers the dump with ENOENT; sriovnet then reads
	// phys_port_name, and the scan above succeeded either way.
	ports, err := dl.Ports()
	if err != nil {
		assert.ErrorIs(t, err, unix.ENOENT)
		assert.ErrorContains(t, err, "list devlink ports")
	}
	for _, p := range ports {
		t.Logf("devlink port %s/%s/%d %s flavour %d", p.BusName, p.DeviceName, p.PortIndex, p.NetdeviceName, p.PortFlavour)
	}
}
