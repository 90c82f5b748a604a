package rtnl_test

import (
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic/linux/rtnl"
)

const (
	rtmNewQdisc = 36
	rtmGetQdisc = 38
)

// clsact returns an RTM_NEWQDISC body: tc qdisc add dev IFINDEX clsact.
func clsact(ifindex uint32) []byte {
	b := make([]byte, 20)
	binary.NativeEndian.PutUint32(b[4:], ifindex)
	binary.NativeEndian.PutUint32(b[8:], 0xffff0000)  // handle ffff:
	binary.NativeEndian.PutUint32(b[12:], 0xfffffff1) // parent TC_H_CLSACT
	kind := []byte{11, 0, 1, 0, 'c', 'l', 's', 'a', 'c', 't', 0, 0}
	return append(b, kind...)
}

func freshNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	ns, err := netns.New()
	require.NoError(t, netns.Set(orig))
	require.NoError(t, err)
	t.Cleanup(func() { ns.Close() })
	return ns
}

func TestPrivilegedBatchMatchesAcks(t *testing.T) {
	ns := freshNetns(t)
	c, err := rtnl.Dial(ns)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	excl := uint16(rtnl.FlagCreate | rtnl.FlagExcl)
	reqs := []rtnl.Request{
		{Type: rtmNewQdisc, Flags: excl, Body: clsact(1)},     // lo: works
		{Type: rtmNewQdisc, Flags: excl, Body: clsact(1)},     // again: EEXIST
		{Type: rtmNewQdisc, Flags: excl, Body: clsact(31337)}, // no such link
	}
	// More than one sendmsg's worth, to cross the MaxBatch boundary.
	for range rtnl.MaxBatch {
		reqs = append(reqs, rtnl.Request{Type: rtmNewQdisc, Flags: excl, Body: clsact(1)})
	}
	rep := c.Batch(context.Background(), reqs)
	require.Len(t, rep, len(reqs))
	require.NoError(t, rep[0].Err)
	var re *rtnl.Error
	require.ErrorAs(t, rep[1].Err, &re)
	assert.ErrorIs(t, rep[1].Err, syscall.EEXIST)
	assert.ErrorIs(t, rep[2].Err, syscall.ENODEV)
	for i := 3; i < len(rep); i++ {
		assert.ErrorIs(t, rep[i].Err, syscall.EEXIST, "request %d", i)
	}

	msgs, err := c.Dump(context.Background(), rtmGetQdisc, make([]byte, 20))
	require.NoError(t, err)
	assert.NotEmpty(t, msgs, "the clsact qdisc on lo is dumped")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep = c.Batch(ctx, reqs[:2])
	for _, r := range rep {
		assert.ErrorIs(t, r.Err, context.Canceled)
	}
}
