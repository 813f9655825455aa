package nat

import (
	"net/netip"
	"testing"
)

// establish opens a TCP connection a:40000 → gw:8080 through tb and
// returns a's data segment and b's, ready to be processed again and again
// (each Process rewrites the packet, so the caller restores it).
func establish(t testing.TB, tb *Table, size int) (fromA, fromB []byte) {
	t.Helper()
	return establishOn(t, tb, size, a4, gw4, b4)
}

// establishOn is establish between addresses a and b through gw, of
// either family.
func establishOn(t testing.TB, tb *Table, size int, a, gw, b netip.Addr) (fromA, fromB []byte) {
	t.Helper()
	aEnd, pub, bEnd := ap(a, 40000), ap(gw, 8080), ap(b, 80)
	s := tcpSeg(aEnd, pub, syn, 1, 0, nil)
	if tb.Process(s, 0) != Translated {
		t.Fatal("SYN not translated")
	}
	masq := flowOf(t, s).src
	tb.Process(tcpSeg(bEnd, masq, syn|ack, 1, 2, nil), 0)
	tb.Process(tcpSeg(aEnd, pub, ack, 2, 2, nil), 0)
	payload := make([]byte, size)
	return tcpSeg(aEnd, pub, ack|psh, 2, 2, payload), tcpSeg(bEnd, masq, ack|psh, 2, 2, payload)
}

// TestEstablishedDoesNotAllocate: the per-packet path of an existing flow,
// in both directions, and of a packet that passes, allocates nothing.
func TestEstablishedDoesNotAllocate(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	fromA, fromB := establish(t, tb, 1000)
	origA, origB := append([]byte(nil), fromA...), append([]byte(nil), fromB...)
	egress := tcpSeg(ap(a4, 1), ap(netip.MustParseAddr("8.8.8.8"), 443), ack, 1, 1, make([]byte, 100))
	local := udpDgram(ap(a4, 1), ap(gw4, 53), make([]byte, 40), false)
	icmpErr := icmpError(b4, gw4, 3, 3, 0, tcpSeg(ap(gw4, 61000), ap(b4, 80), ack, 1, 1, nil), 1000)

	for name, f := range map[string]func(){
		"a to b": func() {
			copy(fromA, origA)
			if tb.Process(fromA, 1) != Translated {
				t.Fatal("not translated")
			}
		},
		"b to a": func() {
			copy(fromB, origB)
			if tb.Process(fromB, 1) != Translated {
				t.Fatal("not translated")
			}
		},
		"partial": func() {
			copy(fromA, origA)
			if tb.ProcessPartial(fromA, 1) != Translated {
				t.Fatal("not translated")
			}
		},
		"egress passes":        func() { tb.Process(egress, 1) },
		"local passes":         func() { tb.Process(local, 1) },
		"untracked error":      func() { tb.Process(icmpErr, 1) },
		"allow egress":         func() { tb.AllowEgress(egress) },
		"stats":                func() { tb.Stats() },
		"sweep, nothing to do": func() { tb.Sweep(1) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, n)
		}
	}
}

// TestEstablishedIPv6DoesNotAllocate: the same for an IPv6 flow, both
// directions, and IPv6 packets that pass.
func TestEstablishedIPv6DoesNotAllocate(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	fromA, fromB := establishOn(t, tb, 1000, a6, gw6, b6)
	origA, origB := append([]byte(nil), fromA...), append([]byte(nil), fromB...)
	egress := tcpSeg(ap(a6, 1), ap(netip.MustParseAddr("2001:db8:99::1"), 443), ack, 1, 1, make([]byte, 100))
	local := udpDgram(ap(a6, 1), ap(gw6, 53), make([]byte, 40), false)
	for name, f := range map[string]func(){
		"a to b": func() {
			copy(fromA, origA)
			if tb.Process(fromA, 1) != Translated {
				t.Fatal("not translated")
			}
		},
		"b to a": func() {
			copy(fromB, origB)
			if tb.Process(fromB, 1) != Translated {
				t.Fatal("not translated")
			}
		},
		"egress passes": func() { tb.Process(egress, 1) },
		"local passes":  func() { tb.Process(local, 1) },
		"allow egress":  func() { tb.AllowEgress(egress) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, n)
		}
	}
}
