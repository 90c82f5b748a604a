package datapath_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestCaptureRoundTrip(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware, fl("fwd", rep0, 0, 1, flow.Match{}, mirror(rep1), redirect(up)))
	var buf bytes.Buffer
	c, err := datapath.NewCapture(&buf)
	require.NoError(t, err)
	e.dp.SetCapture(c)
	var want []datapath.Packet
	for i := range 3 {
		at := e.clock.Advance(1500 * time.Microsecond)
		tr := e.inject(rep0, "udp,sport="+itoa(1000+i))
		for _, o := range tr.Outputs {
			want = append(want, datapath.Packet{Time: at, Frame: o.Frame})
		}
	}
	e.dp.SetCapture(nil)
	e.inject(rep0, "udp")
	got, err := datapath.ReadPcap(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Len(t, got, 6)
	for i := range want {
		assert.True(t, want[i].Time.Equal(got[i].Time), "packet %d time %s, want %s", i, got[i].Time, want[i].Time)
		assert.Equal(t, want[i].Frame, got[i].Frame)
	}
}

func TestInjectPcapAndPcapng(t *testing.T) {
	e := defaultEnv(t)
	e.program(flow.Hardware, fl("tcp", rep0, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoTCP}), redirect(up)))
	frames := [][]byte{e.mustBuild(rep0, "tcp"), e.mustBuild(rep0, "udp"), e.mustBuild(rep0, "tcp,dport=443")}

	var classic bytes.Buffer
	w := pcapgo.NewWriter(&classic)
	require.NoError(t, w.WriteFileHeader(65535, layers.LinkTypeEthernet))
	var ng bytes.Buffer
	nw, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	require.NoError(t, err)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f), InterfaceIndex: 0}
		require.NoError(t, w.WritePacket(ci, f))
		require.NoError(t, nw.WritePacket(ci, f))
	}
	require.NoError(t, nw.Flush())

	for name, src := range map[string][]byte{"pcap": classic.Bytes(), "pcapng": ng.Bytes()} {
		t.Run(name, func(t *testing.T) {
			trs, err := e.dp.InjectPcap(rep0, bytes.NewReader(src))
			require.NoError(t, err)
			require.Len(t, trs, 3)
			assert.Equal(t, datapath.VerdictForwarded, trs[0].Verdict)
			assert.Equal(t, datapath.VerdictUpcall, trs[1].Verdict)
			assert.Equal(t, datapath.VerdictForwarded, trs[2].Verdict)
			assert.Equal(t, frames[2], trs[2].Input)
		})
	}

	_, err = datapath.ReadPcap(strings.NewReader("not a pcap file at all"))
	assert.Error(t, err)
	var raw bytes.Buffer
	rw := pcapgo.NewWriter(&raw)
	require.NoError(t, rw.WriteFileHeader(65535, layers.LinkTypeRaw))
	_, err = datapath.ReadPcap(&raw)
	assert.ErrorContains(t, err, "want Ethernet")
}

// TestPcapOpensInTshark writes the emulator's output to a pcap file and
// checks that Wireshark decodes it as expected, checksums included.
func TestPcapOpensInTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed: run hack/install-test-deps.sh (Debian package tshark) to run this test")
	}
	e := newEnv(t, emulated.DefaultConfig(), datapath.Config{Neighbours: []datapath.Neighbour{{IP: remoteVTEP, MAC: remoteMAC}}})
	e.program(flow.Hardware,
		encapFlow("overlay", rep0, pfx("10.0.1.0/24"), flow.TunnelEncap{VNI: 100, Src: localVTEP, Dst: remoteVTEP, TTL: 64}),
		decapFlow("decap", vf1MAC, rep1),
		fl("nat", rep1, 0, 1, ipv4(flow.Match{IPProto: flow.ProtoTCP}),
			rewrite(flow.Rewrite{Field: flow.RewriteIPSrc, IP: localVTEP}), rewrite(flow.Rewrite{Field: flow.RewriteDstPort, Port: 8080}), redirect(up)),
	)
	path := filepath.Join(t.TempDir(), "out.pcap")
	f, err := os.Create(path)
	require.NoError(t, err)
	c, err := datapath.NewCapture(f)
	require.NoError(t, err)
	e.dp.SetCapture(c)
	e.inject(rep0, "tcp,src=10.0.0.10,dst=10.0.1.5,sport=40000,dport=80")
	e.inject(up, "udp,eth_dst=02:42:0f:01:00:01,src=10.0.1.5,dst=10.0.0.11,sport=53,dport=5353,vni=100,tun_src=198.51.100.10,tun_dst=192.0.2.1")
	e.inject(rep1, "tcp,src=10.0.0.11,dst=203.0.113.1,dport=80,flags=PA,payload=hello")
	require.NoError(t, f.Close())

	out, err := exec.Command(tshark, "-r", path, "-n",
		"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|",
		"-e", "eth.dst", "-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.ttl",
		"-e", "udp.dstport", "-e", "tcp.dstport", "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "tcp.checksum.status",
	).Output()
	require.NoError(t, err, "tshark: %s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 3, string(out))
	// Encapsulated: outer and inner values, outer first.
	assert.Equal(t, []string{"02:aa:00:00:00:0a,02:42:0f:00:00:00", "100", "192.0.2.1,10.0.0.10", "198.51.100.10,10.0.1.5",
		"64,64", "4789", "80", "1,1", "1", "1"}, strings.Split(lines[0], "|"))
	// Decapsulated to VM 1.
	assert.Equal(t, []string{"02:42:0f:01:00:01", "", "10.0.1.5", "10.0.0.11", "64", "5353", "", "1", "1", ""}, strings.Split(lines[1], "|"))
	// Rewritten with checksums fixed.
	assert.Equal(t, []string{"02:42:0f:00:00:00", "", "192.0.2.1", "203.0.113.1", "64", "", "8080", "1", "", "1"}, strings.Split(lines[2], "|"))
}
