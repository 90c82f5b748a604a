package api

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/offloadd/offloadd/offload/flow"
)

// etherTypeNames are the EtherType names accepted and printed; aliases are
// accepted on input only.
var etherTypeNames = []struct {
	name string
	v    uint16
}{
	{"ipv4", flow.EthTypeIPv4},
	{"ipv6", flow.EthTypeIPv6},
	{"arp", flow.EthTypeARP},
	{"rarp", 0x8035},
	{"802.1q", flow.EthType8021Q},
	{"802.1ad", flow.EthType8021AD},
	{"mpls_uc", 0x8847},
	{"mpls_mc", 0x8848},
	{"lldp", 0x88cc},
}

var etherTypeAliases = map[string]uint16{
	"ip":   flow.EthTypeIPv4,
	"vlan": flow.EthType8021Q,
	"qinq": flow.EthType8021AD,
}

// parseEtherType parses a name or a number ("0x88cc", "35020").
func parseEtherType(s string) (uint16, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, n := range etherTypeNames {
		if n.name == l {
			return n.v, nil
		}
	}
	if v, ok := etherTypeAliases[l]; ok {
		return v, nil
	}
	v, err := parseNumber(l, 16)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s > 0xffff", s)
		}
		if errors.Is(err, errLeadingZero) {
			return 0, fmt.Errorf("EtherType %q: %w", s, err)
		}
		return 0, fmt.Errorf("unknown EtherType %q", s)
	}
	if v == 0 {
		return 0, errors.New("0 is not an EtherType")
	}
	return uint16(v), nil
}

// formatEtherType prints a name where one is known, else 0x-hex.
func formatEtherType(v uint16) string {
	for _, n := range etherTypeNames {
		if n.v == v {
			return n.name
		}
	}
	return fmt.Sprintf("0x%04x", v)
}

var ipProtoNames = []struct {
	name string
	v    uint8
}{
	{"icmp", flow.ProtoICMP},
	{"igmp", 2},
	{"tcp", flow.ProtoTCP},
	{"udp", flow.ProtoUDP},
	{"gre", 47},
	{"esp", 50},
	{"ah", 51},
	{"icmpv6", flow.ProtoICMPv6},
	{"sctp", flow.ProtoSCTP},
}

var errLeadingZero = errors.New("a leading zero would make it octal; write decimal, or hex with 0x")

// parseNumber parses decimal or 0x-hex text. strconv's base 0 would read
// "0100" as octal 64, which nobody writing an EtherType or protocol means.
func parseNumber(l string, bits int) (uint64, error) {
	if len(l) > 1 && l[0] == '0' && l[1] != 'x' && l[1] != 'X' {
		return 0, errLeadingZero
	}
	if strings.ContainsRune(l, '_') {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(l, 0, bits)
}

// parseIPProto parses a protocol name or a number 1 to 255.
func parseIPProto(s string) (uint8, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, n := range ipProtoNames {
		if n.name == l {
			return n.v, nil
		}
	}
	if l == "ipv6-icmp" {
		return flow.ProtoICMPv6, nil
	}
	v, err := parseNumber(l, 8)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s > 255", s)
		}
		if errors.Is(err, errLeadingZero) {
			return 0, fmt.Errorf("ip_proto %q: %w", s, err)
		}
		return 0, fmt.Errorf("unknown ip_proto %q", s)
	}
	if v == 0 {
		return 0, errors.New("0 is not an IP protocol")
	}
	return uint8(v), nil
}

// formatIPProto prints a name where one is known, else the decimal number.
func formatIPProto(v uint8) string {
	for _, n := range ipProtoNames {
		if n.v == v {
			return n.name
		}
	}
	return strconv.Itoa(int(v))
}

// ctFlags lists conntrack state flags in printing order with their names.
var ctFlags = []struct {
	bit         uint16
	name, alias string
}{
	{flow.CTTracked, "trk", "tracked"},
	{flow.CTNew, "new", ""},
	{flow.CTEstablished, "est", "established"},
	{flow.CTRelated, "rel", "related"},
	{flow.CTReply, "rpl", "reply"},
	{flow.CTInvalid, "inv", "invalid"},
}

// parseCTState parses "+trk+est-new" into value (required bits) and mask
// (required and forbidden bits). It returns every problem it finds.
func parseCTState(s string) (flow.Masked16, []string) {
	var (
		m    flow.Masked16
		errs []string
	)
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == ',' || c == '\t' {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && !strings.ContainsRune("+- ,\t", rune(s[j])) {
			j++
		}
		tok := s[i:j]
		i = j
		if c != '+' && c != '-' {
			errs = append(errs, fmt.Sprintf("ct_state flag %q needs a + or - sign", tok))
			continue
		}
		name := strings.ToLower(tok[1:])
		var bit uint16
		for _, f := range ctFlags {
			if name == f.name || (f.alias != "" && name == f.alias) {
				bit = f.bit
			}
		}
		if bit == 0 {
			errs = append(errs, fmt.Sprintf("unknown ct_state flag %q", tok))
			continue
		}
		required := c == '+'
		if m.Mask&bit != 0 && (m.Value&bit != 0) != required {
			errs = append(errs, fmt.Sprintf("ct_state flag %q is both required and forbidden", name))
			continue
		}
		m.Mask |= bit
		if required {
			m.Value |= bit
		}
	}
	return m, errs
}

// formatCTState prints required flags, then forbidden ones: "+trk+est-new".
func formatCTState(m flow.Masked16) string {
	var b strings.Builder
	for _, sign := range []bool{true, false} {
		for _, f := range ctFlags {
			if m.Mask&f.bit != 0 && (m.Value&f.bit != 0) == sign {
				if sign {
					b.WriteByte('+')
				} else {
					b.WriteByte('-')
				}
				b.WriteString(f.name)
			}
		}
	}
	if rest := m.Mask &^ (flow.CTTracked | flow.CTNew | flow.CTEstablished | flow.CTRelated | flow.CTReply | flow.CTInvalid); rest != 0 {
		fmt.Fprintf(&b, "(0x%x/0x%x)", m.Value&rest, rest)
	}
	return b.String()
}

// parseMAC parses a 48-bit MAC address.
func parseMAC(s string) ([6]byte, error) {
	var out [6]byte
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return out, fmt.Errorf("%q is not a MAC address", s)
	}
	copy(out[:], hw)
	return out, nil
}

func formatMAC(a [6]byte) string { return net.HardwareAddr(a[:]).String() }

// family restricts parsed addresses.
type family uint8

const (
	anyFamily family = iota
	ipv4
	ipv6
)

func (f family) name() string {
	switch f {
	case ipv4:
		return "IPv4"
	case ipv6:
		return "IPv6"
	}
	return "IP"
}

// parseAddr parses an address of family fam. IPv4-mapped IPv6 addresses
// are refused as IPv4 so that one address has one spelling.
func parseAddr(s string, fam family) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an %s address", s, fam.name())
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone; zoned addresses cannot be used", s)
	}
	switch {
	case fam == ipv4 && !a.Is4():
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	case fam == ipv6 && !a.Is6():
		return netip.Addr{}, fmt.Errorf("%q is not an IPv6 address", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write it as IPv4", s)
	}
	return a, nil
}

// parsePrefix parses "addr/bits" or a bare address (the host prefix) and
// clears the host bits.
func parsePrefix(s string, fam family) (netip.Prefix, error) {
	addr, bitsStr, hasBits := strings.Cut(strings.TrimSpace(s), "/")
	a, err := parseAddr(addr, fam)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !hasBits {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	bits, err := strconv.Atoi(bitsStr)
	if err != nil || bits < 0 || bitsStr != strconv.Itoa(bits) {
		return netip.Prefix{}, fmt.Errorf("bad prefix length %q", bitsStr)
	}
	if bits > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix %d > %d", bits, a.BitLen())
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// formatPrefix prints a host prefix as a bare address, others as CIDR.
func formatPrefix(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func formatAddr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
