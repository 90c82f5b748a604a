package flow

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func richFlows() []*Flow {
	a4, a6 := netip.MustParseAddr, netip.MustParsePrefix
	return []*Flow{
		{ID: "min", Port: "p0", Priority: 1, Actions: []Action{{Kind: ActDrop}}},
		{ID: "all-keys", Port: "vxlan0", Chain: 7, Priority: 65535, Policy: PolicyHardwareOnly,
			Match: Match{
				EthSrc:  MaskedMAC{[6]byte{2, 0, 0, 0, 0, 1}, [6]byte{255, 255, 255, 255, 255, 255}},
				EthDst:  MaskedMAC{[6]byte{1, 0, 0x5e, 0, 0, 0}, [6]byte{255, 255, 255, 128, 0, 0}},
				EthType: EthTypeIPv6, VLANID: Some[uint16](0), VLANPrio: Some[uint8](7), CVLANID: Some[uint16](4095), CVLANPrio: Some[uint8](1),
				IPSrc: a6("2001:db8::/32"), IPDst: a6("2001:db8:1::1/128"), IPProto: ProtoTCP,
				TOS: Masked8{0x10, 0xfc}, TTL: Masked8{64, 255}, SrcPort: Masked16{1024, 0xfc00}, DstPort: Masked16{443, 0xffff},
				TCPFlags: Masked16{0x02, 0x12}, Frag: Masked32{FragIsFragment, FragIsFragment | FragFirst},
				TunID: Some[uint32](0xffffff), TunSrc: a6("198.51.100.0/24"), TunDst: a6("192.0.2.1/32"), TunDstPort: Some[uint16](4789),
				CTState: Masked16{CTTracked | CTEstablished, CTTracked | CTEstablished | CTNew}, CTZone: Some[uint16](10), CTMark: Masked32{5, 0xff},
			},
			Actions: []Action{
				{Kind: ActPolice, Police: &Police{RateBytes: 125000000, Burst: 65536, Conform: VerdictPipe, Exceed: VerdictDrop}},
				{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteEthDst, MAC: [6]byte{2, 2, 2, 2, 2, 2}}},
				{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteIPDst, IP: a4("2001:db8::99")}},
				{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteDstPort, Port: 8443}},
				{Kind: ActRewrite, Rewrite: &Rewrite{Field: RewriteTTLDec}},
				{Kind: ActVLANPush, VLAN: VLANPush{ID: 100, Prio: 3, Proto: EthType8021AD}},
				{Kind: ActVLANPop},
				{Kind: ActCT, CT: &CT{Zone: 3, Commit: true, Mark: Masked32{1, 1},
					NAT: NAT{Kind: NATSrc, AddrMin: a4("10.0.0.1"), AddrMax: a4("10.0.0.9"), PortMin: 1024, PortMax: 2048}}},
				{Kind: ActCT, CT: &CT{Clear: true}},
				{Kind: ActMirror, Port: "pf0vf7", Ingress: true},
				{Kind: ActTunnelDecap},
				{Kind: ActTunnelEncap, Encap: &TunnelEncap{VNI: 42, Src: a4("192.0.2.1"), Dst: a4("198.51.100.7"), DstPort: 4790, TTL: 64, TOS: 8, NoCsum: true}},
				{Kind: ActRedirect, Port: "vxlan0"},
			}},
		{ID: "goto-accept", Port: "pf0vf0", Priority: 3, Actions: []Action{{Kind: ActAccept}, {Kind: ActGoto, Chain: 9}}},
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	for _, f := range richFlows() {
		t.Run(f.ID, func(t *testing.T) {
			b := AppendBinary(nil, f)
			got, err := DecodeBinary(b)
			require.NoError(t, err)
			require.True(t, got.Equal(f), "got %+v", got)
			for n := 0; n < len(b); n++ {
				_, err := DecodeBinary(b[:n])
				require.ErrorIs(t, err, ErrBadEncoding, "truncated at %d", n)
			}
		})
	}
}

func FuzzDecodeBinary(f *testing.F) {
	for _, fl := range richFlows() {
		f.Add(AppendBinary(nil, fl))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := DecodeBinary(b)
		if err != nil {
			return
		}
		again, err := DecodeBinary(AppendBinary(nil, fl))
		require.NoError(t, err)
		require.True(t, again.Equal(fl))
	})
}

func BenchmarkBinary(b *testing.B) {
	f := richFlows()[1]
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBinary(buf[:0], f)
		if _, err := DecodeBinary(buf); err != nil {
			b.Fatal(err)
		}
	}
}
