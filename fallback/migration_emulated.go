package fallback

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
)

// EmulatedConnTable is the emulated datapath's connection table
// (*conntrack.Table).
type EmulatedConnTable interface {
	Entries(now time.Time) []conntrack.Entry
	Import(entries []conntrack.Entry, now time.Time) error
	Delete(zone uint16, tu conntrack.Tuple) bool
}

var _ EmulatedConnTable = (*conntrack.Table)(nil)

// EmulatedConns is a ConnTable over the emulated datapath's connection
// table. Exported entries leave out the Offloaded bit: the destination
// starts every connection in software and offloads it again when its
// flows are back in hardware.
type EmulatedConns struct {
	t   EmulatedConnTable
	now func() time.Time
}

var _ ConnTable = (*EmulatedConns)(nil)

// NewEmulatedConns adapts t; now is the datapath's clock (nil: time.Now).
func NewEmulatedConns(t EmulatedConnTable, now func() time.Time) *EmulatedConns {
	if now == nil {
		now = time.Now
	}
	return &EmulatedConns{t: t, now: now}
}

// Dump lists the live entries of zones.
func (c *EmulatedConns) Dump(ctx context.Context, zones []uint16) ([]ConnEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dump conntrack: %w", err)
	}
	var out []ConnEntry
	for _, e := range c.t.Entries(c.now()) {
		if slices.Contains(zones, e.Zone) {
			out = append(out, connFromEmulated(e))
		}
	}
	return out, nil
}

// Upsert imports the entries one at a time, so that each one's outcome is known.
func (c *EmulatedConns) Upsert(ctx context.Context, es []ConnEntry) ([]ConnPrev, error) {
	out := make([]ConnPrev, len(es))
	now := c.now()
	have := map[ConnKey]ConnEntry{}
	for _, e := range c.t.Entries(now) {
		ce := connFromEmulated(e)
		have[ce.Key()] = ce
	}
	for i, e := range es {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("import conntrack entries: %w", err)
		}
		if err := c.t.Import([]conntrack.Entry{connToEmulated(e)}, now); err != nil {
			return out, fmt.Errorf("import conntrack entry %s: %w", e.Key(), err)
		}
		prev, ok := have[e.Key()]
		out[i] = ConnPrev{Done: true, Existed: ok, Entry: prev}
		have[e.Key()] = e
	}
	return out, nil
}

// Delete removes the connections of the keys.
func (c *EmulatedConns) Delete(ctx context.Context, ks []ConnKey) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete conntrack entries: %w", err)
	}
	for _, k := range ks {
		c.t.Delete(k.Zone, tupleToEmulated(k.Proto, k.Orig))
	}
	return nil
}

var statusBits = []struct {
	emu conntrack.Status
	ips uint32
}{
	{conntrack.SeenReply, ConnSeenReply}, {conntrack.Assured, ConnAssured},
	{conntrack.SrcNAT, ConnSrcNAT}, {conntrack.DstNAT, ConnDstNAT},
}

func connFromEmulated(e conntrack.Entry) ConnEntry {
	ce := ConnEntry{Zone: e.Zone, Proto: e.Orig.Proto, Orig: tupleFromEmulated(e.Orig), Reply: tupleFromEmulated(e.Reply),
		Mark: e.Mark, Timeout: e.Timeout, Status: ConnConfirmed}
	for _, b := range statusBits {
		if e.Status&b.emu != 0 {
			ce.Status |= b.ips
		}
	}
	if e.Orig.Proto == conntrack.ProtoTCP {
		ce.TCP = &ConnTCP{State: TCPState(e.TCPState)}
	}
	return ce
}

func connToEmulated(e ConnEntry) conntrack.Entry {
	out := conntrack.Entry{Zone: e.Zone, Orig: tupleToEmulated(e.Proto, e.Orig), Reply: tupleToEmulated(e.Proto, e.Reply),
		Mark: e.Mark, Timeout: e.Timeout}
	for _, b := range statusBits {
		if e.Status&b.ips != 0 {
			out.Status |= b.emu
		}
	}
	if e.TCP != nil {
		out.TCPState = conntrack.TCPState(e.TCP.State)
	}
	return out
}

func tupleFromEmulated(t conntrack.Tuple) ConnTuple {
	return ConnTuple{Src: t.Src, Dst: t.Dst, SrcPort: t.SrcPort, DstPort: t.DstPort,
		ICMPID: t.ICMPID, ICMPType: t.ICMPType, ICMPCode: t.ICMPCode}
}

func tupleToEmulated(proto uint8, t ConnTuple) conntrack.Tuple {
	return conntrack.Tuple{Src: t.Src, Dst: t.Dst, Proto: proto, SrcPort: t.SrcPort, DstPort: t.DstPort,
		ICMPID: t.ICMPID, ICMPType: t.ICMPType, ICMPCode: t.ICMPCode}
}
