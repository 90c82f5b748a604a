package datapath_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload/flow"
)

const (
	rep4 = "pf0vf4"
	vf4  = "enp8s0f0v4"
)

var web = netip.MustParseAddr("10.0.0.14")

// webFirewall is the demo tenant's stateful firewall for the web VM on
// VF4, placed as the engine places it on a ConnectX-6 Dx: ct and +est
// rules in hardware, +new and +inv in software. With softwareCopies the
// +est and catch-all rules also get a software copy, as OVS installs
// them without skip flags, so that packets of connections that are not
// offloaded yet find them after missing to software.
func webFirewall(e *env, softwareCopies bool) {
	tcp := ipv4(flow.Match{IPProto: flow.ProtoTCP})
	with := func(m flow.Match, st uint16) flow.Match { m.CTState = ctState(st, st); return m }
	trkNew, trkEst := flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTEstablished
	inMatch := tcp
	inMatch.IPDst = netip.PrefixFrom(web, 32)
	http := tcp
	http.DstPort = port16(80)
	hw := []*flow.Flow{
		fl("fw-out-ct", rep4, 0, 10, tcp, ct(10, false), gotoC(2)),
		fl("fw-out-est", rep4, 2, 20, with(tcp, trkEst), redirect(up)),
		fl("fw-in-ct", up, 0, 10, inMatch, ct(10, false), gotoC(3)),
		fl("fw-in-est", up, 3, 20, with(tcp, trkEst), redirect(rep4)),
		fl("fw-in-default", up, 3, 100, with(tcp, flow.CTTracked), drop()),
	}
	sw := []*flow.Flow{
		fl("fw-out-new", rep4, 2, 10, with(tcp, trkNew), ct(10, true), redirect(up)),
		fl("fw-in-new-http", up, 3, 10, with(http, trkNew), ct(10, true), redirect(rep4)),
		fl("fw-in-invalid", up, 3, 30, with(tcp, flow.CTTracked|flow.CTInvalid), drop()),
	}
	e.program(flow.Hardware, hw...)
	if softwareCopies {
		sw = append(sw, hw[1], hw[3], hw[4])
	}
	e.program(flow.Software, sw...)
}

const (
	client  = "192.0.2.99"
	toWeb   = "tcp,src=" + client + ",dst=10.0.0.14,sport=40000,dport=80"
	fromWeb = "tcp,src=10.0.0.14,dst=" + client + ",sport=80,dport=40000"
)

func TestStatefulFirewallOffloadsEstablished(t *testing.T) {
	e := defaultEnv(t)
	webFirewall(e, true)
	type step struct {
		name     string
		port     string
		spec     string
		verdict  datapath.Verdict
		matched  []string
		software bool
		state    uint16 // ct_state of the last ct lookup
	}
	est, rpl := flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished|flow.CTReply
	steps := []step{
		{"SYN: set up in software", up, toWeb + ",flags=S", datapath.VerdictForwarded,
			[]string{"hardware:fw-in-ct", "software:fw-in-new-http"}, true, flow.CTTracked | flow.CTNew},
		{"SYN-ACK: not offloaded yet, software", vf4, fromWeb + ",flags=SA", datapath.VerdictForwarded,
			[]string{"hardware:fw-out-ct", "software:fw-out-est"}, true, rpl},
		{"ACK: establishes, offloads", up, toWeb + ",flags=A", datapath.VerdictForwarded,
			[]string{"hardware:fw-in-ct", "software:fw-in-est"}, true, est},
		{"data in: hardware", up, toWeb + ",flags=PA,payload=GET", datapath.VerdictForwarded,
			[]string{"hardware:fw-in-ct", "hardware:fw-in-est"}, false, est},
		{"data out: hardware", vf4, fromWeb + ",flags=PA,payload=200", datapath.VerdictForwarded,
			[]string{"hardware:fw-out-ct", "hardware:fw-out-est"}, false, rpl},
		{"unsolicited ACK: invalid, dropped", up, "tcp,src=" + client + ",dst=10.0.0.14,sport=40001,dport=80,flags=A", datapath.VerdictDropped,
			[]string{"hardware:fw-in-ct", "software:fw-in-invalid"}, true, flow.CTTracked | flow.CTInvalid},
		{"SYN to another port: dropped", up, "tcp,src=" + client + ",dst=10.0.0.14,sport=40002,dport=22,flags=S", datapath.VerdictDropped,
			[]string{"hardware:fw-in-ct", "software:fw-in-default"}, true, flow.CTTracked | flow.CTNew},
		{"FIN: back to software", up, toWeb + ",flags=FA", datapath.VerdictForwarded,
			[]string{"hardware:fw-in-ct", "software:fw-in-est"}, true, est},
		{"after FIN: software", vf4, fromWeb + ",flags=A", datapath.VerdictForwarded,
			[]string{"hardware:fw-out-ct", "software:fw-out-est"}, true, rpl},
	}
	for _, s := range steps {
		e.clock.Advance(10 * time.Millisecond)
		tr := e.inject(s.port, s.spec)
		assert.Equal(t, s.verdict, tr.Verdict, "%s\n%s", s.name, tr)
		assert.Equal(t, s.matched, matchedIDs(tr), s.name)
		assert.Equal(t, s.software, tr.SoftwarePath, s.name)
		var last *datapath.CTLookup
		for _, st := range tr.Steps {
			if st.Kind == datapath.StepConntrack {
				last = st.CT
			}
		}
		require.NotNil(t, last, s.name)
		assert.Equal(t, datapath.CTStateString(s.state), datapath.CTStateString(last.State), s.name)
	}
	// Counters per plane: the hardware +est rules saw the offloaded packets.
	assert.Equal(t, uint64(1), e.counters(flow.Hardware, "fw-in-est").Packets)
	assert.Equal(t, uint64(2), e.counters(flow.Software, "fw-in-est").Packets)
	assert.Equal(t, uint64(1), e.counters(flow.Hardware, "fw-out-est").Packets)
	assert.Equal(t, uint64(2), e.counters(flow.Software, "fw-out-est").Packets)
	// fw-in-ct is hardware-only: it has no software copy to count the
	// packets its ct action sent to software in.
	assert.Equal(t, uint64(6), e.counters(flow.Hardware, "fw-in-ct").Packets)

	es := e.dp.Conntrack().Entries(e.clock.Now())
	require.Len(t, es, 1, "the SYN to port 22 was never committed")
	assert.Equal(t, uint16(10), es[0].Zone)
	assert.Equal(t, conntrack.TCPCloseWait, es[0].TCPState, "the server acknowledged the FIN")
	assert.Zero(t, es[0].Status&conntrack.Offloaded, "FIN ended the offload")
	assert.Equal(t, uint64(2), e.dp.Stats()[up].Drops)
}

func TestFirewallWithoutSoftwareCopies(t *testing.T) {
	// With each rule in one plane only, packets of a connection that is
	// set up but not offloaded yet (SYN-ACK, the last handshake ACK) miss
	// to software, where the +est rules are not: the slow path gets them.
	// Once the connection is offloaded, hardware forwards.
	e := defaultEnv(t)
	webFirewall(e, false)
	steps := []struct {
		port, spec string
		verdict    datapath.Verdict
	}{
		{up, toWeb + ",flags=S", datapath.VerdictForwarded},
		{vf4, fromWeb + ",flags=SA", datapath.VerdictUpcall},
		{up, toWeb + ",flags=A", datapath.VerdictUpcall},
		{up, toWeb + ",flags=PA", datapath.VerdictForwarded},
		{vf4, fromWeb + ",flags=PA", datapath.VerdictForwarded},
	}
	for i, s := range steps {
		tr := e.inject(s.port, s.spec)
		assert.Equal(t, s.verdict, tr.Verdict, "packet %d\n%s", i, tr)
	}
	assert.Equal(t, uint64(1), e.counters(flow.Hardware, "fw-in-est").Packets)
	assert.Equal(t, uint64(1), e.dp.Stats()[rep4].Upcalls)
	assert.Equal(t, uint64(1), e.dp.Stats()[up].Upcalls)
}

func TestNoCTOffloadWithoutProfileSupport(t *testing.T) {
	// E810 offloads no ct: everything with ct stays in software.
	cfg := emulated.DefaultConfig()
	cfg.Profile = "ice-e810"
	e := newEnv(t, cfg, datapath.Config{})
	tcp := ipv4(flow.Match{IPProto: flow.ProtoTCP})
	est := tcp
	est.CTState = ctState(flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished)
	e.program(flow.Software,
		fl("ct", rep0, 0, 1, tcp, ct(1, true), gotoC(1)),
		fl("est", rep0, 1, 1, est, redirect(up)),
		fl("new", rep0, 1, 2, tcp, redirect(up)))
	for _, spec := range []string{"tcp,flags=S", "tcp,flags=A"} {
		e.inject(rep0, spec)
	}
	e.inject(up, "tcp,src=10.0.0.2,dst=10.0.0.1,sport=80,dport=12345,flags=SA")
	e.program(flow.Software, fl("back", up, 0, 1, tcp, ct(1, false), redirect(rep0)))
	e.inject(up, "tcp,src=10.0.0.2,dst=10.0.0.1,sport=80,dport=12345,flags=SA")
	e.inject(rep0, "tcp,flags=A")
	es := e.dp.Conntrack().Entries(t0)
	require.Len(t, es, 1)
	assert.Equal(t, conntrack.TCPEstablished, es[0].TCPState)
	assert.Zero(t, es[0].Status&conntrack.Offloaded)
}

func TestNATThroughTheDatapath(t *testing.T) {
	e := defaultEnv(t)
	vip := netip.MustParseAddr("203.0.113.10")
	snat := netip.MustParseAddr("192.0.2.50")
	tcp := ipv4(flow.Match{IPProto: flow.ProtoTCP})
	dnat := &flow.CT{Zone: 20, Commit: true, NAT: flow.NAT{Kind: flow.NATDst, AddrMin: web, PortMin: 8443, PortMax: 8443}}
	restore := &flow.CT{Zone: 20, NAT: flow.NAT{Kind: flow.NATDst, AddrMin: web}}
	lbIn := tcp
	lbIn.IPDst = netip.PrefixFrom(vip, 32)
	e.program(flow.Software,
		fl("lb-in", up, 0, 1, lbIn, flow.Action{Kind: flow.ActCT, CT: dnat}, redirect(rep4)),
		fl("lb-out", rep4, 0, 1, tcp, flow.Action{Kind: flow.ActCT, CT: restore}, redirect(up)),
		fl("snat-out", rep0, 0, 1, ipv4(flow.Match{}), flow.Action{Kind: flow.ActCT,
			CT: &flow.CT{Zone: 30, Commit: true, NAT: flow.NAT{Kind: flow.NATSrc, AddrMin: snat, PortMin: 20000, PortMax: 20099}}}, redirect(up)),
		fl("snat-in", up, 0, 2, ipv4(flow.Match{IPDst: netip.PrefixFrom(snat, 32)}),
			flow.Action{Kind: flow.ActCT, CT: &flow.CT{Zone: 30, NAT: flow.NAT{Kind: flow.NATSrc, AddrMin: snat}}}, redirect(rep0)),
	)
	// DNAT: the VIP becomes the backend, the reply comes from the VIP.
	tr := e.inject(up, "tcp,src=198.51.100.7,dst=203.0.113.10,sport=5555,dport=443,flags=S")
	require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
	in := decode(t, tr.Outputs[0].Frame)
	assert.Equal(t, web.AsSlice(), []byte(in.Layer(layers.LayerTypeIPv4).(*layers.IPv4).DstIP.To4()))
	assert.Equal(t, layers.TCPPort(8443), in.Layer(layers.LayerTypeTCP).(*layers.TCP).DstPort)
	requireChecksums(t, tr.Outputs[0].Frame)

	tr = e.inject(vf4, "tcp,src=10.0.0.14,dst=198.51.100.7,sport=8443,dport=5555,flags=SA")
	require.Equal(t, datapath.VerdictForwarded, tr.Verdict, tr.String())
	back := decode(t, tr.Outputs[0].Frame)
	assert.Equal(t, vip.AsSlice(), []byte(back.Layer(layers.LayerTypeIPv4).(*layers.IPv4).SrcIP.To4()))
	assert.Equal(t, layers.TCPPort(443), back.Layer(layers.LayerTypeTCP).(*layers.TCP).SrcPort)
	requireChecksums(t, tr.Outputs[0].Frame)
	assert.Contains(t, tr.String(), "ct nat: ip_src 10.0.0.14 -> 203.0.113.10, src_port 8443 -> 443")

	// SNAT: VM 0's UDP leaves from the NAT address; the answer comes back.
	tr = e.inject(rep0, "udp,src=10.0.0.10,dst=198.51.100.7,sport=7777,dport=53")
	out := decode(t, tr.Outputs[0].Frame)
	ip := out.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	assert.Equal(t, snat.AsSlice(), []byte(ip.SrcIP.To4()))
	natPort := uint16(out.Layer(layers.LayerTypeUDP).(*layers.UDP).SrcPort)
	assert.True(t, natPort >= 20000 && natPort <= 20099)
	requireChecksums(t, tr.Outputs[0].Frame)

	tr = e.inject(up, "udp,src=198.51.100.7,dst=192.0.2.50,sport=53,dport="+itoa(int(natPort)))
	require.Equal(t, vf0, tr.Outputs[0].Port, tr.String())
	ans := decode(t, tr.Outputs[0].Frame)
	assert.Equal(t, []byte{10, 0, 0, 10}, []byte(ans.Layer(layers.LayerTypeIPv4).(*layers.IPv4).DstIP.To4()))
	assert.Equal(t, layers.UDPPort(7777), ans.Layer(layers.LayerTypeUDP).(*layers.UDP).DstPort)
	requireChecksums(t, tr.Outputs[0].Frame)

	// An ICMP error about the NATed flow, from a router, is related and
	// translated back, quoted header included.
	quoted, err := datapath.BuildFrame("udp,src=192.0.2.50,dst=198.51.100.7,sport="+itoa(int(natPort))+",dport=53", datapath.SpecDefaults{})
	require.NoError(t, err)
	icmpSpec := "icmp,type=3,code=3,src=198.18.0.1,dst=192.0.2.50,payload=0x" + hexOf(quoted[14:14+28])
	tr = e.inject(up, icmpSpec)
	require.Equal(t, vf0, tr.Outputs[0].Port, tr.String())
	var lookup *datapath.CTLookup
	for _, s := range tr.Steps {
		if s.Kind == datapath.StepConntrack {
			lookup = s.CT
		}
	}
	require.NotNil(t, lookup)
	assert.Equal(t, "+trk+rel+rpl", datapath.CTStateString(lookup.State))
	err1 := decode(t, tr.Outputs[0].Frame)
	outer := err1.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	assert.Equal(t, []byte{10, 0, 0, 10}, []byte(outer.DstIP.To4()))
	icmp := err1.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	q := icmp.Payload
	assert.Equal(t, []byte{10, 0, 0, 10}, q[12:16], "quoted source translated back")
	assert.Equal(t, []byte{0x1e, 0x61}, q[20:22], "quoted source port 7777")
	requireChecksums(t, tr.Outputs[0].Frame)
	assert.Equal(t, uint16(0), checksumOf(q[:20]), "quoted IPv4 header checksum")
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

func checksumOf(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestCTMarkZoneMatchAndClear(t *testing.T) {
	e := defaultEnv(t)
	udp := ipv4(flow.Match{IPProto: flow.ProtoUDP})
	marked := udp
	marked.CTMark = flow.Masked32{Value: 0x5, Mask: 0xf}
	marked.CTZone = flow.Some[uint16](7)
	e.program(flow.Software,
		fl("commit", rep0, 0, 1, udp, flow.Action{Kind: flow.ActCT, CT: &flow.CT{Zone: 7, Commit: true, Mark: flow.Masked32{Value: 0x15, Mask: 0xff}}}, gotoC(1)),
		fl("mark", rep0, 1, 1, marked, flow.Action{Kind: flow.ActCT, CT: &flow.CT{Clear: true}}, gotoC(2)),
		fl("untracked", rep0, 2, 1, ipv4(flow.Match{CTState: ctState(0, flow.CTTracked)}), redirect(up)),
	)
	tr := e.inject(rep0, "udp")
	assert.Equal(t, []string{"software:commit", "software:mark", "software:untracked"}, matchedIDs(tr), tr.String())
	assert.Equal(t, datapath.VerdictForwarded, tr.Verdict)
	assert.Equal(t, uint32(0x15), e.dp.Conntrack().Entries(t0)[0].Mark)
}
