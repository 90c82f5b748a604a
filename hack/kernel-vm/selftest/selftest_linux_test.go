package kvmselftest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"
)

// requireKernel skips the test outside the kernel VM.
func requireKernel(t *testing.T) {
	t.Helper()
	if os.Getenv("OFFLOADD_KERNEL") != "1" {
		t.Skip("kernel-VM tier only (OFFLOADD_KERNEL=1): run hack/kernel-vm/test.sh")
	}
}

// tool returns the binary named by env, else the bare name.
func tool(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return name
}

func tc() string { return tool("OFFLOADD_TC", "tc") }
func ip() string { return tool("OFFLOADD_IP", "ip") }

// run runs bin with args and returns its combined output.
func run(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := run(bin, args...)
	require.NoError(t, err)
	return out
}

var nsSeq atomic.Int32

// newNetns creates a named network namespace removed when the test ends.
// Equivalent to: ip netns add NAME
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("kvmst-%d-%d", os.Getpid(), nsSeq.Add(1))
	mustRun(t, ip(), "netns", "add", name)
	t.Cleanup(func() {
		if _, err := run(ip(), "netns", "del", name); err != nil {
			t.Errorf("remove netns %s: %v", name, err)
		}
	})
	return name
}

type tcStats struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

type tcAction struct {
	Order  int      `json:"order"`
	Kind   string   `json:"kind"`
	Action string   `json:"action"` // ct: "commit", "clear"; empty for a plain ct
	Zone   *int     `json:"zone"`
	Stats  *tcStats `json:"stats"`
}

type tcFlower struct {
	Handle  uint32         `json:"handle"`
	Keys    map[string]any `json:"keys"`
	SkipHw  bool           `json:"skip_hw"`
	SkipSw  bool           `json:"skip_sw"`
	InHw    bool           `json:"in_hw"`
	NotInHw bool           `json:"not_in_hw"`
	Actions []tcAction     `json:"actions"`
}

type tcFilter struct {
	Protocol string    `json:"protocol"`
	Pref     int       `json:"pref"`
	Kind     string    `json:"kind"`
	Options  *tcFlower `json:"options"`
}

// flowerFilters lists the flower filters (those with options) on a hook.
// Equivalent to: tc -n NS -s -j filter show dev DEV ingress chain CHAIN
func flowerFilters(t *testing.T, ns, dev string, chain int) []tcFilter {
	t.Helper()
	out := mustRun(t, tc(), "-n", ns, "-s", "-j", "filter", "show", "dev", dev, "ingress", "chain", fmt.Sprint(chain))
	var all []tcFilter
	require.NoError(t, json.Unmarshal([]byte(out), &all), "tc -j output: %s", out)
	var flowers []tcFilter
	for _, f := range all {
		if f.Kind == "flower" && f.Options != nil {
			flowers = append(flowers, f)
		}
	}
	return flowers
}

// TestKernelFlowerAvailable checks the facts the Linux backend builds on:
// cls_flower takes a skip_hw rule and reports it not_in_hw, and a skip_sw
// rule on a device without offload fails with EOPNOTSUPP.
func TestKernelFlowerAvailable(t *testing.T) {
	requireKernel(t)
	ns := newNetns(t)
	mustRun(t, ip(), "-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	mustRun(t, ip(), "-n", ns, "link", "set", "veth0", "up")
	mustRun(t, ip(), "-n", ns, "link", "set", "veth1", "up")
	mustRun(t, tc(), "-n", ns, "qdisc", "add", "dev", "veth0", "clsact")

	mustRun(t, tc(), "-n", ns, "filter", "add", "dev", "veth0", "ingress", "protocol", "ip", "prio", "10",
		"flower", "skip_hw", "dst_ip", "192.0.2.1", "ip_proto", "tcp", "dst_port", "80", "action", "drop")
	filters := flowerFilters(t, ns, "veth0", 0)
	require.Len(t, filters, 1)
	f := filters[0]
	assert.Equal(t, 10, f.Pref)
	assert.Equal(t, "ip", f.Protocol)
	assert.True(t, f.Options.SkipHw, "skip_hw flag")
	assert.True(t, f.Options.NotInHw, "not_in_hw flag")
	assert.False(t, f.Options.InHw, "in_hw flag")
	assert.Equal(t, "192.0.2.1", f.Options.Keys["dst_ip"])
	assert.Equal(t, "tcp", f.Options.Keys["ip_proto"])
	assert.EqualValues(t, 80, f.Options.Keys["dst_port"])
	require.Len(t, f.Options.Actions, 1)
	assert.Equal(t, "gact", f.Options.Actions[0].Kind)

	out, err := run(tc(), "-n", ns, "filter", "add", "dev", "veth0", "ingress", "protocol", "ip", "prio", "20",
		"flower", "skip_sw", "dst_ip", "192.0.2.2", "action", "drop")
	require.Error(t, err, "skip_sw on veth must be refused")
	assert.Contains(t, out, "Operation not supported")
	assert.Len(t, flowerFilters(t, ns, "veth0", 0), 1, "the refused rule must not be installed")
}

// TestKernelConntrack installs the two-chain act_ct pipeline that OVS-style
// stateful flows use, sends one UDP packet through it from a second
// namespace, and checks that the packet matched ct_state +trk+new and that
// "ct commit" created a conntrack entry in the zone.
func TestKernelConntrack(t *testing.T) {
	requireKernel(t)
	const zone = 7
	nsA, nsB := newNetns(t), newNetns(t)
	mustRun(t, ip(), "-n", nsA, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", nsB)
	mustRun(t, ip(), "-n", nsA, "addr", "add", "192.0.2.1/24", "dev", "veth0")
	mustRun(t, ip(), "-n", nsB, "addr", "add", "192.0.2.2/24", "dev", "veth1")
	mustRun(t, ip(), "-n", nsA, "link", "set", "veth0", "up")
	mustRun(t, ip(), "-n", nsB, "link", "set", "veth1", "up")
	mustRun(t, tc(), "-n", nsA, "qdisc", "add", "dev", "veth0", "clsact")

	mustRun(t, tc(), "-n", nsA, "filter", "add", "dev", "veth0", "ingress", "chain", "0", "prio", "1",
		"protocol", "ip", "flower", "skip_hw", "ct_state", "-trk",
		"action", "ct", "zone", fmt.Sprint(zone), "pipe", "action", "goto", "chain", "1")
	mustRun(t, tc(), "-n", nsA, "filter", "add", "dev", "veth0", "ingress", "chain", "1", "prio", "1",
		"protocol", "ip", "flower", "skip_hw", "ct_state", "+trk+new", "ip_proto", "udp",
		"action", "ct", "commit", "zone", fmt.Sprint(zone), "pipe", "action", "pass")

	chain0 := flowerFilters(t, nsA, "veth0", 0)
	require.Len(t, chain0, 1)
	require.NotEmpty(t, chain0[0].Options.Actions)
	ct := chain0[0].Options.Actions[0]
	assert.Equal(t, "ct", ct.Kind)
	require.NotNil(t, ct.Zone)
	assert.Equal(t, zone, *ct.Zone)
	assert.Equal(t, "-trk", chain0[0].Options.Keys["ct_state"])

	sendUDP(t, nsB, netip.MustParseAddrPort("192.0.2.1:4789"))

	var committed []tcAction
	require.Eventually(t, func() bool {
		chain1 := flowerFilters(t, nsA, "veth0", 1)
		if len(chain1) != 1 || len(chain1[0].Options.Actions) == 0 {
			return false
		}
		committed = chain1[0].Options.Actions
		s := committed[0].Stats
		return s != nil && s.Packets >= 1
	}, 5*time.Second, 100*time.Millisecond, "the UDP packet never matched ct_state +trk+new in chain 1")
	assert.Equal(t, "ct", committed[0].Kind)
	assert.Equal(t, "commit", committed[0].Action)

	entry := findConntrack(t, nsA, zone, netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1"), 4789)
	assert.Equal(t, uint8(17), entry.TupleOrig.Proto.Protocol)
}

// sendUDP sends one datagram from inside the named namespace.
func sendUDP(t *testing.T, ns string, dst netip.AddrPort) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked and is thrown away when this goroutine
		// ends, so its namespace never leaks to other goroutines.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			errc <- fmt.Errorf("dial udp %s in netns %s: %w", dst, ns, err)
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("kernel-vm selftest"))
		if err != nil {
			err = fmt.Errorf("send udp to %s from netns %s: %w", dst, ns, err)
		}
		errc <- err
	}()
	require.NoError(t, <-errc)
}

// findConntrack waits for the conntrack entry of a UDP flow in a zone of
// the named namespace. Equivalent to: ip netns exec NS conntrack -L -w ZONE
func findConntrack(t *testing.T, ns string, zone uint16, src, dst netip.Addr, dport uint16) conntrack.Flow {
	t.Helper()
	h, err := netns.GetFromName(ns)
	require.NoError(t, err)
	defer h.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(h)})
	require.NoError(t, err, "dial conntrack netlink in netns %s", ns)
	defer c.Close()

	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		flows, err := c.Dump(nil)
		require.NoError(t, err, "dump conntrack in netns %s", ns)
		seen = seen[:0]
		for _, f := range flows {
			o := f.TupleOrig
			if f.Zone == zone && o.IP.SourceAddress == src && o.IP.DestinationAddress == dst && o.Proto.DestinationPort == dport {
				return f
			}
			seen = append(seen, fmt.Sprintf("zone %d %s -> %s:%d proto %d",
				f.Zone, o.IP.SourceAddress, o.IP.DestinationAddress, o.Proto.DestinationPort, o.Proto.Protocol))
		}
		if time.Now().After(deadline) {
			require.Failf(t, "conntrack entry missing", "no entry in zone %d for %s -> %s:%d in netns %s; entries: %v",
				zone, src, dst, dport, ns, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
