//go:build !linux

package authz

import (
	"errors"
	"net"
)

// ErrNotImplemented: peer credentials are read on Linux only.
var ErrNotImplemented = errors.New("not implemented on this platform")

func peerCred(*net.UnixConn) (UnixPeer, error) { return UnixPeer{}, ErrNotImplemented }
