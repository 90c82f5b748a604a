//go:build !linux

package linux

import "github.com/offloadd/offloadd/nic"

// Device is the Linux tc-flower device; it does not exist on this platform.
type Device struct{ nic.Device }

// New fails: the Linux backend needs Linux.
func New(Config) (*Device, error) { return nil, nic.ErrNotImplemented }
