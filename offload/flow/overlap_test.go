package flow

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOverlap(t *testing.T) {
	p := netip.MustParsePrefix
	tcp := Match{EthType: 0x0800, IPProto: 6}
	cases := []struct {
		name string
		a, b Match
		want bool
	}{
		{"both empty", Match{}, Match{}, true},
		{"any and tcp", Match{}, tcp, true},
		{"ipv4 and ipv6", Match{EthType: 0x0800}, Match{EthType: 0x86dd}, false},
		{"tcp and udp", tcp, Match{EthType: 0x0800, IPProto: 17}, false},
		{"nested prefixes", Match{IPDst: p("10.0.0.0/8")}, Match{IPDst: p("10.1.2.0/24")}, true},
		{"disjoint prefixes", Match{IPDst: p("10.0.0.0/24")}, Match{IPDst: p("10.0.1.0/24")}, false},
		{"ports differ", Match{DstPort: Masked16{80, 0xffff}}, Match{DstPort: Masked16{443, 0xffff}}, false},
		{"ports under a common mask", Match{DstPort: Masked16{0x100, 0xff00}}, Match{DstPort: Masked16{0x1bb, 0xffff}}, true},
		{"ct_state est vs new", Match{CTState: Masked16{CTTracked | CTEstablished, CTTracked | CTEstablished}},
			Match{CTState: Masked16{CTTracked | CTNew, CTTracked | CTNew | CTEstablished}}, false},
		{"ct_state trk vs est", Match{CTState: Masked16{CTTracked, CTTracked}},
			Match{CTState: Masked16{CTTracked | CTEstablished, CTTracked | CTEstablished}}, true},
		{"ct_state new vs est, each masked alone", Match{CTState: Masked16{CTTracked | CTNew, CTTracked | CTNew}},
			Match{CTState: Masked16{CTTracked | CTEstablished, CTTracked | CTEstablished}}, false},
		{"ct_state trk vs inv", Match{CTState: Masked16{CTTracked, CTTracked}},
			Match{CTState: Masked16{CTTracked | CTInvalid, CTTracked | CTInvalid}}, true},
		{"vlan", Match{VLANID: Some[uint16](10)}, Match{VLANID: Some[uint16](20)}, false},
		{"mac", Match{EthDst: MaskedMAC{Addr: [6]byte{2}, Mask: [6]byte{0xff}}}, Match{EthDst: MaskedMAC{Addr: [6]byte{4}, Mask: [6]byte{0xff}}}, false},
		{"zone", Match{CTZone: Some[uint16](1)}, Match{CTZone: Some[uint16](2)}, false},
		{"vni", Match{TunID: Some[uint32](1)}, Match{TunID: Some[uint32](1)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, Overlap(&c.a, &c.b))
			assert.Equal(t, c.want, Overlap(&c.b, &c.a), "symmetric")
		})
	}
}
