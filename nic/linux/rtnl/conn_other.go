//go:build !linux

package rtnl

import (
	"context"

	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
)

// MaxBatch is how many requests go in one sendmsg.
const MaxBatch = 64

// Conn is an rtnetlink socket; it does not exist on this platform.
type Conn struct{}

// Dial fails: rtnetlink is Linux only.
func Dial(netns.NsHandle) (*Conn, error) { return nil, nic.ErrNotImplemented }

// Close does nothing.
func (c *Conn) Close() error { return nil }

// Batch fails every request.
func (c *Conn) Batch(_ context.Context, reqs []Request) []Reply {
	out := make([]Reply, len(reqs))
	for i := range out {
		out[i].Err = nic.ErrNotImplemented
	}
	return out
}

// Dump fails.
func (c *Conn) Dump(context.Context, uint16, []byte) ([][]byte, error) {
	return nil, nic.ErrNotImplemented
}
