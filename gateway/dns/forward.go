package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Forwarding: a fixed set of workers takes queries from a bounded queue and
// asks the upstreams in order, each on a socket of its own (a fresh source
// port and a fresh random ID per attempt, so that an off-path forger must
// guess both). A UDP answer with TC set is asked again over TCP of the
// same upstream; a client's TCP query goes over TCP. The first answer that
// is neither SERVFAIL nor REFUSED is returned, unchanged but for the
// client's ID (and cut to size for a UDP client if the TCP retry made it
// larger than the client takes).

// job is a query waiting for a worker.
type job struct {
	q     *dns.Msg // the client's query, with the client's ID
	size  int      // the largest answer the client takes
	udpTo net.Addr // the UDP client, or
	tcp   *tcpClient
}

// errMismatch reports an upstream answer that is not the answer to the
// query sent (another ID, another question, or not an answer at all).
var errMismatch = errors.New("answer does not match the query")

// enqueue hands j to the workers, or answers SERVFAIL if the queue is full.
func (s *Server) enqueue(j *job) {
	select {
	case s.jobs <- j:
		s.c.forwarded.Add(1)
	default:
		s.c.overflow.Add(1)
		s.respond(j, s.pack(s.rcode(j.q, dns.RcodeServerFailure), j.size))
	}
}

// respond sends msg to j's client. msg is not retained once it returns.
func (s *Server) respond(j *job, msg []byte) {
	if j.tcp != nil {
		defer j.tcp.pending.Add(-1)
	}
	if msg == nil {
		return
	}
	if j.tcp != nil {
		j.tcp.write(msg)
		return
	}
	s.udp.WriteTo(msg, j.udpTo)
}

// worker forwards queued queries until the server closes. buf holds one
// upstream answer at a time.
func (s *Server) worker() {
	defer s.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.jobs:
			s.respond(j, s.forward(j.q, j.tcp != nil, j.size, buf))
		}
	}
}

// forward asks the upstreams for q and returns the answer for the client
// (in buf or new), or SERVFAIL if every upstream failed, or nil if the
// server is closing.
func (s *Server) forward(q *dns.Msg, overTCP bool, size int, buf []byte) []byte {
	clientID := q.Id
	wire, err := q.Pack()
	if err != nil {
		s.c.malformed.Add(1)
		return nil
	}
	for _, up := range s.cfg.Upstreams {
		if s.ctx.Err() != nil {
			return nil
		}
		var r *dns.Msg
		var raw []byte
		if overTCP {
			r, raw, err = s.exchangeTCP(up, wire, q.Question[0], buf)
		} else {
			r, raw, err = s.exchangeUDP(up, wire, q.Question[0], buf)
			if err == nil && r.Truncated {
				s.c.truncRetried.Add(1)
				r, raw, err = s.exchangeTCP(up, wire, q.Question[0], buf)
			}
		}
		if err != nil || r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			s.c.upstreamFailures.Add(1)
			continue
		}
		if r.Rcode == dns.RcodeNameError {
			s.c.nxdomain.Add(1)
		}
		return s.relay(r, raw, clientID, size)
	}
	if s.ctx.Err() != nil {
		return nil
	}
	s.c.servFail.Add(1)
	return s.pack(s.rcode(q, dns.RcodeServerFailure), size)
}

// relay returns an upstream answer to the client: raw itself with the
// client's ID if it fits in size, else r re-encoded to fit (TC set).
func (s *Server) relay(r *dns.Msg, raw []byte, clientID uint16, size int) []byte {
	if len(raw) <= size {
		binary.BigEndian.PutUint16(raw, clientID)
		return raw
	}
	r.Id = clientID
	return s.pack(r, size)
}

// attempt prepares one upstream attempt: a context bounded by Timeout and
// the server's life, a fresh ID written into wire, and a connection that
// is closed when the context ends.
func (s *Server) attempt(network string, up netip.AddrPort, wire []byte) (net.Conn, uint16, func(), error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	c, err := s.cfg.Dial(ctx, network, up.String())
	if err != nil {
		cancel()
		return nil, 0, nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() }) // the server closing
	id := dns.Id()
	binary.BigEndian.PutUint16(wire, id)
	return c, id, func() { stop(); cancel(); c.Close() }, nil
}

// exchangeUDP sends wire to up over UDP and waits for the matching answer,
// ignoring any other datagram, until Timeout.
func (s *Server) exchangeUDP(up netip.AddrPort, wire []byte, q dns.Question, buf []byte) (*dns.Msg, []byte, error) {
	c, id, done, err := s.attempt("udp", up, wire)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	if _, err := c.Write(wire); err != nil {
		return nil, nil, err
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, nil, err
		}
		if r, err := checkAnswer(buf[:n], id, q); err == nil {
			return r, buf[:n], nil
		}
	}
}

// exchangeTCP sends wire to up over a new TCP connection and reads the
// answer, within Timeout.
func (s *Server) exchangeTCP(up netip.AddrPort, wire []byte, q dns.Question, buf []byte) (*dns.Msg, []byte, error) {
	c, id, done, err := s.attempt("tcp", up, wire)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	if _, err := c.Write(out); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return nil, nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if _, err := io.ReadFull(c, buf[:n]); err != nil {
		return nil, nil, err
	}
	r, err := checkAnswer(buf[:n], id, q)
	if err != nil {
		return nil, nil, err
	}
	return r, buf[:n], nil
}

// checkAnswer parses raw and checks that it answers question q sent with
// ID id. A question section may be missing (some servers leave it out of
// errors), but one that is there must be q's, in any case.
func checkAnswer(raw []byte, id uint16, q dns.Question) (*dns.Msg, error) {
	var r dns.Msg
	if err := r.Unpack(raw); err != nil {
		return nil, fmt.Errorf("malformed answer: %w", err)
	}
	if !r.Response || r.Id != id || len(r.Question) > 1 {
		return nil, errMismatch
	}
	if len(r.Question) == 1 {
		a := r.Question[0]
		if a.Qtype != q.Qtype || a.Qclass != q.Qclass || !strings.EqualFold(a.Name, q.Name) {
			return nil, errMismatch
		}
	}
	return &r, nil
}
