package fallback

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// KernelConntrack is the Linux kernel's conntrack table of one network
// namespace, over ctnetlink (ti-mo/conntrack).
//
// Entries are created with the status bits ctnetlink lets a caller set
// (SEEN_REPLY, ASSURED), their TCP state, window scales and flags, mark,
// zone and remaining timeout. The kernel starts window tracking afresh
// from the next packet of each direction, so established connections
// continue without a handshake. Entries with NAT are refused: ctnetlink
// needs CTA_NAT attributes for the kernel to translate, and
// ti-mo/conntrack v0.6.0 cannot send them.
type KernelConntrack struct {
	mu sync.Mutex
	c  *conntrack.Conn
}

var _ ConnTable = (*KernelConntrack)(nil)

// NewKernelConntrack dials ctnetlink in the network namespace whose file
// descriptor is netnsFD; 0 means the caller's namespace.
func NewKernelConntrack(netnsFD int) (*KernelConntrack, error) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: netnsFD})
	if err != nil {
		return nil, fmt.Errorf("dial ctnetlink: %w", err)
	}
	return &KernelConntrack{c: c}, nil
}

// Close closes the netlink socket.
func (k *KernelConntrack) Close() error { return k.c.Close() }

// Dump lists the entries of zones.
// Equivalent to: conntrack -L -w ZONE
func (k *KernelConntrack) Dump(ctx context.Context, zones []uint16) ([]ConnEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dump conntrack: %w", err)
	}
	k.mu.Lock()
	flows, err := k.c.Dump(nil)
	k.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("dump conntrack: %w", err)
	}
	var out []ConnEntry
	for _, f := range flows {
		if slices.Contains(zones, f.Zone) && f.Status&conntrack.StatusDying == 0 {
			out = append(out, connFromKernel(f))
		}
	}
	return out, nil
}

// settable are the status bits ctnetlink lets a caller set.
const settable = conntrack.StatusSeenReply | conntrack.StatusAssured

// Upsert creates each entry or, when one exists (EEXIST), reads it and
// updates it.
// Equivalent to: conntrack -I ... || conntrack -U ...
func (k *KernelConntrack) Upsert(ctx context.Context, es []ConnEntry) ([]ConnPrev, error) {
	out := make([]ConnPrev, len(es))
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, e := range es {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("import conntrack entries: %w", err)
		}
		if e.SNAT() || e.DNAT() {
			return out, fmt.Errorf("import conntrack entry %s: it uses NAT, which this backend cannot set up over ctnetlink", e.Key())
		}
		f := connToKernel(e)
		// Kernels since 3.x mark a new entry CONFIRMED before applying
		// CTA_STATUS, and refuse a status that would clear it (EBUSY).
		f.Status = f.Status&settable | conntrack.StatusConfirmed
		err := k.c.Create(f)
		if errors.Is(err, unix.EBUSY) {
			f.Status &^= conntrack.StatusConfirmed
			err = k.c.Create(f)
		}
		if err == nil {
			out[i] = ConnPrev{Done: true}
			continue
		}
		if !errors.Is(err, unix.EEXIST) {
			return out, fmt.Errorf("create conntrack entry %s: %w", e.Key(), err)
		}
		cur, err := k.c.Get(f)
		if err != nil {
			return out, fmt.Errorf("read conntrack entry %s: %w", e.Key(), err)
		}
		// Bits that cannot change must be sent as they are.
		f.Status = cur.Status | f.Status
		if err := k.c.Update(f); err != nil {
			return out, fmt.Errorf("update conntrack entry %s: %w", e.Key(), err)
		}
		out[i] = ConnPrev{Done: true, Existed: true, Entry: connFromKernel(cur)}
	}
	return out, nil
}

// Delete removes the entries of the keys; missing ones (ENOENT) are fine.
// Equivalent to: conntrack -D -w ZONE -p PROTO -s SRC -d DST ...
func (k *KernelConntrack) Delete(ctx context.Context, ks []ConnKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range ks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete conntrack entries: %w", err)
		}
		f := conntrack.Flow{Zone: key.Zone, TupleOrig: tupleToKernel(key.Proto, key.Orig)}
		if err := k.c.Delete(f); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete conntrack entry %s: %w", key, err)
		}
	}
	return nil
}

// Timeouts given to entries the kernel reports without one: it leaves out
// the timeout and TCP state of connections in a flow table (IPS_OFFLOAD,
// act_ct's software or hardware fast path), which keeps them alive. Such
// connections are established; these are the kernel's defaults for
// established TCP and for UDP streams.
const (
	offloadedTCPTimeout   = 5 * 24 * time.Hour
	offloadedOtherTimeout = 120 * time.Second
)

func connFromKernel(f conntrack.Flow) ConnEntry {
	e := ConnEntry{Zone: f.Zone, Proto: f.TupleOrig.Proto.Protocol, Orig: tupleFromKernel(f.TupleOrig),
		Reply: tupleFromKernel(f.TupleReply), Status: uint32(f.Status), Mark: f.Mark,
		Timeout: time.Duration(f.Timeout) * time.Second}
	if t := f.ProtoInfo.TCP; t != nil {
		e.TCP = &ConnTCP{State: TCPState(t.State), OrigWScale: t.OriginalWindowScale, ReplyWScale: t.ReplyWindowScale,
			OrigFlags: uint8(t.OriginalFlags >> 8), ReplyFlags: uint8(t.ReplyFlags >> 8)}
	}
	if f.Status&conntrack.StatusOffload != 0 {
		if e.Proto == 6 && e.TCP == nil {
			e.TCP = &ConnTCP{State: TCPEstablished}
		}
		if e.Timeout == 0 {
			e.Timeout = offloadedOtherTimeout
			if e.Proto == 6 {
				e.Timeout = offloadedTCPTimeout
			}
		}
	}
	return e
}

func connToKernel(e ConnEntry) conntrack.Flow {
	f := conntrack.Flow{Zone: e.Zone, TupleOrig: tupleToKernel(e.Proto, e.Orig), TupleReply: tupleToKernel(e.Proto, e.Reply),
		Status: conntrack.Status(e.Status), Mark: e.Mark, Timeout: uint32(max(e.Timeout/time.Second, 1))}
	if t := e.TCP; t != nil {
		// The flags attribute is struct nf_ct_tcp_flags {flags, mask}: set exactly these flags.
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: uint8(t.State), OriginalWindowScale: t.OrigWScale,
			ReplyWindowScale: t.ReplyWScale, OriginalFlags: uint16(t.OrigFlags)<<8 | 0xff, ReplyFlags: uint16(t.ReplyFlags)<<8 | 0xff}
	}
	return f
}

func tupleFromKernel(t conntrack.Tuple) ConnTuple {
	return ConnTuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress, SrcPort: t.Proto.SourcePort,
		DstPort: t.Proto.DestinationPort, ICMPID: t.Proto.ICMPID, ICMPType: t.Proto.ICMPType, ICMPCode: t.Proto.ICMPCode}
}

func tupleToKernel(proto uint8, t ConnTuple) conntrack.Tuple {
	return conntrack.Tuple{
		IP: conntrack.IPTuple{SourceAddress: t.Src, DestinationAddress: t.Dst},
		Proto: conntrack.ProtoTuple{Protocol: proto, SourcePort: t.SrcPort, DestinationPort: t.DstPort,
			ICMPv4: proto == 1, ICMPv6: proto == 58, ICMPID: t.ICMPID, ICMPType: t.ICMPType, ICMPCode: t.ICMPCode},
	}
}
