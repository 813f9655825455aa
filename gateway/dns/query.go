package dns

import (
	"net"

	"github.com/miekg/dns"
)

// verdict is what to do with one message from a client: send reply, forward
// fwd, or, with both nil, drop it.
type verdict struct {
	reply []byte
	fwd   *dns.Msg
	// size is the largest answer the client takes: 512 bytes or its
	// EDNS0 size over UDP, 65535 over TCP.
	size int
}

// handle decides about one message from a client, raw, received over UDP
// (udp) or TCP. It answers names of the table, and errors, itself; the
// reply it returns is new. raw is not retained: the caller may reuse it.
// handle runs on the UDP reader and the TCP connection goroutines.
func (s *Server) handle(raw []byte, udp bool) verdict {
	var m dns.Msg
	if err := m.Unpack(raw); err != nil || m.Response {
		s.c.malformed.Add(1)
		return verdict{}
	}
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
		if opt := m.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
	}
	switch {
	case m.Opcode != dns.OpcodeQuery:
		s.c.refused.Add(1)
		return verdict{reply: s.pack(s.rcode(&m, dns.RcodeNotImplemented), size), size: size}
	case len(m.Question) != 1:
		s.c.malformed.Add(1)
		return verdict{reply: s.pack(s.rcode(&m, dns.RcodeFormatError), size), size: size}
	}
	if r := s.answerLocal(&m); r != nil {
		s.c.local.Add(1)
		return verdict{reply: s.pack(r, size), size: size}
	}
	if len(s.cfg.Upstreams) == 0 {
		s.c.refused.Add(1)
		return verdict{reply: s.pack(s.rcode(&m, dns.RcodeRefused), size), size: size}
	}
	return verdict{fwd: &m, size: size}
}

// answerLocal answers q if it asks about a name or an address of the
// table, and returns nil otherwise.
func (s *Server) answerLocal(q *dns.Msg) *dns.Msg {
	question := q.Question[0]
	t := s.names.Load()
	e := t.lookup(question.Name, s.domain)
	if e == nil {
		return nil
	}
	r := s.reply(q)
	r.Authoritative = true
	if question.Qclass != dns.ClassINET && question.Qclass != dns.ClassANY {
		return r // the name exists, in class IN only
	}
	hdr := func(t uint16) dns.RR_Header {
		// The name as the client asked it: resolvers that randomise its
		// case (DNS 0x20) compare it.
		return dns.RR_Header{Name: question.Name, Rrtype: t, Class: dns.ClassINET, Ttl: LocalTTL}
	}
	typ := question.Qtype
	if typ == dns.TypeA || typ == dns.TypeANY {
		for _, a := range e.v4 {
			b := a.As4()
			r.Answer = append(r.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IP(b[:])})
		}
	}
	if typ == dns.TypeAAAA || typ == dns.TypeANY {
		for _, a := range e.v6 {
			b := a.As16()
			r.Answer = append(r.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.IP(b[:])})
		}
	}
	if typ == dns.TypePTR || typ == dns.TypeANY {
		for _, n := range e.ptr {
			r.Answer = append(r.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: n})
		}
	}
	return r
}

// reply starts the answer to q: its ID, question and flags, and an OPT
// record if q had one (RFC 6891 6.1.1).
func (s *Server) reply(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	r.RecursionAvailable = len(s.cfg.Upstreams) > 0
	if opt := q.IsEdns0(); opt != nil {
		r.SetEdns0(ednsSize, opt.Do())
	}
	return r
}

func (s *Server) rcode(q *dns.Msg, rcode int) *dns.Msg {
	r := s.reply(q)
	r.Rcode = rcode
	return r
}

// pack encodes r, cut to size bytes (with TC set if records had to go). It
// returns nil if r cannot be encoded: the query is then dropped.
func (s *Server) pack(r *dns.Msg, size int) []byte {
	r.Truncate(size)
	b, err := r.Pack()
	if err != nil {
		s.c.malformed.Add(1)
		return nil
	}
	return b
}
