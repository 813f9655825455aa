package nat

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

const (
	ack = header.TCPFlagAck
	syn = header.TCPFlagSyn
	fin = header.TCPFlagFin
	rst = header.TCPFlagRst
	psh = header.TCPFlagPsh
)

// TestHairpinTCP follows a whole connection from a to b's published port,
// dialled at each kind of local address: the handshake, data both ways
// and a close from each side, checking every rewritten field, the fields
// that must not change, the checksums and the tracked state.
func TestHairpinTCP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dialed   netip.Addr
		src, dst netip.Addr // a and b
		gw       netip.Addr
	}{
		{"v4 gateway", gw4, a4, b4, gw4},
		{"v4 host address", host4, a4, b4, gw4},
		{"v6 gateway", gw6, a6, b6, gw6},
		{"v6 host address", host6, a6, b6, gw6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestTable(t, testConfig(), testMappings())
			aEnd, pub, bEnd := ap(tc.src, 40000), ap(tc.dialed, 8080), ap(tc.dst, 80)
			now := sec(100)
			var masq netip.AddrPort // the gateway end b sees

			// a → pub, translated to gw:masq → b.
			fwd := func(flags header.TCPFlags, seq, ackn uint32, data string, state string) {
				t.Helper()
				pkt := tcpSeg(aEnd, pub, flags, seq, ackn, []byte(data))
				orig := bytes.Clone(pkt)
				mustVerdict(t, tb, pkt, now, Translated)
				f := flowOf(t, pkt)
				if masq == (netip.AddrPort{}) {
					masq = f.src
				}
				if f.src != masq || f.src.Addr() != tc.gw || f.dst != bEnd {
					t.Fatalf("a's packet left as %v → %v, want %v → %v (masquerade port in 61000-65535)", f.src, f.dst, masq, bEnd)
				}
				if p := masq.Port(); p < 61000 {
					t.Fatalf("masquerade port %d outside the default range", p)
				}
				sameExceptTuple(t, orig, pkt)
				if e := entry(t, tb, now); e.State != state {
					t.Fatalf("after a's %v: state %s, want %s", flags, e.State, state)
				}
			}
			// b → masq, translated to pub → a.
			rev := func(flags header.TCPFlags, seq, ackn uint32, data string, state string) {
				t.Helper()
				pkt := tcpSeg(bEnd, masq, flags, seq, ackn, []byte(data))
				orig := bytes.Clone(pkt)
				mustVerdict(t, tb, pkt, now, Translated)
				if f := flowOf(t, pkt); f.src != pub || f.dst != aEnd {
					t.Fatalf("b's packet left as %v → %v, want %v → %v", f.src, f.dst, pub, aEnd)
				}
				sameExceptTuple(t, orig, pkt)
				if e := entry(t, tb, now); e.State != state {
					t.Fatalf("after b's %v: state %s, want %s", flags, e.State, state)
				}
			}

			fwd(syn, 1000, 0, "", "SYN_SENT")
			rev(syn|ack, 5000, 1001, "", "SYN_RECV")
			if e := entry(t, tb, now); e.Assured {
				t.Fatal("assured before the handshake completed")
			}
			fwd(ack, 1001, 5001, "", "ESTABLISHED")
			if e := entry(t, tb, now); !e.Assured || !e.Replied {
				t.Fatalf("after the handshake: %v, want [ASSURED]", e)
			}
			fwd(ack|psh, 1001, 5001, "GET / HTTP/1.0\r\n\r\n", "ESTABLISHED")
			rev(ack|psh, 5001, 1019, "HTTP/1.0 200 OK\r\n\r\nhello", "ESTABLISHED")
			fwd(fin|ack, 1019, 5025, "", "FIN_WAIT")
			rev(ack, 5025, 1020, "", "CLOSE_WAIT")
			rev(fin|ack, 5025, 1020, "", "LAST_ACK")
			fwd(ack, 1020, 5026, "", "TIME_WAIT")

			s := tb.Stats()
			if s.TranslatedOrig != 5 || s.TranslatedReply != 4 || s.Inserted != 1 || s.Entries != 1 || s.Invalid != 0 {
				t.Errorf("Stats = %+v, want 5 translated from a, 4 from b, 1 entry, 0 invalid", s)
			}
			if e := entry(t, tb, now); e.Packets != [2]uint64{5, 4} {
				t.Errorf("entry packets = %v, want [5 4]", e.Packets)
			}
		})
	}
}

// TestHairpinCloseFromResponder closes from b's side first.
func TestHairpinCloseFromResponder(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	aEnd, pub, bEnd := ap(a4, 40001), ap(gw4, 8080), ap(b4, 80)
	mustVerdict(t, tb, tcpSeg(aEnd, pub, syn, 1, 0, nil), 0, Translated)
	masq := ap(gw4, entry(t, tb, 0).Reply.DstPort)
	for _, step := range []struct {
		fromA bool
		flags header.TCPFlags
		state string
	}{
		{false, syn | ack, "SYN_RECV"},
		{true, ack, "ESTABLISHED"},
		{false, fin | ack, "FIN_WAIT"},
		{false, fin | ack, "FIN_WAIT"}, // retransmitted
		{true, ack, "CLOSE_WAIT"},
		{true, fin | ack, "LAST_ACK"},
		{false, ack, "TIME_WAIT"},
		{true, syn, "SYN_SENT"}, // a reuses its port: the entry re-opens
	} {
		pkt := tcpSeg(bEnd, masq, step.flags, 1, 1, nil)
		if step.fromA {
			pkt = tcpSeg(aEnd, pub, step.flags, 1, 1, nil)
		}
		mustVerdict(t, tb, pkt, 0, Translated)
		e := entry(t, tb, 0)
		if e.State != step.state {
			t.Fatalf("after %v from a=%v: state %s, want %s", step.flags, step.fromA, e.State, step.state)
		}
		if step.state == "SYN_SENT" && (e.Assured || e.Replied || e.Reply.DstPort != masq.Port()) {
			t.Fatalf("re-opened entry %v: want unassured, unreplied, same masquerade port %d", e, masq.Port())
		}
	}
}

// sameExceptTuple checks that translation changed nothing but addresses,
// ports and checksums: sequence numbers, flags, TTL, payload stay.
func sameExceptTuple(t *testing.T, orig, now []byte) {
	t.Helper()
	if len(orig) != len(now) {
		t.Fatalf("length changed: %d → %d", len(orig), len(now))
	}
	mask := func(b []byte) []byte {
		b = bytes.Clone(b)
		hl, proto := ipHeaderLen(b), b[9]
		if hl == header.IPv6MinimumSize {
			clear(b[8:40])
			proto = b[6]
		} else {
			clear(b[10:20])
		}
		clear(b[hl : hl+4]) // ports
		switch proto {
		case protoTCP:
			clear(b[hl+16 : hl+18])
		case protoUDP:
			clear(b[hl+6 : hl+8])
		}
		return b
	}
	if !bytes.Equal(mask(orig), mask(now)) {
		t.Fatalf("translation changed more than addresses, ports and checksums:\n was % x\n now % x", orig, now)
	}
}

// TestHairpinOwnPort: a reaches its own published port (9090 on the
// gateway address leads to a:90). The packet goes back to a, from the
// gateway, and a's reply to itself comes back from the published address.
func TestHairpinOwnPort(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	aEnd, pub, self := ap(a4, 41000), ap(gw4, 9090), ap(a4, 90)
	pkt := tcpSeg(aEnd, pub, syn, 7, 0, nil)
	mustVerdict(t, tb, pkt, 0, Translated)
	f := flowOf(t, pkt)
	if f.src.Addr() != gw4 || f.dst != self {
		t.Fatalf("SYN left as %v → %v, want %v:masq → %v", f.src, f.dst, gw4, self)
	}
	reply := tcpSeg(self, f.src, syn|ack, 9, 8, nil)
	mustVerdict(t, tb, reply, 0, Translated)
	if g := flowOf(t, reply); g.src != pub || g.dst != aEnd {
		t.Fatalf("SYN+ACK left as %v → %v, want %v → %v", g.src, g.dst, pub, aEnd)
	}
	// The mapping is bound to the gateway address: the host address at
	// the same port is not DNATed.
	mustVerdict(t, tb, tcpSeg(aEnd, ap(host4, 9090), syn, 7, 0, nil), 0, Pass)
}

// TestHairpinUDP: a request and its reply, the entry's UDP states, and a
// zero (absent) checksum left zero.
func TestHairpinUDP(t *testing.T) {
	for _, noCsum := range []bool{false, true} {
		tb := newTestTable(t, testConfig(), testMappings())
		aEnd, pub, bEnd := ap(a4, 50000), ap(host4, 5353), ap(b4, 53)
		q := udpDgram(aEnd, pub, []byte("query"), noCsum)
		orig := bytes.Clone(q)
		mustVerdict(t, tb, q, sec(1), Translated)
		f := flowOf(t, q)
		if f.src.Addr() != gw4 || f.dst != bEnd {
			t.Fatalf("query left as %v → %v, want gateway → %v", f.src, f.dst, bEnd)
		}
		if noCsum && header.UDP(q[20:]).Checksum() != 0 {
			t.Fatal("a zero UDP checksum was filled in")
		}
		sameExceptTuple(t, orig, q)
		e := entry(t, tb, sec(1))
		if e.Replied || e.Assured || e.Timeout != 30*time.Second {
			t.Fatalf("after the query: %v, want unreplied, 30s", e)
		}
		if s := e.String(); !bytes.Contains([]byte(s), []byte("[UNREPLIED]")) {
			t.Errorf("Entry.String() = %q, want [UNREPLIED]", s)
		}

		r := udpDgram(bEnd, f.src, []byte("answer"), noCsum)
		mustVerdict(t, tb, r, sec(1.5), Translated)
		if g := flowOf(t, r); g.src != pub || g.dst != aEnd {
			t.Fatalf("answer left as %v → %v, want %v → %v", g.src, g.dst, pub, aEnd)
		}
		if !bytes.Equal(payloadOf(r), []byte("answer")) {
			t.Fatal("payload changed")
		}
		// A query and its answer within two seconds: replied, not a stream.
		if e := entry(t, tb, sec(1.5)); !e.Replied || e.Assured || e.Timeout != 30*time.Second {
			t.Fatalf("after the answer: %v, want replied, unassured, 30s", e)
		}
		// Traffic both ways after two seconds: a stream, assured, 120s.
		mustVerdict(t, tb, udpDgram(aEnd, pub, []byte("more"), noCsum), sec(3.5), Translated)
		if e := entry(t, tb, sec(3.5)); !e.Assured || e.Timeout != 120*time.Second {
			t.Fatalf("after 2s of traffic both ways: %v, want assured, 120s", e)
		}
	}
}

// TestICMPEchoPasses: a ping to the gateway or a host address matches no
// rule: it is the netstack's, untouched, and tracked nowhere.
func TestICMPEchoPasses(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	for _, pkt := range [][]byte{
		echo(a4, gw4, true, 7, 1), echo(a4, host4, true, 7, 1), echo(a6, gw6, true, 7, 1),
		echo(a4, netip.MustParseAddr("8.8.8.8"), true, 7, 1),
	} {
		mustVerdict(t, tb, pkt, 0, Pass)
	}
	if s := tb.Stats(); s.Entries != 0 || s.Inserted != 0 {
		t.Errorf("Stats = %+v, want nothing tracked", s)
	}
}

// TestICMPEchoMapping: the ICMP extension mapping forwards echo requests
// to a host address to b, the identifier masqueraded, and the replies
// back.
func TestICMPEchoMapping(t *testing.T) {
	for _, tc := range []struct{ a, host, b, gw netip.Addr }{{a4, host4, b4, gw4}, {a6, host6, b6, gw6}} {
		tb := newTestTable(t, testConfig(), []PortMapping{{Proto: ICMP, HostIP: tc.host, Target: ap(tc.b, 0)}})
		req := echo(tc.a, tc.host, true, 7, 1)
		mustVerdict(t, tb, req, 0, Translated)
		f := flowOf(t, req)
		if f.src.Addr() != tc.gw || f.dst.Addr() != tc.b || f.src.Port() < 61000 {
			t.Fatalf("request left as %v → %v (id %d), want gateway → b with an id from the masquerade range", f.src.Addr(), f.dst.Addr(), f.src.Port())
		}
		rep := echo(tc.b, tc.gw, false, f.src.Port(), 1)
		mustVerdict(t, tb, rep, 0, Translated)
		if g := flowOf(t, rep); g.src.Addr() != tc.host || g.dst.Addr() != tc.a || g.src.Port() != 7 {
			t.Fatalf("reply left as %v → %v id %d, want %v → %v id 7", g.src.Addr(), g.dst.Addr(), g.src.Port(), tc.host, tc.a)
		}
		// b pinging the gateway with the same identifier is not a reply.
		mustVerdict(t, tb, echo(tc.b, tc.gw, true, f.src.Port(), 2), 0, Pass)
		if e := entry(t, tb, 0); e.Timeout != 30*time.Second || !e.Replied {
			t.Errorf("entry %v, want replied, 30s", e)
		}
	}
}

// TestIPv6HairpinUDP: the IPv6 model is the same, masqueraded to the IPv6
// gateway address.
func TestIPv6HairpinUDP(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	aEnd, pub, bEnd := ap(a6, 50000), ap(gw6, 5353), ap(b6, 53)
	q := udpDgram(aEnd, pub, []byte("query"), false)
	mustVerdict(t, tb, q, 0, Translated)
	f := flowOf(t, q)
	if f.src.Addr() != gw6 || f.dst != bEnd {
		t.Fatalf("query left as %v → %v, want [%v]:masq → %v", f.src, f.dst, gw6, bEnd)
	}
	r := udpDgram(bEnd, f.src, []byte("answer"), false)
	mustVerdict(t, tb, r, 0, Translated)
	if g := flowOf(t, r); g.src != pub || g.dst != aEnd {
		t.Fatalf("answer left as %v → %v, want %v → %v", g.src, g.dst, pub, aEnd)
	}
	// A v4 packet to the same port goes to the v4 mapping, not the v6 one.
	q4 := udpDgram(ap(a4, 50000), ap(gw4, 5353), nil, false)
	mustVerdict(t, tb, q4, 0, Translated)
	if f := flowOf(t, q4); f.dst != ap(b4, 53) {
		t.Fatalf("v4 query went to %v", f.dst)
	}
}

// TestNotOurs: packets the table must leave to the netstack.
func TestNotOurs(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	for name, pkt := range map[string][]byte{
		"egress to the world":          tcpSeg(ap(a4, 1), ap(netip.MustParseAddr("8.8.8.8"), 8080), syn, 1, 0, nil),
		"unpublished port":             tcpSeg(ap(a4, 1), ap(gw4, 8081), syn, 1, 0, nil),
		"udp to a tcp port":            udpDgram(ap(a4, 1), ap(gw4, 8080), nil, false),
		"DNS to the gateway":           udpDgram(ap(a4, 1), ap(gw4, 53), nil, false),
		"mid-stream ACK, no entry":     tcpSeg(ap(a4, 1), ap(gw4, 8080), ack, 1, 1, nil),
		"reply with no entry":          tcpSeg(ap(b4, 80), ap(gw4, 61000), syn|ack, 1, 1, nil),
		"v6 to a port published on v4": tcpSeg(ap(a6, 1), ap(gw6, 9090), syn, 1, 0, nil),
	} {
		before := bytes.Clone(pkt)
		if v := tb.Process(pkt, 0); v != Pass || !bytes.Equal(before, pkt) {
			t.Errorf("%s: %v (changed %v), want pass, unchanged", name, v, !bytes.Equal(before, pkt))
		}
	}
	if n := tb.Stats().Entries; n != 0 {
		t.Errorf("%d entries, want 0", n)
	}

	// An echo reply does not start a flow, even to an ICMP mapping.
	tb = newTestTable(t, testConfig(), []PortMapping{{Proto: ICMP, Target: ap(b4, 0)}})
	mustVerdict(t, tb, echo(a4, host4, false, 7, 1), 0, Pass)
	// A network without an IPv6 gateway has nothing to masquerade IPv6
	// hairpin flows to.
	cfg := testConfig()
	cfg.Gateway6 = netip.Addr{}
	tb = newTestTable(t, cfg, testMappings())
	mustVerdict(t, tb, tcpSeg(ap(a6, 1), ap(host6, 8080), syn, 1, 0, nil), 0, Pass)
	if n := tb.Stats().Entries; n != 0 {
		t.Errorf("%d entries, want 0", n)
	}
}
