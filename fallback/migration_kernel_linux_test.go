package fallback

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/flow"
)

// The kernel tier of the handoff: two "nodes", each a network namespace
// with a daemon's engine over the Linux tc-flower backend and ctnetlink,
// between a VM namespace (behind veth "representor" REP) and a peer
// namespace (behind veth "uplink" UP). A TCP connection through conntrack
// zone 5 runs on the source node; after the handoff the destination's
// conntrack table holds it and its flows admit the connection's next
// segment without a handshake, while they drop a segment of an unknown
// connection.

func requireKernelTier(t *testing.T) {
	t.Helper()
	if os.Getenv("OFFLOADD_KERNEL") != "1" {
		t.Skip("kernel-VM tier only (OFFLOADD_KERNEL=1): run hack/kernel-vm/test.sh fallback")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

var nsSeq atomic.Int32

func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	name := fmt.Sprintf("offloadd-mig-%d-%d", os.Getpid(), nsSeq.Add(1))
	ns, err := netns.NewNamed(name)
	require.NoError(t, netns.Set(orig))
	require.NoError(t, err)
	t.Cleanup(func() {
		ns.Close()
		_ = netns.DeleteNamed(name)
	})
	return ns
}

// inNS runs fn on a thread in ns; sockets it opens stay in ns.
func inNS(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	require.NoError(t, netns.Set(ns))
	defer func() { require.NoError(t, netns.Set(orig)) }()
	fn()
}

// kernelNode is a node namespace with its engine and migrator, and the VM
// and peer namespaces wired to it.
type kernelNode struct {
	node, vm, peer netns.NsHandle
	rep, up        string
	vmMAC, peerMAC net.HardwareAddr
	eng            *offload.Engine
	ct             *KernelConntrack
	mig            *Migrator
}

// wire creates veth node:name <-> other:peer, the peer with addr and up.
func wire(t *testing.T, node, other netns.NsHandle, name, peer, addr string) net.HardwareAddr {
	t.Helper()
	h, err := netlink.NewHandleAt(node)
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer,
		PeerNamespace: netlink.NsFd(int(other))}))
	l, err := h.LinkByName(name)
	require.NoError(t, err)
	require.NoError(t, h.LinkSetUp(l))
	ho, err := netlink.NewHandleAt(other)
	require.NoError(t, err)
	defer ho.Close()
	pl, err := ho.LinkByName(peer)
	require.NoError(t, err)
	a, err := netlink.ParseAddr(addr)
	require.NoError(t, err)
	require.NoError(t, ho.AddrAdd(pl, a))
	require.NoError(t, ho.LinkSetUp(pl))
	lo, err := ho.LinkByName("lo")
	require.NoError(t, err)
	require.NoError(t, ho.LinkSetUp(lo))
	return pl.Attrs().HardwareAddr
}

func neigh(t *testing.T, ns netns.NsHandle, dev, ip string, mac net.HardwareAddr) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	defer h.Close()
	l, err := h.LinkByName(dev)
	require.NoError(t, err)
	require.NoError(t, h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP(ip), HardwareAddr: mac}))
}

func newKernelNode(t *testing.T, name, rep, up string) *kernelNode {
	t.Helper()
	n := &kernelNode{node: newNS(t), vm: newNS(t), peer: newNS(t), rep: rep, up: up}
	n.vmMAC = wire(t, n.node, n.vm, rep, "vm", "10.0.0.3/24")
	n.peerMAC = wire(t, n.node, n.peer, up, "peer", "10.0.0.7/24")
	neigh(t, n.vm, "vm", "10.0.0.7", n.peerMAC)
	neigh(t, n.peer, "peer", "10.0.0.3", n.vmMAC)
	dev, err := linux.New(linux.Config{Uplink: up, NetNS: n.node, Profile: nic.MLX5ConnectX6Dx(),
		Ports: []nic.Port{{Name: rep, Kind: nic.PortRepresentor, VF: 0}}})
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	n.eng, err = offload.New(offload.Config{Devices: []nic.Device{dev}, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { n.eng.Close() })
	n.ct, err = NewKernelConntrack(int(n.node))
	require.NoError(t, err)
	t.Cleanup(func() { n.ct.Close() })
	n.mig, err = NewMigrator(MigratorConfig{Engine: n.eng, Conntrack: n.ct, Node: name, Logger: quiet})
	require.NoError(t, err)
	return n
}

// networkFlows send the uplink's TCP through conntrack zone 5 to chain 1,
// which drops what no VM rule takes. Every node has them; they do not migrate.
func (n *kernelNode) networkFlows(prefix string) []*flow.Flow {
	tcp := flow.Match{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, CTState: flow.Masked16{Mask: flow.CTTracked}}
	return []*flow.Flow{
		{ID: prefix + "-ct-in", Port: n.up, Priority: 10, Match: tcp,
			Actions: []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5}}, {Kind: flow.ActGoto, Chain: 1}}},
		{ID: prefix + "-drop-in", Port: n.up, Chain: 1, Priority: 100, Match: flow.Match{EthType: flow.EthTypeIPv4},
			Actions: []flow.Action{{Kind: flow.ActDrop}}},
	}
}

// vmFlows let the VM open TCP connections (a SYN is committed) and pass
// established traffic both ways; anything else from the VM is dropped.
func (n *kernelNode) vmFlows() []*flow.Flow {
	ip := flow.Match{EthType: flow.EthTypeIPv4}
	untracked := ip
	untracked.IPProto, untracked.CTState = flow.ProtoTCP, flow.Masked16{Mask: flow.CTTracked}
	est := ip
	est.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTEstablished, Mask: flow.CTTracked | flow.CTEstablished}
	syn := ip
	syn.IPProto = flow.ProtoTCP
	syn.CTState = flow.Masked16{Value: flow.CTTracked | flow.CTNew, Mask: flow.CTTracked | flow.CTNew}
	syn.TCPFlags = flow.Masked16{Value: 0x02, Mask: 0x12}
	toUp := flow.Action{Kind: flow.ActRedirect, Port: n.up}
	return []*flow.Flow{
		{ID: "vm-ct-out", Port: n.rep, Priority: 10, Match: untracked,
			Actions: []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5}}, {Kind: flow.ActGoto, Chain: 1}}},
		{ID: "vm-est-out", Port: n.rep, Chain: 1, Priority: 1, Match: est, Actions: []flow.Action{toUp}},
		{ID: "vm-syn-out", Port: n.rep, Chain: 1, Priority: 2, Match: syn,
			Actions: []flow.Action{{Kind: flow.ActCT, CT: &flow.CT{Zone: 5, Commit: true}}, toUp}},
		{ID: "vm-drop-out", Port: n.rep, Chain: 1, Priority: 3, Match: ip, Actions: []flow.Action{{Kind: flow.ActDrop}}},
		{ID: "vm-est-in", Port: n.up, Chain: 1, Priority: 1, Match: est, Actions: []flow.Action{{Kind: flow.ActRedirect, Port: n.rep}}},
	}
}

func (n *kernelNode) apply(t *testing.T, fs []*flow.Flow) {
	t.Helper()
	rs, err := n.eng.Apply(context.Background(), fs, offload.ApplyOptions{Atomic: true})
	require.NoError(t, err, "%+v", rs)
}

func (n *kernelNode) swPackets(t *testing.T, id string) uint64 {
	t.Helper()
	require.NoError(t, n.eng.RefreshStats(context.Background()))
	st, ok := n.eng.Get(id)
	require.True(t, ok, id)
	return st.SW.Packets
}

// sendSegment sends one TCP segment from the VM, as its kernel would after
// the migration: ACK and PSH with data, no handshake.
func (n *kernelNode) sendSegment(t *testing.T, sport uint16) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: n.vmMAC, DstMAC: n.peerMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.ParseIP("10.0.0.3").To4(), DstIP: net.ParseIP("10.0.0.7").To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 8080, Seq: 1000, Ack: 1000, ACK: true, PSH: true, Window: 512}
	require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload("after the migration")))
	inNS(t, n.vm, func() {
		l, err := net.InterfaceByName("vm")
		require.NoError(t, err)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		require.NoError(t, err)
		defer unix.Close(fd)
		require.NoError(t, unix.Sendto(fd, buf.Bytes(), 0, &unix.SockaddrLinklayer{Ifindex: l.Index, Halen: 6}))
	})
}

func TestKernelConntrackHandoff(t *testing.T) {
	requireKernelTier(t)
	ctx := context.Background()
	src := newKernelNode(t, "src", "rep3", "p0")
	dst := newKernelNode(t, "dst", "rep5", "uplink0")
	src.apply(t, append(src.networkFlows("src"), src.vmFlows()...))
	dst.apply(t, dst.networkFlows("dst"))

	// A TCP connection from the VM to the peer, through the source's flows.
	var lis net.Listener
	inNS(t, src.peer, func() {
		var err error
		lis, err = net.Listen("tcp", "10.0.0.7:8080")
		require.NoError(t, err)
	})
	defer lis.Close()
	go func() {
		c, err := lis.Accept()
		if err == nil {
			_, _ = io.Copy(c, c)
			c.Close()
		}
	}()
	var conn net.Conn
	inNS(t, src.vm, func() {
		var err error
		conn, err = net.DialTimeout("tcp", "10.0.0.7:8080", 5*time.Second)
		require.NoError(t, err, "the source's flows pass the handshake")
	})
	defer conn.Close()
	_, err := conn.Write([]byte("hello"))
	require.NoError(t, err)
	echo := make([]byte, 5)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(conn, echo)
	require.NoError(t, err)
	sport := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
	es, err := src.ct.Dump(ctx, []uint16{5})
	require.NoError(t, err)
	require.Len(t, es, 1)
	t.Logf("source entry: %s, timeout %s, status %#x", es[0], es[0].Timeout, es[0].Status)
	require.NotNil(t, es[0].TCP)
	assert.Equal(t, TCPEstablished, es[0].TCP.State)
	assert.Equal(t, sport, es[0].Orig.SrcPort)

	// The handoff: the destination's names differ and are mapped.
	_, err = dst.mig.Prepare(ctx, PrepareRequest{ID: "m1", SourcePort: "rep3", Port: "rep5", PortMap: map[string]string{"p0": "uplink0"}})
	require.NoError(t, err)
	_, err = src.mig.Drain(ctx, DrainRequest{ID: "m1", Port: "rep3"})
	require.NoError(t, err)
	b, err := src.mig.Export(ctx, ExportRequest{ID: "m1"})
	require.NoError(t, err)
	require.Len(t, b.Conns, 1)
	require.Len(t, b.Flows, 5)
	imp, err := dst.mig.Import(ctx, ImportRequest{ID: "m1", Bundle: b})
	require.NoError(t, err)
	assert.Equal(t, 1, imp.ConnsCreated)
	ro, err := dst.mig.Reoffload(ctx, "m1")
	require.NoError(t, err)
	assert.Equal(t, 5, ro.Software, "veths refuse hardware")
	_, err = src.mig.Commit(ctx, "m1")
	require.NoError(t, err)

	// The destination's conntrack holds the connection; the source's not.
	got, err := dst.ct.Dump(ctx, []uint16{5})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, es[0].Key(), got[0].Key())
	assert.Equal(t, TCPEstablished, got[0].TCP.State)
	left, err := src.ct.Dump(ctx, []uint16{5})
	require.NoError(t, err)
	assert.Empty(t, left)

	// The connection's next segment is established at the destination and
	// passes its flows; a segment of an unknown connection is dropped.
	estBefore, dropBefore := dst.swPackets(t, "vm-est-out"), dst.swPackets(t, "vm-drop-out")
	dst.sendSegment(t, sport)
	deadline := time.Now().Add(5 * time.Second)
	for dst.swPackets(t, "vm-est-out") == estBefore && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, estBefore+1, dst.swPackets(t, "vm-est-out"), "admitted as established")
	assert.Equal(t, dropBefore, dst.swPackets(t, "vm-drop-out"))
	dst.sendSegment(t, sport+1)
	for dst.swPackets(t, "vm-drop-out") == dropBefore && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, dropBefore+1, dst.swPackets(t, "vm-drop-out"), "an unknown connection without SYN is dropped")
}

// TestKernelConntrackUpsert checks create, update (EEXIST) and delete on
// the kernel's table, and that NAT entries are refused.
func TestKernelConntrackUpsert(t *testing.T) {
	requireKernelTier(t)
	ctx := context.Background()
	ns := newNS(t)
	k, err := NewKernelConntrack(int(ns))
	require.NoError(t, err)
	defer k.Close()
	e := tcpConn(7, 41000)
	prevs, err := k.Upsert(ctx, []ConnEntry{e})
	require.NoError(t, err)
	assert.Equal(t, []ConnPrev{{Done: true}}, prevs)
	got, err := k.Dump(ctx, []uint16{7})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, e.Key(), got[0].Key())
	assert.Equal(t, uint32(42), got[0].Mark)
	assert.Equal(t, TCPEstablished, got[0].TCP.State)
	assert.NotZero(t, got[0].Status&ConnAssured)
	assert.InDelta(t, e.Timeout.Seconds(), got[0].Timeout.Seconds(), 5)

	upd := e
	upd.Mark = 43
	prevs, err = k.Upsert(ctx, []ConnEntry{upd})
	require.NoError(t, err)
	require.True(t, prevs[0].Existed)
	assert.Equal(t, uint32(42), prevs[0].Entry.Mark)
	got, err = k.Dump(ctx, []uint16{7})
	require.NoError(t, err)
	assert.Equal(t, uint32(43), got[0].Mark)

	nat := tcpConn(7, 41001)
	nat.Reply.Dst = netip.MustParseAddr("192.0.2.9")
	_, err = k.Upsert(ctx, []ConnEntry{nat})
	assert.ErrorContains(t, err, "uses NAT")

	require.NoError(t, k.Delete(ctx, []ConnKey{e.Key(), nat.Key()}))
	got, err = k.Dump(ctx, []uint16{7})
	require.NoError(t, err)
	assert.Empty(t, got)
}
