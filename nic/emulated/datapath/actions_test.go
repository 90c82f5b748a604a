package datapath_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestRewriteFixesChecksums(t *testing.T) {
	newMAC := [6]byte{0x02, 0x99, 0, 0, 0, 0x42}
	v4 := netip.MustParseAddr("192.0.2.99")
	v6 := netip.MustParseAddr("2001:db8::99")
	tests := []struct {
		name  string
		spec  string
		et    uint16
		proto uint8
		rw    flow.Rewrite
		check func(t *testing.T, out []byte)
	}{
		{"eth_src", "tcp", flow.EthTypeIPv4, 0, flow.Rewrite{Field: flow.RewriteEthSrc, MAC: newMAC}, func(t *testing.T, out []byte) {
			assert.Equal(t, newMAC[:], out[6:12])
		}},
		{"eth_dst", "udp", flow.EthTypeIPv4, 0, flow.Rewrite{Field: flow.RewriteEthDst, MAC: newMAC}, func(t *testing.T, out []byte) {
			assert.Equal(t, newMAC[:], out[0:6])
		}},
		{"ipv4 src tcp", "tcp,len=33", flow.EthTypeIPv4, flow.ProtoTCP, flow.Rewrite{Field: flow.RewriteIPSrc, IP: v4}, func(t *testing.T, out []byte) {
			assert.Equal(t, v4.AsSlice(), []byte(ip4(t, out).SrcIP.To4()))
		}},
		{"ipv4 dst udp", "udp,len=7", flow.EthTypeIPv4, flow.ProtoUDP, flow.Rewrite{Field: flow.RewriteIPDst, IP: v4}, func(t *testing.T, out []byte) {
			assert.Equal(t, v4.AsSlice(), []byte(ip4(t, out).DstIP.To4()))
		}},
		{"ipv4 dst icmp", "icmp", flow.EthTypeIPv4, flow.ProtoICMP, flow.Rewrite{Field: flow.RewriteIPDst, IP: v4}, func(t *testing.T, out []byte) {
			assert.Equal(t, v4.AsSlice(), []byte(ip4(t, out).DstIP.To4()))
		}},
		{"ipv6 src tcp", "tcp,src=fd00::1,dst=fd00::2", flow.EthTypeIPv6, flow.ProtoTCP, flow.Rewrite{Field: flow.RewriteIPSrc, IP: v6}, func(t *testing.T, out []byte) {
			assert.Equal(t, v6.AsSlice(), []byte(decode(t, out).Layer(layers.LayerTypeIPv6).(*layers.IPv6).SrcIP))
		}},
		{"ipv6 dst udp", "udp,src=fd00::1,dst=fd00::2,len=3", flow.EthTypeIPv6, flow.ProtoUDP, flow.Rewrite{Field: flow.RewriteIPDst, IP: v6}, nil},
		{"ipv6 dst icmpv6", "icmp6,src=fd00::1,dst=fd00::2", flow.EthTypeIPv6, flow.ProtoICMPv6, flow.Rewrite{Field: flow.RewriteIPDst, IP: v6}, nil},
		{"ttl ipv4", "udp,ttl=9", flow.EthTypeIPv4, 0, flow.Rewrite{Field: flow.RewriteTTLDec}, func(t *testing.T, out []byte) {
			assert.Equal(t, uint8(8), ip4(t, out).TTL)
		}},
		{"hop limit ipv6", "udp,src=fd00::1,ttl=9", flow.EthTypeIPv6, 0, flow.Rewrite{Field: flow.RewriteTTLDec}, func(t *testing.T, out []byte) {
			assert.Equal(t, uint8(8), decode(t, out).Layer(layers.LayerTypeIPv6).(*layers.IPv6).HopLimit)
		}},
		{"tcp sport", "tcp,payload=hello", flow.EthTypeIPv4, flow.ProtoTCP, flow.Rewrite{Field: flow.RewriteSrcPort, Port: 4444}, func(t *testing.T, out []byte) {
			assert.Equal(t, layers.TCPPort(4444), decode(t, out).Layer(layers.LayerTypeTCP).(*layers.TCP).SrcPort)
		}},
		{"udp dport", "udp,payload=hi", flow.EthTypeIPv4, flow.ProtoUDP, flow.Rewrite{Field: flow.RewriteDstPort, Port: 5353}, func(t *testing.T, out []byte) {
			assert.Equal(t, layers.UDPPort(5353), decode(t, out).Layer(layers.LayerTypeUDP).(*layers.UDP).DstPort)
		}},
		{"sctp dport", "sctp,payload=0x00030014000000010000000100000000deadbeef", flow.EthTypeIPv4, flow.ProtoSCTP, flow.Rewrite{Field: flow.RewriteDstPort, Port: 3869}, func(t *testing.T, out []byte) {
			s := decode(t, out).Layer(layers.LayerTypeSCTP).(*layers.SCTP)
			assert.Equal(t, layers.SCTPPort(3869), s.DstPort)
			requireSCTPChecksum(t, s.Contents, s.Payload)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := defaultEnv(t)
			m := flow.Match{EthType: tc.et, IPProto: tc.proto}
			plane := flow.Hardware
			if tc.proto == flow.ProtoICMPv6 || tc.proto == flow.ProtoSCTP { // mlx5 does not offload these rewrites
				plane = flow.Software
			}
			e.program(plane, fl("rw", rep0, 0, 1, m, rewrite(tc.rw), redirect(up)))
			tr := e.inject(rep0, tc.spec)
			require.Len(t, tr.Outputs, 1, tr.String())
			out := tr.Outputs[0].Frame
			requireChecksums(t, tr.Input)
			requireChecksums(t, out)
			assert.NotEqual(t, tr.Input, out)
			if tc.check != nil {
				tc.check(t, out)
			}
			// The software plane does the same bytes.
			sw := defaultEnv(t)
			sw.program(flow.Software, fl("rw", rep0, 0, 1, m, rewrite(tc.rw), redirect(up)))
			assert.Equal(t, out, sw.inject(rep0, tc.spec).Outputs[0].Frame)
		})
	}
}

func ip4(t *testing.T, frame []byte) *layers.IPv4 {
	ip, ok := decode(t, frame).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	require.True(t, ok)
	return ip
}

func requireSCTPChecksum(t *testing.T, hdr, payload []byte) {
	t.Helper()
	b := append(append([]byte(nil), hdr...), payload...)
	want := binary.LittleEndian.Uint32(b[8:12])
	binary.LittleEndian.PutUint32(b[8:12], 0)
	assert.Equal(t, crc32c(b), want, "SCTP CRC32c")
}

func TestRewriteKeepsZeroUDPChecksum(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware, fl("rw", rep0, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoUDP}),
		rewrite(flow.Rewrite{Field: flow.RewriteIPSrc, IP: netip.MustParseAddr("10.9.9.9")}),
		rewrite(flow.Rewrite{Field: flow.RewriteDstPort, Port: 99}), redirect(up)))
	frame := e.mustBuild(rep0, "udp")
	udpOff := 14 + 20
	frame[udpOff+6], frame[udpOff+7] = 0, 0 // no checksum (IPv4)
	tr := e.injectFrame(rep0, frame)
	out := tr.Outputs[0].Frame
	assert.Equal(t, []byte{0, 0}, out[udpOff+6:udpOff+8], "an absent UDP checksum stays absent")
	requireChecksums(t, out)
}

func TestPolice(t *testing.T) {
	tests := []struct {
		name    string
		police  flow.Police
		gaps    []time.Duration // before each packet
		want    []datapath.Verdict
		matched [][]string
	}{
		{
			name: "bytes: burst then exceed, refill with time",
			// 100-byte frames are 86 bytes to police; burst holds two.
			police: flow.Police{RateBytes: 860, Burst: 200},
			gaps:   []time.Duration{0, 0, 0, 100 * time.Millisecond, 0},
			want: []datapath.Verdict{datapath.VerdictForwarded, datapath.VerdictForwarded, datapath.VerdictDropped,
				datapath.VerdictForwarded, datapath.VerdictDropped},
		},
		{
			name:   "packets",
			police: flow.Police{RatePackets: 10, Burst: 1},
			gaps:   []time.Duration{0, 0, 50 * time.Millisecond, 50 * time.Millisecond},
			want:   []datapath.Verdict{datapath.VerdictForwarded, datapath.VerdictDropped, datapath.VerdictDropped, datapath.VerdictForwarded},
		},
		{
			name:   "exceed continue tries the next rule, conform accept delivers",
			police: flow.Police{RatePackets: 1, Burst: 1, Conform: flow.VerdictAccept, Exceed: flow.VerdictContinue},
			gaps:   []time.Duration{0, 0},
			want:   []datapath.Verdict{datapath.VerdictDelivered, datapath.VerdictForwarded},
			matched: [][]string{
				{"hardware:meter"},
				{"hardware:meter", "hardware:next"},
			},
		},
	}
	for _, tc := range tests {
		for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
			t.Run(tc.name+"/"+plane.String(), func(t *testing.T) {
				e := defaultEnv(t)
				pl := tc.police
				e.program(plane,
					fl("meter", rep0, 0, 1, flow.Match{}, flow.Action{Kind: flow.ActPolice, Police: &pl}, redirect(up)),
					fl("next", rep0, 0, 2, flow.Match{}, redirect(rep1)))
				frame := e.mustBuild(rep0, "udp,len=58")
				require.Len(t, frame, 100)
				for i, gap := range tc.gaps {
					e.clock.Advance(gap)
					tr := e.injectFrame(rep0, frame)
					assert.Equal(t, tc.want[i], tr.Verdict, "packet %d: %s", i, tr)
					if tc.matched != nil {
						want := make([]string, len(tc.matched[i]))
						for j, m := range tc.matched[i] {
							want[j] = plane.String() + m[len("hardware"):]
						}
						assert.Equal(t, want, matchedIDs(tr), "packet %d", i)
					}
				}
			})
		}
	}
}
