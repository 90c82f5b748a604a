// Package linux is the real nic.Device: it programs a switchdev NIC's
// eswitch through tc flower on the uplink, representor and VXLAN netdevs.
// A flow's hardware copy is a skip_sw filter, its software copy a skip_hw
// filter; the kernel's answer, extack text included, is what the engine
// sees (hardware refusals become *nic.RefusedError).
//
// The device encodes filters with nic/linux/tcflower and sends them, many
// per sendmsg, over nic/linux/rtnl. It keeps, in memory, each flow ID's
// port, chain, priority, protocol and handle per plane; the flow ID also
// travels in the first action's cookie so that a restarted daemon can find
// its filters again (Adopt). Links, qdiscs and the VXLAN device go through
// vishvananda/netlink, in the network namespace given in Config.
//
// Linux only; on other platforms New returns nic.ErrNotImplemented.
package linux
