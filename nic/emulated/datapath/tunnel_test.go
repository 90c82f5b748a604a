package datapath_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

var (
	localVTEP  = netip.MustParseAddr("192.0.2.1")
	remoteVTEP = netip.MustParseAddr("198.51.100.10")
	remoteMAC  = [6]byte{0x02, 0xaa, 0x00, 0x00, 0x00, 0x0a}
)

func encapFlow(id, port string, dst netip.Prefix, e flow.TunnelEncap) *flow.Flow {
	return fl(id, port, 0, 10, ipv4(flow.Match{IPDst: dst}),
		flow.Action{Kind: flow.ActTunnelEncap, Encap: &e}, redirect(vx))
}

func decapFlow(id string, mac [6]byte, to string) *flow.Flow {
	return fl(id, vx, 0, 10, flow.Match{EthDst: flow.MaskedMAC{Addr: mac, Mask: full},
		TunID: flow.Some[uint32](100), TunDst: netip.PrefixFrom(localVTEP, 32), TunDstPort: flow.Some[uint16](4789)},
		flow.Action{Kind: flow.ActTunnelDecap}, redirect(to))
}

func TestEncapExactOuterHeaders(t *testing.T) {
	e := newEnv(t, emulated.DefaultConfig(), datapath.Config{Neighbours: []datapath.Neighbour{{IP: remoteVTEP, MAC: remoteMAC}}})
	e.program(flow.Hardware, encapFlow("overlay", rep0, pfx("10.0.1.0/24"),
		flow.TunnelEncap{VNI: 100, Src: localVTEP, Dst: remoteVTEP, TTL: 64, TOS: 0x10}))
	tr := e.inject(rep0, "tcp,src=10.0.0.10,dst=10.0.1.5,sport=40000,dport=443,payload=hello")
	require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
	assert.False(t, tr.SoftwarePath)
	require.Len(t, tr.Outputs, 1)
	o := tr.Outputs[0]
	assert.Equal(t, up, o.Port)
	assert.Equal(t, datapath.OutputWire, o.Kind)
	inner := tr.Input
	f := o.Frame
	require.Len(t, f, 14+20+8+8+len(inner))

	// Ethernet: uplink MAC to the neighbour's.
	assert.Equal(t, remoteMAC[:], f[0:6])
	assert.Equal(t, upMAC[:], f[6:12])
	assert.Equal(t, []byte{0x08, 0x00}, f[12:14])
	// IPv4: no options, TOS from the action, ID 0, no DF, TTL 64, UDP.
	ip := f[14:34]
	assert.Equal(t, byte(0x45), ip[0])
	assert.Equal(t, byte(0x10), ip[1])
	assert.Equal(t, uint16(20+8+8+len(inner)), binary.BigEndian.Uint16(ip[2:4]))
	assert.Equal(t, []byte{0, 0, 0, 0}, ip[4:8], "id 0, no flags, no offset")
	assert.Equal(t, byte(64), ip[8])
	assert.Equal(t, byte(17), ip[9])
	assert.Equal(t, localVTEP.AsSlice(), ip[12:16])
	assert.Equal(t, remoteVTEP.AsSlice(), ip[16:20])
	// UDP: source port from the inner flow's hash in 32768-60999, to 4789.
	udp := f[34:42]
	sport := binary.BigEndian.Uint16(udp[0:2])
	assert.Equal(t, uint16(36429), sport, "jhash of the inner 5-tuple with seed 0")
	assert.Equal(t, uint16(4789), binary.BigEndian.Uint16(udp[2:4]))
	assert.Equal(t, uint16(8+8+len(inner)), binary.BigEndian.Uint16(udp[4:6]))
	assert.NotZero(t, binary.BigEndian.Uint16(udp[6:8]), "checksum set (no no_csum)")
	// VXLAN: I flag, VNI 100.
	assert.Equal(t, []byte{0x08, 0, 0, 0, 0, 0, 100, 0}, f[42:50])
	assert.Equal(t, inner, f[50:])
	requireChecksums(t, f)
	p := decode(t, f)
	vxl, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	require.True(t, ok)
	assert.Equal(t, uint32(100), vxl.VNI)

	// The same flow hashes to the same port; other flows spread.
	again := e.inject(rep0, "tcp,src=10.0.0.10,dst=10.0.1.5,sport=40000,dport=443,payload=other")
	assert.Equal(t, sport, binary.BigEndian.Uint16(again.Outputs[0].Frame[34:36]))
	ports := map[uint16]bool{}
	for i := range 32 {
		tr := e.inject(rep0, "udp,dst=10.0.1.7,sport="+itoa(1000+i))
		sp := binary.BigEndian.Uint16(tr.Outputs[0].Frame[34:36])
		assert.GreaterOrEqual(t, sp, uint16(32768))
		assert.Less(t, sp, uint16(60999))
		ports[sp] = true
	}
	assert.Greater(t, len(ports), 24, "source ports spread over flows")

	st := e.dp.Stats()
	assert.Equal(t, uint64(34), st[vx].TxPackets)
	assert.Equal(t, uint64(34), st[up].TxPackets)
	c := e.counters(flow.Hardware, "overlay")
	assert.Equal(t, uint64(34), c.Packets)
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

func TestEncapNoCsumAndIPv6(t *testing.T) {
	v6local, v6remote := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	e := newEnv(t, emulated.DefaultConfig(), datapath.Config{Neighbours: []datapath.Neighbour{
		{IP: remoteVTEP, MAC: remoteMAC}, {IP: v6remote, MAC: remoteMAC}}})
	e.program(flow.Hardware,
		encapFlow("nocsum", rep0, pfx("10.0.1.0/24"), flow.TunnelEncap{VNI: 7, Src: localVTEP, Dst: remoteVTEP, NoCsum: true, DstPort: 8472}),
		encapFlow("v6", rep1, pfx("10.0.2.0/24"), flow.TunnelEncap{VNI: 8, Src: v6local, Dst: v6remote}))
	f := e.inject(rep0, "udp,dst=10.0.1.1").Outputs[0].Frame
	assert.Equal(t, []byte{0, 0}, f[40:42], "no_csum leaves the UDP checksum 0")
	assert.Equal(t, uint16(8472), binary.BigEndian.Uint16(f[36:38]), "dst_port from the action")
	assert.Equal(t, byte(64), f[22], "TTL 0 means the default 64")
	requireChecksums(t, f)

	f = e.inject(rep1, "udp,dst=10.0.2.1").Outputs[0].Frame
	p := decode(t, f)
	ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	require.True(t, ok)
	assert.Equal(t, v6local.AsSlice(), []byte(ip6.SrcIP))
	assert.Equal(t, v6remote.AsSlice(), []byte(ip6.DstIP))
	assert.Equal(t, uint8(64), ip6.HopLimit)
	assert.Equal(t, uint8(0), ip6.TrafficClass)
	requireChecksums(t, f)
	assert.Equal(t, uint32(8), p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN).VNI)
}

func TestDecap(t *testing.T) {
	outer := "tcp,eth_dst=02:42:0f:01:00:00,src=10.0.1.5,dst=10.0.0.10,dport=22,vni=100,tun_src=198.51.100.10,tun_dst=192.0.2.1"
	innerSpec := "tcp,eth_src=02:00:00:00:00:01,eth_dst=02:42:0f:01:00:00,src=10.0.1.5,dst=10.0.0.10,dport=22"
	for _, plane := range []flow.Plane{flow.Hardware, flow.Software} {
		t.Run(plane.String(), func(t *testing.T) {
			e := defaultEnv(t)
			e.program(plane, decapFlow("decap", vf0MAC, rep0))
			// An unrelated uplink rule that the VXLAN frame misses.
			e.program(plane, fl("web", up, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoTCP}), drop()))
			tr := e.inject(up, outer)
			require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
			assert.Equal(t, plane == flow.Software, tr.SoftwarePath)
			require.Len(t, tr.Outputs, 1)
			assert.Equal(t, vf0, tr.Outputs[0].Port)
			assert.Equal(t, e.mustBuild(up, innerSpec), tr.Outputs[0].Frame, "the inner frame, unchanged")
			assert.Equal(t, []string{plane.String() + ":decap"}, matchedIDs(tr))
			assert.Equal(t, uint64(1), e.counters(plane, "decap").Packets)
			st := e.dp.Stats()
			assert.Equal(t, uint64(1), st[up].RxPackets)
			assert.Equal(t, uint64(1), st[vx].RxPackets)
			assert.Equal(t, uint64(1), st[rep0].TxPackets)

			// Another VNI matches no rule: an upcall on the tunnel device.
			tr = e.inject(up, "udp,vni=200,tun_dst=192.0.2.1,eth_dst=02:42:0f:01:00:00")
			assert.Equal(t, datapath.VerdictUpcall, tr.Verdict)
			assert.Equal(t, vx, tr.Outputs[0].Port)
			// The wrong outer destination does not match the tunnel key either.
			tr = e.inject(up, "udp,vni=100,tun_dst=192.0.2.9,eth_dst=02:42:0f:01:00:00")
			assert.Equal(t, datapath.VerdictUpcall, tr.Verdict)
		})
	}
}

func TestDecapOnTunnelDevice(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware, decapFlow("decap", vf1MAC, rep1))
	tr := e.inject(vx, "udp,eth_dst=02:42:0f:01:00:01,vni=100")
	require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
	assert.Equal(t, vf1, tr.Outputs[0].Port)

	// Without tunnel_decap, redirecting received metadata to a tunnel
	// device cannot transmit: the metadata is for receive.
	e2 := defaultEnv(t)
	e2.program(flow.Hardware, fl("bounce", vx, 0, 1, flow.Match{TunDstPort: flow.Some[uint16](4789)}, redirect(vx)))
	tr = e2.inject(up, "udp,vni=5")
	assert.Equal(t, datapath.VerdictDropped, tr.Verdict, tr.String())
	assert.Contains(t, tr.Reason, "no tunnel metadata")
}

func TestLocalAddrs(t *testing.T) {
	e := newEnv(t, emulated.DefaultConfig(), datapath.Config{LocalAddrs: []netip.Addr{localVTEP}})
	e.program(flow.Software, fl("any", vx, 0, 1, flow.Match{}, redirect(rep0)))
	assert.Equal(t, datapath.VerdictForwarded, e.inject(up, "udp,vni=1,tun_dst=192.0.2.1").Verdict)
	tr := e.inject(up, "udp,vni=1,tun_dst=192.0.2.2")
	assert.Equal(t, datapath.VerdictUpcall, tr.Verdict)
	assert.Equal(t, up, tr.Outputs[0].Port, "not for us: the uplink's host stack")
}

func TestNeighbourResolution(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware, encapFlow("overlay", rep0, pfx("10.0.1.0/24"),
		flow.TunnelEncap{VNI: 100, Src: localVTEP, Dst: remoteVTEP, TTL: 64}))

	// Hardware cannot build the header: software runs the encap and asks.
	tr := e.inject(rep0, "udp,dst=10.0.1.5")
	assert.Equal(t, datapath.VerdictDropped, tr.Verdict, tr.String())
	assert.True(t, tr.SoftwarePath)
	assert.Contains(t, tr.Reason, "no neighbour entry for 198.51.100.10")
	require.Len(t, tr.Outputs, 1)
	arp, ok := decode(t, tr.Outputs[0].Frame).Layer(layers.LayerTypeARP).(*layers.ARP)
	require.True(t, ok)
	assert.Equal(t, uint16(layers.ARPRequest), arp.Operation)
	assert.Equal(t, localVTEP.AsSlice(), arp.SourceProtAddress)
	assert.Equal(t, remoteVTEP.AsSlice(), arp.DstProtAddress)
	assert.Equal(t, upMAC[:], arp.SourceHwAddress)
	assert.Equal(t, full[:], tr.Outputs[0].Frame[0:6])

	// The reply reaches the uplink's host stack and is learned.
	tr = e.inject(up, "arp,op=reply,eth_src=02:aa:00:00:00:0a,eth_dst=02:42:0f:00:00:00,src=198.51.100.10,dst=192.0.2.1")
	assert.Equal(t, datapath.VerdictUpcall, tr.Verdict)
	assert.Equal(t, []datapath.Neighbour{{IP: remoteVTEP, MAC: remoteMAC, Learned: true}}, e.dp.Neighbours())

	tr = e.inject(rep0, "udp,dst=10.0.1.5")
	assert.Equal(t, datapath.VerdictForwarded, tr.Verdict)
	assert.False(t, tr.SoftwarePath, "hardware encapsulates now")
	assert.Equal(t, remoteMAC[:], tr.Outputs[0].Frame[0:6])

	// A static entry replaces it; learning does not override static entries.
	require.NoError(t, e.dp.SetNeighbour(remoteVTEP, gwMAC))
	e.inject(up, "arp,op=reply,eth_src=02:aa:00:00:00:0a,src=198.51.100.10,dst=192.0.2.1")
	assert.Equal(t, []datapath.Neighbour{{IP: remoteVTEP, MAC: gwMAC}}, e.dp.Neighbours())
	assert.True(t, e.dp.DeleteNeighbour(remoteVTEP))
	assert.Empty(t, e.dp.Neighbours())
}

func TestGatewayAndNeighbourSolicitation(t *testing.T) {
	gw := netip.MustParseAddr("192.0.2.254")
	e := newEnv(t, emulated.DefaultConfig(), datapath.Config{
		Gateways: []netip.Addr{gw}, Neighbours: []datapath.Neighbour{{IP: gw, MAC: gwMAC}}})
	v6local, v6remote := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2")
	e.program(flow.Hardware,
		encapFlow("v4", rep0, pfx("10.0.1.0/24"), flow.TunnelEncap{VNI: 1, Src: localVTEP, Dst: remoteVTEP}),
		encapFlow("v6", rep1, pfx("10.0.1.0/24"), flow.TunnelEncap{VNI: 1, Src: v6local, Dst: v6remote}))
	tr := e.inject(rep0, "udp,dst=10.0.1.1")
	assert.Equal(t, gwMAC[:], tr.Outputs[0].Frame[0:6], "through the gateway")

	tr = e.inject(rep1, "udp,dst=10.0.1.1")
	assert.Equal(t, datapath.VerdictDropped, tr.Verdict)
	ns := tr.Outputs[0].Frame
	requireChecksums(t, ns)
	p := decode(t, ns)
	sol, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	require.True(t, ok)
	assert.Equal(t, v6remote.AsSlice(), []byte(sol.TargetAddress))
	assert.Equal(t, []byte{0x33, 0x33, 0xff, 0x00, 0x00, 0x02}, ns[0:6])

	// A neighbour advertisement from the wire teaches the address.
	na := "icmp6,type=136,src=2001:db8:1::2,dst=2001:db8::1,eth_src=02:aa:00:00:00:0a"
	e.inject(up, na)
	n := e.dp.Neighbours()
	require.Len(t, n, 1, "the gateway only: an NA without a target address teaches nothing")
	require.NoError(t, e.dp.SetNeighbour(v6remote, remoteMAC))
	tr = e.inject(rep1, "udp,dst=10.0.1.1")
	assert.Equal(t, datapath.VerdictForwarded, tr.Verdict)
}
