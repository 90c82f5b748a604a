package conntrack

import (
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/offloadd/offloadd/offload/flow"
)

// Ports an SNAT without a port range may move a clashing source port to,
// as the kernel's implicit source port remapping does.
const (
	natPortMin = 1024
	natPortMax = 65535
)

var errNATFamily = errors.New("NAT address family differs from the packet's")

// setupNAT maps a new connection's source (NATSrc) or destination (NATDst)
// into the range: an address chosen by hash of the tuple, the original port
// when the range allows it and the mapping is unique, else the first free
// port from a hashed start. It sets the reply tuple and status bit.
// Called with t.mu held, before the connection is confirmed.
func (t *Table) setupNAT(c *conn, n flow.NAT) error {
	orig := c.tuple[dirOrig]
	if n.AddrMin.Is4() != orig.Src.Is4() {
		return errNATFamily
	}
	h := tupleHash(orig)
	addr := addrAt(n.AddrMin, h%addrSpan(n.AddrMin, n.AddrMax))
	reply := c.tuple[dirReply]
	var port *uint16
	var bit Status
	switch n.Kind {
	case flow.NATSrc:
		reply.Dst, port, bit = addr, &reply.DstPort, SrcNAT
	case flow.NATDst:
		reply.Src, port, bit = addr, &reply.SrcPort, DstNAT
	default:
		return fmt.Errorf("unknown NAT kind %d", n.Kind)
	}
	free := func(r Tuple) bool { return t.conns[key{c.zone, r}] == nil && t.conns[key{c.zone, r.Reverse()}] == nil }
	if orig.HasPorts() {
		lo, hi := n.PortMin, n.PortMax
		if hi == 0 {
			hi = lo
		}
		if lo == 0 {
			lo, hi = *port, *port
			if n.Kind == flow.NATSrc && !free(reply) {
				lo, hi = natPortMin, natPortMax
			}
		}
		if *port < lo || *port > hi || !free(reply) {
			span := uint32(hi) - uint32(lo) + 1
			start := uint32(h>>32) % span
			found := false
			for i := range span {
				*port = uint16(uint32(lo) + (start+i)%span)
				if free(reply) {
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("no free port in %d-%d for %s", lo, hi, orig)
			}
		}
	} else if !free(reply) {
		return fmt.Errorf("NAT of %s to %s clashes with a tracked connection", orig, addr)
	}
	c.tuple[dirReply] = reply
	c.status |= bit
	return nil
}

func tupleHash(t Tuple) uint64 {
	h := fnv.New64a()
	a, b := t.Src.As16(), t.Dst.As16()
	h.Write(a[:])
	h.Write(b[:])
	h.Write([]byte{t.Proto, byte(t.SrcPort >> 8), byte(t.SrcPort), byte(t.DstPort >> 8), byte(t.DstPort)})
	return h.Sum64()
}
