package conntrack_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ct "github.com/offloadd/offloadd/nic/emulated/datapath/conntrack"
	"github.com/offloadd/offloadd/offload/flow"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	client = netip.MustParseAddr("10.0.0.1")
	server = netip.MustParseAddr("10.0.0.2")
	natIP  = netip.MustParseAddr("192.0.2.7")
	router = netip.MustParseAddr("10.9.9.9")
)

const (
	trk = flow.CTTracked
	nw  = flow.CTNew
	est = flow.CTEstablished
	rel = flow.CTRelated
	inv = flow.CTInvalid
	rpl = flow.CTReply
)

func tcp(src, dst netip.Addr, sport, dport uint16) ct.Tuple {
	return ct.Tuple{Src: src, Dst: dst, Proto: ct.ProtoTCP, SrcPort: sport, DstPort: dport}
}

func udp(src, dst netip.Addr, sport, dport uint16) ct.Tuple {
	return ct.Tuple{Src: src, Dst: dst, Proto: ct.ProtoUDP, SrcPort: sport, DstPort: dport}
}

func seg(tu ct.Tuple, flags uint8) ct.Packet { return ct.Packet{Tuple: tu, TCPFlags: flags} }

func TestTCPHandshakeStates(t *testing.T) {
	orig := tcp(client, server, 40000, 80)
	reply := orig.Reverse()
	type step struct {
		name    string
		pkt     ct.Packet
		commit  bool
		state   uint16
		tcp     ct.TCPState
		offload bool
	}
	steps := []step{
		{"syn", seg(orig, ct.TCPSyn), true, trk | nw, ct.TCPSynSent, false},
		{"syn retransmit", seg(orig, ct.TCPSyn), false, trk | nw, ct.TCPSynSent, false},
		{"syn-ack", seg(reply, ct.TCPSyn|ct.TCPAck), false, trk | est | rpl, ct.TCPSynRecv, false},
		{"ack", seg(orig, ct.TCPAck), false, trk | est, ct.TCPEstablished, true},
		{"data", seg(orig, ct.TCPAck|ct.TCPPsh), false, trk | est, ct.TCPEstablished, true},
		{"reply data", seg(reply, ct.TCPAck|ct.TCPPsh), false, trk | est | rpl, ct.TCPEstablished, true},
		{"fin", seg(orig, ct.TCPFin|ct.TCPAck), false, trk | est, ct.TCPFinWait, false},
		{"fin-ack", seg(reply, ct.TCPFin|ct.TCPAck), false, trk | est | rpl, ct.TCPLastAck, false},
		{"last ack", seg(orig, ct.TCPAck), false, trk | est, ct.TCPTimeWait, false},
	}
	tb := ct.New(ct.DefaultTimeouts())
	now := t0
	for _, s := range steps {
		now = now.Add(time.Millisecond)
		res := tb.Track(ct.Request{Zone: 1, Packet: s.pkt, Commit: s.commit, Offload: true}, now)
		assert.Equal(t, s.state, res.State, "%s: state (%s)", s.name, res.Note)
		assert.Equal(t, s.tcp, res.TCPState, s.name)
		assert.Equal(t, s.offload, res.Offloaded, s.name)
	}
	es := tb.Entries(now)
	require.Len(t, es, 1)
	assert.Equal(t, ct.TCPTimeWait, es[0].TCPState)
	assert.Equal(t, 2*time.Minute, es[0].Timeout)
	assert.Equal(t, ct.SeenReply|ct.Assured, es[0].Status)
}

func TestInvalid(t *testing.T) {
	orig := tcp(client, server, 40000, 80)
	tests := []struct {
		name string
		prep []ct.Packet // committed first
		pkt  ct.Packet
		note string
	}{
		{"ack for unknown connection", nil, seg(orig, ct.TCPAck), "without SYN"},
		{"rst for unknown connection", nil, seg(orig, ct.TCPRst), "without SYN"},
		{"syn+fin", nil, seg(orig, ct.TCPSyn|ct.TCPFin), "not a valid combination"},
		{"no flags", nil, seg(orig, 0), "not a valid combination"},
		{"fin alone", nil, seg(orig, ct.TCPFin), "not a valid combination"},
		{"syn-ack in original direction in SYN_SENT", []ct.Packet{seg(orig, ct.TCPSyn)}, seg(orig, ct.TCPSyn|ct.TCPAck), "in state SYN_SENT"},
		{"echo reply without request", nil, ct.Packet{Tuple: ct.Tuple{Src: client, Dst: server, Proto: ct.ProtoICMP, ICMPType: 0, ICMPID: 7}}, "does not start"},
		{"icmp error about nothing", nil, ct.Packet{Tuple: ct.Tuple{Src: router, Dst: client, Proto: ct.ProtoICMP, ICMPType: 3, ICMPCode: 1},
			ICMPError: true, Inner: orig}, "not tracked"},
		{"fragment", nil, ct.Packet{Tuple: ct.Tuple{Src: client, Dst: server, Proto: ct.ProtoUDP}, Fragment: true}, "fragment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := ct.New(ct.DefaultTimeouts())
			for _, p := range tc.prep {
				res := tb.Track(ct.Request{Packet: p, Commit: true}, t0)
				require.NotEqual(t, trk|inv, res.State, res.Note)
			}
			res := tb.Track(ct.Request{Packet: tc.pkt, Commit: true}, t0)
			assert.Equal(t, trk|inv, res.State)
			assert.Contains(t, res.Note, tc.note)
			assert.False(t, res.Committed)
			assert.Equal(t, len(tc.prep), tb.Len(t0), "an invalid packet creates nothing")
		})
	}
}

func TestUncommittedIsForgotten(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	p := seg(tcp(client, server, 1, 2), ct.TCPSyn)
	assert.Equal(t, trk|nw, tb.Track(ct.Request{Packet: p}, t0).State)
	assert.Zero(t, tb.Len(t0))
	res := tb.Track(ct.Request{Packet: p, Commit: true, Mark: flow.Masked32{Value: 0x12, Mask: 0xff}}, t0)
	assert.True(t, res.Committed)
	assert.Equal(t, uint32(0x12), res.Mark)
	assert.Equal(t, 1, tb.Len(t0))
	// A later commit changes only the masked bits.
	res = tb.Track(ct.Request{Packet: p, Commit: true, Mark: flow.Masked32{Value: 0x300, Mask: 0xf00}}, t0)
	assert.False(t, res.Committed)
	assert.Equal(t, uint32(0x312), res.Mark)
}

func TestUDPTimeoutsAndStream(t *testing.T) {
	to := ct.DefaultTimeouts()
	tb := ct.New(to)
	orig := udp(client, server, 5000, 53)
	res := tb.Track(ct.Request{Packet: ct.Packet{Tuple: orig}, Commit: true, Offload: true}, t0)
	require.Equal(t, trk|nw, res.State)
	assert.Equal(t, 30*time.Second, tb.Entries(t0)[0].Timeout)

	// A reply within 2 s: still the short timeout, not assured, not offloaded.
	at := t0.Add(time.Second)
	res = tb.Track(ct.Request{Packet: ct.Packet{Tuple: orig.Reverse()}, Offload: true}, at)
	assert.Equal(t, trk|est|rpl, res.State)
	assert.False(t, res.Offloaded)
	e := tb.Entries(at)[0]
	assert.Equal(t, 30*time.Second, e.Timeout)
	assert.Equal(t, ct.SeenReply, e.Status)

	// Still going after 2 s: a stream, 120 s, assured, offloadable.
	at = t0.Add(3 * time.Second)
	res = tb.Track(ct.Request{Packet: ct.Packet{Tuple: orig}, Offload: true}, at)
	assert.Equal(t, trk|est, res.State)
	assert.True(t, res.Offloaded)
	e = tb.Entries(at)[0]
	assert.Equal(t, 120*time.Second, e.Timeout)
	assert.Equal(t, ct.SeenReply|ct.Assured|ct.Offloaded, e.Status)

	// Expiry.
	assert.Equal(t, 1, tb.Len(at.Add(119*time.Second)))
	assert.Equal(t, 0, tb.Len(at.Add(120*time.Second)))
	res = tb.Track(ct.Request{Packet: ct.Packet{Tuple: orig}}, at.Add(121*time.Second))
	assert.Equal(t, trk|nw, res.State, "after expiry the flow is new again")
}

func TestTimeoutsPerState(t *testing.T) {
	to := ct.DefaultTimeouts()
	assert.Equal(t, 5*24*time.Hour, to.TCPEstablished)
	assert.Equal(t, 120*time.Second, to.TCPSynSent)
	assert.Equal(t, 30*time.Second, to.UDP)
	assert.Equal(t, 30*time.Second, to.ICMP)

	tb := ct.New(to)
	orig := tcp(client, server, 1000, 22)
	tb.Track(ct.Request{Packet: seg(orig, ct.TCPSyn), Commit: true}, t0)
	assert.Equal(t, 2*time.Minute, tb.Entries(t0)[0].Timeout, "SYN_SENT")
	assert.Zero(t, tb.Len(t0.Add(2*time.Minute)), "an unanswered SYN expires after 120 s")

	tb.Track(ct.Request{Packet: seg(orig, ct.TCPSyn), Commit: true}, t0)
	tb.Track(ct.Request{Packet: seg(orig.Reverse(), ct.TCPSyn|ct.TCPAck)}, t0)
	tb.Track(ct.Request{Packet: seg(orig, ct.TCPAck)}, t0)
	assert.Equal(t, 5*24*time.Hour, tb.Entries(t0)[0].Timeout, "ESTABLISHED")
	tb.Track(ct.Request{Packet: seg(orig, ct.TCPRst)}, t0)
	assert.Equal(t, 10*time.Second, tb.Entries(t0)[0].Timeout, "CLOSE after RST")
}

func TestResetBeforeReplyRemoves(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	orig := tcp(client, server, 1000, 23)
	tb.Track(ct.Request{Packet: seg(orig, ct.TCPSyn), Commit: true}, t0)
	res := tb.Track(ct.Request{Packet: seg(orig.Reverse(), ct.TCPRst|ct.TCPAck)}, t0)
	assert.Equal(t, trk|est|rpl, res.State)
	assert.Zero(t, tb.Len(t0))
}

func TestReopenAfterClose(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	orig := tcp(client, server, 1000, 80)
	for _, p := range []ct.Packet{seg(orig, ct.TCPSyn), seg(orig.Reverse(), ct.TCPSyn|ct.TCPAck), seg(orig, ct.TCPAck), seg(orig, ct.TCPRst)} {
		tb.Track(ct.Request{Packet: p, Commit: true}, t0)
	}
	require.Equal(t, ct.TCPClose, tb.Entries(t0)[0].TCPState)
	res := tb.Track(ct.Request{Packet: seg(orig, ct.TCPSyn), Commit: true}, t0)
	assert.Equal(t, trk|nw, res.State)
	assert.True(t, res.Committed, "the SYN starts a fresh connection")
	assert.Equal(t, ct.Status(0), tb.Entries(t0)[0].Status)
}

func TestICMPEchoAndRelated(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	echo := ct.Tuple{Src: client, Dst: server, Proto: ct.ProtoICMP, ICMPType: 8, ICMPID: 77}
	assert.Equal(t, trk|nw, tb.Track(ct.Request{Packet: ct.Packet{Tuple: echo}, Commit: true}, t0).State)
	reply := ct.Tuple{Src: server, Dst: client, Proto: ct.ProtoICMP, ICMPType: 0, ICMPID: 77}
	assert.Equal(t, trk|est|rpl, tb.Track(ct.Request{Packet: ct.Packet{Tuple: reply}}, t0).State)
	assert.Equal(t, 30*time.Second, tb.Entries(t0)[0].Timeout)

	// A TCP connection, then an ICMP error from a router on the way to the
	// server, sent back to the client: related, reply direction.
	conn := tcp(client, server, 40000, 443)
	tb.Track(ct.Request{Packet: seg(conn, ct.TCPSyn), Commit: true}, t0)
	unreach := ct.Packet{Tuple: ct.Tuple{Src: router, Dst: client, Proto: ct.ProtoICMP, ICMPType: 3, ICMPCode: 4},
		ICMPError: true, Inner: conn}
	res := tb.Track(ct.Request{Packet: unreach, Commit: true}, t0)
	assert.Equal(t, trk|rel|rpl, res.State, res.Note)
	assert.False(t, res.Committed, "related packets do not create connections")
	// An error about a reply packet, going towards the server: related, original direction.
	back := ct.Packet{Tuple: ct.Tuple{Src: router, Dst: server, Proto: ct.ProtoICMP, ICMPType: 11},
		ICMPError: true, Inner: conn.Reverse()}
	assert.Equal(t, trk|rel, tb.Track(ct.Request{Packet: back}, t0).State)
}

func TestSNATPortsAndReverse(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	nat := flow.NAT{Kind: flow.NATSrc, AddrMin: natIP, PortMin: 20000, PortMax: 20001}
	a := udp(client, server, 5000, 53)
	b := udp(netip.MustParseAddr("10.0.0.3"), server, 5000, 53)
	c := udp(netip.MustParseAddr("10.0.0.4"), server, 5000, 53)
	ra := tb.Track(ct.Request{Packet: ct.Packet{Tuple: a}, Commit: true, NAT: nat}, t0)
	rb := tb.Track(ct.Request{Packet: ct.Packet{Tuple: b}, Commit: true, NAT: nat}, t0)
	require.True(t, ra.NAT)
	require.True(t, rb.NAT)
	assert.Equal(t, natIP, ra.To.Src)
	assert.Equal(t, natIP, rb.To.Src)
	assert.Equal(t, server, ra.To.Dst)
	assert.NotEqual(t, ra.To.SrcPort, rb.To.SrcPort, "unique mappings")
	for _, p := range []uint16{ra.To.SrcPort, rb.To.SrcPort} {
		assert.True(t, p == 20000 || p == 20001, "port %d in range", p)
	}
	// The range is full.
	rc := tb.Track(ct.Request{Packet: ct.Packet{Tuple: c}, Commit: true, NAT: nat}, t0)
	assert.Equal(t, trk|inv, rc.State)
	assert.Contains(t, rc.Note, "no free port")

	// The reply to the NAT address comes back to the client.
	reply := udp(server, natIP, 53, ra.To.SrcPort)
	res := tb.Track(ct.Request{Packet: ct.Packet{Tuple: reply}, NAT: nat}, t0)
	assert.Equal(t, trk|est|rpl, res.State)
	require.True(t, res.NAT)
	assert.Equal(t, udp(server, client, 53, 5000), res.To)
	// Without the NAT flag, nothing is translated.
	res = tb.Track(ct.Request{Packet: ct.Packet{Tuple: reply}}, t0)
	assert.False(t, res.NAT)

	es := tb.Entries(t0)
	require.Len(t, es, 2)
	assert.Equal(t, ct.SrcNAT|ct.SeenReply, es[0].Status)

	// An ICMP error about the NATed packet, sent to the NAT address.
	unreach := ct.Packet{Tuple: ct.Tuple{Src: router, Dst: natIP, Proto: ct.ProtoICMP, ICMPType: 3, ICMPCode: 3},
		ICMPError: true, Inner: udp(natIP, server, ra.To.SrcPort, 53)}
	res = tb.Track(ct.Request{Packet: unreach, NAT: nat}, t0)
	assert.Equal(t, trk|rel|rpl, res.State)
	require.True(t, res.NAT)
	assert.Equal(t, client, res.To.Dst)
	assert.Equal(t, router, res.To.Src)
	require.True(t, res.InnerNAT)
	assert.Equal(t, a, res.InnerTo)
}

func TestDNATAndImplicitPortKeep(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	vip := netip.MustParseAddr("203.0.113.10")
	backends := flow.NAT{Kind: flow.NATDst, AddrMin: netip.MustParseAddr("10.1.0.1"), AddrMax: netip.MustParseAddr("10.1.0.4"), PortMin: 8080}
	orig := tcp(client, vip, 40000, 443)
	res := tb.Track(ct.Request{Packet: seg(orig, ct.TCPSyn), Commit: true, NAT: backends}, t0)
	require.True(t, res.NAT)
	assert.Equal(t, client, res.To.Src)
	assert.Equal(t, uint16(40000), res.To.SrcPort)
	assert.Equal(t, uint16(8080), res.To.DstPort)
	be := res.To.Dst
	assert.True(t, be.Compare(backends.AddrMin) >= 0 && be.Compare(backends.AddrMax) <= 0, "backend %s in range", be)

	synack := tcp(be, client, 8080, 40000)
	res = tb.Track(ct.Request{Packet: seg(synack, ct.TCPSyn|ct.TCPAck), NAT: backends}, t0)
	assert.Equal(t, trk|est|rpl, res.State)
	assert.Equal(t, tcp(vip, client, 443, 40000), res.To)
	assert.Equal(t, ct.DstNAT|ct.SeenReply, tb.Entries(t0)[0].Status)

	// SNAT without a port range keeps the port unless that clashes.
	sn := flow.NAT{Kind: flow.NATSrc, AddrMin: natIP}
	x := tb.Track(ct.Request{Packet: ct.Packet{Tuple: udp(client, server, 7000, 9)}, Commit: true, NAT: sn}, t0)
	y := tb.Track(ct.Request{Packet: ct.Packet{Tuple: udp(netip.MustParseAddr("10.0.0.9"), server, 7000, 9)}, Commit: true, NAT: sn}, t0)
	assert.Equal(t, uint16(7000), x.To.SrcPort)
	assert.NotEqual(t, uint16(7000), y.To.SrcPort)
	assert.GreaterOrEqual(t, y.To.SrcPort, uint16(1024))
}

func TestTrackOffloaded(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	orig := tcp(client, server, 40000, 80)
	req := func(p ct.Packet) ct.Request { return ct.Request{Zone: 3, Packet: p, Offload: true} }
	_, ok := tb.TrackOffloaded(req(seg(orig, ct.TCPSyn)), t0)
	assert.False(t, ok, "unknown connection")
	r := req(seg(orig, ct.TCPSyn))
	r.Commit = true
	tb.Track(r, t0)
	tb.Track(req(seg(orig.Reverse(), ct.TCPSyn|ct.TCPAck)), t0)
	_, ok = tb.TrackOffloaded(req(seg(orig, ct.TCPAck)), t0)
	assert.False(t, ok, "not established yet")
	res := tb.Track(req(seg(orig, ct.TCPAck)), t0)
	require.True(t, res.Offloaded)

	res, ok = tb.TrackOffloaded(req(seg(orig.Reverse(), ct.TCPAck|ct.TCPPsh)), t0)
	require.True(t, ok)
	assert.Equal(t, trk|est|rpl, res.State)
	_, ok = tb.TrackOffloaded(ct.Request{Zone: 4, Packet: seg(orig, ct.TCPAck)}, t0)
	assert.False(t, ok, "zones are separate")

	mark := req(seg(orig, ct.TCPAck))
	mark.Commit, mark.Mark = true, flow.Masked32{Value: 1, Mask: 1}
	_, ok = tb.TrackOffloaded(mark, t0)
	assert.False(t, ok, "a mark change goes to software")

	_, ok = tb.TrackOffloaded(req(seg(orig, ct.TCPFin|ct.TCPAck)), t0)
	assert.False(t, ok, "FIN goes to software")
	assert.Zero(t, tb.Entries(t0)[0].Status&ct.Offloaded, "and ends the offload")
	_, ok = tb.TrackOffloaded(req(seg(orig, ct.TCPAck)), t0)
	assert.False(t, ok)
}

func TestNoOffloadWithoutPermission(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	orig := tcp(client, server, 1, 80)
	tb.Track(ct.Request{Packet: seg(orig, ct.TCPSyn), Commit: true}, t0)
	tb.Track(ct.Request{Packet: seg(orig.Reverse(), ct.TCPSyn|ct.TCPAck)}, t0)
	res := tb.Track(ct.Request{Packet: seg(orig, ct.TCPAck)}, t0)
	assert.Equal(t, trk|est, res.State)
	assert.False(t, res.Offloaded)
}

func TestExportImport(t *testing.T) {
	src := ct.New(ct.DefaultTimeouts())
	nat := flow.NAT{Kind: flow.NATSrc, AddrMin: natIP, PortMin: 30000, PortMax: 30000}
	orig := tcp(client, server, 40000, 80)
	src.Track(ct.Request{Zone: 10, Packet: seg(orig, ct.TCPSyn), Commit: true, NAT: nat, Mark: flow.Masked32{Value: 9, Mask: 0xff}}, t0)
	to := src.Track(ct.Request{Zone: 10, Packet: seg(tcp(server, natIP, 80, 30000), ct.TCPSyn|ct.TCPAck), NAT: nat}, t0)
	require.Equal(t, trk|est|rpl, to.State)
	src.Track(ct.Request{Zone: 10, Packet: seg(orig, ct.TCPAck), NAT: nat}, t0)
	src.Track(ct.Request{Zone: 0, Packet: ct.Packet{Tuple: udp(client, server, 1, 2)}, Commit: true}, t0)

	exported := src.Entries(t0)
	require.Len(t, exported, 2)
	assert.Equal(t, uint16(0), exported[0].Zone, "sorted by zone")
	assert.Equal(t, "zone=10 tcp 432000 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=192.0.2.7 sport=80 dport=30000 [seen-reply,assured,src-nat] mark=9",
		exported[1].String())
	// An hour later the unreplied UDP flow has expired.
	later := src.Entries(t0.Add(time.Hour))
	require.Len(t, later, 1)
	assert.Equal(t, 5*24*time.Hour-time.Hour, later[0].Timeout)

	dst := ct.New(ct.DefaultTimeouts())
	at := t0.Add(time.Minute)
	require.NoError(t, dst.Import(exported, at))
	got := dst.Entries(at)
	assert.Equal(t, exported, got, "timeouts restart from the import time")

	// Traffic continues on the new node: the reply to the NAT address is translated back.
	res := dst.Track(ct.Request{Zone: 10, Packet: seg(tcp(server, natIP, 80, 30000), ct.TCPAck), NAT: nat}, at)
	assert.Equal(t, trk|est|rpl, res.State)
	assert.Equal(t, tcp(server, client, 80, 40000), res.To)
	assert.Equal(t, uint32(9), res.Mark)

	// Import updates in place.
	upd := exported[1]
	upd.Mark = 42
	require.NoError(t, dst.Import([]ct.Entry{upd}, at))
	assert.Equal(t, uint32(42), dst.Entries(at)[1].Mark)
	assert.Len(t, dst.Entries(at), 2)
}

func TestImportRefusals(t *testing.T) {
	good := ct.Entry{Zone: 1, Orig: udp(client, server, 1, 2), Reply: udp(server, client, 2, 1), Timeout: time.Minute}
	tests := []struct {
		name string
		e    func(e ct.Entry) ct.Entry
		want string
	}{
		{"no addresses", func(e ct.Entry) ct.Entry { e.Orig.Src = netip.Addr{}; return e }, "addresses"},
		{"families", func(e ct.Entry) ct.Entry {
			e.Reply.Src, e.Reply.Dst = netip.MustParseAddr("::1"), netip.MustParseAddr("::2")
			return e
		}, "different families"},
		{"protocols", func(e ct.Entry) ct.Entry { e.Reply.Proto = ct.ProtoTCP; return e }, "different protocols"},
		{"timeout", func(e ct.Entry) ct.Entry { e.Timeout = 0; return e }, "timeout"},
		{"tcp without state", func(e ct.Entry) ct.Entry {
			e.Orig.Proto, e.Reply.Proto = ct.ProtoTCP, ct.ProtoTCP
			return e
		}, "not a tracked state"},
		{"state on udp", func(e ct.Entry) ct.Entry { e.TCPState = ct.TCPEstablished; return e }, "on a udp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := ct.New(ct.DefaultTimeouts())
			err := tb.Import([]ct.Entry{good, tc.e(good)}, t0)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "entry 1")
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, 1, tb.Len(t0), "the valid entry is imported")
		})
	}
	t.Run("reply clash", func(t *testing.T) {
		tb := ct.New(ct.DefaultTimeouts())
		other := good
		other.Orig = udp(client, server, 9, 9)
		require.NoError(t, tb.Import([]ct.Entry{good}, t0))
		err := tb.Import([]ct.Entry{other}, t0)
		require.ErrorContains(t, err, "belongs to another connection")
	})
}

func TestDeleteFlushSetOffloaded(t *testing.T) {
	tb := ct.New(ct.DefaultTimeouts())
	a := udp(client, server, 1, 2)
	tb.Track(ct.Request{Packet: ct.Packet{Tuple: a}, Commit: true}, t0)
	assert.True(t, tb.SetOffloaded(0, a.Reverse(), true, t0))
	assert.Equal(t, ct.Offloaded, tb.Entries(t0)[0].Status)
	assert.False(t, tb.SetOffloaded(1, a, true, t0))
	assert.True(t, tb.Delete(0, a.Reverse()), "by reply tuple too")
	assert.False(t, tb.Delete(0, a))
	tb.Track(ct.Request{Packet: ct.Packet{Tuple: a}, Commit: true}, t0)
	tb.Flush()
	assert.Zero(t, tb.Len(t0))
	tb.Track(ct.Request{Packet: ct.Packet{Tuple: a}, Commit: true}, t0)
	assert.Equal(t, 1, tb.Expire(t0.Add(31*time.Second)))
}

func TestTupleStrings(t *testing.T) {
	assert.Equal(t, "tcp src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2", tcp(client, server, 1, 2).String())
	icmp := ct.Tuple{Src: client, Dst: server, Proto: ct.ProtoICMPv6, ICMPType: 128, ICMPID: 3}
	assert.Equal(t, "icmpv6 src=10.0.0.1 dst=10.0.0.2 type=128 code=0 id=3", icmp.String())
	assert.Equal(t, uint8(129), icmp.Reverse().ICMPType)
	assert.Equal(t, "SYN_RECV", ct.TCPSynRecv.String())
	s, ok := ct.ParseTCPState("TIME_WAIT")
	assert.True(t, ok)
	assert.Equal(t, ct.TCPTimeWait, s)
	assert.Equal(t, "none", ct.Status(0).String())
}
