package conntrack

import "fmt"

// TCPState is a TCP connection's conntrack state, numbered as the kernel's
// enum tcp_conntrack.
type TCPState uint8

// TCP states.
const (
	TCPNone TCPState = iota
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
	numTCPStates
)

var tcpStateNames = [numTCPStates]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

func (s TCPState) String() string {
	if s < numTCPStates {
		return tcpStateNames[s]
	}
	return fmt.Sprintf("TCPState(%d)", uint8(s))
}

// ParseTCPState parses a state name as String prints it.
func ParseTCPState(s string) (TCPState, bool) {
	for i, n := range tcpStateNames {
		if n == s {
			return TCPState(i), true
		}
	}
	return 0, false
}

// TCP header flag bits (the 13th byte of the header).
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// validTCPFlags is the kernel's tcp_valid_flags: the combinations of FIN,
// SYN, RST, ACK and URG a tracked packet may carry (PSH, ECE and CWR are
// ignored).
var validTCPFlags = map[uint8]bool{
	TCPSyn: true, TCPSyn | TCPUrg: true, TCPSyn | TCPAck: true,
	TCPRst: true, TCPRst | TCPAck: true,
	TCPFin | TCPAck: true, TCPFin | TCPAck | TCPUrg: true,
	TCPAck: true, TCPAck | TCPUrg: true,
}

func tcpFlagsValid(f uint8) bool { return validTCPFlags[f&^(TCPEce|TCPCwr|TCPPsh)] }

// Packet classes, the rows of the state table (get_conntrack_index).
const (
	tcpSynSet = iota
	tcpSynAckSet
	tcpFinSet
	tcpAckSet
	tcpRstSet
	tcpNoneSet
)

func tcpIndex(f uint8) int {
	switch {
	case f&TCPRst != 0:
		return tcpRstSet
	case f&TCPSyn != 0 && f&TCPAck != 0:
		return tcpSynAckSet
	case f&TCPSyn != 0:
		return tcpSynSet
	case f&TCPFin != 0:
		return tcpFinSet
	case f&TCPAck != 0:
		return tcpAckSet
	}
	return tcpNoneSet
}

// Table results beyond the states: invalid and ignore.
const (
	sIV = numTCPStates
	sIG = numTCPStates + 1
)

// tcpTransitions is nf_conntrack_proto_tcp's tcp_conntracks[dir][index][state].
var tcpTransitions = [2][6][numTCPStates]TCPState{
	{ // original
		/*          NO           SS           SR           ES              FW           CW           LA           TW           CL           S2 */
		/*syn*/ {TCPSynSent, TCPSynSent, sIG, sIG, sIG, sIG, sIG, TCPSynSent, TCPSynSent, TCPSynSent2},
		/*synack*/ {sIV, sIV, TCPSynRecv, sIV, sIV, sIV, sIV, sIV, sIV, TCPSynRecv},
		/*fin*/ {sIV, sIV, TCPFinWait, TCPFinWait, TCPLastAck, TCPLastAck, TCPLastAck, TCPTimeWait, TCPClose, sIV},
		/*ack*/ {TCPEstablished, sIV, TCPEstablished, TCPEstablished, TCPCloseWait, TCPCloseWait, TCPTimeWait, TCPTimeWait, TCPClose, sIV},
		/*rst*/ {sIV, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose},
		/*none*/ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
	{ // reply
		/*syn*/ {sIV, TCPSynSent2, sIV, sIV, sIV, sIV, sIV, TCPSynSent, sIV, TCPSynSent2},
		/*synack*/ {sIV, TCPSynRecv, sIG, sIG, sIG, sIG, sIG, sIG, sIG, TCPSynRecv},
		/*fin*/ {sIV, sIV, TCPFinWait, TCPFinWait, TCPLastAck, TCPLastAck, TCPLastAck, TCPTimeWait, TCPClose, sIV},
		/*ack*/ {sIV, sIG, TCPSynRecv, TCPEstablished, TCPCloseWait, TCPCloseWait, TCPTimeWait, TCPTimeWait, TCPClose, sIG},
		/*rst*/ {sIV, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose, TCPClose},
		/*none*/ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
}

// tcpFlagsString renders flags like tcpdump: "S", "S.", "F.", "R", "P.".
func tcpFlagsString(f uint8) string {
	var b []byte
	for _, x := range []struct {
		bit uint8
		c   byte
	}{{TCPSyn, 'S'}, {TCPFin, 'F'}, {TCPRst, 'R'}, {TCPPsh, 'P'}, {TCPUrg, 'U'}, {TCPEce, 'E'}, {TCPCwr, 'W'}} {
		if f&x.bit != 0 {
			b = append(b, x.c)
		}
	}
	if f&TCPAck != 0 {
		b = append(b, '.')
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
