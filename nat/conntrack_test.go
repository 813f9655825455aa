package nat

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestTimeouts: each protocol and state expires after its timeout, not a
// nanosecond before; Sweep removes it; a packet after expiry finds nothing.
func TestTimeouts(t *testing.T) {
	custom := testConfig()
	custom.Timeouts.UDPUnreplied = 5 * time.Second
	custom.Timeouts.TCPEstablished = time.Hour

	aEnd, pub, bEnd := ap(a4, 40000), ap(gw4, 8080), ap(b4, 80)
	type step struct {
		fromA bool
		flags uint8
	}
	tcp := func(steps ...step) func(*Table, int64) {
		return func(tb *Table, now int64) {
			var masq netip.AddrPort
			for _, s := range steps {
				if s.fromA {
					pkt := tcpSeg(aEnd, pub, header.TCPFlags(s.flags), 1, 1, nil)
					tb.Process(pkt, now)
					masq = flowOf(t, pkt).src
				} else {
					tb.Process(tcpSeg(bEnd, masq, header.TCPFlags(s.flags), 1, 1, nil), now)
				}
			}
		}
	}
	const S, SA, A, F, R = uint8(syn), uint8(syn | ack), uint8(ack), uint8(fin | ack), uint8(rst)
	for _, tc := range []struct {
		name  string
		cfg   Config
		state string
		open  func(*Table, int64)
		want  time.Duration
	}{
		{"tcp syn_sent", testConfig(), "SYN_SENT", tcp(step{true, S}), 120 * time.Second},
		{"tcp syn_recv", testConfig(), "SYN_RECV", tcp(step{true, S}, step{false, SA}), 60 * time.Second},
		{"tcp established", testConfig(), "ESTABLISHED", tcp(step{true, S}, step{false, SA}, step{true, A}), 5 * 24 * time.Hour},
		{"tcp established, configured", custom, "ESTABLISHED", tcp(step{true, S}, step{false, SA}, step{true, A}), time.Hour},
		{"tcp fin_wait", testConfig(), "FIN_WAIT", tcp(step{true, S}, step{false, SA}, step{true, A}, step{true, F}), 120 * time.Second},
		{"tcp close_wait", testConfig(), "CLOSE_WAIT", tcp(step{true, S}, step{false, SA}, step{true, A}, step{true, F}, step{false, A}), 60 * time.Second},
		{"tcp last_ack", testConfig(), "LAST_ACK", tcp(step{true, S}, step{false, SA}, step{true, A}, step{true, F}, step{false, F}), 30 * time.Second},
		{"tcp time_wait", testConfig(), "TIME_WAIT", tcp(step{true, S}, step{false, SA}, step{true, A}, step{true, F}, step{false, F}, step{true, A}), 120 * time.Second},
		{"tcp close", testConfig(), "CLOSE", tcp(step{true, S}, step{false, R}), 10 * time.Second},
		{"udp unreplied", testConfig(), "", func(tb *Table, now int64) {
			tb.Process(udpDgram(ap(a4, 1), ap(gw4, 5353), nil, false), now)
		}, 30 * time.Second},
		{"udp unreplied, configured", custom, "", func(tb *Table, now int64) {
			tb.Process(udpDgram(ap(a4, 1), ap(gw4, 5353), nil, false), now)
		}, 5 * time.Second},
		{"icmp", testConfig(), "", func(tb *Table, now int64) {
			tb.Process(echo(a4, host4, true, 1, 1), now)
		}, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := append(testMappings(), PortMapping{Proto: ICMP, HostIP: host4, Target: ap(b4, 0)})
			tb := newTestTable(t, tc.cfg, ms)
			now := sec(1000)
			tc.open(tb, now)
			e := entry(t, tb, now)
			if e.State != tc.state || e.Timeout != tc.want {
				t.Fatalf("entry %v: state %q timeout %v, want %q %v", e, e.State, e.Timeout, tc.state, tc.want)
			}
			if n := tb.Sweep(now + int64(tc.want) - 1); n != 0 {
				t.Fatalf("Sweep a nanosecond early removed %d", n)
			}
			if n := tb.Sweep(now + int64(tc.want)); n != 1 {
				t.Fatalf("Sweep at the timeout removed %d, want 1", n)
			}
			if s := tb.Stats(); s.Entries != 0 || s.Expired != 1 {
				t.Fatalf("Stats = %+v, want 0 entries, 1 expired", s)
			}
		})
	}
}

// TestExpiryOnLookup: without a Sweep, a packet that arrives after its
// entry's timeout does not revive it: b's late reply passes, a's new SYN
// makes a new entry.
func TestExpiryOnLookup(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	q := udpDgram(ap(a4, 50000), ap(gw4, 5353), nil, false)
	mustVerdict(t, tb, q, 0, Translated)
	masq := flowOf(t, q).src
	mustVerdict(t, tb, udpDgram(ap(b4, 53), masq, nil, false), sec(30), Pass)
	if s := tb.Stats(); s.Entries != 0 || s.Expired != 1 {
		t.Fatalf("Stats = %+v, want the entry expired", s)
	}
	mustVerdict(t, tb, udpDgram(ap(a4, 50000), ap(gw4, 5353), nil, false), sec(31), Translated)
	if s := tb.Stats(); s.Entries != 1 || s.Inserted != 2 {
		t.Fatalf("Stats = %+v, want a new entry", s)
	}
}

// TestEarlyDrop: a full table evicts its oldest unassured (or closed)
// entry for a new flow, and refuses the flow when every entry is assured.
func TestEarlyDrop(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEntries = 3
	tb := newTestTable(t, cfg, testMappings())
	pub, bEnd := ap(gw4, 8080), ap(b4, 80)
	syns := make([][]byte, 0)
	open := func(port uint16, now int64) netip.AddrPort {
		pkt := tcpSeg(ap(a4, port), pub, syn, 1, 0, nil)
		syns = append(syns, pkt)
		mustVerdict(t, tb, pkt, now, Translated)
		return flowOf(t, pkt).src
	}
	handshake := func(port uint16, masq netip.AddrPort) {
		mustVerdict(t, tb, tcpSeg(bEnd, masq, syn|ack, 1, 2, nil), 0, Translated)
		mustVerdict(t, tb, tcpSeg(ap(a4, port), pub, ack, 2, 2, nil), 0, Translated)
	}

	m1 := open(1, 1)
	m2 := open(2, 2)
	open(3, 3)
	handshake(2, m2) // 2 is assured: 1 is the oldest unassured
	open(4, 4)
	if s := tb.Stats(); s.Entries != 3 || s.Evicted != 1 {
		t.Fatalf("Stats = %+v, want 3 entries, 1 evicted", s)
	}
	mustVerdict(t, tb, tcpSeg(bEnd, m1, syn|ack, 1, 2, nil), 5, Pass) // 1 is gone
	mustVerdict(t, tb, tcpSeg(ap(a4, 2), pub, ack, 2, 2, nil), 5, Translated)

	// Assure 3 and 4: the table is full of assured entries.
	for _, e := range tb.Entries(5) {
		if !e.Assured {
			handshake(e.Orig.SrcPort, ap(gw4, e.Reply.DstPort))
		}
	}
	pkt := tcpSeg(ap(a4, 5), pub, syn, 1, 0, nil)
	mustVerdict(t, tb, pkt, 6, Drop)
	if s := tb.Stats(); s.RefusedFull != 1 || s.Entries != 3 {
		t.Fatalf("Stats = %+v, want 1 refused", s)
	}

	// A connection that closes becomes evictable again.
	es := tb.Entries(6)
	mustVerdict(t, tb, tcpSeg(ap(b4, 80), ap(gw4, es[1].Reply.DstPort), rst, 1, 0, nil), 7, Translated)
	mustVerdict(t, tb, pkt, 8, Translated)
	if s := tb.Stats(); s.Evicted != 2 {
		t.Fatalf("Stats = %+v, want the closed connection evicted", s)
	}
	for _, e := range tb.Entries(8) {
		if e.Orig.SrcPort == es[1].Orig.SrcPort {
			t.Fatalf("closed entry %v still there", e)
		}
	}
}

// TestPortAllocation: many flows get distinct masquerade ports toward one
// responder, all in range; the initiator's own port is kept when it is in
// range; published ports are skipped; an exhausted range refuses new
// flows toward that responder only, and recycles a closed connection's
// port before refusing.
func TestPortAllocation(t *testing.T) {
	t.Run("unique", func(t *testing.T) {
		cfg := testConfig()
		cfg.MasqPortsPerSource = 1 << 16 // one source: no share
		tb := newTestTable(t, cfg, testMappings())
		seen := map[netip.AddrPort]bool{}
		for i := range 4000 {
			pkt := tcpSeg(ap(a4, uint16(1000+i)), ap(gw4, 8080), syn, 1, 0, nil)
			mustVerdict(t, tb, pkt, 0, Translated)
			m := flowOf(t, pkt).src
			if seen[m] || m.Port() < 61000 {
				t.Fatalf("flow %d got masquerade %v: taken or out of range", i, m)
			}
			seen[m] = true
		}
	})
	t.Run("own port kept", func(t *testing.T) {
		tb := newTestTable(t, testConfig(), testMappings())
		pkt := tcpSeg(ap(a4, 62000), ap(gw4, 8080), syn, 1, 0, nil)
		mustVerdict(t, tb, pkt, 0, Translated)
		if m := flowOf(t, pkt).src.Port(); m != 62000 {
			t.Errorf("masquerade port %d, want a's own 62000", m)
		}
		// b (at 80) now has a flow to 62000; the same port toward another
		// responder is still free.
		pkt = tcpSeg(ap(b4, 62000), ap(gw4, 9090), syn, 1, 0, nil)
		mustVerdict(t, tb, pkt, 0, Translated)
		if m := flowOf(t, pkt).src.Port(); m != 62000 {
			t.Errorf("masquerade port toward a:90 = %d, want 62000 too", m)
		}
		pkt = tcpSeg(ap(b4, 62000), ap(gw4, 8080), syn, 1, 0, nil)
		mustVerdict(t, tb, pkt, 0, Translated)
		if m := flowOf(t, pkt).src.Port(); m == 62000 {
			t.Error("masquerade port 62000 given twice toward b:80")
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		cfg := testConfig()
		cfg.MasqPorts = [2]uint16{20000, 20009}
		cfg.MasqPortsPerSource = 1 << 16
		ms := append(testMappings(), PortMapping{Proto: TCP, HostPort: 20003, Target: ap(b4, 81)})
		tb := newTestTable(t, cfg, ms)
		open := func(port uint16, want Verdict) netip.AddrPort {
			pkt := tcpSeg(ap(a4, port), ap(gw4, 8080), syn, 1, 0, nil)
			mustVerdict(t, tb, pkt, int64(port), want) // later ports are younger
			if want != Translated {
				return netip.AddrPort{}
			}
			m := flowOf(t, pkt).src
			if m.Port() == 20003 {
				t.Fatal("allocated a published port")
			}
			return m
		}
		masqs := map[uint16]netip.AddrPort{}
		for i := range uint16(9) { // 10 ports, one of them published
			masqs[1000+i] = open(1000+i, Translated)
		}
		// Full: the oldest unassured flow toward b:80 gives its port up.
		if m := open(2000, Translated); m != masqs[1000] {
			t.Fatalf("10th flow got %v, want the oldest flow's %v", m, masqs[1000])
		}
		if s := tb.Stats(); s.Evicted != 1 || s.Entries != 9 {
			t.Fatalf("Stats = %+v, want 1 evicted, 9 entries", s)
		}
		// Assure them all: now a new flow is refused.
		for _, e := range tb.Entries(0) {
			mustVerdict(t, tb, tcpSeg(ap(b4, 80), ap(gw4, e.Reply.DstPort), syn|ack, 1, 2, nil), 0, Translated)
			mustVerdict(t, tb, tcpSeg(ap(a4, e.Orig.SrcPort), ap(gw4, 8080), ack, 2, 2, nil), 0, Translated)
		}
		open(3000, Drop)
		if s := tb.Stats(); s.PortsExhausted != 1 {
			t.Fatalf("Stats = %+v, want 1 exhausted", s)
		}
		// Toward another responder the range is whole again.
		mustVerdict(t, tb, udpDgram(ap(a4, 3000), ap(gw4, 5353), nil, false), 0, Translated)
		// A closed connection gives its port up.
		closed := tb.Entries(0)[4]
		mustVerdict(t, tb, tcpSeg(ap(b4, 80), ap(gw4, closed.Reply.DstPort), rst, 0, 0, nil), 0, Translated)
		if m := open(3001, Translated); m.Port() != closed.Reply.DstPort {
			t.Errorf("new flow got %v, want the closed connection's port %d", m, closed.Reply.DstPort)
		}
	})
}
