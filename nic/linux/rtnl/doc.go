// Package rtnl is offloadd's rtnetlink transport for tc filters: a
// NETLINK_ROUTE socket in a chosen network namespace, with extended acks
// (the kernel's reason text), that sends many requests in
// one sendmsg and matches every ack to its request by sequence number.
//
// It speaks bytes: the tc-flower codec (nic/linux/tcflower) builds the
// message bodies. Linux only; other platforms get nic.ErrNotImplemented.
package rtnl
