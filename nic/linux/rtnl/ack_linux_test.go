package rtnl

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// errAck builds an NLMSG_ERROR body as the kernel sends it: errno, the
// request's header, its body unless capped, then the extack TLVs.
func errAck(errno syscall.Errno, req []byte, capped bool, msg string) (uint16, []byte) {
	b := native.AppendUint32(nil, uint32(-int32(errno)))
	b = append(b, req[:hdrLen]...)
	var flags uint16
	if capped {
		flags |= unix.NLM_F_CAPPED
	} else {
		b = append(b, req[hdrLen:]...)
	}
	if msg != "" {
		flags |= unix.NLM_F_ACK_TLVS
		b = appendAttr(b, unix.NLMSGERR_ATTR_OFFS, native.AppendUint32(nil, 20))
		b = appendAttr(b, unix.NLMSGERR_ATTR_MSG, append([]byte(msg), 0))
	}
	return flags, b
}

func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = native.AppendUint16(b, uint16(4+len(v)))
	b = native.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestAckError(t *testing.T) {
	req := appendMessage(nil, 44, FlagRequest|FlagAck|FlagCreate, 7, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	const reason = "Filter with specified priority/protocol not found"
	tests := []struct {
		name    string
		errno   syscall.Errno
		capped  bool
		msg     string
		wantMsg string
	}{
		{name: "success", errno: 0},
		{name: "plain error", errno: syscall.EEXIST},
		{name: "extack after the repeated request", errno: syscall.ENOENT, msg: reason, wantMsg: reason},
		{name: "extack after a capped header", errno: syscall.EOPNOTSUPP, capped: true, msg: reason, wantMsg: reason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, body := errAck(tt.errno, req, tt.capped, tt.msg)
			err := ackError(flags, body, true)
			if tt.errno == 0 {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.errno, e.Errno)
			assert.Equal(t, tt.wantMsg, e.Message)
			assert.ErrorIs(t, err, tt.errno)
		})
	}

	// A dump's NLMSG_DONE: errno then TLVs, no request header.
	einval := -int32(syscall.EINVAL)
	done := appendAttr(native.AppendUint32(nil, uint32(einval)), unix.NLMSGERR_ATTR_MSG, []byte("bad\x00"))
	err := ackError(unix.NLM_F_MULTI|unix.NLM_F_ACK_TLVS, done, false)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, syscall.EINVAL, e.Errno)
	assert.Equal(t, "bad", e.Message)
	assert.NoError(t, ackError(unix.NLM_F_MULTI, nil, false), "a DONE without an errno ends the dump cleanly")
	assert.ErrorIs(t, ackError(0, []byte{1}, true), errShortMessage)
}

func TestNextMessage(t *testing.T) {
	d := appendMessage(nil, 44, FlagRequest, 1, []byte{1, 2, 3})
	d = appendMessage(d, 45, FlagRequest|FlagAck, 2, nil)
	h, body, rest, err := nextMessage(d)
	require.NoError(t, err)
	assert.Equal(t, header{typ: 44, flags: FlagRequest, seq: 1}, h)
	assert.Equal(t, []byte{1, 2, 3}, body)
	h, body, rest, err = nextMessage(rest)
	require.NoError(t, err)
	assert.Equal(t, header{typ: 45, flags: FlagRequest | FlagAck, seq: 2}, h)
	assert.Empty(t, body)
	assert.Empty(t, rest)

	_, _, _, err = nextMessage(d[:10])
	assert.ErrorIs(t, err, errShortMessage)
	bad := append([]byte(nil), d...)
	native.PutUint32(bad, 4096)
	_, _, _, err = nextMessage(bad)
	assert.ErrorIs(t, err, errShortMessage)
}
