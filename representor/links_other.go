//go:build !linux

package representor

import (
	"context"

	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
)

// NetlinkLinks delivers link notifications; Linux only.
type NetlinkLinks struct {
	Namespace *netns.NsHandle
}

var _ LinkEvents = NetlinkLinks{}

// Watch returns nic.ErrNotImplemented on this platform.
func (NetlinkLinks) Watch(context.Context, func()) error { return nic.ErrNotImplemented }
