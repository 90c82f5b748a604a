package rtnl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MaxBatch is how many requests go in one sendmsg. It keeps the acks and
// echoes of one batch well inside the socket's receive buffer.
const MaxBatch = 64

// defaultTimeout bounds a batch or dump when the context has no deadline.
const defaultTimeout = 30 * time.Second

// Conn is an rtnetlink socket. It is safe for concurrent use; requests
// are serialized.
type Conn struct {
	mu sync.Mutex
	c  *netlink.Conn
}

// Dial opens a NETLINK_ROUTE socket in namespace ns; a handle that is not
// open (netns.None()) means the calling thread's namespace.
func Dial(ns netns.NsHandle) (*Conn, error) {
	cfg := &netlink.Config{}
	if ns.IsOpen() {
		cfg.NetNS = int(ns)
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	// NETLINK_CAP_ACK stays off: mdlayher/netlink v1.9.0 finds the extack
	// TLVs of a capped error ack at the original request's length and
	// fails with "not enough data for netlink error code", losing the
	// errno and the reason. Uncapped, an error ack repeats the request,
	// which a batch of MaxBatch filters fits in the receive buffer.
	if err := c.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("enable extended acks on rtnetlink: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

func (c *Conn) deadline(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(defaultTimeout)
	}
	return c.c.SetReadDeadline(d)
}

// toError turns a netlink error into an *Error when it carries an errno.
func toError(err error) error {
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		var errno syscall.Errno
		if errors.As(oe.Err, &errno) {
			return &Error{Errno: errno, Message: oe.Message}
		}
	}
	return err
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
	msgs := make([]netlink.Message, len(reqs))
	for i, r := range reqs {
		msgs[i] = netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(r.Type),
				Flags: netlink.HeaderFlags(r.Flags) | netlink.Request | netlink.Acknowledge},
			Data: r.Body,
		}
	}
	sent, err := c.c.SendMessages(msgs)
	if err != nil {
		fail(fmt.Errorf("send %d netlink requests: %w", len(reqs), err))
		return
	}
	bySeq := make(map[uint32]int, len(sent))
	for i, m := range sent {
		bySeq[m.Header.Sequence] = i
	}
	pending := len(sent)
	for pending > 0 {
		replies, err := c.c.Receive()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && oe.Sequence != 0 {
				if i, ok := bySeq[oe.Sequence]; ok {
					out[i].Err = toError(err)
					delete(bySeq, oe.Sequence)
					pending--
					continue
				}
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
				err = ctx.Err()
			}
			fail(fmt.Errorf("receive netlink acks: %w", err))
			return
		}
		for _, m := range replies {
			i, ok := bySeq[m.Header.Sequence]
			if !ok {
				continue // an answer to an earlier, abandoned batch
			}
			if m.Header.Type == netlink.Error {
				delete(bySeq, m.Header.Sequence)
				pending--
				continue
			}
			out[i].Messages = append(out[i].Messages, m.Data)
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
	msgs, err := c.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request | netlink.Dump},
		Data:   body,
	})
	if err != nil {
		return nil, toError(err)
	}
	out := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type == netlink.HeaderType(typ-2) || m.Header.Type == netlink.HeaderType(typ) {
			out = append(out, m.Data)
		}
	}
	return out, nil
}
