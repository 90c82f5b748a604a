package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload"
)

// This file holds the kernel tier's fixtures: named network namespaces
// wired as a hypervisor with a VF, its representor and a VXLAN uplink
// towards a remote VTEP, a daemon started inside the hypervisor's
// namespace, and small Go clients and servers that send real packets from
// inside the namespaces.

// requireKernelTier skips outside the kernel VM (hack/kernel-vm/test.sh).
func requireKernelTier(t *testing.T) {
	t.Helper()
	if os.Getenv("OFFLOADD_KERNEL") != "1" {
		t.Skip("kernel-VM tier only (OFFLOADD_KERNEL=1): the host kernel has no cls_flower; run hack/kernel-vm/test.sh cmd/offloadd/daemon")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, links, qdiscs)")
	}
}

// tool returns the binary named by env (the VM sets OFFLOADD_TC and
// OFFLOADD_IP to iproute2), else the bare name.
func tool(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return name
}

func ipBin() string { return tool("OFFLOADD_IP", "ip") }
func tcBin() string { return tool("OFFLOADD_TC", "tc") }

// sh runs bin with args and fails the test with its output on error.
func sh(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", bin, strings.Join(args, " "), out)
	return string(out)
}

// Addresses of the overlay topology.
const (
	vmIP         = "10.10.0.1"
	remoteIP     = "10.10.0.2"
	vmMAC        = "02:00:0a:0a:00:01"
	remoteMAC    = "02:00:0a:0a:00:02"
	hvUnderlay   = "192.168.1.1"
	peerUnderlay = "192.168.1.2"
	overlayVNI   = 42
	tunnelDev    = "vxlan_sys_4789"
)

// overlay is the topology of a hypervisor ("hv") running the daemon:
//
//	vm ns:      vf0 10.10.0.1/24 ─veth─ rep0 (hv ns, the VF's representor)
//	hv ns:      p0 192.168.1.1/24 (uplink) ─veth─ p0r 192.168.1.2/24 (remote ns)
//	hv ns:      vxlan_sys_4789, external mode, created by the daemon
//	remote ns:  vx1 VNI 42 local 192.168.1.2 remote 192.168.1.1, 10.10.0.2/24
//
// Both overlay ends have static neighbours, so no ARP crosses the
// tunnel and every overlay packet is IPv4 the flows can count exactly.
type overlay struct {
	hv, vm, remote string // named network namespaces
}

var nsSeq atomic.Int32

// newNamedNetns creates a named network namespace (ip netns add), removed
// when the test ends.
func newNamedNetns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("od-%s-%d-%d", role, os.Getpid(), nsSeq.Add(1))
	sh(t, ipBin(), "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command(ipBin(), "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("remove netns %s: %v: %s", name, err, out)
		}
	})
	sh(t, ipBin(), "-n", name, "link", "set", "lo", "up")
	return name
}

// newOverlay builds the namespaces and links of overlay; the daemon adds
// the hypervisor's VXLAN device when it starts.
func newOverlay(t *testing.T) *overlay {
	t.Helper()
	o := &overlay{hv: newNamedNetns(t, "hv"), vm: newNamedNetns(t, "vm"), remote: newNamedNetns(t, "remote")}
	ip := func(ns string, args ...string) { t.Helper(); sh(t, ipBin(), append([]string{"-n", ns}, args...)...) }

	// The VF and its representor.
	ip(o.hv, "link", "add", "rep0", "type", "veth", "peer", "name", "vf0", "netns", o.vm)
	ip(o.hv, "link", "set", "rep0", "up")
	ip(o.vm, "link", "set", "vf0", "address", vmMAC, "mtu", "1400", "up")
	ip(o.vm, "addr", "add", vmIP+"/24", "dev", "vf0")
	ip(o.vm, "neigh", "add", remoteIP, "lladdr", remoteMAC, "dev", "vf0", "nud", "permanent")

	// The uplink towards the remote VTEP.
	ip(o.hv, "link", "add", "p0", "type", "veth", "peer", "name", "p0r", "netns", o.remote)
	ip(o.hv, "addr", "add", hvUnderlay+"/24", "dev", "p0")
	ip(o.hv, "link", "set", "p0", "up")
	ip(o.remote, "addr", "add", peerUnderlay+"/24", "dev", "p0r")
	ip(o.remote, "link", "set", "p0r", "up")

	// The remote VTEP: a plain VXLAN device with the far end of the overlay.
	ip(o.remote, "link", "add", "vx1", "type", "vxlan", "id", fmt.Sprint(overlayVNI),
		"local", peerUnderlay, "remote", hvUnderlay, "dstport", "4789")
	ip(o.remote, "link", "set", "vx1", "address", remoteMAC, "mtu", "1400", "up")
	ip(o.remote, "addr", "add", remoteIP+"/24", "dev", "vx1")
	ip(o.remote, "neigh", "add", vmIP, "lladdr", vmMAC, "dev", "vx1", "nud", "permanent")

	t.Cleanup(func() {
		if t.Failed() {
			for _, dev := range []string{"rep0", tunnelDev} {
				out, _ := exec.Command(tcBin(), "-n", o.hv, "-s", "filter", "show", "dev", dev, "ingress").CombinedOutput()
				t.Logf("tc -s filter show dev %s ingress:\n%s", dev, out)
			}
		}
	})
	return o
}

// inNetns runs fn on an OS thread inside the named namespace. The thread
// is thrown away afterwards (the goroutine exits locked), so the namespace
// never leaks to other goroutines. Sockets fn opens stay in the namespace
// and may be used from any goroutine.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// kernelDaemon is a daemon with the linux backend, running in the
// hypervisor namespace, and a client on its socket.
type kernelDaemon struct {
	d     *Daemon
	log   *logRecorder
	flows v1.FlowServiceClient
}

// startKernelDaemon starts offloadd --backend linux with rep0 as the
// representor of vf0 and p0 as the uplink, keeping its state and socket in
// dir. linux.New opens its sockets in the namespace of the calling thread,
// so New runs on a thread inside the hypervisor namespace.
func startKernelDaemon(t *testing.T, o *overlay, dir string) *kernelDaemon {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Backend = "linux"
	cfg.Socket = filepath.Join(dir, "offloadd.sock")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.StatsInterval = Duration(100 * time.Millisecond)
	cfg.PromoteRetry = Duration(time.Hour)
	cfg.Linux.Uplink = "p0"
	cfg.Linux.Ports = []PortConfig{{Name: "rep0", Kind: "representor", Peer: "vf0"}}
	rec := newLogRecorder(t)
	var d *Daemon
	require.NoError(t, inNetns(o.hv, func() error {
		var err error
		d, err = New(cfg, slog.New(rec))
		return err
	}), "start the daemon in netns %s", o.hv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	t.Cleanup(func() { d.Shutdown(context.Background()) })
	conn, err := grpc.NewClient("unix://"+cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &kernelDaemon{d: d, log: rec, flows: v1.NewFlowServiceClient(conn)}
}

// logRecorder is a slog handler that keeps the daemon's log records, to
// read the restore report and to print the log when a test fails.
type logRecorder struct {
	store *logStore
	attrs []slog.Attr
}

type logStore struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func newLogRecorder(t *testing.T) *logRecorder {
	r := &logRecorder{store: &logStore{}}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		r.store.mu.Lock()
		defer r.store.mu.Unlock()
		for _, rec := range r.store.recs {
			t.Logf("daemon log: %s %s %v", rec.level, rec.msg, rec.attrs)
		}
	})
	return r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRecord{level: rec.Level, msg: rec.Message, attrs: map[string]slog.Value{}}
	for _, a := range r.attrs {
		lr.attrs[a.Key] = a.Value.Resolve()
	}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	r.store.mu.Lock()
	r.store.recs = append(r.store.recs, lr)
	r.store.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{store: r.store, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// restoreReport reads the report Daemon.Start logs after Restore; the zero
// report when it logged none (nothing restored).
func (r *logRecorder) restoreReport() offload.RestoreReport {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	for _, rec := range r.store.recs {
		if rec.msg != "restored desired state" {
			continue
		}
		n := func(k string) int {
			if v, ok := rec.attrs[k]; ok && v.Kind() == slog.KindInt64 {
				return int(v.Int64())
			}
			return -1
		}
		return offload.RestoreReport{Adopted: n("adopted"), Installed: n("installed"), Pending: n("pending"), Orphans: n("orphans_removed")}
	}
	return offload.RestoreReport{}
}

// warnings lists the records at level WARN and above.
func (r *logRecorder) warnings() []string {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	var out []string
	for _, rec := range r.store.recs {
		if rec.level >= slog.LevelWarn {
			out = append(out, fmt.Sprintf("%s %s %v", rec.level, rec.msg, rec.attrs))
		}
	}
	return out
}

// tcFilter is one flower filter of `tc -s -j filter show`.
type tcFilter struct {
	Dev      string `json:"-"`
	Chain    uint32 `json:"chain"`
	Pref     uint16 `json:"pref"`
	Protocol string `json:"protocol"`
	Kind     string `json:"kind"`
	Options  *struct {
		Handle  uint32 `json:"handle"`
		SkipHw  bool   `json:"skip_hw"`
		SkipSw  bool   `json:"skip_sw"`
		InHw    bool   `json:"in_hw"`
		NotInHw bool   `json:"not_in_hw"`
		Actions []struct {
			Kind  string `json:"kind"`
			Stats *struct {
				Packets uint64 `json:"packets"`
			} `json:"stats"`
		} `json:"actions"`
	} `json:"options"`
}

// packets is the filter's first action's packet count.
func (f tcFilter) packets() uint64 {
	if f.Options == nil || len(f.Options.Actions) == 0 || f.Options.Actions[0].Stats == nil {
		return 0
	}
	return f.Options.Actions[0].Stats.Packets
}

// key names a filter by where it sits and its handle.
func (f tcFilter) key() string {
	return fmt.Sprintf("%s chain %d pref %d handle %d", f.Dev, f.Chain, f.Pref, f.Options.Handle)
}

// tcFilters lists the flower filters of every chain of dev's ingress hook.
// Equivalent to: tc -n NS -s -j filter show dev DEV ingress
func tcFilters(t *testing.T, ns, dev string) []tcFilter {
	t.Helper()
	out := sh(t, tcBin(), "-n", ns, "-s", "-j", "filter", "show", "dev", dev, "ingress")
	var all []tcFilter
	require.NoError(t, json.Unmarshal([]byte(out), &all), "tc -j output: %s", out)
	var flowers []tcFilter
	for _, f := range all {
		if f.Kind == "flower" && f.Options != nil {
			f.Dev = dev
			flowers = append(flowers, f)
		}
	}
	return flowers
}

// softwarePackets reads every flow's software-plane packet counter
// through ListFlows, and fails unless every flow runs in software (a veth
// has no hardware).
func softwarePackets(t *testing.T, c v1.FlowServiceClient) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.ListFlows(ctx, &v1.ListFlowsRequest{})
	require.NoError(t, err)
	m := map[string]uint64{}
	for _, st := range resp.GetFlows() {
		id := st.GetFlow().GetId()
		require.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, st.GetState(), "flow %s: %v", id, st.GetReasons())
		m[id] = st.GetSoftware().GetPackets()
	}
	return m
}

// waitDeltas waits until every flow's software counter has grown from base
// by exactly what want returns (flows want leaves out: by nothing) and
// returns the counters. want is called on every poll, so it may read live
// sources (a socket's TCP_INFO). The daemon reads counters every
// StatsInterval; late packets (delayed ACKs) are given time to arrive.
func waitDeltas(t *testing.T, c v1.FlowServiceClient, what string, base map[string]uint64, want func() map[string]uint64) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cur := softwarePackets(t, c)
		w, got := map[string]uint64{}, map[string]uint64{}
		for id, n := range cur {
			w[id] = 0
			got[id] = n - base[id]
		}
		for id, n := range want() {
			w[id] = n
		}
		if fmt.Sprint(w) == fmt.Sprint(got) {
			return cur
		}
		if time.Now().After(deadline) {
			require.Equal(t, w, got, "%s: packets per flow since the last check (software counters from ListFlows)", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fixed turns a constant expectation into waitDeltas' want.
func fixed(m map[string]uint64) func() map[string]uint64 {
	return func() map[string]uint64 { return m }
}

var pingID atomic.Int32

// pinger sends ICMP echo requests from a raw socket in a namespace.
type pinger struct {
	c   *icmp.PacketConn
	dst *net.IPAddr
	id  int
	seq int
	buf []byte
}

func newPinger(t *testing.T, ns, src, dst string) *pinger {
	t.Helper()
	var c *icmp.PacketConn
	require.NoError(t, inNetns(ns, func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", src)
		return err
	}), "open an ICMP socket on %s in netns %s", src, ns)
	t.Cleanup(func() { c.Close() })
	id := (os.Getpid()*16 + int(pingID.Add(1))) & 0xffff
	return &pinger{c: c, dst: &net.IPAddr{IP: net.ParseIP(dst)}, id: id, buf: make([]byte, 1500)}
}

// ping sends one echo request and waits up to timeout for its reply.
func (p *pinger) ping(timeout time.Duration) error {
	p.seq++
	m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: p.seq, Data: []byte("offloadd kernel tier")}}
	b, err := m.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := p.c.WriteTo(b, p.dst); err != nil {
		return fmt.Errorf("send echo request %d to %s: %w", p.seq, p.dst, err)
	}
	if err := p.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	for {
		n, from, err := p.c.ReadFrom(p.buf)
		if err != nil {
			return fmt.Errorf("echo reply %d from %s: %w", p.seq, p.dst, err)
		}
		r, err := icmp.ParseMessage(1, p.buf[:n])
		if err != nil || r.Type != ipv4.ICMPTypeEchoReply || from.String() != p.dst.String() {
			continue
		}
		if e, ok := r.Body.(*icmp.Echo); ok && e.ID == p.id && e.Seq == p.seq {
			return nil
		}
	}
}

// pingN pings n times and fails on any lost reply.
func (p *pinger) pingN(t *testing.T, n int) {
	t.Helper()
	for range n {
		require.NoError(t, p.ping(5*time.Second))
	}
}

// pingLoop pings every interval until stop; it counts requests and lost
// replies.
type pingLoop struct {
	sent, lost int
	errs       []error
	stop       chan struct{}
	done       chan struct{}
}

func startPingLoop(p *pinger, interval time.Duration) *pingLoop {
	l := &pingLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			l.sent++
			if err := p.ping(3 * time.Second); err != nil {
				l.lost++
				l.errs = append(l.errs, err)
			}
			time.Sleep(interval)
		}
	}()
	return l
}

// finish stops the loop and waits for its last reply.
func (l *pingLoop) finish() {
	close(l.stop)
	<-l.done
}

// listenUDP opens a UDP socket on addr inside a namespace.
func listenUDP(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	require.NoError(t, inNetns(ns, func() error {
		a, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", a)
		return err
	}), "listen on udp %s in netns %s", addr, ns)
	t.Cleanup(func() { c.Close() })
	return c
}

// serveUDPEcho answers every datagram c receives with the same bytes.
func serveUDPEcho(c *net.UDPConn) {
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDP(buf[:n], from)
		}
	}()
}

// tcpServer accepts connections in a namespace and echoes what it reads;
// accepted connections are handed to the test on conns.
type tcpServer struct {
	l     net.Listener
	conns chan net.Conn
}

func listenTCPEcho(t *testing.T, ns, addr string) *tcpServer {
	t.Helper()
	var l net.Listener
	require.NoError(t, inNetns(ns, func() error {
		var err error
		// No keepalive probes: they would be packets nobody counted.
		l, err = (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp4", addr)
		return err
	}), "listen on tcp %s in netns %s", addr, ns)
	s := &tcpServer{l: l, conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(s.conns)
				return
			}
			s.conns <- c
			go func() {
				buf := make([]byte, 1500)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

// dialTCP connects from inside a namespace. synRetries sets TCP_SYNCNT
// (0 keeps the kernel's default), so a connect to a black hole sends
// exactly 1+synRetries SYNs before it fails with ETIMEDOUT.
func dialTCP(ns, addr string, synRetries int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		d := net.Dialer{Timeout: timeout, KeepAlive: -1}
		if synRetries > 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_SYNCNT, synRetries)
				}); err != nil {
					return err
				}
				return serr
			}
		}
		var err error
		c, err = d.Dial("tcp4", addr)
		return err
	})
	return c, err
}

// tcpInfo reads TCP_INFO of a connection.
func tcpInfo(t *testing.T, c net.Conn) *unix.TCPInfo {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	require.True(t, ok, "%T is not a TCP connection", c)
	rc, err := tc.SyscallConn()
	require.NoError(t, err)
	var info *unix.TCPInfo
	var ierr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}))
	require.NoError(t, ierr)
	return info
}

// isTimeout reports whether err is a read deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
