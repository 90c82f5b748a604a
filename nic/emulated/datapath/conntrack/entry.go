package conntrack

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Entry is one confirmed connection as it is exported and imported: what
// `conntrack -L` shows, and what live migration carries to another node.
type Entry struct {
	Zone uint16
	// Orig is the tuple of the first packet; Reply what a reply carries,
	// with NAT applied (they differ from each other's Reverse under NAT).
	Orig, Reply Tuple
	// TCPState is the TCP state (TCPNone for other protocols).
	TCPState TCPState
	Status   Status
	Mark     uint32
	// Timeout is the time left before the connection expires.
	Timeout time.Duration
}

// String renders the entry like one line of conntrack -L.
func (e Entry) String() string {
	s := fmt.Sprintf("zone=%d %s", e.Zone, ProtoName(e.Orig.Proto))
	s += fmt.Sprintf(" %d", int64(e.Timeout/time.Second))
	if e.Orig.Proto == ProtoTCP {
		s += " " + e.TCPState.String()
	}
	trim := func(t Tuple) string { return t.String()[len(ProtoName(t.Proto))+1:] }
	s += " " + trim(e.Orig) + " " + trim(e.Reply)
	if e.Status != 0 {
		s += " [" + e.Status.String() + "]"
	}
	return s + fmt.Sprintf(" mark=%d", e.Mark)
}

// Entries lists the live confirmed connections at now, ordered by zone and
// original tuple.
// Equivalent to: conntrack -L
func (t *Table) Entries(now time.Time) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	var out []Entry
	for k, c := range t.conns {
		if k.t != c.tuple[dirOrig] {
			continue
		}
		out = append(out, Entry{Zone: c.zone, Orig: c.tuple[dirOrig], Reply: c.tuple[dirReply],
			TCPState: c.tcp, Status: c.status, Mark: c.mark, Timeout: c.expires.Sub(now)})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Zone, b.Zone), compareTuple(a.Orig, b.Orig))
	})
	return out
}

func compareTuple(a, b Tuple) int {
	return cmp.Or(a.Src.Compare(b.Src), a.Dst.Compare(b.Dst), cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.SrcPort, b.SrcPort), cmp.Compare(a.DstPort, b.DstPort),
		cmp.Compare(a.ICMPID, b.ICMPID), cmp.Compare(a.ICMPType, b.ICMPType), cmp.Compare(a.ICMPCode, b.ICMPCode))
}

// Import creates or updates connections from entries, keyed by zone and
// original tuple; an entry whose reply tuple belongs to another connection
// is refused. Valid entries are imported even when others are refused;
// the error lists the refused ones. The Offloaded bit is imported as it
// is: the importing side decides by clearing it whether its NIC takes
// the connection.
// Equivalent to: conntrack -I (or -U when the entry exists)
func (t *Table) Import(entries []Entry, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for i, e := range entries {
		if err := t.importOne(e, now); err != nil {
			errs = append(errs, fmt.Errorf("import conntrack entry %d (zone %d %s): %w", i, e.Zone, e.Orig, err))
		}
	}
	return errors.Join(errs...)
}

func (t *Table) importOne(e Entry, now time.Time) error {
	switch {
	case !e.Orig.Valid() || !e.Reply.Valid():
		return errors.New("tuples need source and destination addresses of one family")
	case e.Orig.Src.Is4() != e.Reply.Src.Is4():
		return errors.New("original and reply tuples are of different families")
	case e.Orig.Proto != e.Reply.Proto:
		return errors.New("original and reply tuples are of different protocols")
	case e.Timeout <= 0:
		return errors.New("timeout must be positive")
	case e.Orig.Proto == ProtoTCP && (e.TCPState == TCPNone || e.TCPState >= numTCPStates):
		return fmt.Errorf("TCP state %s is not a tracked state", e.TCPState)
	case e.Orig.Proto != ProtoTCP && e.TCPState != TCPNone:
		return fmt.Errorf("TCP state %s on a %s connection", e.TCPState, ProtoName(e.Orig.Proto))
	}
	c, _ := t.find(e.Zone, e.Orig, now)
	if c == nil {
		c = &conn{zone: e.Zone}
	} else if c.tuple[dirOrig] != e.Orig {
		return fmt.Errorf("%s is the reply direction of %s", e.Orig, c.tuple[dirOrig])
	}
	if o := t.conns[key{e.Zone, e.Reply}]; o != nil && o != c {
		return fmt.Errorf("reply tuple %s belongs to another connection", e.Reply)
	}
	t.remove(c)
	c.tuple = [2]Tuple{e.Orig, e.Reply}
	c.tcp, c.status, c.mark = e.TCPState, e.Status, e.Mark
	c.expires = now.Add(e.Timeout)
	c.streamAfter = now
	return t.insert(c)
}

// Delete removes the connection a tuple belongs to (in either direction)
// and reports whether there was one.
// Equivalent to: conntrack -D
func (t *Table) Delete(zone uint16, tu Tuple) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conns[key{zone, tu}]
	if c != nil {
		t.remove(c)
	}
	return c != nil
}

// SetOffloaded marks or unmarks the connection of a tuple as offloaded and
// reports whether there was one; the live-migration handoff uses it to
// move connections out of a NIC before export.
func (t *Table) SetOffloaded(zone uint16, tu Tuple, on bool, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, _ := t.find(zone, tu, now)
	if c == nil {
		return false
	}
	if on {
		c.status |= Offloaded
	} else {
		c.status &^= Offloaded
	}
	return true
}
