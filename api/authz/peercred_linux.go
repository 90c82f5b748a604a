package authz

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// peerCred reads the peer's credentials with SO_PEERCRED.
//
// Equivalent to: ss -xp (the peer's pid) and /proc/PID/status (its uid, gid).
func peerCred(c *net.UnixConn) (UnixPeer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return UnixPeer{}, err
	}
	var (
		cred *unix.Ucred
		gerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return UnixPeer{}, err
	}
	if gerr != nil {
		return UnixPeer{}, fmt.Errorf("getsockopt SO_PEERCRED: %w", gerr)
	}
	return UnixPeer{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}
