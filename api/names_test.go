package api

import (
	"testing"

	"github.com/offloadd/offloadd/offload/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCTState(t *testing.T) {
	tests := []struct {
		in   string
		want flow.Masked16
		errs int
	}{
		{"", flow.Masked16{}, 0},
		{"+trk", flow.Masked16{Value: flow.CTTracked, Mask: flow.CTTracked}, 0},
		{"-trk", flow.Masked16{Mask: flow.CTTracked}, 0},
		{"+trk+est-new", flow.Masked16{Value: flow.CTTracked | flow.CTEstablished, Mask: flow.CTTracked | flow.CTEstablished | flow.CTNew}, 0},
		{"+TRK +Rel, +rpl -inv", flow.Masked16{Value: flow.CTTracked | flow.CTRelated | flow.CTReply, Mask: flow.CTTracked | flow.CTRelated | flow.CTReply | flow.CTInvalid}, 0},
		{"+trk+invalid", flow.Masked16{Value: flow.CTTracked | flow.CTInvalid, Mask: flow.CTTracked | flow.CTInvalid}, 0},
		{"trk", flow.Masked16{}, 1},
		{"+", flow.Masked16{}, 1},
		{"+trk-trk", flow.Masked16{Value: flow.CTTracked, Mask: flow.CTTracked}, 1},
		{"+x+y", flow.Masked16{}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, errs := parseCTState(tt.in)
			assert.Len(t, errs, tt.errs, "%v", errs)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFormatCTState(t *testing.T) {
	assert.Equal(t, "+trk+est-new-rel", formatCTState(flow.Masked16{
		Value: flow.CTTracked | flow.CTEstablished,
		Mask:  flow.CTTracked | flow.CTEstablished | flow.CTNew | flow.CTRelated,
	}))
	assert.Equal(t, "-trk", formatCTState(flow.Masked16{Mask: flow.CTTracked}))
	assert.Equal(t, "+trk(0x40/0x40)", formatCTState(flow.Masked16{Value: flow.CTTracked | 0x40, Mask: flow.CTTracked | 0x40}))
}

func TestParseEtherTypeAndProto(t *testing.T) {
	for in, want := range map[string]uint16{
		"ipv4": 0x0800, "IPv6": 0x86dd, "arp": 0x0806, "802.1Q": 0x8100, "802.1ad": 0x88a8,
		"vlan": 0x8100, "0x88cc": 0x88cc, "2048": 0x0800, " ip ": 0x0800,
	} {
		got, err := parseEtherType(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, msg := range map[string]string{
		"0":       "0 is not an EtherType",
		"0x10000": "0x10000 > 0xffff",
		"foo":     `unknown EtherType "foo"`,
		"-1":      `unknown EtherType "-1"`,
		"0100":    `EtherType "0100": a leading zero would make it octal; write decimal, or hex with 0x`,
		"0o4":     `EtherType "0o4": a leading zero would make it octal; write decimal, or hex with 0x`,
		"0x8_100": `unknown EtherType "0x8_100"`,
	} {
		_, err := parseEtherType(in)
		assert.EqualError(t, err, msg, in)
	}
	assert.Equal(t, "802.1q", formatEtherType(0x8100))
	assert.Equal(t, "0x0001", formatEtherType(1))

	for in, want := range map[string]uint8{"tcp": 6, "Udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "47": 47, "0x11": 17} {
		got, err := parseIPProto(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := parseIPProto("017")
	assert.EqualError(t, err, `ip_proto "017": a leading zero would make it octal; write decimal, or hex with 0x`)
	assert.Equal(t, "gre", formatIPProto(47))
	assert.Equal(t, "115", formatIPProto(115))
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		fam  family
		want string
		err  string
	}{
		{"10.0.0.1", ipv4, "10.0.0.1/32", ""},
		{"10.0.0.1/8", ipv4, "10.0.0.0/8", ""},
		{"10.0.0.1/0", ipv4, "0.0.0.0/0", ""},
		{"2001:db8::1", ipv6, "2001:db8::1/128", ""},
		{"2001:db8::1/129", ipv6, "", "prefix 129 > 128"},
		{"10.0.0.0/33", ipv4, "", "prefix 33 > 32"},
		{"10.0.0.0/-1", ipv4, "", `bad prefix length "-1"`},
		{"10.0.0.0/08", ipv4, "", `bad prefix length "08"`},
		{"10.0.0.0/", ipv4, "", `bad prefix length ""`},
		{"::ffff:10.0.0.1", anyFamily, "", `"::ffff:10.0.0.1" is an IPv4-mapped IPv6 address; write it as IPv4`},
		{"::ffff:10.0.0.1", ipv4, "", `"::ffff:10.0.0.1" is not an IPv4 address`},
		{"host", anyFamily, "", `"host" is not an IP address`},
		{"192.0.2.0/24", anyFamily, "192.0.2.0/24", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := parsePrefix(tt.in, tt.fam)
			if tt.err != "" {
				assert.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.String())
		})
	}
}

// FuzzCTState checks that whatever parses prints back to a string that
// parses to the same state.
func FuzzCTState(f *testing.F) {
	for _, s := range []string{"+trk+est-new", "-trk", "+trk+inv", "+tracked,-reply", "trk", "+-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, errs := parseCTState(s)
		if len(errs) > 0 {
			return
		}
		again, errs := parseCTState(formatCTState(m))
		require.Empty(t, errs, "format of %q", s)
		require.Equal(t, m, again)
	})
}

// FuzzPrefix checks that parsed prefixes print in a form that parses back
// to the same prefix.
func FuzzPrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/8", "2001:db8::/32", "::1", "fe80::1%x", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePrefix(s, anyFamily)
		if err != nil {
			return
		}
		again, err := parsePrefix(formatPrefix(p), anyFamily)
		require.NoError(t, err, "format of %q", s)
		require.Equal(t, p, again)
	})
}
