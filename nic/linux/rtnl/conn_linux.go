package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/offloadd/offloadd/internal/nsthread"
)

// MaxBatch is how many requests go in one sendmsg. It keeps the acks and
// echoes of one batch well inside the socket's receive buffer.
const MaxBatch = 64

// defaultTimeout bounds a batch or dump when the context has no deadline.
const defaultTimeout = 30 * time.Second

// minRecvBuf is the receive buffer size: larger than any dump datagram
// (the kernel fills at most 32 KiB) and any echo of a new filter.
const minRecvBuf = 64 << 10

var native = binary.NativeEndian

// Conn is an rtnetlink socket. It is safe for concurrent use; requests
// are serialized.
//
// The socket is a plain blocking descriptor, outside the Go runtime's
// network poller, and the read deadline is SO_RCVTIMEO. Registered with
// the poller (as mdlayher/netlink's sockets are), every ack the kernel
// queues, 64 per batch, wakes the thread parked in epoll_wait, and the
// kernel does that wakeup inside the sender's sendmsg. mdlayher/socket
// v0.5.1 also starts a goroutine per read and write whose context has no
// deadline, and mdlayher/netlink peeks before every read.
type Conn struct {
	mu     sync.Mutex
	fd     int
	closed bool
	seq    uint32
	wbuf   []byte
	rbuf   []byte
	done   []bool
	// timeout is the SO_RCVTIMEO in effect.
	timeout time.Duration
}

// Dial opens a NETLINK_ROUTE socket in namespace ns; a handle that is not
// open (netns.None()) means the calling thread's namespace.
func Dial(ns netns.NsHandle) (*Conn, error) {
	fd, err := socketAt(ns)
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	fail := func(what string, err error) (*Conn, error) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("%s on rtnetlink: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("bind", err)
	}
	// NETLINK_CAP_ACK stays off: an error ack repeats the request, which
	// a batch of MaxBatch filters fits in the receive buffer.
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1); err != nil {
		return fail("enable extended acks", err)
	}
	return &Conn{fd: fd, rbuf: make([]byte, minRecvBuf)}, nil
}

// socketAt opens a blocking rtnetlink socket in ns, on a thread of its
// own (nsthread.In).
func socketAt(ns netns.NsHandle) (int, error) {
	open := func() (int, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return -1, os.NewSyscallError("socket", err)
		}
		return fd, nil
	}
	if !ns.IsOpen() {
		return open()
	}
	fd := -1
	err := nsthread.In(ns, func() error {
		var err error
		fd, err = open()
		return err
	})
	if err != nil {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		return -1, err
	}
	return fd, nil
}

// Close closes the socket.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return unix.Close(c.fd)
}

// deadline sets the receive timeout to what is left until ctx's deadline,
// or defaultTimeout. A read that times out fails with
// os.ErrDeadlineExceeded.
func (c *Conn) deadline(ctx context.Context) error {
	if c.closed {
		return net.ErrClosed
	}
	t := defaultTimeout
	if d, ok := ctx.Deadline(); ok {
		if t = time.Until(d); t <= 0 {
			return os.ErrDeadlineExceeded
		}
		// SO_RCVTIMEO has microseconds; 0 would mean no timeout.
		t = max(t, time.Microsecond)
	}
	if t == c.timeout {
		return nil
	}
	tv := unix.NsecToTimeval(t.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	c.timeout = t
	return nil
}

// Batch sends reqs, MaxBatch per sendmsg, and returns one Reply per
// request in order. Each request gets NLM_F_REQUEST|NLM_F_ACK.
func (c *Conn) Batch(ctx context.Context, reqs []Request) []Reply {
	out := make([]Reply, len(reqs))
	c.mu.Lock()
	defer c.mu.Unlock()
	for start := 0; start < len(reqs); start += MaxBatch {
		end := min(start+MaxBatch, len(reqs))
		if err := ctx.Err(); err != nil {
			for i := start; i < len(reqs); i++ {
				out[i].Err = err
			}
			return out
		}
		c.batch(ctx, reqs[start:end], out[start:end])
	}
	return out
}

func (c *Conn) batch(ctx context.Context, reqs []Request, out []Reply) {
	fail := func(err error) {
		for i := range out {
			if out[i].Err == nil {
				out[i].Err = err
			}
		}
	}
	if err := c.deadline(ctx); err != nil {
		fail(fmt.Errorf("set netlink deadline: %w", err))
		return
	}
	first := c.seq + 1
	c.wbuf = c.wbuf[:0]
	longest := 0
	for _, r := range reqs {
		c.seq++
		c.wbuf = appendMessage(c.wbuf, r.Type, r.Flags|FlagRequest|FlagAck, c.seq, r.Body)
		longest = max(longest, len(r.Body))
	}
	if err := c.send(c.wbuf); err != nil {
		fail(fmt.Errorf("send %d netlink requests: %w", len(reqs), err))
		return
	}
	// An error ack repeats its request and adds the extack TLVs.
	if need := longest + 4096; need > len(c.rbuf) {
		c.rbuf = make([]byte, need)
	}
	if cap(c.done) < len(reqs) {
		c.done = make([]bool, MaxBatch)
	}
	c.done = c.done[:len(reqs)]
	clear(c.done)
	pending := len(reqs)
	for pending > 0 {
		b, err := c.recv()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
				err = ctx.Err()
			}
			fail(fmt.Errorf("receive netlink acks: %w", err))
			return
		}
		for len(b) > 0 {
			var h header
			var body []byte
			if h, body, b, err = nextMessage(b); err != nil {
				fail(fmt.Errorf("receive netlink acks: %w", err))
				return
			}
			i := h.seq - first
			if i >= uint32(len(reqs)) || c.done[i] {
				continue // an answer to an earlier, abandoned batch
			}
			if h.typ == unix.NLMSG_ERROR {
				out[i].Err = ackError(h.flags, body, true)
				if out[i].Err == nil {
					out[i].Warning = ackMessage(h.flags, body, true)
				}
				c.done[i] = true
				pending--
				continue
			}
			out[i].Messages = append(out[i].Messages, append([]byte(nil), body...))
		}
	}
}

// Dump sends a dump request (NLM_F_DUMP) and returns the body of every
// message of the answer.
func (c *Conn) Dump(ctx context.Context, typ uint16, body []byte) ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.deadline(ctx); err != nil {
		return nil, fmt.Errorf("set netlink deadline: %w", err)
	}
	c.seq++
	seq := c.seq
	c.wbuf = appendMessage(c.wbuf[:0], typ, FlagRequest|unix.NLM_F_DUMP, seq, body)
	if err := c.send(c.wbuf); err != nil {
		return nil, fmt.Errorf("send netlink dump request: %w", err)
	}
	var out [][]byte
	for {
		b, err := c.recv()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("receive netlink dump: %w", err)
		}
		// One copy per datagram; the bodies returned point into it.
		b = append([]byte(nil), b...)
		for len(b) > 0 {
			var h header
			var m []byte
			if h, m, b, err = nextMessage(b); err != nil {
				return nil, fmt.Errorf("receive netlink dump: %w", err)
			}
			if h.seq != seq {
				continue
			}
			switch h.typ {
			case unix.NLMSG_DONE:
				if err := ackError(h.flags, m, false); err != nil {
					return nil, err
				}
				return out, nil
			case unix.NLMSG_ERROR:
				if err := ackError(h.flags, m, true); err != nil {
					return nil, err
				}
				continue
			case typ - 2, typ:
				out = append(out, m)
			}
			if h.flags&unix.NLM_F_MULTI == 0 {
				return out, nil // a single answer, not a dump
			}
		}
	}
}

// send writes one datagram of netlink messages.
func (c *Conn) send(b []byte) error {
	for {
		_, err := unix.Write(c.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		return nil
	}
}

// recv reads one datagram into the receive buffer. MSG_TRUNC makes the
// kernel return the datagram's full length, so truncation is detected.
func (c *Conn) recv() ([]byte, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(&c.rbuf[0])),
			uintptr(len(c.rbuf)), unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return nil, os.ErrDeadlineExceeded // SO_RCVTIMEO expired
		default:
			return nil, os.NewSyscallError("recvfrom", errno)
		}
		if int(n) > len(c.rbuf) {
			return nil, fmt.Errorf("netlink datagram of %d bytes truncated to %d", n, len(c.rbuf))
		}
		return c.rbuf[:n], nil
	}
}

const hdrLen = unix.NLMSG_HDRLEN

// nlaTypeMask clears NLA_F_NESTED and NLA_F_NET_BYTEORDER from an attribute type.
const nlaTypeMask = 0x3fff

// appendMessage appends one netlink message (nlmsghdr, body, padding).
func appendMessage(b []byte, typ, flags uint16, seq uint32, body []byte) []byte {
	b = native.AppendUint32(b, uint32(hdrLen+len(body)))
	b = native.AppendUint16(b, typ)
	b = native.AppendUint16(b, flags)
	b = native.AppendUint32(b, seq)
	b = native.AppendUint32(b, 0) // port ID: the kernel fills it in
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

type header struct {
	typ, flags uint16
	seq        uint32
}

var errShortMessage = errors.New("short netlink message")

// nextMessage splits the first message off a datagram.
func nextMessage(b []byte) (h header, body, rest []byte, err error) {
	if len(b) < hdrLen {
		return h, nil, nil, errShortMessage
	}
	l := int(native.Uint32(b))
	if l < hdrLen || l > len(b) {
		return h, nil, nil, fmt.Errorf("netlink message length %d in %d bytes: %w", l, len(b), errShortMessage)
	}
	h = header{typ: native.Uint16(b[4:]), flags: native.Uint16(b[6:]), seq: native.Uint32(b[8:])}
	body = b[hdrLen:l:l]
	if a := (l + 3) &^ 3; a < len(b) {
		rest = b[a:]
	}
	return h, body, rest, nil
}

// ackMessage returns the extack text (NLMSGERR_ATTR_MSG) of an ack, or
// "" when it has none; see ackError for the layout.
func ackMessage(flags uint16, body []byte, withHeader bool) string {
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(body) < 4 {
		return ""
	}
	off := 4
	if withHeader {
		switch {
		case flags&unix.NLM_F_CAPPED != 0:
			off += hdrLen
		case len(body) >= 4+hdrLen:
			// The request as sent, padded to 4 bytes.
			off += (int(native.Uint32(body[4:])) + 3) &^ 3
		default:
			return ""
		}
	}
	for off+4 <= len(body) {
		l := int(native.Uint16(body[off:]))
		if l < 4 || off+l > len(body) {
			break
		}
		if native.Uint16(body[off+2:])&nlaTypeMask == unix.NLMSGERR_ATTR_MSG {
			msg := body[off+4 : off+l]
			for i, ch := range msg {
				if ch == 0 {
					msg = msg[:i]
					break
				}
			}
			return string(msg)
		}
		off += (l + 3) &^ 3
	}
	return ""
}

// ackError reads the errno of an NLMSG_ERROR (withHeader: errno, the
// request's header and, unless capped, its body) or NLMSG_DONE body and,
// with NLM_F_ACK_TLVS, the kernel's extack message. Nil for success.
func ackError(flags uint16, body []byte, withHeader bool) error {
	if len(body) < 4 {
		if withHeader {
			return errShortMessage
		}
		return nil // a dump's end without an error number
	}
	code := int32(native.Uint32(body))
	if code == 0 {
		return nil
	}
	e := &Error{Errno: syscall.Errno(-code)}
	e.Message = ackMessage(flags, body, withHeader)
	return e
}
