// Package conntrack is the emulated SmartNIC's connection tracker: the
// table the tc ct action consults, per zone, as the kernel's nf_conntrack
// does for act_ct.
//
// Track runs one packet through a zone the way act_ct does in software:
// it classifies the packet as new, established, related (an ICMP error
// quoting a tracked connection) or invalid, in the original or reply
// direction; follows TCP through SYN, SYN-ACK, ACK, FIN and RST with the
// kernel's state table (without window tracking, and with
// nf_conntrack_tcp_loose=0: a TCP packet other than a SYN does not start
// a connection); sets up source or destination NAT on new connections and
// translates later packets both ways; and confirms connections on commit,
// setting the mark. Timeouts are the kernel's nf_conntrack defaults
// (DefaultTimeouts) and run on the time the caller passes in, so tests
// need no sleeping.
//
// Connections that are established and assured may be marked offloaded,
// as act_ct hands them to the NIC's flow table; TrackOffloaded is the
// hardware's view, which sees only those and gives FIN and RST back to
// software.
//
// Entries and Import carry the table between nodes for live migration.
package conntrack
