package linux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/linux/rtnl"
	"github.com/offloadd/offloadd/nic/linux/tcflower"
	"github.com/offloadd/offloadd/offload/flow"
)

// Device programs one NIC through tc flower. It implements nic.Device.
type Device struct {
	cfg  Config
	log  *slog.Logger
	ns   netns.NsHandle // netns.None() for the current namespace
	h    *netlink.Handle
	conn *rtnl.Conn
	tun  *TunnelConfig

	mu      sync.Mutex
	closed  bool
	ports   map[string]nic.Port // present managed ports
	wanted  map[string]nic.Port // configured ports, present or not
	ifindex map[string]int32
	names   map[int32]string
	qdisc   map[int32]bool       // clsact ensured
	planes  [3]map[string]*entry // by flow.Plane: skip_sw, skip_hw, no flag
	hashes  map[[12]byte]string  // cookie hash -> flow ID
	handles handles              // filter handles in use, over all filter lists
	enc     tcflower.Encoder

	// setMode is setDevlinkMode; tests replace it.
	setMode func(addr, mode string) error

	events    chan nic.Event
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ nic.Device         = (*Device)(nil)
	_ nic.Adopter        = (*Device)(nil)
	_ nic.AllFlowsReader = (*Device)(nil)
)

// entry is one installed copy of a flow.
type entry struct {
	flow      *flow.Flow // normalized, as programmed; may be shared with the caller
	cookie    [tcflower.CookieLen]byte
	ifindex   int32
	chain     uint32
	prio      uint16
	proto     uint16
	handle    uint32
	inHW      bool
	inHWCount uint32
	// moved marks a copy whose filter a handoff gave to the other plane:
	// the kernel no longer holds it in this plane.
	moved bool
}

func (e *entry) key() tpKey { return tpKey{e.ifindex, e.chain, e.prio} }

// tpKey names a tc filter list (port, chain, priority). Handles need only
// be unique per list; the device keeps them unique over all lists so a
// handle also names one copy in nic.Installed.
type tpKey struct {
	ifindex int32
	chain   uint32
	prio    uint16
}

type handles struct {
	next uint32
	used map[uint32]bool
}

// New opens the device: a netlink socket and link handle in cfg.NetNS,
// the VXLAN device (created when absent), and a watch of link changes.
func New(cfg Config) (*Device, error) {
	d := &Device{
		cfg: cfg, log: cfg.Log, ns: cfg.NetNS,
		ports: map[string]nic.Port{}, wanted: map[string]nic.Port{},
		ifindex: map[string]int32{}, names: map[int32]string{}, qdisc: map[int32]bool{},
		planes: [3]map[string]*entry{{}, {}, {}}, hashes: map[[12]byte]string{}, handles: handles{next: 1, used: map[uint32]bool{}},
		events: make(chan nic.Event, 256), done: make(chan struct{}),
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d.setMode = d.setDevlinkMode
	if d.ns == 0 {
		d.ns = netns.None()
	}
	var err error
	if d.ns.IsOpen() {
		d.h, err = netlink.NewHandleAt(d.ns)
	} else {
		d.h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	if d.conn, err = rtnl.Dial(d.ns); err != nil {
		d.h.Close()
		return nil, err
	}
	for _, p := range cfg.Ports {
		d.wanted[p.Name] = p
	}
	if cfg.Uplink != "" {
		if _, ok := d.wanted[cfg.Uplink]; !ok {
			d.wanted[cfg.Uplink] = nic.Port{Name: cfg.Uplink, Kind: nic.PortUplink, VF: -1}
		}
	}
	if cfg.Tunnel != nil {
		t := cfg.Tunnel.withDefaults()
		d.tun = &t
		if err := d.ensureVXLAN(t); err != nil {
			d.closeConns()
			return nil, err
		}
		d.wanted[t.Name] = nic.Port{Name: t.Name, Kind: nic.PortTunnel, VF: -1, TunnelDstPort: t.DstPort}
	}
	ch, err := d.subscribe()
	if err != nil {
		d.closeConns()
		return nil, err
	}
	d.refresh()
	d.mu.Lock()
	d.syncPortsLocked()
	d.mu.Unlock()
	d.wg.Add(1)
	go d.watch(ch)
	return d, nil
}

func (d *Device) closeConns() {
	_ = d.conn.Close()
	d.h.Close()
}

// Info describes the device. It reads the eswitch mode under the lock
// SetEswitchMode writes it with.
func (d *Device) Info() nic.Info {
	d.mu.Lock()
	in := d.cfg.Info
	d.mu.Unlock()
	if in.Name == "" {
		in.Name = d.cfg.Uplink
	}
	if in.Profile == "" && d.cfg.Profile != nil {
		in.Profile = d.cfg.Profile.Name
	}
	return in
}

// Profile is the configured capability profile (nil when unknown).
func (d *Device) Profile() *nic.Profile { return d.cfg.Profile }

// Ports lists the managed ports that exist, sorted by name.
func (d *Device) Ports() []nic.Port {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]nic.Port, 0, len(d.ports))
	for _, p := range d.ports {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b nic.Port) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// SetEswitchMode sets the PF's devlink eswitch mode; it needs
// Info.PCIAddress. Equivalent to: devlink dev eswitch set pci/ADDR mode M.
func (d *Device) SetEswitchMode(_ context.Context, mode nic.EswitchMode) error {
	addr := d.cfg.Info.PCIAddress
	if addr == "" {
		return fmt.Errorf("set eswitch mode of %s: no PCI address configured: %w", d.cfg.Uplink, nic.ErrNotFound)
	}
	if err := d.setMode(addr, mode.String()); err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg.Info.EswitchMode = mode
	d.mu.Unlock()
	return nil
}

// setDevlinkMode sets a PCI devlink device's eswitch mode.
// Equivalent to: devlink dev eswitch set pci/ADDR mode M.
func (d *Device) setDevlinkMode(addr, mode string) error {
	dev, err := d.h.DevLinkGetDeviceByName("pci", addr)
	if err != nil {
		return fmt.Errorf("find devlink device pci/%s: %w", addr, err)
	}
	if err := d.h.DevLinkSetEswitchMode(dev, mode); err != nil {
		return fmt.Errorf("set eswitch mode of pci/%s to %s: %w", addr, mode, err)
	}
	return nil
}

// Capacity reports the hardware copies the device holds; the total is
// unknown (0): drivers do not tell it through tc.
func (d *Device) Capacity() (used, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := range d.planes {
		for _, e := range d.planes[p] {
			if !e.moved && (flow.Plane(p) == flow.Hardware || flow.Plane(p) == flow.Both && e.inHW) {
				used++
			}
		}
	}
	return used, 0
}

// Events delivers port changes seen on the links; Close closes it.
func (d *Device) Events() <-chan nic.Event { return d.events }

// Close stops the link watch and closes the sockets. Installed filters stay.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.done)
		d.wg.Wait()
		d.closeConns()
		close(d.events)
	})
	return nil
}

// Adopt tells the device the flow IDs it may find in its filters' cookies,
// so Flows maps them back to IDs after a restart without deleting anything.
func (d *Device) Adopt(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		d.learn(id)
	}
}

func (d *Device) learn(id string) {
	d.learnCookie(id, tcflower.CookieFor(id))
}

// learnCookie records that cookie c marks flow id's filters.
func (d *Device) learnCookie(id string, c [tcflower.CookieLen]byte) {
	h, _ := tcflower.ParseCookie(c[:])
	if old, ok := d.hashes[h]; ok && old != id && strings.HasPrefix(old, OrphanPrefix) {
		// Known under its orphan name until now: the next Flows adopts it as id.
		for p := range d.planes {
			delete(d.planes[p], old)
		}
	}
	d.hashes[h] = id
}

// ensureQdisc adds a clsact qdisc on ifindex unless one is there (or an
// ingress qdisc, which takes the same filters).
// Equivalent to: tc qdisc add dev DEV clsact.
func (d *Device) ensureQdisc(port string, ifindex int32) error {
	if d.qdisc[ifindex] {
		return nil
	}
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: int(ifindex), Parent: netlink.HANDLE_CLSACT,
			Handle: netlink.MakeHandle(0xffff, 0)},
		QdiscType: "clsact",
	}
	if err := d.h.QdiscAdd(q); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add clsact qdisc on %s: %w", port, err)
	}
	d.qdisc[ifindex] = true
	return nil
}

// resolve returns the ifindex of a link in the device's namespace.
func (d *Device) resolve(name string) (int32, error) {
	if i, ok := d.ifindex[name]; ok {
		return i, nil
	}
	l, err := d.h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("look up link %s: %w", name, err)
	}
	i := int32(l.Attrs().Index)
	d.ifindex[name], d.names[i] = i, name
	return i, nil
}

func (d *Device) name(ifindex int32) string {
	if n, ok := d.names[ifindex]; ok {
		return n
	}
	l, err := d.h.LinkByIndex(int(ifindex))
	if err != nil {
		return ""
	}
	n := l.Attrs().Name
	d.ifindex[n], d.names[ifindex] = ifindex, n
	return n
}

func (d *Device) allocHandle(tpKey) uint32 {
	hs := &d.handles
	for hs.used[hs.next] || hs.next == 0 {
		hs.next++
	}
	h := hs.next
	hs.used[h] = true
	hs.next++
	return h
}

func (d *Device) markHandle(_ tpKey, h uint32) { d.handles.used[h] = true }

func (d *Device) freeHandle(_ tpKey, h uint32) {
	delete(d.handles.used, h)
	if h < d.handles.next {
		d.handles.next = h
	}
}

// Program applies ops to one plane; see nic.Device. Adds and replaces are
// RTM_NEWTFILTER with NLM_F_ECHO on the hardware plane (read back for in_hw), deletes
// RTM_DELTFILTER by handle; consecutive ops share one sendmsg.
func (d *Device) Program(ctx context.Context, plane flow.Plane, ops []nic.Op) []error {
	errs := make([]error, len(ops))
	if len(ops) == 0 {
		return errs
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fill := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if d.closed {
		return fill(nic.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fill(err)
	}
	b := &batch{d: d, plane: plane, ctx: ctx, errs: errs, overlay: map[string]*entry{}}
	for i, op := range ops {
		b.add(i, op)
	}
	b.flush()
	return errs
}

// step is one op's part of a batch.
type step struct {
	op   int
	kind nic.OpKind
	id   string
	req  int    // index of its request
	next *entry // state after success (nil for delete)
	prev *entry // state before
	from *entry // the other plane's copy a handoff takes over
}

type batch struct {
	d       *Device
	plane   flow.Plane
	ctx     context.Context
	errs    []error
	reqs    []rtnl.Request
	steps   []step
	overlay map[string]*entry // speculative state of this batch, nil = deleted
}

func (b *batch) lookup(id string) *entry {
	if e, ok := b.overlay[id]; ok {
		return e
	}
	if e := b.d.planes[b.plane][id]; e != nil && !e.moved {
		return e
	}
	return nil
}

// handoffFrom returns another plane's copy of f when it sits in the
// filter list f goes to with the same match. cls_flower refuses a second
// filter with the same key in one list whatever its skip flags, so such a
// copy is taken over by a replace of its handle with the new flags: the
// kernel installs the new copy before it removes the old one.
func (b *batch) handoffFrom(nf *flow.Flow, ifindex int32) *entry {
	for p := range b.d.planes {
		if flow.Plane(p) == b.plane {
			continue
		}
		o := b.d.planes[p][nf.ID]
		if o == nil || o.moved || o.ifindex != ifindex || o.chain != nf.Chain || o.prio != nf.Priority ||
			o.proto != tcflower.Protocol(&nf.Match) || o.flow.Match != nf.Match {
			continue
		}
		return o
	}
	return nil
}

func verb(k nic.OpKind) string {
	switch k {
	case nic.OpAdd:
		return "add"
	case nic.OpReplace:
		return "replace"
	}
	return "delete"
}

// prepare builds the entry and request body for programming nf, a
// normalized flow (see flow.Normalized) the entry keeps.
func (b *batch) prepare(nf *flow.Flow, handle uint32) (*entry, []byte, error) {
	d := b.d
	ifindex, err := d.resolve(nf.Port)
	if err != nil {
		return nil, nil, err
	}
	if err := d.ensureQdisc(nf.Port, ifindex); err != nil {
		return nil, nil, err
	}
	e := &entry{flow: nf, cookie: tcflower.CookieFor(nf.ID), ifindex: ifindex, chain: nf.Chain, prio: nf.Priority, proto: tcflower.Protocol(&nf.Match)}
	if handle == 0 {
		handle = d.allocHandle(e.key())
	}
	e.handle = handle
	body, err := d.enc.Filter(nf, tcflower.Params{Ifindex: ifindex, Plane: b.plane, Handle: handle, Resolve: d.resolve, Cookie: e.cookie[:]})
	if err != nil {
		return nil, nil, err
	}
	return e, body, nil
}

func (b *batch) add(i int, op nic.Op) {
	d := b.d
	if op.Flow == nil || op.Flow.ID == "" {
		b.errs[i] = fmt.Errorf("%s op %d: no flow ID", op.Kind, i)
		return
	}
	f := op.Flow
	prev := b.lookup(f.ID)
	switch op.Kind {
	case nic.OpAdd:
		if prev != nil {
			b.errs[i] = fmt.Errorf("add flow %s in %s: %w", f.ID, b.plane, nic.ErrExists)
			return
		}
		nf := flow.Normalized(f)
		if ifindex, err := d.resolve(nf.Port); err == nil {
			if from := b.handoffFrom(nf, ifindex); from != nil {
				e, body, err := b.prepare(nf, from.handle)
				if err != nil {
					b.errs[i] = fmt.Errorf("add flow %s on %s: %w", f.ID, f.Port, err)
					return
				}
				b.push(step{op: i, kind: op.Kind, id: f.ID, next: e, from: from},
					rtnl.Request{Type: tcflower.RTMNewTFilter, Flags: rtnl.FlagReplace | b.echo(), Body: body})
				return
			}
		}
		e, body, err := b.prepare(nf, 0)
		if err != nil {
			if e != nil {
				d.freeHandle(e.key(), e.handle)
			}
			b.errs[i] = fmt.Errorf("add flow %s on %s: %w", f.ID, f.Port, err)
			return
		}
		b.push(step{op: i, kind: op.Kind, id: f.ID, next: e},
			rtnl.Request{Type: tcflower.RTMNewTFilter, Flags: rtnl.FlagCreate | rtnl.FlagExcl | b.echo(), Body: body})
	case nic.OpReplace:
		if prev == nil {
			b.errs[i] = fmt.Errorf("replace flow %s in %s: %w", f.ID, b.plane, nic.ErrNotFound)
			return
		}
		nf := flow.Normalized(f)
		ifindex, err := d.resolve(nf.Port)
		if err != nil {
			b.errs[i] = fmt.Errorf("replace flow %s on %s: %w", f.ID, f.Port, err)
			return
		}
		same := ifindex == prev.ifindex && nf.Chain == prev.chain && nf.Priority == prev.prio &&
			tcflower.Protocol(&nf.Match) == prev.proto
		if !same {
			// Another filter list: install the new copy, then remove the
			// old one, in their own round trips.
			b.flush()
			b.move(i, nf, prev)
			return
		}
		e, body, err := b.prepare(nf, prev.handle)
		if err != nil {
			b.errs[i] = fmt.Errorf("replace flow %s on %s: %w", f.ID, f.Port, err)
			return
		}
		b.push(step{op: i, kind: op.Kind, id: f.ID, next: e, prev: prev},
			rtnl.Request{Type: tcflower.RTMNewTFilter, Flags: rtnl.FlagReplace | b.echo(), Body: body})
	case nic.OpDelete:
		if cur := d.planes[b.plane][f.ID]; prev == nil && cur != nil && cur.moved {
			// Its filter went to the other plane: nothing left to remove.
			if _, staged := b.overlay[f.ID]; !staged {
				delete(d.planes[b.plane], f.ID)
				return
			}
		}
		if prev == nil {
			b.errs[i] = fmt.Errorf("delete flow %s in %s: %w", f.ID, b.plane, nic.ErrNotFound)
			return
		}
		body := d.enc.Delete(prev.ifindex, 0, prev.handle, prev.chain, prev.prio, prev.proto)
		b.push(step{op: i, kind: op.Kind, id: f.ID, prev: prev},
			rtnl.Request{Type: tcflower.RTMDelTFilter, Body: body})
	default:
		b.errs[i] = fmt.Errorf("op %d: unknown kind %d", i, op.Kind)
	}
}

// echo asks for the kernel's copy of an added filter where it says
// whether the rule really runs in hardware (in_hw): skip_sw and no skip
// flag. On the software plane it carries nothing and halves the
// insertion rate.
func (b *batch) echo() uint16 {
	if b.plane != flow.Software {
		return rtnl.FlagEcho
	}
	return 0
}

func (b *batch) push(s step, r rtnl.Request) {
	s.req = len(b.reqs)
	b.reqs = append(b.reqs, r)
	b.steps = append(b.steps, s)
	b.overlay[s.id] = s.next
}

// move replaces prev by f (normalized) on another port, chain, priority or
// protocol: add first, delete the old copy only when the add worked.
func (b *batch) move(i int, f *flow.Flow, prev *entry) {
	e, body, err := b.prepare(f, 0)
	if err != nil {
		if e != nil {
			b.d.freeHandle(e.key(), e.handle)
		}
		b.errs[i] = fmt.Errorf("replace flow %s on %s: %w", f.ID, f.Port, err)
		return
	}
	b.push(step{op: i, kind: nic.OpAdd, id: f.ID, next: e},
		rtnl.Request{Type: tcflower.RTMNewTFilter, Flags: rtnl.FlagCreate | rtnl.FlagExcl | b.echo(), Body: body})
	b.flush()
	if b.errs[i] != nil {
		return
	}
	body = b.d.enc.Delete(prev.ifindex, 0, prev.handle, prev.chain, prev.prio, prev.proto)
	b.reqs = append(b.reqs, rtnl.Request{Type: tcflower.RTMDelTFilter, Body: body})
	rep := b.d.conn.Batch(b.ctx, b.reqs)
	b.reqs = b.reqs[:0]
	b.d.freeHandle(prev.key(), prev.handle)
	if err := rep[0].Err; err != nil && !errors.Is(err, syscall.ENOENT) {
		b.d.log.Warn("remove the old copy of a moved flow", "flow", f.ID, "handle", prev.handle, "err", err)
	}
}

// flush sends the pending requests and applies their results.
func (b *batch) flush() {
	if len(b.reqs) == 0 {
		return
	}
	d := b.d
	replies := d.conn.Batch(b.ctx, b.reqs)
	for _, s := range b.steps {
		rep := replies[s.req]
		if rep.Err != nil {
			b.errs[s.op] = d.opError(s, b.plane, rep.Err)
			if s.next != nil && s.from == nil && (s.prev == nil || s.next.handle != s.prev.handle) {
				d.freeHandle(s.next.key(), s.next.handle)
			}
			if s.kind == nic.OpDelete && errors.Is(rep.Err, syscall.ENOENT) {
				d.forget(b.plane, s.id, s.prev)
			}
			continue
		}
		if s.next == nil {
			d.forget(b.plane, s.id, s.prev)
			continue
		}
		e := s.next
		if b.plane == flow.Hardware {
			e.inHW = true
		}
		for _, m := range rep.Messages {
			if f, err := tcflower.Decode(m, nil); err == nil && f.Handle == e.handle {
				e.inHW, e.inHWCount = f.InHW(), f.InHWCount
			}
		}
		if b.plane == flow.Both && !e.inHW {
			// Installed in software; the driver did not take it, and
			// said why in the ack's warning if it said anything.
			msg := rep.Warning
			if msg == "" {
				msg = fmt.Sprintf("no driver of %s offloaded the filter (not_in_hw)", d.names[e.ifindex])
			}
			b.errs[s.op] = &nic.NotInHWError{Refusal: &nic.RefusedError{Kind: nic.RefusedUnsupported, Message: msg}}
		}
		d.planes[b.plane][s.id] = e
		d.markHandle(e.key(), e.handle)
		d.learnCookie(s.id, e.cookie)
		if s.from != nil {
			s.from.moved = true
		}
	}
	b.reqs, b.steps = b.reqs[:0], b.steps[:0]
	clear(b.overlay)
	d.enc.Reset()
}

// forget drops the plane's entry for id if it is still prev.
func (d *Device) forget(plane flow.Plane, id string, prev *entry) {
	if cur, ok := d.planes[plane][id]; ok && cur == prev {
		delete(d.planes[plane], id)
		for p := range d.planes {
			if o := d.planes[p][id]; flow.Plane(p) != plane && o != nil && !o.moved && o.handle == prev.handle && o.ifindex == prev.ifindex {
				return // another plane's copy took the filter over
			}
		}
		d.freeHandle(prev.key(), prev.handle)
	}
}

// opError words a kernel answer: adds and replaces are refusals with the
// kernel's extack text; a missing filter is nic.ErrNotFound.
func (d *Device) opError(s step, plane flow.Plane, err error) error {
	e := s.next
	if e == nil {
		e = s.prev
	}
	port := d.names[e.ifindex]
	var re *rtnl.Error
	if !errors.As(err, &re) {
		return fmt.Errorf("%s flower filter on %s chain %d prio %d: %w", verb(s.kind), port, e.chain, e.prio, err)
	}
	if re.Errno == syscall.ENOENT && s.kind != nic.OpAdd {
		return fmt.Errorf("%s flower filter on %s chain %d prio %d handle %d: %s: %w",
			verb(s.kind), port, e.chain, e.prio, e.handle, re.Error(), nic.ErrNotFound)
	}
	if s.kind == nic.OpDelete {
		return fmt.Errorf("delete flower filter on %s chain %d prio %d handle %d: %w", port, e.chain, e.prio, e.handle, re)
	}
	return fmt.Errorf("%s flower filter in %s on %s chain %d prio %d: %w",
		verb(s.kind), plane, port, e.chain, e.prio, nic.Refusal(re.Errno, re.Message))
}

// OrphanPrefix starts the ID Flows gives a filter with an offloadd cookie
// of no known flow (Adopt makes flows known).
const OrphanPrefix = "orphan-"

// Flows dumps the filters of every managed port and returns the plane's
// copies that carry an offloadd cookie, with counters. A cookie of no known
// flow is reported under OrphanPrefix and the cookie's hash, so a
// restarting engine sees it as unwanted and deletes it.
func (d *Device) Flows(ctx context.Context, plane flow.Plane) ([]nic.Installed, error) {
	return d.dump(ctx, func(p flow.Plane) bool { return p == plane })
}

// AllFlows is Flows for both planes from one dump (nic.AllFlowsReader).
func (d *Device) AllFlows(ctx context.Context) ([]nic.Installed, error) {
	return d.dump(ctx, func(flow.Plane) bool { return true })
}

func (d *Device) dump(ctx context.Context, want func(flow.Plane) bool) ([]nic.Installed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nic.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(d.ports))
	for n := range d.ports {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []nic.Installed
	var seen [3]map[string]bool
	now := time.Now()
	for _, port := range names {
		ifindex, err := d.resolve(port)
		if err != nil {
			continue // the link went away; the link watch reports it
		}
		d.enc.Reset()
		msgs, err := d.conn.Dump(ctx, tcflower.RTMGetTFilter, d.enc.Dump(ifindex, 0))
		if err != nil {
			if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
				continue // no qdisc on the port: no filters
			}
			return nil, fmt.Errorf("dump filters of %s: %w", port, err)
		}
		for _, m := range msgs {
			f, err := tcflower.Decode(m, d.name)
			if err != nil {
				d.log.Warn("skip a filter offloadd cannot decode", "port", port, "err", err)
				continue
			}
			plane := f.Plane()
			if f.Flow == nil || len(f.Flow.Actions) == 0 || !want(plane) {
				continue
			}
			h, ok := tcflower.ParseCookie(f.Cookie)
			if !ok {
				continue
			}
			id, ok := d.hashes[h]
			if !ok {
				// Ours, but of no flow this daemon knows (its state was lost):
				// report it under a name of its own so the engine can remove it.
				id = fmt.Sprintf("%s%x", OrphanPrefix, h)
				d.hashes[h] = id
				d.log.Warn("found an offloadd filter of an unknown flow", "port", port, "chain", f.Chain, "prio", f.Priority, "handle", f.Handle, "reported_as", id)
			}
			if seen[plane] == nil {
				seen[plane] = map[string]bool{}
			}
			if seen[plane][id] {
				d.log.Warn("skip a second filter of one flow", "flow", id, "port", port, "handle", f.Handle)
				continue
			}
			seen[plane][id] = true
			out = append(out, d.installed(plane, id, f, now))
		}
	}
	return out, nil
}

// installed turns a dumped filter of flow id into nic.Installed, adopting
// it into the device's state when the device did not know the copy. The
// decoded filter is the device's own, so it is kept, not copied; callers
// of Flows must not modify what they get.
func (d *Device) installed(plane flow.Plane, id string, f *tcflower.Filter, now time.Time) nic.Installed {
	f.Flow.ID = id
	e := d.planes[plane][id]
	switch {
	case e == nil || e.moved || e.handle != f.Handle || e.ifindex != f.Ifindex:
		e = &entry{flow: f.Flow, ifindex: f.Ifindex, chain: f.Chain, prio: f.Priority, proto: f.Protocol, handle: f.Handle}
		copy(e.cookie[:], f.Cookie)
		d.planes[plane][id] = e
		d.markHandle(e.key(), e.handle)
	case !d.sameRule(e.flow, f):
		e.flow = f.Flow // changed behind our back: report what the kernel holds
	}
	e.inHW, e.inHWCount = f.InHW(), f.InHWCount
	st := f.Stats()
	c := nic.Counters{Packets: st.Packets, Bytes: st.Bytes}
	if st.Used {
		c.LastUsed = now.Add(-st.LastUsed)
	}
	in := nic.Installed{Flow: e.flow, Plane: plane, InHW: f.InHW(), InHWCount: f.InHWCount, Counters: c, Handle: f.Handle}
	if plane == flow.Both && st.HasHW {
		// The kernel's totals include the hardware part (Sent hardware).
		in.HWCounters = nic.Counters{Packets: st.HWPackets, Bytes: st.HWBytes, LastUsed: c.LastUsed}
		in.Counters.Packets -= min(st.HWPackets, st.Packets)
		in.Counters.Bytes -= min(st.HWBytes, st.Bytes)
	}
	return in
}

// sameRule reports whether stored and the dumped filter are the same tc
// rule: stored, encoded and decoded, must equal what the kernel holds.
// It absorbs what tc cannot tell apart (a NAT range of one, default
// verdicts), so the flow as programmed is reported back.
func (d *Device) sameRule(stored *flow.Flow, f *tcflower.Filter) bool {
	var enc tcflower.Encoder
	body, err := enc.Filter(stored, tcflower.Params{Ifindex: f.Ifindex, Handle: f.Handle, Plane: f.Plane(), Resolve: d.resolve})
	if err != nil {
		return false
	}
	canon, err := tcflower.Decode(body, d.name)
	if err != nil {
		return false
	}
	canon.Flow.ID, canon.Flow.Policy = f.Flow.ID, f.Flow.Policy
	return canon.Flow.Equal(f.Flow)
}
