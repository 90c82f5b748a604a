package fallback

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// ConnTable is a node's conntrack table as the handoff reads and writes
// it: the Linux kernel's (NewKernelConntrack) or the emulated datapath's
// (NewEmulatedConns).
type ConnTable interface {
	// Dump lists the entries of the given zones.
	// Equivalent to: conntrack -L -w ZONE
	Dump(ctx context.Context, zones []uint16) ([]ConnEntry, error)
	// Upsert creates each entry, or updates the entry with its key to its
	// state, mark and timeout. It returns one ConnPrev per entry, saying
	// whether it was written and what it replaced, also when it fails.
	// Equivalent to: conntrack -I ... || conntrack -U ...
	Upsert(ctx context.Context, es []ConnEntry) ([]ConnPrev, error)
	// Delete removes the entries with the given keys; missing entries are
	// not errors.
	// Equivalent to: conntrack -D -w ZONE -p PROTO -s SRC -d DST ...
	Delete(ctx context.Context, ks []ConnKey) error
}

// ConnPrev is what Upsert did with one entry.
type ConnPrev struct {
	// Done: the entry was written. Existed: it replaced Entry.
	Done, Existed bool
	Entry         ConnEntry
}

// ConnTuple is one direction of a connection. Ports apply to TCP, UDP
// and SCTP; the ICMP fields to ICMP and ICMPv6.
type ConnTuple struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	SrcPort uint16     `json:"sport,omitempty"`
	DstPort uint16     `json:"dport,omitempty"`
	ICMPID  uint16     `json:"icmpId,omitempty"`
	// ICMPType and ICMPCode are those of the request that opened the entry.
	ICMPType uint8 `json:"icmpType,omitempty"`
	ICMPCode uint8 `json:"icmpCode,omitempty"`
}

func (t ConnTuple) String() string {
	if t.SrcPort == 0 && t.DstPort == 0 {
		return t.Src.String() + " > " + t.Dst.String()
	}
	return netip.AddrPortFrom(t.Src, t.SrcPort).String() + " > " + netip.AddrPortFrom(t.Dst, t.DstPort).String()
}

// ConnKey identifies an entry: its zone, protocol and original tuple.
type ConnKey struct {
	Zone  uint16    `json:"zone"`
	Proto uint8     `json:"proto"`
	Orig  ConnTuple `json:"orig"`
}

func (k ConnKey) String() string {
	return fmt.Sprintf("zone %d %s %s", k.Zone, protoName(k.Proto), k.Orig)
}

// TCPState is the conntrack TCP state, numbered like TCP_CONNTRACK_*.
type TCPState uint8

// TCP conntrack states.
const (
	TCPNone TCPState = iota
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
)

var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return strconv.Itoa(int(s))
}

// ParseTCPState parses a state name as String writes it.
func ParseTCPState(s string) (TCPState, bool) {
	for i, n := range tcpStateNames {
		if n == s {
			return TCPState(i), true
		}
	}
	return 0, false
}

// ConnTCP is the TCP protocol state of an entry.
type ConnTCP struct {
	State TCPState `json:"state"`
	// Window scales and flags (IP_CT_TCP_FLAG_*) of each direction.
	OrigWScale  uint8 `json:"origWScale,omitempty"`
	ReplyWScale uint8 `json:"replyWScale,omitempty"`
	OrigFlags   uint8 `json:"origFlags,omitempty"`
	ReplyFlags  uint8 `json:"replyFlags,omitempty"`
}

// Conntrack status bits, the kernel's IPS_* values.
const (
	ConnSeenReply uint32 = 1 << 1
	ConnAssured   uint32 = 1 << 2
	ConnConfirmed uint32 = 1 << 3
	ConnSrcNAT    uint32 = 1 << 4
	ConnDstNAT    uint32 = 1 << 5
)

// ConnEntry is one conntrack entry as it travels in a migration bundle.
// NAT shows in the reply tuple: with source NAT its destination is the
// translated address, with destination NAT its source is.
type ConnEntry struct {
	Zone  uint16    `json:"zone"`
	Proto uint8     `json:"proto"`
	Orig  ConnTuple `json:"orig"`
	Reply ConnTuple `json:"reply"`
	// TCP is set for TCP entries.
	TCP *ConnTCP `json:"tcp,omitempty"`
	// Status holds IPS_* bits (ConnAssured, ConnSrcNAT, ...).
	Status uint32 `json:"status"`
	Mark   uint32 `json:"mark,omitempty"`
	// Timeout is the time left before the entry expires.
	Timeout time.Duration `json:"timeout"`
}

// Key returns the entry's identity.
func (e ConnEntry) Key() ConnKey { return ConnKey{Zone: e.Zone, Proto: e.Proto, Orig: e.Orig} }

// SNAT reports whether replies are addressed to another address than the
// original source.
func (e ConnEntry) SNAT() bool { return e.Status&ConnSrcNAT != 0 || e.Reply.Dst != e.Orig.Src }

// DNAT reports whether replies come from another address than the
// original destination.
func (e ConnEntry) DNAT() bool { return e.Status&ConnDstNAT != 0 || e.Reply.Src != e.Orig.Dst }

func (e ConnEntry) String() string {
	s := e.Key().String()
	if e.TCP != nil {
		s += " " + e.TCP.State.String()
	}
	return s
}

// Validate checks what every backend needs: addresses of one family, a protocol.
func (e ConnEntry) Validate() error {
	fam := e.Orig.Src.Is4()
	for _, a := range []netip.Addr{e.Orig.Src, e.Orig.Dst, e.Reply.Src, e.Reply.Dst} {
		if !a.IsValid() {
			return fmt.Errorf("conntrack entry %s: missing address", e.Key())
		}
		if a.Is4() != fam {
			return fmt.Errorf("conntrack entry %s: mixes IPv4 and IPv6 addresses", e.Key())
		}
	}
	if e.Proto == 0 {
		return fmt.Errorf("conntrack entry %s: no protocol", e.Key())
	}
	return nil
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// inPrefixes reports whether any address of e lies in one of ps.
func (e ConnEntry) inPrefixes(ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool {
		return p.Contains(e.Orig.Src) || p.Contains(e.Orig.Dst) || p.Contains(e.Reply.Src) || p.Contains(e.Reply.Dst)
	})
}
