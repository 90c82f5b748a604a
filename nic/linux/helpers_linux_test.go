package linux_test

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var nsSeq atomic.Int32

// newNetns creates a fresh named network namespace (so iproute2 can enter
// it with -n) without moving the test's threads into it.
func newNetns(t *testing.T) (netns.NsHandle, string) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	name := fmt.Sprintf("offloadd-test-%d-%d", os.Getpid(), nsSeq.Add(1))
	ns, err := netns.NewNamed(name)
	require.NoError(t, netns.Set(orig))
	require.NoError(t, err, "create netns %s", name)
	t.Cleanup(func() {
		ns.Close()
		_ = netns.DeleteNamed(name)
	})
	return ns, name
}

// linkHandle returns a netlink handle inside ns.
func linkHandle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// addVeth creates an up veth pair name <-> name+"p".
func addVeth(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	require.NoError(t, h.LinkAdd(v), "add veth %s", name)
	for _, n := range []string{name, name + "p"} {
		l, err := h.LinkByName(n)
		require.NoError(t, err)
		require.NoError(t, h.LinkSetUp(l))
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, links, qdiscs)")
	}
}

func requireKernelTier(t *testing.T) {
	t.Helper()
	if os.Getenv("OFFLOADD_KERNEL") != "1" {
		t.Skip("kernel-VM tier only (OFFLOADD_KERNEL=1): the host kernel has no cls_flower")
	}
	requireRoot(t)
}
