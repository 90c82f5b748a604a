// Package tcflower encodes offloadd flows as Linux tc-flower filters
// (RTM_NEWTFILTER messages) and decodes dumped filters back into flows.
//
// The codec is pure Go and builds on every platform; the netlink transport
// that sends its messages lives in nic/linux/rtnl. Encoding follows what
// iproute2's tc emits for the same rule, so that a filter installed by
// offloadd dumps exactly like the one `tc filter add … flower …` installs
// (hack/tc-corpus holds the equivalence corpus the kernel tier checks).
//
// Conventions fixed by this package:
//   - The flow ID travels in the first action's TCA_ACT_COOKIE as
//     "oFLD" + the first 12 bytes of SHA-256(ID) (see CookieFor).
//   - A VLAN match uses tc protocol 802.1Q with the flow's EthType in
//     TCA_FLOWER_KEY_VLAN_ETH_TYPE; a QinQ match (CVLAN keys) uses 802.1ad
//     with 802.1Q as the outer VLAN ethertype and the EthType in
//     TCA_FLOWER_KEY_CVLAN_ETH_TYPE. Without VLAN keys the protocol is the
//     EthType, or ETH_P_ALL when it is 0.
//   - Each rewrite becomes one extended pedit action (iproute2's
//     `pedit ex munge …`), followed by a csum action when the rewrite
//     invalidates a checksum: IPv4 addresses → `csum iph and tcp|udp`,
//     IPv6 addresses → `csum tcp|udp`, IPv4 TTL decrement → `csum iph`,
//     ports → `csum tcp|udp`. MAC rewrites and the IPv6 hop limit need none.
//     Decode folds a csum that follows a pedit back into the rewrite.
//   - Police conform defaults to pipe and exceed to drop.
//   - Every action's TCA_ACT_OPTIONS carries NLA_F_NESTED, as iproute2
//     sends it (act_ct refuses options without it).
//
// Decode gives back the flow Encode was given, except where tc keeps no
// difference: a NAT range of one address or port decodes as the single
// value (max unset), a pushed VLAN's 802.1Q protocol as 0, and a police
// verdict equal to its default as VerdictDefault. Police bursts are
// recovered from ticks exactly while a byte (packet) lasts at least one
// tick at the rate, i.e. up to 125 Mbit/s (15.6 Mpps); above that the
// largest burst with the same ticks is returned.
//
// Multi-byte struct fields that the kernel reads in host order (tcmsg,
// tc_gen, pedit offsets) are written in the machine's native order, so the
// golden files in testdata hold little-endian hosts' bytes.
package tcflower
