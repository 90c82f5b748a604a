package rtnl

import (
	"fmt"
	"syscall"
)

// Header flags used by callers (NLM_F_*).
const (
	FlagRequest = 0x1
	FlagAck     = 0x4
	FlagEcho    = 0x8
	FlagReplace = 0x100
	FlagExcl    = 0x200
	FlagCreate  = 0x400
)

// Request is one netlink request: its type (RTM_*), its header flags
// besides NLM_F_REQUEST and NLM_F_ACK, which are always set, and its body.
type Request struct {
	Type  uint16
	Flags uint16
	Body  []byte
}

// Reply is what the kernel answered one request.
type Reply struct {
	// Err is nil on success, else an *Error (or the transport's error).
	Err error
	// Messages are the bodies of the non-ack messages the kernel sent for
	// the request, such as the NLM_F_ECHO copy of a new filter.
	Messages [][]byte
	// Warning is the extack text of a successful request ("" when none):
	// a filter with no skip flag that the driver refused says why here.
	Warning string
}

// Error is a kernel error answer with its extended ack.
type Error struct {
	Errno syscall.Errno
	// Message is the kernel's extack text, "" when it gave none.
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Errno.Error()
	}
	return fmt.Sprintf("%s: %s", e.Message, e.Errno.Error())
}

// Unwrap lets errors.Is match the errno.
func (e *Error) Unwrap() error { return e.Errno }
