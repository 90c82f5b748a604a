package representor

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetlinkLinks delivers RTNLGRP_LINK notifications (links added, removed,
// renamed, changed) of one network namespace.
type NetlinkLinks struct {
	// Namespace to watch; nil: the caller's.
	Namespace *netns.NsHandle
}

var _ LinkEvents = NetlinkLinks{}

// Watch subscribes and calls notify per link message until ctx is done or
// the socket fails (ENOBUFS when the kernel dropped messages).
// Equivalent to: ip monitor link
func (n NetlinkLinks) Watch(ctx context.Context, notify func()) error {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	errc := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{
		Namespace: n.Namespace,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { close(done) })
	defer func() {
		if stop() {
			close(done)
		}
		for range ch { // the receiver closes ch once the socket is closed
		}
	}()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				select {
				case err := <-errc:
					return fmt.Errorf("receive link events: %w", err)
				default:
					return errors.New("receive link events: subscription closed")
				}
			}
			notify()
		case <-ctx.Done():
			return nil
		}
	}
}
