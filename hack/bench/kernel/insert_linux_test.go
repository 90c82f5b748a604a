package main

import (
	"encoding/binary"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/nic/linux/rtnl"
	"github.com/offloadd/offloadd/offload/flow"
)

// ack returns an NLMSG_ERROR message for seq with the given errno.
func ack(seq uint32, errno syscall.Errno) []byte {
	body := make([]byte, 4+unix.NLMSG_HDRLEN)
	code := -int32(errno)
	binary.NativeEndian.PutUint32(body, uint32(code))
	return appendMessage(nil, rtnl.Request{Type: unix.NLMSG_ERROR, Body: body}, seq)
}

func TestCountAcks(t *testing.T) {
	echo := appendMessage(nil, rtnl.Request{Type: 44, Body: []byte{1, 2, 3, 4}}, 1)
	tests := []struct {
		name    string
		dgram   []byte
		want    int
		wantErr syscall.Errno
	}{
		{"one ack", ack(1, 0), 1, 0},
		{"echo then ack", append(append([]byte(nil), echo...), ack(1, 0)...), 1, 0},
		{"two acks", append(ack(1, 0), ack(2, 0)...), 2, 0},
		{"error ack", ack(3, syscall.EEXIST), 0, syscall.EEXIST},
		{"echo only", echo, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := countAcks(tt.dgram)
			if tt.wantErr != 0 {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, n)
		})
	}
	_, err := countAcks(ack(1, 0)[:unix.NLMSG_HDRLEN+2])
	assert.Error(t, err, "a message longer than its datagram")
}

func TestAppendMessage(t *testing.T) {
	b := appendMessage(nil, rtnl.Request{Type: 44, Flags: rtnl.FlagCreate, Body: []byte{9, 9, 9}}, 7)
	require.Len(t, b, 20, "header plus body padded to 4 bytes")
	ne := binary.NativeEndian
	assert.Equal(t, uint32(19), ne.Uint32(b), "nlmsg_len excludes the padding")
	assert.Equal(t, uint16(44), ne.Uint16(b[4:]))
	assert.Equal(t, uint16(rtnl.FlagCreate|rtnl.FlagRequest|rtnl.FlagAck), ne.Uint16(b[6:]))
	assert.Equal(t, uint32(7), ne.Uint32(b[8:]))
}

func TestVNLFlower(t *testing.T) {
	b := &bed{ifindex: map[string]int32{"rep0": 2, "rep1": 4, tunnelDev: 9}}
	rules := buildRules(8, 2)

	acl, err := vnlFlower(rules[2], b) // udp pass on rep0
	require.NoError(t, err)
	assert.Equal(t, 2, acl.LinkIndex)
	assert.Equal(t, uint32(netlink.HANDLE_MIN_INGRESS), acl.Parent)
	assert.Equal(t, uint32(3), acl.Handle)
	assert.Equal(t, uint16(1), acl.Priority)
	assert.Equal(t, uint32(0), *acl.Chain)
	assert.True(t, acl.SkipHw)
	assert.Equal(t, "100.64.2.0", acl.SrcIP.String())
	assert.Equal(t, net.CIDRMask(24, 32), acl.SrcIPMask)
	assert.Equal(t, "10.0.0.2", acl.DestIP.String())
	assert.Equal(t, uint16(53), acl.DestPort)
	require.Len(t, acl.Actions, 1)
	g, ok := acl.Actions[0].(*netlink.GenericAction)
	require.True(t, ok)
	assert.Equal(t, netlink.TC_ACT_OK, g.Action)

	encap, err := vnlFlower(rules[5], b) // encap on rep1
	require.NoError(t, err)
	assert.Equal(t, 4, encap.LinkIndex)
	require.Len(t, encap.Actions, 2)
	k, ok := encap.Actions[0].(*netlink.TunnelKeyAction)
	require.True(t, ok)
	assert.Equal(t, netlink.TCA_TUNNEL_KEY_SET, k.Action)
	assert.Equal(t, uint32(6), k.KeyID)
	assert.Equal(t, uint16(vxlanPort), k.DestPort)
	assert.Equal(t, "198.51.100.6", k.DstAddr.String())
	m, ok := encap.Actions[1].(*netlink.MirredAction)
	require.True(t, ok)
	assert.Equal(t, 9, m.Ifindex)
	assert.Equal(t, netlink.TCA_EGRESS_REDIR, m.MirredAction)

	bad := rules[0]
	bad.f = bad.f.Clone()
	bad.f.Match.VLANID = flow.Some[uint16](3)
	_, err = vnlFlower(bad, b)
	assert.Error(t, err)
}
