package dns

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// fuzzServer is a server with a table, a domain and an upstream, started
// without listeners: the fuzzers drive its handler directly.
func fuzzServer(tb testing.TB, upstreams bool) *Server {
	cfg := Config{Addr: netip.MustParseAddr("10.240.0.1"), Domain: "web"}
	if upstreams {
		cfg.Upstreams = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
	}
	s, err := newServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.SetNames(map[string][]netip.Addr{
		"web": {netip.MustParseAddr("10.240.0.2")}, "db": {netip.MustParseAddr("10.240.0.3"), netip.MustParseAddr("fd00::3")},
		"database": {netip.MustParseAddr("10.240.0.3")},
	})
	return s
}

func seedQueries() [][]byte {
	var seeds [][]byte
	add := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	q := func(name string, t uint16) *dns.Msg { return new(dns.Msg).SetQuestion(name, t) }
	add(q("db.", dns.TypeA))
	add(q("DB.Web.", dns.TypeAAAA))
	add(q("web.", dns.TypeMX))
	add(q("database.", dns.TypeANY))
	add(q("3.0.240.10.in-addr.arpa.", dns.TypePTR))
	add(q("example.com.", dns.TypeA))
	add(q("db.", dns.TypeA).SetEdns0(4096, true))
	chaos := q("db.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	add(chaos)
	notify := q("db.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	add(notify)
	add(new(dns.Msg))
	resp := q("db.", dns.TypeA)
	resp.Response = true
	add(resp)
	return append(seeds, nil, []byte{0}, make([]byte, 12), []byte("\x00\x01\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x02db\x00\x00\x01\x00\x01"))
}

// FuzzHandleQuery: whatever a client sends, the handler does not panic,
// and what it answers is an answer to that message that fits the client.
func FuzzHandleQuery(f *testing.F) {
	for _, s := range seedQueries() {
		f.Add(s)
	}
	servers := []*Server{fuzzServer(f, true), fuzzServer(f, false)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, s := range servers {
			for _, udp := range []bool{true, false} {
				v := s.handle(raw, udp)
				if v.reply != nil && v.fwd != nil {
					t.Fatal("both an answer and a query to forward")
				}
				if v.reply != nil {
					var r dns.Msg
					if err := r.Unpack(v.reply); err != nil {
						t.Fatalf("the answer does not parse: %v", err)
					}
					if !r.Response || r.Id != binary.BigEndian.Uint16(raw) {
						t.Fatalf("answer %v does not answer query id %#x", &r, binary.BigEndian.Uint16(raw))
					}
					if len(v.reply) > v.size {
						t.Fatalf("answer of %d bytes for a client that takes %d", len(v.reply), v.size)
					}
				}
				if v.fwd != nil {
					if len(s.cfg.Upstreams) == 0 {
						t.Fatal("forwarded without upstreams")
					}
					if s.names.Load().lookup(v.fwd.Question[0].Name, s.domain) != nil {
						t.Fatalf("a network name would be forwarded: %s", v.fwd.Question[0].Name)
					}
					v.fwd.Pack() // what forward does first; an error is fine
				}
			}
		}
	})
}

// FuzzUpstreamAnswer: whatever an upstream sends back, checking it and
// relaying it to a client does not panic, and what reaches a UDP client fits.
func FuzzUpstreamAnswer(f *testing.F) {
	q := dns.Question{Name: "example.com.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	r := new(dns.Msg).SetQuestion(q.Name, q.Qtype)
	r.Response, r.Id = true, 0x1234
	for i := range 40 {
		r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, byte(i)}})
	}
	big, _ := r.Pack()
	r.Answer = r.Answer[:1]
	small, _ := r.Pack()
	f.Add(big)
	f.Add(small)
	f.Add([]byte{0x12, 0x34, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	s := fuzzServer(f, true)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := checkAnswer(raw, 0x1234, q)
		if err != nil {
			return
		}
		out := s.relay(m, append([]byte(nil), raw...), 0xbeef, dns.MinMsgSize)
		if out == nil {
			return
		}
		if len(out) > dns.MinMsgSize || binary.BigEndian.Uint16(out) != 0xbeef {
			t.Fatalf("relayed %d bytes with id %#x, want at most 512 with the client's id", len(out), binary.BigEndian.Uint16(out))
		}
	})
}
