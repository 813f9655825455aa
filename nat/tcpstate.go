package nat

import "gvisor.dev/gvisor/pkg/tcpip/header"

// TCP connection tracking, simplified from Linux's nf_conntrack_proto_tcp:
// the same states, moved by the same kinds of segment, without the
// sequence-number window checks. The transitions are written out below
// rather than as Linux's table.

// tcpState is the state of a tracked TCP connection.
type tcpState uint8

const (
	tcpNone tcpState = iota
	tcpSynSent
	tcpSynRecv
	tcpEstablished
	tcpFinWait
	tcpCloseWait
	tcpLastAck
	tcpTimeWait
	tcpClose
	numTCPStates
)

var tcpStateNames = [numTCPStates]string{
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",
}

func (s tcpState) String() string { return tcpStateNames[s] }

// closed reports whether the connection is over (its entry only absorbs
// late segments): such entries may be evicted like unassured ones.
func (s tcpState) closed() bool { return s == tcpTimeWait || s == tcpClose }

// segment is what a TCP segment does to the state machine, from its flags.
type segment uint8

const (
	segInvalid segment = iota // a combination no stack sends: dropped
	segSYN
	segSYNACK
	segFIN
	segACK
	segRST
)

// classify reads the flags that move the state machine. PSH, URG, ECE and
// CWR do not matter; of the rest, only the combinations real stacks send
// are valid (as Linux's tcp_valid_flags): SYN, SYN+ACK, RST, RST+ACK, ACK
// and FIN+ACK.
func classify(f header.TCPFlags) segment {
	switch f & (header.TCPFlagSyn | header.TCPFlagAck | header.TCPFlagFin | header.TCPFlagRst) {
	case header.TCPFlagSyn:
		return segSYN
	case header.TCPFlagSyn | header.TCPFlagAck:
		return segSYNACK
	case header.TCPFlagRst, header.TCPFlagRst | header.TCPFlagAck:
		return segRST
	case header.TCPFlagFin | header.TCPFlagAck:
		return segFIN
	case header.TCPFlagAck:
		return segACK
	}
	return segInvalid
}

// Directions of a packet in a tracked flow.
const (
	dirOrig  = 0 // from the initiator (the container that dialled)
	dirReply = 1 // from the responder (the container behind the port)
)

// tcpNext returns the state after segment seg (not segInvalid) travelling
// in direction dir through a connection in state s, whose first FIN came
// from direction finDir. unexpected reports a segment that makes no sense
// in s (a SYN in an established connection, a SYN+ACK from the initiator);
// it does not move the state and is still forwarded, so that the endpoints
// sort it out themselves, but it is counted. A SYN from the initiator in a
// closed connection re-opens it; the caller handles that before calling.
func tcpNext(s tcpState, seg segment, dir, finDir uint8) (next tcpState, unexpected bool) {
	switch seg {
	case segRST:
		return tcpClose, false
	case segSYN:
		if dir == dirOrig && (s == tcpSynSent || s == tcpSynRecv) {
			return s, false // retransmitted SYN (the SYN+ACK may be lost)
		}
		return s, true
	case segSYNACK:
		return synAckNext(s, dir)
	case segFIN:
		return finNext(s, dir, finDir)
	case segACK:
		return ackNext(s, dir, finDir), false
	}
	return s, true
}

// synAckNext is tcpNext for a SYN+ACK.
func synAckNext(s tcpState, dir uint8) (tcpState, bool) {
	switch {
	case dir != dirReply:
		return s, true
	case s == tcpSynSent:
		return tcpSynRecv, false
	case s == tcpSynRecv || s == tcpEstablished:
		return s, false // retransmitted: the final ACK was lost
	}
	return s, true
}

// finNext is tcpNext for a FIN+ACK.
func finNext(s tcpState, dir, finDir uint8) (tcpState, bool) {
	switch s {
	case tcpSynSent:
		return s, true
	case tcpSynRecv, tcpEstablished:
		return tcpFinWait, false
	case tcpFinWait, tcpCloseWait:
		if dir != finDir {
			return tcpLastAck, false
		}
	}
	return s, false // retransmitted FIN, or FIN+ACK after both FINs
}

// ackNext is tcpNext for a bare ACK, which is never unexpected.
func ackNext(s tcpState, dir, finDir uint8) tcpState {
	switch s {
	case tcpSynRecv:
		if dir == dirOrig {
			return tcpEstablished // the handshake's final ACK
		}
	case tcpFinWait:
		if dir != finDir {
			return tcpCloseWait // the other side took the FIN
		}
	case tcpLastAck:
		return tcpTimeWait // the last FIN acknowledged
	}
	return s
}
