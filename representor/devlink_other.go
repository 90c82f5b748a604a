//go:build !linux

package representor

import (
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
)

// Devlink reads eswitch modes over devlink; Linux only.
type Devlink struct{}

var _ EswitchReader = (*Devlink)(nil)

// NewDevlink returns nic.ErrNotImplemented on this platform.
func NewDevlink(netns.NsHandle) (*Devlink, error) { return nil, nic.ErrNotImplemented }

// EswitchMode returns nic.ErrNotImplemented on this platform.
func (*Devlink) EswitchMode(string, string) (nic.EswitchMode, error) {
	return 0, nic.ErrNotImplemented
}

// Close does nothing.
func (*Devlink) Close() error { return nil }
