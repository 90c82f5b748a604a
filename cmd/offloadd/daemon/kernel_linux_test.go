package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offloadd/offloadd/api/flowfile"
	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/offloadd/offloadd/offload"
)

// The kernel tier of the daemon: offloadd --backend linux, started in
// process inside a network namespace of the kernel VM, driven over its
// gRPC socket, with real packets through real tc flower rules. Run with
// hack/kernel-vm/test.sh cmd/offloadd/daemon; skipped elsewhere.

func kernelCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func sshACL(id string, prio, dport uint32, policy v1.PlacementPolicy) *v1.Flow {
	return &v1.Flow{Id: id, Port: "rep0", Priority: prio, Policy: policy,
		Match:   &v1.Match{EthType: "ipv4", IpProto: "tcp", DstPort: &dport},
		Actions: []*v1.Action{{Action: &v1.Action_Drop{Drop: &v1.Drop{}}}}}
}

// TestKernelDaemonHardwareRefusal: a veth representor offloads nothing.
// The generic profile predicts hardware; the kernel's answer wins: an auto
// flow, installed with no skip flag, runs in software (not_in_hw) with
// reason hardware-refused, a hardware-only (skip_sw) flow fails with the
// kernel's words, and an atomic batch with it applies nothing.
func TestKernelDaemonHardwareRefusal(t *testing.T) {
	requireKernelTier(t)
	o := newOverlay(t)
	kd := startKernelDaemon(t, o, t.TempDir())
	c := kernelCtx(t)
	const auto, hwOnly = v1.PlacementPolicy_PLACEMENT_POLICY_AUTO, v1.PlacementPolicy_PLACEMENT_POLICY_HARDWARE_ONLY

	ssh := sshACL("acl-ssh", 1, 22, auto)
	x, err := kd.flows.ExplainFlow(c, &v1.ExplainFlowRequest{Flow: ssh})
	require.NoError(t, err)
	require.Equal(t, v1.FlowState_FLOW_STATE_HARDWARE, x.GetState(), "the profile alone predicts hardware: %v", x.GetReasons())

	resp, err := kd.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{ssh}})
	require.NoError(t, err)
	r := resp.GetResults()[0]
	require.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_CREATED, r.GetOutcome(), r.GetError())
	assert.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, r.GetStatus().GetState())
	require.NotEmpty(t, r.GetStatus().GetReasons())
	reason := r.GetStatus().GetReasons()[0]
	assert.Equal(t, "hardware-refused", reason.GetCode())
	assert.Contains(t, reason.GetMessage(), "not_in_hw", "the kernel's answer to a no-flag filter on a veth")
	t.Logf("auto flow: %s: %s", reason.GetCode(), reason.GetMessage())

	filters := tcFilters(t, o.hv, "rep0")
	require.Len(t, filters, 1)
	f := filters[0]
	assert.Equal(t, uint16(1), f.Pref)
	// No skip flag: the kernel keeps the software copy and says the
	// driver did not take it.
	assert.False(t, f.Options.SkipHw, "no skip flag")
	assert.False(t, f.Options.SkipSw)
	assert.True(t, f.Options.NotInHw)

	// Hardware only, not atomic: the flow fails with the refusal, nothing stays.
	telnet := sshACL("acl-telnet", 2, 23, hwOnly)
	resp, err = kd.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{telnet}})
	require.NoError(t, err)
	r = resp.GetResults()[0]
	assert.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_FAILED, r.GetOutcome())
	assert.Contains(t, r.GetError(), "hardware-refused")
	assert.Contains(t, r.GetError(), "operation not supported")
	t.Logf("hardware-only flow: %s", r.GetError())
	_, err = kd.flows.GetFlow(c, &v1.GetFlowRequest{Id: "acl-telnet"})
	assert.Equal(t, codes.NotFound, status.Code(err), "a refused hardware-only flow is not kept: %v", err)
	assert.Len(t, tcFilters(t, o.hv, "rep0"), 1, "no filter of the refused flow is left")

	// Atomic: FAILED_PRECONDITION, and the batch's auto flow is rolled back.
	smtp := sshACL("acl-smtp", 3, 25, auto)
	_, err = kd.flows.ApplyFlows(c, &v1.ApplyFlowsRequest{Flows: []*v1.Flow{smtp, telnet}, Atomic: true})
	st := status.Convert(err)
	require.Equal(t, codes.FailedPrecondition, st.Code(), "%v", err)
	assert.Contains(t, st.Message(), `"acl-telnet"`)
	assert.Contains(t, st.Message(), "hardware-refused")
	var detail *v1.ApplyFlowsResponse
	for _, d := range st.Details() {
		if ar, ok := d.(*v1.ApplyFlowsResponse); ok {
			detail = ar
		}
	}
	require.NotNil(t, detail, "the status details carry every flow's result")
	require.Len(t, detail.GetResults(), 2)
	assert.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_ABORTED, detail.GetResults()[0].GetOutcome())
	assert.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_FAILED, detail.GetResults()[1].GetOutcome())

	list, err := kd.flows.ListFlows(c, &v1.ListFlowsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetFlows(), 1)
	assert.Equal(t, "acl-ssh", list.GetFlows()[0].GetFlow().GetId())
	filters = tcFilters(t, o.hv, "rep0")
	require.Len(t, filters, 1, "the atomic batch left no filter behind")
	assert.Equal(t, f.key(), filters[0].key())
}

// overlayFlows is a VF's pipeline on its representor rep0 and on the
// VXLAN device, all IPv4 so ARP and ND never touch a counter:
//
//	rep0 chain 0:  TCP/22 drop (ACL); to the overlay: ct zone 5, goto 1
//	rep0 chain 1:  +trk+new: ct commit, VXLAN encap to the remote VTEP
//	               +trk+est: VXLAN encap; anything else: drop
//	vxlan chain 0: from the remote VTEP (VNI, outer addresses, port): ct zone 5, goto 1
//	vxlan chain 1: +trk+est: decap, redirect to rep0; anything else: drop
const overlayFlows = `
flows:
- id: acl-ssh
  port: rep0
  priority: 1
  match: {eth_type: ipv4, ip_proto: tcp, dst_port: 22}
  actions: [{drop: {}}]
- id: out-ct
  port: rep0
  priority: 2
  match: {eth_type: ipv4, ipv4_dst: 10.10.0.0/24}
  actions: [{ct: {zone: 5}}, {goto: {chain: 1}}]
- id: out-new
  port: rep0
  chain: 1
  priority: 1
  match: {eth_type: ipv4, ct_state: +trk+new}
  actions:
  - ct: {zone: 5, commit: true}
  - tunnel_encap: {vni: 42, src: 192.168.1.1, dst: 192.168.1.2, dst_port: 4789}
  - redirect: {port: vxlan_sys_4789}
- id: out-est
  port: rep0
  chain: 1
  priority: 2
  match: {eth_type: ipv4, ct_state: +trk+est}
  actions:
  - tunnel_encap: {vni: 42, src: 192.168.1.1, dst: 192.168.1.2, dst_port: 4789}
  - redirect: {port: vxlan_sys_4789}
- id: out-drop
  port: rep0
  chain: 1
  priority: 10
  match: {eth_type: ipv4}
  actions: [{drop: {}}]
- id: in-ct
  port: vxlan_sys_4789
  priority: 1
  match: {eth_type: ipv4, ipv4_dst: 10.10.0.0/24, tunnel: {vni: 42, src: 192.168.1.2, dst: 192.168.1.1, dst_port: 4789}}
  actions: [{ct: {zone: 5}}, {goto: {chain: 1}}]
- id: in-est
  port: vxlan_sys_4789
  chain: 1
  priority: 1
  match: {eth_type: ipv4, ct_state: +trk+est, tunnel: {vni: 42, src: 192.168.1.2, dst: 192.168.1.1, dst_port: 4789}}
  actions: [{tunnel_decap: {}}, {redirect: {port: rep0}}]
- id: in-drop
  port: vxlan_sys_4789
  chain: 1
  priority: 10
  match: {eth_type: ipv4}
  actions: [{drop: {}}]
`

// applyOverlay installs overlayFlows; every flow must land in software
// (a veth has no hardware) and be counted from zero.
func applyOverlay(t *testing.T, kd *kernelDaemon) []string {
	t.Helper()
	flows, err := flowfile.Parse([]byte(overlayFlows))
	require.NoError(t, err)
	resp, err := kd.flows.ApplyFlows(kernelCtx(t), &v1.ApplyFlowsRequest{Flows: flows})
	require.NoError(t, err)
	var ids []string
	for _, r := range resp.GetResults() {
		require.Equal(t, v1.ApplyOutcome_APPLY_OUTCOME_CREATED, r.GetOutcome(), "%s: %s %v", r.GetId(), r.GetError(), r.GetViolations())
		require.Equal(t, v1.FlowState_FLOW_STATE_SOFTWARE, r.GetStatus().GetState(), r.GetId())
		var why []string
		for _, rr := range r.GetStatus().GetReasons() {
			why = append(why, rr.GetCode())
		}
		t.Logf("%-8s software: %v", r.GetId(), why)
		ids = append(ids, r.GetId())
	}
	for id, n := range softwarePackets(t, kd.flows) {
		require.Zero(t, n, "flow %s matched packets before any were sent", id)
	}
	return ids
}

// pingDeltas is what n echo requests vm0 -> remote and their replies add
// to the counters when the ICMP conntrack entry is already established
// (first=false) or is created by the first of them.
func pingDeltas(n uint64, first bool) map[string]uint64 {
	m := map[string]uint64{"out-ct": n, "out-est": n, "in-ct": n, "in-est": n}
	if first {
		m["out-new"], m["out-est"] = 1, n-1
	}
	return m
}

// TestKernelDaemonOverlayTraffic sends real packets between a VM
// namespace and a remote VTEP namespace through the daemon's flows: VXLAN
// encap and decap, a TCP/22 ACL, and a conntrack firewall that admits
// replies and drops unsolicited packets. Every flow's software counter,
// read through ListFlows, must equal the packets sent.
func TestKernelDaemonOverlayTraffic(t *testing.T) {
	requireKernelTier(t)
	o := newOverlay(t)
	kd := startKernelDaemon(t, o, t.TempDir())
	applyOverlay(t, kd)

	udpEcho := listenUDP(t, o.remote, remoteIP+":9001")
	serveUDPEcho(udpEcho)
	web := listenTCPEcho(t, o.remote, remoteIP+":8080")
	sshd := listenTCPEcho(t, o.remote, remoteIP+":22")
	base := softwarePackets(t, kd.flows)

	// Encap, decap and the conntrack pipeline with ICMP: the first echo
	// request is +new and committed, the rest and every reply +est.
	p := newPinger(t, o.vm, vmIP, remoteIP)
	p.pingN(t, 5)
	base = waitDeltas(t, kd.flows, "5 pings vm0 -> remote", base, fixed(pingDeltas(5, true)))

	// Unsolicited inbound: three datagrams and an echo request from the
	// remote side are +trk+new on the way in and dropped.
	vmUDP := listenUDP(t, o.vm, vmIP+":9000")
	intruder := listenUDP(t, o.remote, remoteIP+":9100")
	vmAddr := &net.UDPAddr{IP: net.ParseIP(vmIP), Port: 9000}
	for range 3 {
		_, err := intruder.WriteToUDP([]byte("unsolicited"), vmAddr)
		require.NoError(t, err)
	}
	err := newPinger(t, o.remote, remoteIP, vmIP).ping(time.Second)
	require.Error(t, err, "an unsolicited echo request from the remote side must not be answered")
	base = waitDeltas(t, kd.flows, "3 datagrams and 1 echo request remote -> vm0", base, fixed(map[string]uint64{"in-ct": 4, "in-drop": 4}))
	buf := make([]byte, 1500)
	require.NoError(t, vmUDP.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	n, from, err := vmUDP.ReadFromUDP(buf)
	require.True(t, isTimeout(err), "vm0 received %q from %v (err %v); unsolicited datagrams must be dropped", buf[:n], from, err)

	// UDP request and response: the replies are +est and pass.
	remoteEcho := &net.UDPAddr{IP: net.ParseIP(remoteIP), Port: 9001}
	for i := range 3 {
		msg := fmt.Sprintf("request %d", i)
		_, err := vmUDP.WriteToUDP([]byte(msg), remoteEcho)
		require.NoError(t, err)
		require.NoError(t, vmUDP.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, from, err := vmUDP.ReadFromUDP(buf)
		require.NoError(t, err, "reply to %q", msg)
		assert.Equal(t, msg, string(buf[:n]))
		assert.Equal(t, remoteEcho.String(), from.String())
	}
	base = waitDeltas(t, kd.flows, "3 UDP requests and replies", base, fixed(map[string]uint64{
		"out-ct": 3, "out-new": 1, "out-est": 2, "in-ct": 3, "in-est": 3}))

	// TCP/22 is dropped by the ACL before conntrack, though the remote
	// side listens: with TCP_SYNCNT 1 the connect sends exactly two SYNs.
	_, err = dialTCP(o.vm, remoteIP+":22", 1, time.Minute)
	require.ErrorIs(t, err, syscall.ETIMEDOUT, "connect to TCP/22 must time out")
	base = waitDeltas(t, kd.flows, "a connect to TCP/22 (2 SYNs)", base, fixed(map[string]uint64{"acl-ssh": 2}))
	select {
	case c := <-sshd.conns:
		c.Close()
		t.Fatal("the remote side accepted a TCP/22 connection through the ACL")
	default:
	}

	// Another TCP port works; the counters equal the segments the
	// client's socket sent and received (TCP_INFO).
	conn, err := dialTCP(o.vm, remoteIP+":8080", 0, 30*time.Second)
	require.NoError(t, err, "connect to TCP/8080")
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = conn.Write([]byte("hello through the overlay"))
	require.NoError(t, err)
	n, err = conn.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "hello through the overlay", string(buf[:n]))
	var sc net.Conn
	select {
	case sc = <-web.conns:
		defer sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the remote web server saw no connection")
	}
	counted := func() map[string]uint64 {
		info := tcpInfo(t, conn)
		out, in := uint64(info.Segs_out), uint64(info.Segs_in)
		return map[string]uint64{"out-ct": out, "out-new": 1, "out-est": out - 1, "in-ct": in, "in-est": in}
	}
	base = waitDeltas(t, kd.flows, "a TCP/8080 exchange", base, counted)
	info := tcpInfo(t, conn)
	t.Logf("TCP/8080: client sent %d and received %d segments, all counted", info.Segs_out, info.Segs_in)

	// FIN both ways: the close goes through the same +est rules.
	before := counted()
	require.NoError(t, conn.(*net.TCPConn).CloseWrite(), "client FIN")
	require.NoError(t, sc.Close(), "server FIN")
	_, err = conn.Read(buf)
	require.ErrorIs(t, err, io.EOF, "the client sees the server's FIN")
	waitDeltas(t, kd.flows, "the TCP/8080 close (FIN, FIN, ACK)", base, func() map[string]uint64 {
		now := counted()
		for k := range now {
			now[k] -= before[k]
		}
		return now
	})
	info = tcpInfo(t, conn)
	t.Logf("TCP/8080 closed: client sent %d and received %d segments in all, all counted", info.Segs_out, info.Segs_in)

	stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kd.d.Shutdown(stop)
	assert.Empty(t, kd.log.warnings(), "the daemon ran and stopped without a warning")
}

// TestKernelDaemonRestartAdoptsFlows shuts the daemon down with flows
// installed and counting, starts a new one on the same state directory
// and checks that it adopts every filter as it is: no reinstall (tc
// handles unchanged, counters not reset), no lost packet while no daemon
// ran, and the new daemon reads and manages the adopted flows.
func TestKernelDaemonRestartAdoptsFlows(t *testing.T) {
	requireKernelTier(t)
	o := newOverlay(t)
	dir := t.TempDir()
	first := startKernelDaemon(t, o, dir)
	ids := applyOverlay(t, first)
	c := kernelCtx(t)

	p := newPinger(t, o.vm, vmIP, remoteIP)
	p.pingN(t, 5)
	base := waitDeltas(t, first.flows, "5 pings before the restart", nil, fixed(pingDeltas(5, true)))
	before := map[string]tcFilter{}
	for _, dev := range []string{"rep0", tunnelDev} {
		for _, f := range tcFilters(t, o.hv, dev) {
			before[f.key()] = f
		}
	}
	require.Len(t, before, len(ids), "one tc filter per flow")
	listBefore, err := first.flows.ListFlows(c, &v1.ListFlowsRequest{})
	require.NoError(t, err)

	// Ping all through the restart, including the time no daemon runs.
	loop := startPingLoop(p, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	first.d.Shutdown(stop)
	cancel()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	second := startKernelDaemon(t, o, dir)
	t.Logf("the new daemon started in %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	loop.finish()
	assert.Empty(t, first.log.warnings(), "the first daemon ran and stopped without a warning")
	require.Zero(t, loop.lost, "pings lost across the restart: %v", loop.errs)
	require.GreaterOrEqual(t, loop.sent, 5)
	t.Logf("%d pings across the restart, none lost", loop.sent)

	assert.Equal(t, offload.RestoreReport{Adopted: len(ids)}, second.log.restoreReport(), "every flow adopted, none installed again")
	after := map[string]tcFilter{}
	for _, dev := range []string{"rep0", tunnelDev} {
		for _, f := range tcFilters(t, o.hv, dev) {
			after[f.key()] = f
		}
	}
	require.Len(t, after, len(before), "the same filters, by chain, priority and handle: before %v", keys(before))
	for k, b := range before {
		a, ok := after[k]
		if assert.True(t, ok, "filter %s is gone or was reinstalled under another handle", k) {
			assert.GreaterOrEqual(t, a.packets(), b.packets(), "the counter of %s was reset", k)
		}
	}

	listAfter, err := second.flows.ListFlows(c, &v1.ListFlowsRequest{})
	require.NoError(t, err)
	require.Len(t, listAfter.GetFlows(), len(listBefore.GetFlows()))
	for i, b := range listBefore.GetFlows() {
		a := listAfter.GetFlows()[i]
		assert.Equal(t, b.GetFlow().GetId(), a.GetFlow().GetId())
		assert.Equal(t, b.GetGeneration(), a.GetGeneration(), "generation of %s", b.GetFlow().GetId())
		assert.Equal(t, b.GetState(), a.GetState(), "state of %s", b.GetFlow().GetId())
		assert.GreaterOrEqual(t, a.GetSoftware().GetPackets(), b.GetSoftware().GetPackets(), "counter of %s", b.GetFlow().GetId())
	}

	// The new daemon's counters carry on from the kernel's: the pings of
	// the loop, then three more, are all there. The loop kept the ICMP
	// conntrack entry of the first pings alive (its timeout is 30 s), so
	// every one of them is +est.
	base = waitDeltas(t, second.flows, "pings during the restart", base, fixed(pingDeltas(uint64(loop.sent), false)))
	p.pingN(t, 3)
	waitDeltas(t, second.flows, "3 pings after the restart", base, fixed(pingDeltas(3, false)))

	// And it manages the adopted filters: a delete removes the kernel's.
	del, err := second.flows.DeleteFlows(c, &v1.DeleteFlowsRequest{Ids: []string{"acl-ssh"}})
	require.NoError(t, err)
	require.True(t, del.GetResults()[0].GetFound(), del.GetResults()[0].GetError())
	require.Empty(t, del.GetResults()[0].GetError())
	for _, f := range tcFilters(t, o.hv, "rep0") {
		assert.False(t, f.Chain == 0 && f.Pref == 1, "the ACL's filter is still installed: %s", f.key())
	}
	assert.Empty(t, second.log.warnings(), "the second daemon adopted and ran without a warning")
}

func keys(m map[string]tcFilter) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
