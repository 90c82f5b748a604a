package tcsyntax

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	ethPAll    = 0x0003
	ethPIPv4   = 0x0800
	ethPIPv6   = 0x86dd
	ethP8021Q  = 0x8100
	ethP8021AD = 0x88a8
)

// etherTypes are iproute2's names (ll_proto) with the daemon's name of
// each; tc prints the first.
var etherTypes = []struct {
	tc, api string
	v       uint16
}{
	{"ip", "ipv4", ethPIPv4},
	{"ipv6", "ipv6", ethPIPv6},
	{"arp", "arp", 0x0806},
	{"rarp", "rarp", 0x8035},
	{"802.1Q", "802.1q", ethP8021Q},
	{"802.1ad", "802.1ad", ethP8021AD},
	{"mpls_uc", "mpls_uc", 0x8847},
	{"mpls_mc", "mpls_mc", 0x8848},
	{"all", "", ethPAll},
}

// parseEtherType reads a tc protocol or a daemon eth_type: a name or a
// number. "all" (and ETH_P_ALL) is 0, any EtherType.
func parseEtherType(s string) (uint16, error) {
	l := strings.ToLower(s)
	for _, e := range etherTypes {
		if l == strings.ToLower(e.tc) || (e.api != "" && l == e.api) {
			if e.v == ethPAll {
				return 0, nil
			}
			return e.v, nil
		}
	}
	switch l {
	case "lldp":
		return 0x88cc, nil
	case "vlan":
		return ethP8021Q, nil
	case "qinq":
		return ethP8021AD, nil
	}
	n, err := parseUint(l, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not an EtherType", s)
	}
	if n == ethPAll {
		return 0, nil
	}
	if n == 0 {
		return 0, errors.New("0 is not an EtherType")
	}
	return uint16(n), nil
}

// formatEtherType prints v as the daemon does: a name where it has one.
func formatEtherType(v uint16) string {
	for _, e := range etherTypes {
		if e.v == v && e.api != "" {
			return e.api
		}
	}
	if v == 0x88cc {
		return "lldp"
	}
	return fmt.Sprintf("0x%04x", v)
}

// tcEtherType prints v as tc reads it; 0 is all.
func tcEtherType(v uint16) string {
	if v == 0 {
		return "all"
	}
	for _, e := range etherTypes {
		if e.v == v {
			return e.tc
		}
	}
	return fmt.Sprintf("0x%04x", v)
}

// ipProtos are the daemon's protocol names; tc reads and prints the ones
// with tc set, and numbers in hex (iproute2 parses ip_proto in base 16).
var ipProtos = []struct {
	name string
	v    uint8
	tc   bool
}{
	{"icmp", 1, true}, {"igmp", 2, false}, {"tcp", 6, true}, {"udp", 17, true},
	{"gre", 47, false}, {"esp", 50, false}, {"ah", 51, false}, {"icmpv6", 58, true}, {"sctp", 132, true},
}

// parseIPProto reads a tc ip_proto: a name or a 0x-hex number. A bare
// number is refused: iproute2 reads it in hex, so "17" would be 23.
func parseIPProto(s string) (string, error) {
	v, err := ipProtoNumber(s, true)
	if err != nil {
		return "", err
	}
	return formatIPProto(v), nil
}

// ipProtoNumber reads a protocol name or number; tcOnly refuses bare
// decimal numbers and names tc does not know.
func ipProtoNumber(s string, tcOnly bool) (uint8, error) {
	l := strings.ToLower(s)
	for _, p := range ipProtos {
		if l == p.name {
			if tcOnly && !p.tc {
				return 0, fmt.Errorf("%q: tc knows this protocol only by number; write 0x%02x", s, p.v)
			}
			return p.v, nil
		}
	}
	if tcOnly && !strings.HasPrefix(l, "0x") {
		return 0, fmt.Errorf("%q: iproute2 reads ip_proto numbers in hex; write 0x-hex (0x%s) or a name: tcp, udp, sctp, icmp, icmpv6", s, s)
	}
	n, err := parseUint(l, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not an IP protocol", s)
	}
	if n == 0 {
		return 0, errors.New("0 is not an IP protocol")
	}
	return uint8(n), nil
}

// formatIPProto prints v as the daemon does.
func formatIPProto(v uint8) string {
	for _, p := range ipProtos {
		if p.v == v {
			return p.name
		}
	}
	return strconv.Itoa(int(v))
}

// tcIPProto prints v as tc reads it.
func tcIPProto(v uint8) string {
	for _, p := range ipProtos {
		if p.v == v && p.tc {
			return p.name
		}
	}
	return fmt.Sprintf("0x%02x", v)
}

// ctFlags are the conntrack state flags in the daemon's printing order,
// with the TCA_FLOWER_KEY_CT_FLAGS_* bits.
var ctFlags = []struct {
	name, alias string
	bit         uint16
}{
	{"trk", "tracked", 1 << 3}, {"new", "", 1 << 0}, {"est", "established", 1 << 1},
	{"rel", "related", 1 << 2}, {"rpl", "reply", 1 << 5}, {"inv", "invalid", 1 << 4},
}

// parseCTState reads "+trk+est-new" (also with spaces or commas between
// flags, as the daemon accepts) into value and mask.
func parseCTState(s string) (uint16, uint16, error) {
	var val, mask uint16
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == ',' {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && !strings.ContainsRune("+- ,", rune(s[j])) {
			j++
		}
		tok := s[i:j]
		i = j
		if c != '+' && c != '-' {
			return 0, 0, fmt.Errorf("flag %q needs a + or - sign", tok)
		}
		name := strings.ToLower(tok[1:])
		var bit uint16
		for _, f := range ctFlags {
			if name == f.name || (f.alias != "" && name == f.alias) {
				bit = f.bit
			}
		}
		switch {
		case bit == 0 && (name == "dnat" || name == "snat"):
			return 0, 0, fmt.Errorf("flag %q cannot be expressed: the model has no NAT state flags", tok)
		case bit == 0:
			return 0, 0, fmt.Errorf("unknown flag %q; want trk, new, est, rel, rpl or inv", tok)
		case mask&bit != 0:
			return 0, 0, fmt.Errorf("flag %q given twice", name)
		}
		mask |= bit
		if c == '+' {
			val |= bit
		}
	}
	if mask == 0 {
		return 0, 0, errors.New("names no flag")
	}
	return val, mask, nil
}

// formatCTState prints required flags, then forbidden ones, as the daemon
// and tc both read it.
func formatCTState(val, mask uint16) string {
	var b strings.Builder
	for _, req := range []bool{true, false} {
		for _, f := range ctFlags {
			if mask&f.bit != 0 && (val&f.bit != 0) == req {
				if req {
					b.WriteByte('+')
				} else {
					b.WriteByte('-')
				}
				b.WriteString(f.name)
			}
		}
	}
	return b.String()
}
