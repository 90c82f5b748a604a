package flow

import (
	"net/netip"
)

// Policy says which planes a flow may use.
type Policy uint8

const (
	// PolicyAuto places the flow in hardware when it can, else in software.
	PolicyAuto Policy = iota
	// PolicyHardwareOnly fails the flow when hardware refuses it.
	PolicyHardwareOnly
	// PolicySoftwareOnly never touches hardware.
	PolicySoftwareOnly
)

var policyNames = [...]string{"auto", "hardware-only", "software-only"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "unknown"
}

// ParsePolicy parses "auto", "hardware-only" or "software-only"; "" is auto.
func ParsePolicy(s string) (Policy, bool) {
	if s == "" {
		return PolicyAuto, true
	}
	for i, n := range policyNames {
		if n == s {
			return Policy(i), true
		}
	}
	return 0, false
}

// Plane is where a packet is handled, and where an installed copy of a
// flow was put.
type Plane uint8

const (
	// Hardware is the NIC's flow table; a copy put only there is tc
	// flower skip_sw.
	Hardware Plane = iota
	// Software is the kernel's software path; a copy put only there is
	// tc flower skip_hw.
	Software
	// Both is a copy put with no skip flag: the kernel keeps it in
	// software and offers it to the driver, and the dump's in_hw says
	// whether hardware took it. A packet that misses in hardware part-way
	// finds the same rule in software. It is never where a packet is
	// handled.
	Both
)

func (p Plane) String() string {
	switch p {
	case Hardware:
		return "hardware"
	case Software:
		return "software"
	case Both:
		return "both"
	}
	return "unknown"
}

// Flow is one rule: where it matches, what it matches, what it does.
type Flow struct {
	// ID is chosen by the client and unique per node.
	ID string
	// Port is the ingress port: a representor, an uplink or a tunnel device.
	Port string
	// Chain is the tc chain; 0 is where every packet starts.
	Chain uint32
	// Priority orders flows in a chain; lower runs first. 0 is invalid.
	Priority uint16
	Match    Match
	Actions  []Action
	Policy   Policy
}

// MaskedMAC matches Addr under Mask; a zero Mask matches anything.
type MaskedMAC struct {
	Addr [6]byte
	Mask [6]byte
}

// Set reports whether the key takes part in the match.
func (m MaskedMAC) Set() bool { return m.Mask != [6]byte{} }

// Masked8 matches Value under Mask; a zero Mask matches anything.
type Masked8 struct{ Value, Mask uint8 }

// Set reports whether the key takes part in the match.
func (m Masked8) Set() bool { return m.Mask != 0 }

// Masked16 matches Value under Mask; a zero Mask matches anything.
type Masked16 struct{ Value, Mask uint16 }

// Set reports whether the key takes part in the match.
func (m Masked16) Set() bool { return m.Mask != 0 }

// Masked32 matches Value under Mask; a zero Mask matches anything.
type Masked32 struct{ Value, Mask uint32 }

// Set reports whether the key takes part in the match.
func (m Masked32) Set() bool { return m.Mask != 0 }

// Opt is an exact-match key that is either set or absent.
type Opt[T any] struct {
	V   T
	Set bool
}

// Some returns a set Opt.
func Some[T any](v T) Opt[T] { return Opt[T]{V: v, Set: true} }

// Conntrack state bits, the same values as TCA_FLOWER_KEY_CT_FLAGS_*.
const (
	CTNew         uint16 = 1 << 0
	CTEstablished uint16 = 1 << 1
	CTRelated     uint16 = 1 << 2
	CTTracked     uint16 = 1 << 3
	CTInvalid     uint16 = 1 << 4
	CTReply       uint16 = 1 << 5
	ctAll                = CTNew | CTEstablished | CTRelated | CTTracked | CTInvalid | CTReply
)

// Fragment bits, the same values as TCA_FLOWER_KEY_FLAGS_*.
const (
	FragIsFragment uint32 = 1 << 0
	FragFirst      uint32 = 1 << 1
)

// Match is what a packet must look like. Unset keys match anything.
// IP prefixes carry their family: IPv4 keys need EthType 0x0800, IPv6 keys 0x86dd.
type Match struct {
	EthSrc   MaskedMAC
	EthDst   MaskedMAC
	EthType  uint16 // 0 matches any
	VLANID   Opt[uint16]
	VLANPrio Opt[uint8]
	// CVLANID and CVLANPrio match the inner tag of a QinQ frame.
	CVLANID   Opt[uint16]
	CVLANPrio Opt[uint8]
	IPSrc     netip.Prefix // zero value matches any
	IPDst     netip.Prefix
	IPProto   uint8 // 0 matches any
	TOS       Masked8
	TTL       Masked8
	// SrcPort and DstPort are L4 ports of IPProto (TCP, UDP or SCTP).
	SrcPort  Masked16
	DstPort  Masked16
	TCPFlags Masked16
	ICMPType Opt[uint8]
	ICMPCode Opt[uint8]
	// Frag matches FragIsFragment / FragFirst bits.
	Frag Masked32
	// Tunnel keys match the outer header of a decapsulated packet.
	TunID      Opt[uint32]
	TunSrc     netip.Prefix
	TunDst     netip.Prefix
	TunDstPort Opt[uint16]
	// CTState matches the CT* bits.
	CTState Masked16
	CTZone  Opt[uint16]
	CTMark  Masked32
}

// ActionKind names an action.
type ActionKind uint8

// Actions, applied in order.
const (
	ActDrop ActionKind = iota + 1
	ActAccept
	ActRedirect
	ActMirror
	ActVLANPush
	ActVLANPop
	ActTunnelEncap
	ActTunnelDecap
	ActCT
	ActGoto
	ActRewrite
	ActPolice
)

var actionNames = [...]string{"", "drop", "accept", "redirect", "mirror", "vlan_push", "vlan_pop",
	"tunnel_encap", "tunnel_decap", "ct", "goto", "rewrite", "police"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) && k != 0 {
		return actionNames[k]
	}
	return "unknown"
}

// Action is one step of a flow's action list; Kind says which fields apply.
type Action struct {
	Kind ActionKind
	// Port and Ingress: redirect or mirror target (egress unless Ingress).
	Port    string
	Ingress bool
	// VLAN: vlan push.
	VLAN VLANPush
	// Chain: goto chain.
	Chain   uint32
	Encap   *TunnelEncap
	CT      *CT
	Rewrite *Rewrite
	Police  *Police
}

// VLANPush is the tag pushed by ActVLANPush.
type VLANPush struct {
	ID    uint16
	Prio  uint8
	Proto uint16 // 0x8100 (default) or 0x88a8
}

// TunnelEncap sets the VXLAN tunnel key; a redirect to a tunnel port follows it.
type TunnelEncap struct {
	VNI     uint32
	Src     netip.Addr
	Dst     netip.Addr
	DstPort uint16 // 0 means 4789
	TTL     uint8  // 0 means the kernel's default
	TOS     uint8
	NoCsum  bool
}

// NATKind says which address a ct NAT rewrites.
type NATKind uint8

const (
	NATNone NATKind = iota
	NATSrc
	NATDst
)

// NAT is a ct NAT range.
type NAT struct {
	Kind             NATKind
	AddrMin, AddrMax netip.Addr // AddrMax may be zero for a single address
	PortMin, PortMax uint16     // 0 for no port mapping
}

// CT sends the packet through conntrack in Zone.
type CT struct {
	Zone   uint16
	Commit bool
	// Clear resets the packet's conntrack state (ct clear); no other field applies.
	Clear bool
	Mark  Masked32 // set on commit
	NAT   NAT
}

// RewriteField names the header field a rewrite changes.
type RewriteField uint8

const (
	RewriteEthSrc RewriteField = iota + 1
	RewriteEthDst
	RewriteIPSrc
	RewriteIPDst
	RewriteTTLDec // IPv4 TTL or IPv6 hop limit decrement by one
	RewriteSrcPort
	RewriteDstPort
)

var rewriteNames = [...]string{"", "eth_src", "eth_dst", "ip_src", "ip_dst", "ttl_dec", "src_port", "dst_port"}

func (f RewriteField) String() string {
	if int(f) < len(rewriteNames) && f != 0 {
		return rewriteNames[f]
	}
	return "unknown"
}

// Rewrite sets one header field (tc pedit); checksums are fixed up.
type Rewrite struct {
	Field RewriteField
	MAC   [6]byte
	IP    netip.Addr
	Port  uint16
}

// Verdict is what police does with a packet.
type Verdict uint8

const (
	VerdictDefault Verdict = iota // conform: pipe, exceed: drop
	VerdictPipe
	VerdictDrop
	VerdictAccept
	VerdictContinue
)

var verdictNames = [...]string{"", "pipe", "drop", "accept", "continue"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) && v != 0 {
		return verdictNames[v]
	}
	return "default"
}

// Police is a token-bucket meter.
type Police struct {
	RateBytes   uint64 // bytes per second; 0 with RatePackets set means packet mode
	RatePackets uint64 // packets per second
	Burst       uint32 // bytes (or packets in packet mode)
	Conform     Verdict
	Exceed      Verdict
}
