package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/internal/nsthread"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux"
	"github.com/offloadd/offloadd/nic/linux/rtnl"
	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/offload/flow"
)

// chunk is how many flows the Device and the engine get per call, as in
// an ApplyFlows batch.
const chunk = 1024

// addFlags are tc's `filter add` flags: NLM_F_CREATE|NLM_F_EXCL.
const addFlags = rtnl.FlagCreate | rtnl.FlagExcl

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// method is one way of installing rules. prepare does the untimed work
// (dialing, writing input files, building requests) and returns the
// timed step and a cleanup.
type method struct {
	key, name string
	// own marks offloadd's methods, whose allocations are counted.
	own     bool
	prepare func(ctx context.Context, b *bed, rules []rule, workers int) (run func() error, done func(), err error)
}

func methods() []method {
	return []method{
		{key: "e", name: "kernel floor: pre-encoded, 1 socket", prepare: prepareFloor(addFlags)},
		{key: "a", name: "codec + rtnl.Batch, 1 socket", own: true, prepare: prepareCodec(addFlags, false)},
		{key: "b", name: "codec + rtnl.Batch, 1 socket per vCPU", own: true, prepare: prepareCodec(addFlags, true)},
		{key: "a-pre", name: "rtnl.Batch of pre-encoded rules, 1 socket", own: true, prepare: preparePreEncoded},
		{key: "c", name: "tc -b", prepare: prepareTC(false)},
		{key: "d", name: "vishvananda/netlink FilterAdd loop", prepare: prepareVNL},
		{key: "a-echo", name: "codec + rtnl.Batch with NLM_F_ECHO", own: true, prepare: prepareCodec(addFlags|rtnl.FlagEcho, false)},
		{key: "e-echo", name: "kernel floor with NLM_F_ECHO", prepare: prepareFloor(addFlags | rtnl.FlagEcho)},
		{key: "device", name: "nic/linux Device.Program (software plane)", own: true, prepare: prepareDevice},
		{key: "c-par", name: "tc -b, 1 process per vCPU", prepare: prepareTC(true)},
	}
}

// encodeChunk encodes rules as RTM_NEWTFILTER requests into enc and reqs.
func encodeChunk(enc *tcflower.Encoder, reqs []rtnl.Request, b *bed, rules []rule, flags uint16) ([]rtnl.Request, error) {
	resolve := b.resolve // one method value, not one allocation per rule
	for _, r := range rules {
		body, err := enc.Filter(r.f, tcflower.Params{Ifindex: b.ifindex[r.f.Port], Plane: flow.Software,
			Handle: r.handle, Resolve: resolve})
		if err != nil {
			return reqs, fmt.Errorf("encode flow %s: %w", r.f.ID, err)
		}
		reqs = append(reqs, rtnl.Request{Type: tcflower.RTMNewTFilter, Flags: flags, Body: body})
	}
	return reqs, nil
}

// batchNanos adds up the time offloadd's methods spend in rtnl.Batch
// during a run: it splits (a) into encoding and the kernel's work.
var batchNanos atomic.Int64

// timedBatch is c.Batch, timed into batchNanos.
func timedBatch(ctx context.Context, c *rtnl.Conn, reqs []rtnl.Request) []rtnl.Reply {
	start := time.Now()
	defer func() { batchNanos.Add(int64(time.Since(start))) }()
	return c.Batch(ctx, reqs)
}

// codecInsert encodes every rule with enc, then sends them over c,
// rtnl.MaxBatch per sendmsg. enc is warm, as a running Device's encoder
// is: its buffer has held these rules before.
func codecInsert(ctx context.Context, c *rtnl.Conn, enc *tcflower.Encoder, reqs []rtnl.Request, b *bed, rules []rule, flags uint16) error {
	enc.Reset()
	reqs, err := encodeChunk(enc, reqs[:0], b, rules, flags)
	if err != nil {
		return err
	}
	for i, rep := range timedBatch(ctx, c, reqs) {
		if rep.Err != nil {
			f := rules[i].f
			return fmt.Errorf("add flower filter %s on %s chain %d prio %d: %w", f.ID, f.Port, f.Chain, f.Priority, rep.Err)
		}
	}
	return nil
}

// prepareCodec is method a (one socket) or b (parallel: one socket and
// goroutine per worker, each owning whole devices).
func prepareCodec(flags uint16, parallel bool) func(context.Context, *bed, []rule, int) (func() error, func(), error) {
	return func(ctx context.Context, b *bed, rules []rule, workers int) (func() error, func(), error) {
		parts := [][]rule{rules}
		if parallel {
			parts = split(rules, workers)
		}
		conns := make([]*rtnl.Conn, len(parts))
		encs := make([]tcflower.Encoder, len(parts))
		reqs := make([][]rtnl.Request, len(parts))
		for i, part := range parts {
			var err error
			if reqs[i], err = encodeChunk(&encs[i], make([]rtnl.Request, 0, len(part)), b, part, flags); err != nil {
				return nil, nil, err
			}
		}
		done := func() {
			for _, c := range conns {
				if c != nil {
					_ = c.Close()
				}
			}
		}
		for i := range conns {
			c, err := rtnl.Dial(b.ns)
			if err != nil {
				done()
				return nil, nil, err
			}
			conns[i] = c
		}
		run := func() error {
			if len(parts) == 1 {
				return codecInsert(ctx, conns[0], &encs[0], reqs[0], b, parts[0], flags)
			}
			errs := make([]error, len(parts))
			var wg sync.WaitGroup
			for i := range parts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = codecInsert(ctx, conns[i], &encs[i], reqs[i], b, parts[i], flags)
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		}
		return run, done, nil
	}
}

// preparePreEncoded is (a) with the encoding done before the clock starts:
// against (a) it gives the codec's share, against (e) rtnl's.
func preparePreEncoded(ctx context.Context, b *bed, rules []rule, _ int) (func() error, func(), error) {
	var enc tcflower.Encoder
	reqs, err := encodeChunk(&enc, make([]rtnl.Request, 0, len(rules)), b, rules, addFlags)
	if err != nil {
		return nil, nil, err
	}
	c, err := rtnl.Dial(b.ns)
	if err != nil {
		return nil, nil, err
	}
	run := func() error {
		for i, rep := range timedBatch(ctx, c, reqs) {
			if rep.Err != nil {
				return fmt.Errorf("add flower filter %s: %w", rules[i].f.ID, rep.Err)
			}
		}
		return nil
	}
	return run, func() { _ = c.Close() }, nil
}

// prepareDevice programs the rules through the nic/linux Device, as the
// engine does: clone and normalize each flow, allocate handles, encode,
// send with NLM_F_ECHO, decode the echoes and keep per-flow state.
func prepareDevice(ctx context.Context, b *bed, rules []rule, _ int) (func() error, func(), error) {
	var ports []nic.Port
	for i, d := range b.devs[1:] {
		ports = append(ports, nic.Port{Name: d, Kind: nic.PortRepresentor, VF: i, SwitchID: "bench"})
	}
	dev, err := linux.New(linux.Config{Uplink: b.devs[0], Ports: ports, NetNS: b.ns,
		Tunnel: &linux.TunnelConfig{Name: tunnelDev, DstPort: vxlanPort}, Log: quiet})
	if err != nil {
		return nil, nil, fmt.Errorf("open nic/linux device in netns %s: %w", b.name, err)
	}
	ops := make([]nic.Op, len(rules))
	for i, r := range rules {
		ops[i] = nic.Op{Kind: nic.OpAdd, Flow: r.f}
	}
	run := func() error {
		for off := 0; off < len(ops); off += chunk {
			part := ops[off:min(off+chunk, len(ops))]
			for i, err := range dev.Program(ctx, flow.Software, part) {
				if err != nil {
					return fmt.Errorf("program flow %s: %w", part[i].Flow.ID, err)
				}
			}
		}
		return nil
	}
	return run, func() { _ = dev.Close() }, nil
}

// prepareTC writes the rules as `tc -b` input (one file, or one per
// worker by device) and runs tc on them.
func prepareTC(parallel bool) func(context.Context, *bed, []rule, int) (func() error, func(), error) {
	return func(ctx context.Context, b *bed, rules []rule, workers int) (func() error, func(), error) {
		parts := [][]rule{rules}
		if parallel {
			parts = split(rules, workers)
		}
		dir, err := os.MkdirTemp("", "kbench-tc-")
		if err != nil {
			return nil, nil, fmt.Errorf("create tc batch dir: %w", err)
		}
		done := func() { _ = os.RemoveAll(dir) }
		var files []string
		for i, p := range parts {
			data, err := tcBatch(p)
			if err != nil {
				done()
				return nil, nil, err
			}
			path := filepath.Join(dir, fmt.Sprintf("part%d.tc", i))
			if err := os.WriteFile(path, data, 0o644); err != nil {
				done()
				return nil, nil, fmt.Errorf("write tc batch %s: %w", path, err)
			}
			files = append(files, path)
		}
		tc := tcPath()
		run := func() error {
			cmds := make([]*exec.Cmd, len(files))
			outs := make([]*limitedBuffer, len(files))
			for i, path := range files {
				outs[i] = &limitedBuffer{max: 4096}
				cmds[i] = exec.CommandContext(ctx, tc, "-n", b.name, "-b", path)
				cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
				if err := cmds[i].Start(); err != nil {
					return fmt.Errorf("start %s -b %s: %w", tc, path, err)
				}
			}
			var errs []error
			for i, c := range cmds {
				if err := c.Wait(); err != nil {
					errs = append(errs, fmt.Errorf("%s -n %s -b %s: %w: %s", tc, b.name, files[i], err, outs[i].b))
				}
			}
			return errors.Join(errs...)
		}
		return run, done, nil
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func tcPath() string {
	if p := os.Getenv("OFFLOADD_TC"); p != "" {
		return p
	}
	return "tc"
}

// vnlFlower is r as a vishvananda/netlink filter. The library has no
// action cookies, so these filters carry none; everything else is the
// same rule.
func vnlFlower(r rule, b *bed) (*netlink.Flower, error) {
	f := r.f
	m := f.Match
	if m != tcKeys(m) || m.EthType != flow.EthTypeIPv4 {
		return nil, fmt.Errorf("flow %s: vishvananda/netlink cannot express its match", f.ID)
	}
	chain := f.Chain
	fl := &netlink.Flower{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: int(b.ifindex[f.Port]), Parent: netlink.HANDLE_MIN_INGRESS,
			Priority: f.Priority, Protocol: unix.ETH_P_IP, Handle: r.handle, Chain: &chain},
		EthType: m.EthType,
		SkipHw:  true,
	}
	if m.IPProto != 0 {
		p := nl.IPProto(m.IPProto)
		fl.IPProto = &p
	}
	if m.IPSrc.IsValid() {
		fl.SrcIP, fl.SrcIPMask = prefixIPNet(m.IPSrc)
	}
	if m.IPDst.IsValid() {
		fl.DestIP, fl.DestIPMask = prefixIPNet(m.IPDst)
	}
	for _, p := range []struct {
		v   flow.Masked16
		dst *uint16
	}{{m.SrcPort, &fl.SrcPort}, {m.DstPort, &fl.DestPort}} {
		switch p.v.Mask {
		case 0:
		case 0xffff:
			*p.dst = p.v.Value
		default:
			return nil, fmt.Errorf("flow %s: vishvananda/netlink has no port masks", f.ID)
		}
	}
	for i, a := range f.Actions {
		switch a.Kind {
		case flow.ActDrop, flow.ActAccept:
			g := &netlink.GenericAction{ActionAttrs: netlink.ActionAttrs{Action: netlink.TC_ACT_SHOT}}
			if a.Kind == flow.ActAccept {
				g.Action = netlink.TC_ACT_OK
			}
			fl.Actions = append(fl.Actions, g)
		case flow.ActRedirect:
			ifindex, err := b.resolve(a.Port)
			if err != nil || a.Ingress {
				return nil, fmt.Errorf("flow %s: actions[%d]: redirect to %s: %v", f.ID, i, a.Port, err)
			}
			fl.Actions = append(fl.Actions, netlink.NewMirredAction(int(ifindex)))
		case flow.ActTunnelEncap:
			t := a.Encap
			if t == nil || !t.Src.Is4() || !t.Dst.Is4() || t.TTL != 0 || t.TOS != 0 || t.NoCsum {
				return nil, fmt.Errorf("flow %s: actions[%d]: vishvananda/netlink cannot express this encap", f.ID, i)
			}
			k := netlink.NewTunnelKeyAction()
			k.Action = netlink.TCA_TUNNEL_KEY_SET
			k.SrcAddr, k.DstAddr = net.IP(t.Src.AsSlice()), net.IP(t.Dst.AsSlice())
			k.KeyID, k.DestPort = t.VNI, t.DstPort
			fl.Actions = append(fl.Actions, k)
		default:
			return nil, fmt.Errorf("flow %s: actions[%d]: %s not expressed", f.ID, i, a.Kind)
		}
	}
	return fl, nil
}

func prefixIPNet(p netip.Prefix) (net.IP, net.IPMask) {
	return net.IP(p.Addr().AsSlice()), net.CIDRMask(p.Bits(), p.Addr().BitLen())
}

// prepareVNL builds the vishvananda/netlink filters and adds them one
// FilterAdd (one request and ack) at a time.
func prepareVNL(_ context.Context, b *bed, rules []rule, _ int) (func() error, func(), error) {
	fls := make([]*netlink.Flower, len(rules))
	for i, r := range rules {
		fl, err := vnlFlower(r, b)
		if err != nil {
			return nil, nil, err
		}
		fls[i] = fl
	}
	h, err := netlink.NewHandleAt(b.ns)
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink handle in netns %s: %w", b.name, err)
	}
	run := func() error {
		for i, fl := range fls {
			if err := h.FilterAdd(fl); err != nil {
				f := rules[i].f
				return fmt.Errorf("vishvananda FilterAdd %s on %s prio %d: %w", f.ID, f.Port, f.Priority, err)
			}
		}
		return nil
	}
	return run, func() { _ = h.Close() }, nil
}

// prepareFloor pre-encodes every rule as a complete netlink message,
// rtnl.MaxBatch to a buffer with sequence numbers set, on a plain
// blocking socket. The timed step only writes each buffer and reads
// until every request has its ack: the kernel's cost plus the fewest
// syscalls that batching allows.
func prepareFloor(flags uint16) func(context.Context, *bed, []rule, int) (func() error, func(), error) {
	return func(_ context.Context, b *bed, rules []rule, _ int) (func() error, func(), error) {
		var bufs [][]byte
		var counts []int
		var enc tcflower.Encoder
		seq := uint32(1)
		for off := 0; off < len(rules); off += rtnl.MaxBatch {
			part := rules[off:min(off+rtnl.MaxBatch, len(rules))]
			enc.Reset()
			reqs, err := encodeChunk(&enc, nil, b, part, flags)
			if err != nil {
				return nil, nil, err
			}
			var buf []byte
			for _, r := range reqs {
				buf = appendMessage(buf, r, seq)
				seq++
			}
			bufs = append(bufs, buf)
			counts = append(counts, len(reqs))
		}
		fd, err := netlinkSocketAt(b.ns)
		if err != nil {
			return nil, nil, err
		}
		rbuf := make([]byte, 1<<16)
		run := func() error {
			for i, buf := range bufs {
				if _, err := unix.Write(fd, buf); err != nil {
					return fmt.Errorf("write %d netlink requests: %w", counts[i], err)
				}
				for acks := 0; acks < counts[i]; {
					n, err := unix.Read(fd, rbuf)
					if err != nil {
						return fmt.Errorf("read netlink acks: %w", err)
					}
					got, err := countAcks(rbuf[:n])
					if err != nil {
						return err
					}
					acks += got
				}
			}
			return nil
		}
		return run, func() { _ = unix.Close(fd) }, nil
	}
}

// appendMessage appends r as one netlink message with NLM_F_REQUEST and
// NLM_F_ACK, as rtnl sends it.
func appendMessage(buf []byte, r rtnl.Request, seq uint32) []byte {
	n := unix.NLMSG_HDRLEN + len(r.Body)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(n))
	buf = binary.NativeEndian.AppendUint16(buf, r.Type)
	buf = binary.NativeEndian.AppendUint16(buf, r.Flags|rtnl.FlagRequest|rtnl.FlagAck)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0)
	buf = append(buf, r.Body...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	return buf
}

// countAcks counts the NLMSG_ERROR messages in one datagram and fails on
// the first that reports an error.
func countAcks(b []byte) (int, error) {
	acks := 0
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return acks, fmt.Errorf("netlink message length %d in a %d-byte datagram", l, len(b))
		}
		if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR {
			if l < unix.NLMSG_HDRLEN+4 {
				return acks, errors.New("short netlink ack")
			}
			if code := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); code != 0 {
				return acks, fmt.Errorf("netlink request %d: %w", binary.NativeEndian.Uint32(b[8:]), unix.Errno(-code))
			}
			acks++
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return acks, nil
}

// netlinkSocketAt opens a blocking NETLINK_ROUTE socket in ns with
// extended acks on, as rtnl.Dial does.
func netlinkSocketAt(ns netns.NsHandle) (int, error) {
	fd := -1
	err := nsthread.In(ns, func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE); err != nil {
			fd = -1
			return fmt.Errorf("open rtnetlink socket: %w", err)
		}
		return nil
	})
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
		if err != nil {
			err = fmt.Errorf("enable extended acks: %w", err)
		}
	}
	if err != nil {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		return -1, err
	}
	return fd, nil
}

// timeRun runs one prepared method and measures it.
// With prof set, the timed step is CPU-profiled into that file.
func timeRun(ctx context.Context, m method, b *bed, rules []rule, workers int, verify bool, prof string) (Sample, error) {
	run, done, err := m.prepare(ctx, b, rules, workers)
	if err != nil {
		return Sample{}, fmt.Errorf("prepare %s: %w", m.key, err)
	}
	defer done()
	runtime.GC()
	var before, after runtime.MemStats
	var pf *os.File
	if prof != "" {
		if pf, err = os.Create(prof); err != nil {
			return Sample{}, fmt.Errorf("create profile %s: %w", prof, err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return Sample{}, fmt.Errorf("start CPU profile: %w", err)
		}
	}
	runtime.ReadMemStats(&before)
	batchNanos.Store(0)
	start := time.Now()
	err = run()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if pf != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return Sample{}, fmt.Errorf("run %s: %w", m.key, err)
	}
	s := Sample{Method: m.key, Rules: len(rules), Seconds: elapsed.Seconds(), Rate: float64(len(rules)) / elapsed.Seconds()}
	if m.own {
		s.Allocs = float64(after.Mallocs-before.Mallocs) / float64(len(rules))
		s.BatchSeconds = time.Duration(batchNanos.Load()).Seconds()
	}
	if verify {
		n, err := b.count(ctx)
		if err != nil {
			return Sample{}, fmt.Errorf("verify %s: %w", m.key, err)
		}
		if n != len(rules) {
			return Sample{}, fmt.Errorf("verify %s: %d filters installed, want %d", m.key, n, len(rules))
		}
	}
	return s, nil
}
