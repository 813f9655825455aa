package proxy

import "sync/atomic"

// Stats is a snapshot of a Manager's counters.
type Stats struct {
	// TCP and UDP are totals over every binding the Manager has had,
	// including those since unpublished, so they only grow (except the
	// Active counts).
	TCP TCPStats
	UDP UDPStats

	// Netns counts the work of the Manager's NetnsDialers.
	Netns NetnsStats

	// Bindings has one entry per live host listener, in List order.
	Bindings []BindingStats

	// Conns is the number of TCP connections and UDP flows that hold a
	// slot of MaxConns now.
	Conns int64
	// MaxConns and MaxConnsPerPort are the limits in force (Config's, or
	// their defaults); not positive means none.
	MaxConns, MaxConnsPerPort int
}

// BindingStats are the counters of one host listener. Only the field of
// the listener's protocol is set.
type BindingStats struct {
	Published Published
	TCP       TCPStats
	UDP       UDPStats
}

// TCPStats counts relayed TCP connections. In is the client-to-container
// direction, Out the container-to-client one. Byte counts of a live
// connection are brought up to date at least every MiB and when each
// direction ends.
type TCPStats struct {
	Active  int64  // connections being dialed or relayed now
	Total   uint64 // connections accepted
	Refused uint64 // connections reset because the dial to the container failed
	// OverLimit counts connections reset at once, not dialed, because the
	// port's or the Manager's connection limit was full.
	OverLimit uint64
	// AcceptErrors counts failed accepts (out of file descriptors,
	// usually), each followed by a pause.
	AcceptErrors uint64
	BytesIn      uint64 // bytes relayed from clients to the container
	BytesOut     uint64 // bytes relayed from the container to clients
}

// UDPStats counts UDP flows (one per client address) and datagrams.
type UDPStats struct {
	FlowsActive  int64  // flows in the table now
	FlowsTotal   uint64 // flows created
	FlowsExpired uint64 // flows closed after the idle timeout
	FlowsEvicted uint64 // flows closed to make room (MaxUDPFlows reached)
	FlowsRefused uint64 // new clients whose flow could not be dialed
	// FlowsOverLimit counts new clients whose datagram was dropped, no flow
	// made, because the Manager's connection limit was full.
	FlowsOverLimit uint64
	PacketsIn      uint64 // datagrams delivered from clients to the container
	PacketsOut     uint64 // datagrams delivered from the container to clients
	BytesIn        uint64
	BytesOut       uint64
	Dropped        uint64 // datagrams not delivered (failed dial or send, a full host socket for a pushed reply, truncated)
}

func (s *TCPStats) add(o TCPStats) {
	s.Active += o.Active
	s.Total += o.Total
	s.Refused += o.Refused
	s.OverLimit += o.OverLimit
	s.AcceptErrors += o.AcceptErrors
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
}

func (s *UDPStats) add(o UDPStats) {
	s.FlowsActive += o.FlowsActive
	s.FlowsTotal += o.FlowsTotal
	s.FlowsExpired += o.FlowsExpired
	s.FlowsEvicted += o.FlowsEvicted
	s.FlowsRefused += o.FlowsRefused
	s.FlowsOverLimit += o.FlowsOverLimit
	s.PacketsIn += o.PacketsIn
	s.PacketsOut += o.PacketsOut
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.Dropped += o.Dropped
}

// tcpCounters are the live, atomically updated counters of a TCP binding.
type tcpCounters struct {
	total, refused, bytesIn, bytesOut atomic.Uint64
	overLimit, acceptErrors           atomic.Uint64
}

func (c *tcpCounters) snapshot(active int) TCPStats {
	return TCPStats{
		Active:       int64(active),
		Total:        c.total.Load(),
		Refused:      c.refused.Load(),
		OverLimit:    c.overLimit.Load(),
		AcceptErrors: c.acceptErrors.Load(),
		BytesIn:      c.bytesIn.Load(),
		BytesOut:     c.bytesOut.Load(),
	}
}

// udpCounters are the live, atomically updated counters of a UDP binding.
type udpCounters struct {
	total, expired, evicted, refused atomic.Uint64
	pktIn, pktOut, bytesIn, bytesOut atomic.Uint64
	dropped, overLimit               atomic.Uint64
}

func (c *udpCounters) snapshot(active int) UDPStats {
	return UDPStats{
		FlowsActive:    int64(active),
		FlowsTotal:     c.total.Load(),
		FlowsExpired:   c.expired.Load(),
		FlowsEvicted:   c.evicted.Load(),
		FlowsRefused:   c.refused.Load(),
		FlowsOverLimit: c.overLimit.Load(),
		PacketsIn:      c.pktIn.Load(),
		PacketsOut:     c.pktOut.Load(),
		BytesIn:        c.bytesIn.Load(),
		BytesOut:       c.bytesOut.Load(),
		Dropped:        c.dropped.Load(),
	}
}
