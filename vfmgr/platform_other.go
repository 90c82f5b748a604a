//go:build !linux

package vfmgr

import (
	"github.com/vishvananda/netns"

	"github.com/offloadd/offloadd/nic"
)

// Netlink configures VFs through their PF; Linux only.
type Netlink struct{}

var _ VFConfigurer = (*Netlink)(nil)

// NewNetlink returns nic.ErrNotImplemented on this platform.
func NewNetlink(netns.NsHandle) (*Netlink, error) { return nil, nic.ErrNotImplemented }

// Close does nothing.
func (*Netlink) Close() error { return nil }

// VFState returns nic.ErrNotImplemented on this platform.
func (*Netlink) VFState(string, int) (VFState, error) { return VFState{}, nic.ErrNotImplemented }

// SetVF returns nic.ErrNotImplemented on this platform.
func (*Netlink) SetVF(string, int, VFSettings) error { return nic.ErrNotImplemented }

// Ethtool changes netdev features; Linux only.
type Ethtool struct{}

var _ FeatureSetter = (*Ethtool)(nil)

// NewEthtool returns nic.ErrNotImplemented on this platform.
func NewEthtool(netns.NsHandle) (*Ethtool, error) { return nil, nic.ErrNotImplemented }

// Close does nothing.
func (*Ethtool) Close() error { return nil }

// Feature returns nic.ErrNotImplemented on this platform.
func (*Ethtool) Feature(string, string) (Feature, error) { return Feature{}, nic.ErrNotImplemented }

// SetFeature returns nic.ErrNotImplemented on this platform.
func (*Ethtool) SetFeature(string, string, bool) error { return nic.ErrNotImplemented }

// Devlink sets eswitch modes; Linux only.
type Devlink struct{}

var _ EswitchSetter = (*Devlink)(nil)

// NewDevlink returns nic.ErrNotImplemented on this platform.
func NewDevlink(netns.NsHandle) (*Devlink, error) { return nil, nic.ErrNotImplemented }

// Close does nothing.
func (*Devlink) Close() error { return nil }

// EswitchMode returns nic.ErrNotImplemented on this platform.
func (*Devlink) EswitchMode(string) (nic.EswitchMode, error) { return 0, nic.ErrNotImplemented }

// SetEswitchMode returns nic.ErrNotImplemented on this platform.
func (*Devlink) SetEswitchMode(string, nic.EswitchMode) error { return nic.ErrNotImplemented }
