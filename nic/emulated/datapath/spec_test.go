package datapath_test

import (
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload/flow"
)

func TestBuildFrame(t *testing.T) {
	d := datapath.SpecDefaults{EthSrc: vf0MAC, EthDst: upMAC, TunEthSrc: datapath.RemoteMAC, TunEthDst: upMAC}
	tests := []struct {
		spec string
		desc string
	}{
		{"tcp,src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80,flags=S",
			"02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, tcp 1234 > 80 [S]"},
		{"tcp,flags=SA", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, tcp 12345 > 80 [S.]"},
		{"tcp,flags=FP.", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, tcp 12345 > 80 [FP.]"},
		{"udp,dst=10.9.0.1,dport=53,ttl=3,tos=0xb8",
			"02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.9.0.1 ttl 3 tos 0xb8, udp 12345 > 53"},
		{"icmp,type=8", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, icmp echo request id 1"},
		{"icmp,type=3,code=1", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, icmp unreachable code 1"},
		{"ipv6,udp,dst=fd00::5", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv6 fd00::1 > fd00::5 ttl 64, udp 12345 > 80"},
		{"tcp,src=2001:db8::1,dst=2001:db8::2", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv6 2001:db8::1 > 2001:db8::2 ttl 64, tcp 12345 > 80 [S]"},
		{"icmp6", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv6 fd00::1 > fd00::2 ttl 64, icmpv6 echo request id 1"},
		{"icmp,src=fd00::7", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv6 fd00::7 > fd00::2 ttl 64, icmpv6 echo request id 1"},
		{"eth_src=02:00:00:00:00:09,eth_dst=ff:ff:ff:ff:ff:ff,vlan=10,udp",
			"02:00:00:00:00:09 > ff:ff:ff:ff:ff:ff, vlan 10, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, udp 12345 > 80"},
		{"eth_src=02:00:00:00:00:09,vlan=10", "02:00:00:00:00:09 > 02:42:0f:00:00:00, vlan 10, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, udp 12345 > 80"},
		{"", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, udp 12345 > 80"},
		{"udp,vlan=10:5,cvlan=20", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, 802.1ad 10 prio 5, vlan 20, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, udp 12345 > 80"},
		{"arp", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, arp who-has 10.0.0.2 tell 10.0.0.1"},
		{"arp,op=reply,src=10.0.0.9", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, arp reply 10.0.0.9 is-at 02:42:0f:01:00:00"},
		{"ip,proto=47", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, ip_proto 47"},
		{"eth_type=0x88b5,payload=test", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ethertype 0x88b5"},
		{"udp,frag=first", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64 frag first, udp 12345 > 80"},
		{"udp,frag=later,len=16", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64 frag, udp"},
		{"sctp,dport=3868", "02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, sctp 12345 > 3868"},
		{"udp,vni=100", "02:00:00:00:00:01 > 02:42:0f:00:00:00, ipv4 198.51.100.1 > 192.0.2.1 ttl 64, udp 49152 > 4789, vxlan vni 100 " +
			"[02:42:0f:01:00:00 > 02:42:0f:00:00:00, ipv4 10.0.0.1 > 10.0.0.2 ttl 64, udp 12345 > 80]"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			f, err := datapath.BuildFrame(tc.spec, d)
			require.NoError(t, err)
			assert.Equal(t, tc.desc, datapath.Describe(f))
			if !strings.Contains(tc.desc, "ethertype") { // gopacket has no decoder for a made-up EtherType
				requireChecksums(t, f)
			}
		})
	}
}

func TestBuildFrameFields(t *testing.T) {
	f, err := datapath.BuildFrame("tcp,seq=7,ack=9,flags=A,payload=0x0102", datapath.SpecDefaults{})
	require.NoError(t, err)
	tcp := decode(t, f).Layer(layers.LayerTypeTCP).(*layers.TCP)
	assert.Equal(t, uint32(7), tcp.Seq)
	assert.Equal(t, uint32(9), tcp.Ack)
	assert.True(t, tcp.ACK)
	assert.False(t, tcp.SYN)
	assert.Equal(t, []byte{1, 2}, tcp.Payload)

	f, err = datapath.BuildFrame("udp,len=100", datapath.SpecDefaults{})
	require.NoError(t, err)
	assert.Len(t, f, 14+20+8+100)
}

func TestBuildFrameErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"gre":                              "unknown keyword",
		"tcp,dport=70000":                  "not a number of 16 bits",
		"tcp,src=10.0.0.1,dst=fd00::1":     "different IP families",
		"udp,eth_src=zz":                   "not a MAC address",
		"udp,vlan=5000":                    "not a VLAN ID",
		"udp,cvlan=5":                      "cvlan needs an outer vlan",
		"tcp,flags=SX":                     "use the letters",
		"arp,src=fd00::1":                  "arp carries IPv4",
		"udp,frag=middle":                  "not first or later",
		"udp,vni=1,tun_src=fd00::1":        "different IP families",
		"udp,payload=0xzz":                 "not hex",
		"udp,op=maybe":                     "not request or reply",
		"ipv6,src=10.0.0.1":                "an IPv4 address in an IPv6 packet",
		"tcp,nonsense":                     "unknown keyword",
		"tcp,src=300.1.1.1":                "not an IP address",
		"udp,type=300":                     "not a number of 8 bits",
		"udp,tun_dst=1.2.3.4,vni=99999999": "not a number of 24 bits",
	} {
		_, err := datapath.BuildFrame(spec, datapath.SpecDefaults{})
		assert.ErrorContains(t, err, want, "%q", spec)
	}
}

func TestSpecDefaultsPerPort(t *testing.T) {
	e := defaultEnv(t)
	d, err := e.dp.SpecDefaults(rep1)
	require.NoError(t, err)
	assert.Equal(t, vf1MAC, d.EthSrc, "a representor's frames come from its VM")
	assert.Equal(t, upMAC, d.EthDst)
	d, err = e.dp.SpecDefaults(vf1)
	require.NoError(t, err)
	assert.Equal(t, vf1MAC, d.EthSrc)
	d, err = e.dp.SpecDefaults(up)
	require.NoError(t, err)
	assert.Equal(t, datapath.RemoteMAC, d.EthSrc)
	_, err = e.dp.SpecDefaults("nope")
	assert.Error(t, err)
}

func FuzzBuildFrame(f *testing.F) {
	for _, s := range []string{"tcp,src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80,flags=S", "udp,vlan=10:5,cvlan=20",
		"icmp6", "arp,op=reply", "udp,vni=100,tun_src=fd00::1,tun_dst=fd00::2", "ip,proto=47,frag=later", "eth_type=0x88cc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		frame, err := datapath.BuildFrame(spec, datapath.SpecDefaults{EthSrc: vf0MAC, EthDst: upMAC})
		if err != nil {
			return
		}
		if len(frame) < 14 {
			t.Fatalf("%q built a %d-byte frame", spec, len(frame))
		}
		_ = datapath.Describe(frame)
	})
}

// FuzzInject feeds arbitrary bytes to a datapath with a mixed flow table:
// no input may panic, and every verdict is known.
func FuzzInject(f *testing.F) {
	for _, s := range []string{"tcp,flags=S", "udp,vni=100,eth_dst=02:42:0f:01:00:01", "icmp,type=3", "udp,vlan=7,cvlan=8",
		"ipv6,tcp,frag=first", "arp", "sctp"} {
		b, err := datapath.BuildFrame(s, datapath.SpecDefaults{EthSrc: vf0MAC, EthDst: upMAC})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
		f.Add(b, uint8(1))
	}
	f.Fuzz(func(t *testing.T, frame []byte, which uint8) {
		e := defaultEnv(t)
		webFirewall(e, true)
		e.program(flow.Hardware, decapFlow("decap", vf1MAC, rep1),
			fl("rw", rep0, 0, 1, ipv4(flow.Match{}), rewrite(flow.Rewrite{Field: flow.RewriteTTLDec}),
				flow.Action{Kind: flow.ActVLANPush, VLAN: flow.VLANPush{ID: 3}}, redirect(up)))
		port := []string{up, rep0, vf4, vx}[which%4]
		tr, err := e.dp.Inject(port, frame)
		if err != nil {
			return
		}
		if tr.Verdict < datapath.VerdictDropped || tr.Verdict > datapath.VerdictUpcall {
			t.Fatalf("verdict %d", tr.Verdict)
		}
		_ = tr.String()
	})
}
