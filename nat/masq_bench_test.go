package nat

import (
	"fmt"
	"net/netip"
	"testing"
)

// fillAssured gives k flows toward b:53 (UDP 5353) masquerade ports and
// makes them assured streams, so that nothing may take their ports over:
// each from its own address, 10.1.x.y, so that no source share applies.
// It returns the time at which they are all assured.
func fillAssured(tb testing.TB, t *Table, k int) int64 {
	tb.Helper()
	now := sec(3)
	for i := range k {
		src := ap(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 4000)
		q := udpDgram(src, ap(gw4, 5353), nil, false)
		if t.Process(q, 0) != Translated {
			tb.Fatalf("fill flow %d refused: %+v", i, t.Stats())
		}
		masq := flowOf(tb, q).src
		t.Process(udpDgram(ap(b4, 53), masq, nil, false), 0)
		t.Process(udpDgram(src, ap(gw4, 5353), nil, false), now)
	}
	return now
}

// BenchmarkMasqFlood is a flood of new UDP flows, each from a new spoofed
// source address, toward one published port (b:53) whose masquerade range
// (the default 4,536 ports) is already held, to the percentage in the
// name, by assured flows. The flood's own flows take the rest and then
// evict each other (the timer starts once they have filled it); at 100%
// every new flow is refused. The cost of a new flow should not grow with
// the fill.
func BenchmarkMasqFlood(b *testing.B) {
	n := int(DefaultMasqPorts[1]-DefaultMasqPorts[0]) + 1
	for _, pct := range []int{0, 50, 90, 99, 100} {
		b.Run(fmt.Sprintf("fill=%d%%", pct), func(b *testing.B) {
			tb := newTestTable(b, testConfig(), testMappings())
			now := fillAssured(b, tb, n*pct/100)
			want := Translated
			if pct == 100 {
				want = Drop
			}
			pkt := udpDgram(ap(netip.AddrFrom4([4]byte{10, 2, 0, 0}), 5000), ap(gw4, 5353), nil, false)
			hdr := append([]byte(nil), pkt...)
			i := 0
			flood := func() Verdict {
				i++
				copy(pkt, hdr)
				pkt[13], pkt[14], pkt[15] = byte(i>>16), byte(i>>8), byte(i)
				return tb.Process(pkt, now)
			}
			for range n - n*pct/100 {
				flood()
			}
			b.ReportAllocs()
			for b.Loop() {
				if v := flood(); v != want {
					b.Fatalf("flow %d: %v, want %v", i, v, want)
				}
			}
		})
	}
}
