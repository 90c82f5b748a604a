package conntrack

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/offloadd/offloadd/offload/flow"
)

// Timeouts are how long a connection lives without traffic, per protocol
// and TCP state.
type Timeouts struct {
	TCPSynSent     time.Duration
	TCPSynRecv     time.Duration
	TCPEstablished time.Duration
	TCPFinWait     time.Duration
	TCPCloseWait   time.Duration
	TCPLastAck     time.Duration
	TCPTimeWait    time.Duration
	TCPClose       time.Duration
	// TCPUnacknowledged caps the timeout of a connection that is not assured yet.
	TCPUnacknowledged time.Duration
	// UDP is for a flow without replies (or replied within UDPStreamAfter);
	// UDPStream for one with replies that lasts longer.
	UDP       time.Duration
	UDPStream time.Duration
	// UDPStreamAfter is how long after its first packet a replied UDP flow
	// becomes a stream (and assured).
	UDPStreamAfter time.Duration
	ICMP           time.Duration
	// Generic is for other IP protocols.
	Generic time.Duration
}

// DefaultTimeouts are the kernel's nf_conntrack defaults
// (net.netfilter.nf_conntrack_*_timeout*). UDPStream is 120 s, the value
// since Linux 5.0 (it was 180 s before).
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:        2 * time.Minute,
		TCPSynRecv:        60 * time.Second,
		TCPEstablished:    5 * 24 * time.Hour,
		TCPFinWait:        2 * time.Minute,
		TCPCloseWait:      60 * time.Second,
		TCPLastAck:        30 * time.Second,
		TCPTimeWait:       2 * time.Minute,
		TCPClose:          10 * time.Second,
		TCPUnacknowledged: 5 * time.Minute,
		UDP:               30 * time.Second,
		UDPStream:         120 * time.Second,
		UDPStreamAfter:    2 * time.Second,
		ICMP:              30 * time.Second,
		Generic:           600 * time.Second,
	}
}

func (t *Timeouts) tcp(s TCPState) time.Duration {
	switch s {
	case TCPSynSent, TCPSynSent2:
		return t.TCPSynSent
	case TCPSynRecv:
		return t.TCPSynRecv
	case TCPEstablished:
		return t.TCPEstablished
	case TCPFinWait:
		return t.TCPFinWait
	case TCPCloseWait:
		return t.TCPCloseWait
	case TCPLastAck:
		return t.TCPLastAck
	case TCPTimeWait:
		return t.TCPTimeWait
	}
	return t.TCPClose
}

// Status is a connection's status bits.
type Status uint16

// Status bits.
const (
	// SeenReply: a packet went in the reply direction (IPS_SEEN_REPLY).
	SeenReply Status = 1 << iota
	// Assured: the connection is confirmed as real (IPS_ASSURED).
	Assured
	// Offloaded: the NIC's flow table handles it (IPS_OFFLOAD, HW_OFFLOAD).
	Offloaded
	// SrcNAT and DstNAT: the connection's source or destination is mapped.
	SrcNAT
	DstNAT
)

var statusNames = []string{"seen-reply", "assured", "offloaded", "src-nat", "dst-nat"}

func (s Status) String() string {
	var out []string
	for i, n := range statusNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// Packet is what the tracker needs from a packet's headers.
type Packet struct {
	Tuple Tuple
	// TCPFlags are the TCP header's flag bits.
	TCPFlags uint8
	// ICMPError marks an ICMP or ICMPv6 error message; Inner is the tuple
	// of the packet it quotes, as that packet was sent.
	ICMPError bool
	Inner     Tuple
	// Fragment marks a non-first IP fragment: it has no L4 header, and the
	// emulator does not reassemble.
	Fragment bool
}

// Request is one ct action applied to one packet.
type Request struct {
	Zone   uint16
	Packet Packet
	// Commit confirms a new connection and applies Mark.
	Commit bool
	Mark   flow.Masked32
	// NAT, with a Kind, sets up NAT for a new connection from its range
	// and translates packets of connections that have NAT.
	NAT flow.NAT
	// Offload lets the tracker mark an established, assured TCP or UDP
	// connection offloaded (the device offloads conntrack).
	Offload bool
}

// Result is what the tracker decided for a packet.
type Result struct {
	// State is the packet's ct_state in flower's bits (flow.CTTracked, ...).
	State uint16
	Mark  uint32
	// TCPState is the connection's state after the packet (TCP only).
	TCPState TCPState
	// Committed is set when this packet confirmed a new connection.
	Committed bool
	// Offloaded is set when the connection is offloaded after this packet.
	Offloaded bool
	// NAT is set when the packet's addresses or ports must change to To.
	NAT bool
	To  Tuple
	// InnerNAT is set when an ICMP error's quoted packet must change to InnerTo.
	InnerNAT bool
	InnerTo  Tuple
	// Note says what happened, for traces ("new connection", "invalid: ...").
	Note string
}

type key struct {
	zone uint16
	t    Tuple
}

type dir uint8

const (
	dirOrig dir = iota
	dirReply
)

type conn struct {
	zone        uint16
	tuple       [2]Tuple // by dir
	tcp         TCPState
	status      Status
	mark        uint32
	expires     time.Time
	streamAfter time.Time // UDP: when a replied flow becomes a stream
	confirmed   bool
}

// Table is the connection table of every zone. It is safe for concurrent use.
type Table struct {
	mu       sync.Mutex
	timeouts Timeouts
	conns    map[key]*conn // by both directions' tuples
}

// New returns an empty table with the given timeouts.
func New(t Timeouts) *Table {
	return &Table{timeouts: t, conns: map[key]*conn{}}
}

// find returns the live connection a tuple belongs to and its direction.
// Called with t.mu held.
func (t *Table) find(zone uint16, tu Tuple, now time.Time) (*conn, dir) {
	c := t.conns[key{zone, tu}]
	if c == nil {
		return nil, 0
	}
	if !now.Before(c.expires) {
		t.remove(c)
		return nil, 0
	}
	if c.tuple[dirOrig] == tu {
		return c, dirOrig
	}
	return c, dirReply
}

func (t *Table) remove(c *conn) {
	for _, tu := range c.tuple {
		if t.conns[key{c.zone, tu}] == c {
			delete(t.conns, key{c.zone, tu})
		}
	}
}

func (t *Table) insert(c *conn) error {
	for _, tu := range c.tuple {
		if o := t.conns[key{c.zone, tu}]; o != nil && o != c {
			return fmt.Errorf("zone %d: %s clashes with a tracked connection", c.zone, tu)
		}
	}
	for _, tu := range c.tuple {
		t.conns[key{c.zone, tu}] = c
	}
	c.confirmed = true
	return nil
}

func invalid(note string) Result {
	return Result{State: flow.CTTracked | flow.CTInvalid, Note: "invalid: " + note}
}

// Track runs one packet through zone as act_ct does in software and
// returns its ct_state, the connection's mark, and the NAT to apply.
func (t *Table) Track(req Request, now time.Time) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := &req.Packet
	switch {
	case p.Fragment:
		return invalid("a non-first fragment: the emulator does not reassemble")
	case !p.Tuple.Valid():
		return invalid("no IP addresses")
	case p.ICMPError:
		return t.related(req, now)
	}
	c, d := t.find(req.Zone, p.Tuple, now)
	pending, seenBefore := false, c != nil && c.status&SeenReply != 0
	var res Result
	if c != nil && c.tuple[0].Proto == ProtoTCP {
		ns, r, reopen := t.tcpUpdate(c, d, p.TCPFlags)
		if reopen {
			t.remove(c)
			c = nil
		} else if ns == sIV {
			return r
		}
	}
	if c == nil {
		var note string
		if c, note = t.newConn(req.Zone, p, now); c == nil {
			return invalid(note)
		}
		pending, d = true, dirOrig
		res.Note = "new connection"
	}
	if d == dirReply {
		c.status |= SeenReply
	}
	if req.NAT.Kind != flow.NATNone && pending && c.status&(SrcNAT|DstNAT) == 0 {
		if err := t.setupNAT(c, req.NAT); err != nil {
			return invalid(err.Error())
		}
	}
	if req.NAT.Kind != flow.NATNone && c.status&(SrcNAT|DstNAT) != 0 {
		res.NAT, res.To = true, c.tuple[1-d].Reverse()
	}
	if req.Commit {
		if pending {
			if err := t.insert(c); err != nil {
				return invalid(err.Error())
			}
			res.Committed, pending = true, false
			res.Note = "new connection committed"
		}
		if req.Mark.Set() {
			c.mark = c.mark&^req.Mark.Mask | req.Mark.Value&req.Mark.Mask
		}
	}
	if c.confirmed {
		t.refresh(c, now)
	}
	switch {
	case d == dirReply:
		res.State = flow.CTTracked | flow.CTEstablished | flow.CTReply
	case c.status&SeenReply != 0:
		res.State = flow.CTTracked | flow.CTEstablished
	default:
		res.State = flow.CTTracked | flow.CTNew
	}
	if c.confirmed && c.status&Offloaded != 0 && !offloadable(c) {
		c.status &^= Offloaded
	}
	if c.confirmed && req.Offload && res.State&flow.CTEstablished != 0 && offloadable(c) {
		c.status |= Offloaded
	}
	if res.Note == "" {
		res.Note = "established"
		if res.State&flow.CTNew != 0 {
			res.Note = "new (unreplied) connection"
		}
	}
	res.Mark, res.TCPState, res.Offloaded = c.mark, c.tcp, c.status&Offloaded != 0
	if c.confirmed && p.TCPFlags&TCPRst != 0 && c.tuple[0].Proto == ProtoTCP && !seenBefore {
		// A reset before any reply: no connection ever existed.
		t.remove(c)
		res.Note = "reset before any reply: connection removed"
	}
	return res
}

// offloadable is act_ct's rule for handing a connection to the flow table:
// assured, and TCP in ESTABLISHED or UDP.
func offloadable(c *conn) bool {
	if c.status&Assured == 0 {
		return false
	}
	switch c.tuple[0].Proto {
	case ProtoTCP:
		return c.tcp == TCPEstablished
	case ProtoUDP:
		return true
	}
	return false
}

// newConn starts an unconfirmed connection for a packet that matched none,
// or returns why the packet cannot start one.
func (t *Table) newConn(zone uint16, p *Packet, now time.Time) (*conn, string) {
	tu := p.Tuple
	c := &conn{zone: zone, tuple: [2]Tuple{tu, tu.Reverse()}}
	switch {
	case tu.Proto == ProtoTCP:
		if !tcpFlagsValid(p.TCPFlags) {
			return nil, fmt.Sprintf("TCP flags %s are not a valid combination", tcpFlagsString(p.TCPFlags))
		}
		if tcpIndex(p.TCPFlags) != tcpSynSet {
			return nil, fmt.Sprintf("TCP %s without SYN for an unknown connection", tcpFlagsString(p.TCPFlags))
		}
		c.tcp = TCPSynSent
	case tu.isICMP():
		if !tu.isQuery() {
			return nil, fmt.Sprintf("%s type %d does not start a connection", ProtoName(tu.Proto), tu.ICMPType)
		}
	case tu.Proto == ProtoUDP:
		c.streamAfter = now.Add(t.timeouts.UDPStreamAfter)
	}
	return c, ""
}

// tcpUpdate moves a TCP connection through the state table. It returns the
// new state (sIV with an invalid result), or reopen when a SYN restarts a
// closed connection.
func (t *Table) tcpUpdate(c *conn, d dir, flags uint8) (TCPState, Result, bool) {
	if !tcpFlagsValid(flags) {
		return sIV, invalid(fmt.Sprintf("TCP flags %s are not a valid combination", tcpFlagsString(flags))), false
	}
	old := c.tcp
	ns := tcpTransitions[d][tcpIndex(flags)][old]
	switch {
	case ns == sIV:
		return sIV, invalid(fmt.Sprintf("TCP %s in state %s (%s direction)", tcpFlagsString(flags), old, dirName(d))), false
	case ns == sIG:
		return old, Result{}, false
	case ns == TCPSynSent && old >= TCPTimeWait:
		return ns, Result{}, true
	}
	c.tcp = ns
	if ns == TCPEstablished && (old == TCPSynRecv || old == TCPEstablished) && c.status&SeenReply != 0 {
		c.status |= Assured
	}
	if flags&TCPRst != 0 {
		c.tcp = TCPClose
	}
	return ns, Result{}, false
}

func dirName(d dir) string {
	if d == dirReply {
		return "reply"
	}
	return "original"
}

// refresh sets a confirmed connection's expiry from its state. Called with t.mu held.
func (t *Table) refresh(c *conn, now time.Time) {
	to := &t.timeouts
	var d time.Duration
	switch p := c.tuple[0].Proto; {
	case p == ProtoTCP:
		d = to.tcp(c.tcp)
		if c.status&Assured == 0 && d > to.TCPUnacknowledged {
			d = to.TCPUnacknowledged
		}
	case p == ProtoUDP:
		d = to.UDP
		if c.status&SeenReply != 0 && now.After(c.streamAfter) {
			d = to.UDPStream
			c.status |= Assured
		}
	case p == ProtoICMP || p == ProtoICMPv6:
		d = to.ICMP
	default:
		d = to.Generic
	}
	c.expires = now.Add(d)
}

// related classifies an ICMP error by the connection its quoted packet
// belongs to.
func (t *Table) related(req Request, now time.Time) Result {
	p := &req.Packet
	if !p.Inner.Valid() {
		return invalid("an ICMP error without a quoted IP header")
	}
	// The quoted packet went the other way: its reverse is this error's direction.
	c, d := t.find(req.Zone, p.Inner.Reverse(), now)
	if c == nil {
		return invalid(fmt.Sprintf("an ICMP error about %s, which is not tracked", p.Inner))
	}
	res := Result{State: flow.CTTracked | flow.CTRelated, Mark: c.mark, TCPState: c.tcp,
		Offloaded: c.status&Offloaded != 0, Note: "related to " + c.tuple[0].String()}
	if d == dirReply {
		res.State |= flow.CTReply
	}
	if req.NAT.Kind != flow.NATNone && c.status&(SrcNAT|DstNAT) != 0 {
		// The error's destination is translated like a packet of its
		// direction; the quoted packet back to what its sender sent.
		res.NAT, res.To = true, p.Tuple
		res.To.Dst = c.tuple[1-d].Reverse().Dst
		res.InnerNAT, res.InnerTo = true, c.tuple[1-d]
	}
	return res
}

// TrackOffloaded is the hardware's ct: it handles only packets of
// offloaded connections, like a NIC's connection table, and reports false
// for everything else, which then misses to software. A FIN or RST ends
// the offload (flow table teardown) and goes to software too, as does a
// commit that would change the mark.
func (t *Table) TrackOffloaded(req Request, now time.Time) (Result, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := &req.Packet
	if p.Fragment || p.ICMPError || !p.Tuple.Valid() {
		return Result{}, false
	}
	c, d := t.find(req.Zone, p.Tuple, now)
	if c == nil || c.status&Offloaded == 0 {
		return Result{}, false
	}
	if c.tuple[0].Proto == ProtoTCP && p.TCPFlags&(TCPFin|TCPRst|TCPSyn) != 0 {
		c.status &^= Offloaded
		return Result{}, false
	}
	if req.Commit && req.Mark.Set() && c.mark&^req.Mark.Mask|req.Mark.Value&req.Mark.Mask != c.mark {
		return Result{}, false
	}
	t.refresh(c, now)
	res := Result{State: flow.CTTracked | flow.CTEstablished, Mark: c.mark, TCPState: c.tcp, Offloaded: true,
		Note: "established, offloaded"}
	if d == dirReply {
		res.State |= flow.CTReply
	}
	if req.NAT.Kind != flow.NATNone && c.status&(SrcNAT|DstNAT) != 0 {
		res.NAT, res.To = true, c.tuple[1-d].Reverse()
	}
	return res, true
}

// Len is the number of live connections at now.
func (t *Table) Len(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	n := 0
	for k, c := range t.conns {
		if k.t == c.tuple[dirOrig] {
			n++
		}
	}
	return n
}

// Expire removes the connections whose timeout has passed at now and
// returns how many it removed.
func (t *Table) Expire(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expireLocked(now)
}

func (t *Table) expireLocked(now time.Time) int {
	n := 0
	for k, c := range t.conns {
		if k.t == c.tuple[dirOrig] && !now.Before(c.expires) {
			t.remove(c)
			n++
		}
	}
	return n
}

// Flush removes every connection.
func (t *Table) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.conns)
}

// addrIndex and addrAt map an address range to offsets (IPv6: within the
// low 64 bits, which is where ranges differ in practice).
func addrSpan(lo, hi netip.Addr) uint64 {
	if !hi.IsValid() || hi.Less(lo) {
		return 1
	}
	a, b := lo.As16(), hi.As16()
	if [8]byte(a[:8]) != [8]byte(b[:8]) {
		return 1 << 63
	}
	return be64(b[8:]) - be64(a[8:]) + 1
}

func addrAt(lo netip.Addr, off uint64) netip.Addr {
	a := lo.As16()
	v := be64(a[8:]) + off
	for i := range 8 {
		a[15-i] = byte(v >> (8 * i))
	}
	out := netip.AddrFrom16(a)
	if lo.Is4() {
		return out.Unmap()
	}
	return out
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b[:8] {
		v = v<<8 | uint64(x)
	}
	return v
}
