package datapath

import (
	"net/netip"

	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/offload/flow"
)

// prefix is an IP prefix compiled for masked compares.
type prefix struct {
	set       bool
	v4        bool
	addr, msk [16]byte
}

func compilePrefix(p netip.Prefix) prefix {
	if !p.IsValid() {
		return prefix{}
	}
	c := prefix{set: true, v4: p.Addr().Is4()}
	n := 16
	if c.v4 {
		n = 4
		a := p.Addr().As4()
		copy(c.addr[:], a[:])
	} else {
		c.addr = p.Addr().As16()
	}
	bits := p.Bits()
	for i := range n {
		switch {
		case bits >= 8:
			c.msk[i] = 0xff
		case bits > 0:
			c.msk[i] = byte(0xff << (8 - bits))
		}
		bits -= 8
		c.addr[i] &= c.msk[i]
	}
	return c
}

func (p *prefix) contains(v4 bool, a *[16]byte) bool {
	if p.v4 != v4 {
		return false
	}
	n := 16
	if v4 {
		n = 4
	}
	for i := range n {
		if a[i]&p.msk[i] != p.addr[i] {
			return false
		}
	}
	return true
}

// rule is a flow compiled for matching.
type rule struct {
	f    *flow.Flow
	keys flow.KeySet

	ethSrc, ethSrcMask uint64
	ethDst, ethDstMask uint64
	// vlanMode: 0 no VLAN keys, 1 an 802.1Q tag, 2 802.1ad then 802.1Q (cvlan keys).
	vlanMode int
	ipSrc    prefix
	ipDst    prefix
	tunSrc   prefix
	tunDst   prefix
}

func compile(f *flow.Flow) *rule {
	m := &f.Match
	r := &rule{f: f, keys: m.Keys(),
		ethSrc: mac48(m.EthSrc.Addr[:]), ethSrcMask: mac48(m.EthSrc.Mask[:]),
		ethDst: mac48(m.EthDst.Addr[:]), ethDstMask: mac48(m.EthDst.Mask[:]),
		ipSrc: compilePrefix(m.IPSrc), ipDst: compilePrefix(m.IPDst),
		tunSrc: compilePrefix(m.TunSrc), tunDst: compilePrefix(m.TunDst),
	}
	switch {
	case m.CVLANID.Set || m.CVLANPrio.Set:
		r.vlanMode = 2
	case m.VLANID.Set || m.VLANPrio.Set:
		r.vlanMode = 1
	}
	return r
}

// match reports whether p matches the rule, as flower does: VLAN keys
// require an 802.1Q tag (with cvlan keys, 802.1ad outside 802.1Q) and
// eth_type is then the type inside the tags; without VLAN keys eth_type is
// the frame's outermost type. IP keys need that family, L4 keys that the
// L4 header was parsed, tunnel keys tunnel metadata, ct keys compare with
// the packet's conntrack state (zero before any ct action).
func (r *rule) match(p *pkt) bool {
	k := &p.k
	m := &r.f.Match
	if k.ethSrc&r.ethSrcMask != r.ethSrc || k.ethDst&r.ethDstMask != r.ethDst {
		return false
	}
	switch r.vlanMode {
	case 0:
		if m.EthType != 0 && k.types[0] != m.EthType {
			return false
		}
	case 1:
		if k.nTags < 1 || k.tpid[0] != flow.EthType8021Q || !vlanOK(m.VLANID, m.VLANPrio, k.tci[0]) ||
			m.EthType != 0 && k.types[1] != m.EthType {
			return false
		}
	case 2:
		if k.nTags < 2 || k.tpid[0] != flow.EthType8021AD || k.tpid[1] != flow.EthType8021Q ||
			!vlanOK(m.VLANID, m.VLANPrio, k.tci[0]) || !vlanOK(m.CVLANID, m.CVLANPrio, k.tci[1]) ||
			m.EthType != 0 && k.types[2] != m.EthType {
			return false
		}
	}
	if r.keys == 0 {
		return true
	}
	if r.ipSrc.set && !(k.ipv4 || k.ipv6) || r.ipSrc.set && !r.ipSrc.contains(k.ipv4, &k.src) {
		return false
	}
	if r.ipDst.set && !(k.ipv4 || k.ipv6) || r.ipDst.set && !r.ipDst.contains(k.ipv4, &k.dst) {
		return false
	}
	ip := k.ipv4 || k.ipv6
	if m.IPProto != 0 && (!ip || k.proto != m.IPProto) {
		return false
	}
	if m.TOS.Set() && (!ip || k.tos&m.TOS.Mask != m.TOS.Value) ||
		m.TTL.Set() && (!ip || k.ttl&m.TTL.Mask != m.TTL.Value) ||
		m.Frag.Set() && (!ip || k.frag&m.Frag.Mask != m.Frag.Value) {
		return false
	}
	if m.SrcPort.Set() || m.DstPort.Set() {
		var sp, dp uint16 // a packet without L4 ports matches as port 0, as in flower
		if k.hasPorts() {
			sp, dp = k.sport, k.dport
		}
		if sp&m.SrcPort.Mask != m.SrcPort.Value || dp&m.DstPort.Mask != m.DstPort.Value {
			return false
		}
	}
	if m.TCPFlags.Set() {
		var fl uint16
		if k.proto == flow.ProtoTCP && k.l4 >= 0 {
			fl = k.tcpFlags
		}
		if fl&m.TCPFlags.Mask != m.TCPFlags.Value {
			return false
		}
	}
	if m.ICMPType.Set || m.ICMPCode.Set {
		if !k.isICMP() || m.ICMPType.Set && k.icmpType != m.ICMPType.V || m.ICMPCode.Set && k.icmpCode != m.ICMPCode.V {
			return false
		}
	}
	if r.keys&tunnelKeys != 0 {
		t := &p.tun
		if !t.set || m.TunID.Set && t.vni != m.TunID.V || m.TunDstPort.Set && t.dstPort != m.TunDstPort.V {
			return false
		}
		if r.tunSrc.set {
			a := addr16(t.src)
			if !r.tunSrc.contains(t.src.Is4(), &a) {
				return false
			}
		}
		if r.tunDst.set {
			a := addr16(t.dst)
			if !r.tunDst.contains(t.dst.Is4(), &a) {
				return false
			}
		}
	}
	if m.CTState.Set() && p.ct.state&m.CTState.Mask != m.CTState.Value ||
		m.CTZone.Set && p.ct.zone != m.CTZone.V ||
		m.CTMark.Set() && p.ct.mark&m.CTMark.Mask != m.CTMark.Value {
		return false
	}
	return true
}

var tunnelKeys = flow.Keys(flow.KeyTunID, flow.KeyTunSrc, flow.KeyTunDst, flow.KeyTunDstPort)

func vlanOK(id flow.Opt[uint16], prio flow.Opt[uint8], tci uint16) bool {
	return (!id.Set || tci&0x0fff == id.V) && (!prio.Set || uint8(tci>>13) == prio.V)
}

// addr16 lays an address out as the key does: IPv4 in the first four bytes.
func addr16(a netip.Addr) [16]byte {
	var b [16]byte
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
	} else if a.IsValid() {
		b = a.As16()
	}
	return b
}

// table is a plane's flow table compiled per (port, chain).
type table struct {
	src    *emulated.FlowTable
	chains map[emulated.PortChain][]*rule
	// ctZones are the zones some flow in the table runs ct in: conntrack
	// offloads connections of those zones (act_ct's per-zone flow table is
	// offloaded when a hardware filter uses it).
	ctZones map[uint16]bool
}

func compileTable(ft *emulated.FlowTable) *table {
	t := &table{src: ft, chains: map[emulated.PortChain][]*rule{}, ctZones: map[uint16]bool{}}
	ft.Chains(func(pc emulated.PortChain, fs []*flow.Flow) {
		rs := make([]*rule, len(fs))
		for i, f := range fs {
			rs[i] = compile(f)
			for _, a := range f.Actions {
				if a.Kind == flow.ActCT && a.CT != nil && !a.CT.Clear {
					t.ctZones[a.CT.Zone] = true
				}
			}
		}
		t.chains[pc] = rs
	})
	return t
}

func (t *table) chain(port string, chain uint32) []*rule {
	return t.chains[emulated.PortChain{Port: port, Chain: chain}]
}
