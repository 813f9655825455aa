package nat

import (
	"maps"
	"net/netip"
	"testing"
)

var c4 = netip.MustParseAddr("172.18.0.4") // a third container

// checkPools fails the test unless the masquerade pools of tb agree with
// its entries: each pool's taken ports are exactly the ports of its
// entries and its reserved (published) ports, each source's count is the
// number of its open entries, and the eviction lists hold exactly the
// entries of their class, oldest first.
func checkPools(t testing.TB, tb *Table) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	type want struct {
		ports map[uint16]bool
		bySrc map[netip.Addr]int32
		lists [numClasses]int
	}
	wants := map[*portPool]*want{}
	for k, p := range tb.pools {
		w := &want{ports: map[uint16]bool{}, bySrc: map[netip.Addr]int32{}}
		for _, r := range p.reserved {
			w.ports[r] = true
		}
		wants[p] = w
		if l := len(p.bySrc); l > 0 && p.share <= 0 {
			t.Fatalf("pool %v: share %d", k, p.share)
		}
	}
	for k, c := range tb.conns {
		if k != c.orig {
			continue
		}
		w := wants[c.pool]
		if w == nil || tb.pools[poolKey{c.mapping.Proto, c.mapping.Target}] != c.pool {
			t.Fatalf("entry %v → %v is not in its responder's pool", c.orig, c.reply)
		}
		m := masqPort(c)
		if w.ports[m] {
			t.Fatalf("masquerade port %d toward %v held twice", m, c.mapping.Target)
		}
		w.ports[m] = true
		if c.pclass != classOf(c) {
			t.Fatalf("entry %v: class %d, want %d", c.orig, c.pclass, classOf(c))
		}
		if c.pclass.counted() {
			w.bySrc[c.orig.src]++
		}
		w.lists[c.pclass]++
	}
	for p, w := range wants {
		for off := range p.ports.n {
			port := p.ports.lo + uint16(off)
			if p.ports.taken(port) != w.ports[port] {
				t.Fatalf("port %d: taken %v, held by an entry or published %v", port, p.ports.taken(port), w.ports[port])
			}
		}
		if p.ports.free != int(p.ports.n)-len(w.ports) {
			t.Fatalf("%d free ports, want %d", p.ports.free, int(p.ports.n)-len(w.ports))
		}
		if !maps.Equal(p.bySrc, w.bySrc) {
			t.Fatalf("per-source counts %v, want %v", p.bySrc, w.bySrc)
		}
		for _, k := range []connClass{classFresh, classClosed} {
			n := 0
			for c := p.lists[k].head; c != nil; c = c.links[linkPool].next {
				if c.pclass != k || c.pool != p {
					t.Fatalf("entry %v of class %d on list %d", c.orig, c.pclass, k)
				}
				n++
			}
			if n != w.lists[k] {
				t.Fatalf("list %d holds %d entries, want %d", k, n, w.lists[k])
			}
		}
	}
}

// udpFlow sends one datagram from src to the published UDP port 5353 (b:53)
// at now and returns the masquerade port it left with (0 if it was not
// translated).
func udpFlow(t testing.TB, tb *Table, src netip.AddrPort, now int64, want Verdict) uint16 {
	t.Helper()
	q := udpDgram(src, ap(gw4, 5353), nil, false)
	mustVerdict(t, tb, q, now, want)
	if want != Translated {
		return 0
	}
	return flowOf(t, q).src.Port()
}

// TestMasqShare: one source address cannot hold more than its share of a
// responder's ports; another source, and the same source toward another
// responder, still get ports; the source's closed connections and expired
// flows give its share back.
func TestMasqShare(t *testing.T) {
	cfg := testConfig()
	cfg.MasqPorts = [2]uint16{20000, 20099} // 100 ports: a's share is 25
	tb := newTestTable(t, cfg, testMappings())
	for i := range uint16(25) {
		udpFlow(t, tb, ap(a4, 1000+i), 0, Translated)
	}
	udpFlow(t, tb, ap(a4, 2000), 0, Drop)
	if s := tb.Stats(); s.PortsOverShare != 1 || s.PortsExhausted != 0 || s.Evicted != 0 || s.Entries != 25 {
		t.Fatalf("Stats = %+v, want 1 over share, nothing evicted, 25 entries", s)
	}
	// c still gets its own share toward b:53; a still gets ports toward
	// b:80; a's refused flow took nothing.
	for i := range uint16(25) {
		udpFlow(t, tb, ap(c4, 1000+i), 0, Translated)
	}
	udpFlow(t, tb, ap(c4, 2000), 0, Drop)
	first := tcpSeg(ap(a4, 3000), ap(gw4, 8080), syn, 1, 0, nil)
	mustVerdict(t, tb, first, 0, Translated)
	checkPools(t, tb)

	// A closed TCP connection does not count: a fills its share toward
	// b:80, resets one, and may open another.
	for i := range uint16(24) {
		mustVerdict(t, tb, tcpSeg(ap(a4, 3001+i), ap(gw4, 8080), syn, 1, 0, nil), 0, Translated)
	}
	mustVerdict(t, tb, tcpSeg(ap(a4, 4000), ap(gw4, 8080), syn, 1, 0, nil), 0, Drop)
	mustVerdict(t, tb, tcpSeg(ap(b4, 80), flowOf(t, first).src, rst, 0, 0, nil), 0, Translated)
	mustVerdict(t, tb, tcpSeg(ap(a4, 4000), ap(gw4, 8080), syn, 1, 0, nil), 0, Translated)
	checkPools(t, tb)

	// a's UDP flows expire (30 s unreplied): its share is back, without
	// waiting for the janitor.
	udpFlow(t, tb, ap(a4, 2000), sec(31), Translated)
	if s := tb.Stats(); s.PortsOverShare != 3 || s.Expired == 0 {
		t.Fatalf("Stats = %+v, want 3 over share, the expired flows removed", s)
	}
	checkPools(t, tb)
}

// TestMasqRangeFull: when every port toward a responder is held by an
// assured flow, a new flow is dropped cleanly (counted, packet unchanged,
// nothing evicted); the ports come back when the flows expire, through
// the janitor's Sweep or through the allocation itself.
func TestMasqRangeFull(t *testing.T) {
	cfg := testConfig()
	cfg.MasqPorts = [2]uint16{20000, 20009}
	tb := newTestTable(t, cfg, testMappings())
	fill := func(now int64) {
		for i := range 10 {
			src := ap(netip.AddrFrom4([4]byte{172, 18, 1, byte(i)}), 4000)
			m := udpFlow(t, tb, src, now, Translated)
			mustVerdict(t, tb, udpDgram(ap(b4, 53), ap(gw4, m), nil, false), now, Translated)
			udpFlow(t, tb, src, now+sec(3), Translated) // both ways for 2 s: assured
		}
	}
	fill(0)
	udpFlow(t, tb, ap(a4, 1), sec(3), Drop)
	if s := tb.Stats(); s.PortsExhausted != 1 || s.Evicted != 0 || s.Entries != 10 {
		t.Fatalf("Stats = %+v, want 1 exhausted, nothing evicted, 10 entries", s)
	}
	checkPools(t, tb)

	// The assured flows live 120 s after their last packet.
	if n := tb.Sweep(sec(100)); n != 0 {
		t.Fatalf("Sweep at 100 s removed %d", n)
	}
	if n := tb.Sweep(sec(124)); n != 10 {
		t.Fatalf("Sweep at 124 s removed %d, want 10", n)
	}
	checkPools(t, tb)
	udpFlow(t, tb, ap(a4, 1), sec(124), Translated)

	// Full again; no Sweep this time: the allocation removes what has
	// expired.
	tb = newTestTable(t, cfg, testMappings())
	fill(0)
	udpFlow(t, tb, ap(a4, 1), sec(100), Drop)
	m := udpFlow(t, tb, ap(a4, 1), sec(124), Translated)
	if m < 20000 || m > 20009 {
		t.Fatalf("masquerade port %d outside 20000-20009", m)
	}
	if s := tb.Stats(); s.Expired == 0 || s.Entries > 10 {
		t.Fatalf("Stats = %+v, want the expired flows removed", s)
	}
	checkPools(t, tb)
}

// TestMasqPublishedInRange: a port published inside the masquerade range
// is never handed out, and is handed out again once unpublished.
func TestMasqPublishedInRange(t *testing.T) {
	cfg := testConfig()
	cfg.MasqPorts = [2]uint16{20000, 20001}
	cfg.MasqPortsPerSource = 2
	ms := append(testMappings(), PortMapping{Proto: UDP, HostPort: 20000, Target: ap(b4, 54)})
	tb := newTestTable(t, cfg, ms)
	if m := udpFlow(t, tb, ap(a4, 1), 0, Translated); m != 20001 {
		t.Fatalf("masquerade port %d, want 20001 (20000 is published)", m)
	}
	udpFlow(t, tb, ap(a4, 2), 0, Translated) // evicts the first: the range is one port
	checkPools(t, tb)
	if err := tb.SetMappings(testMappings()); err != nil {
		t.Fatal(err)
	}
	if m := udpFlow(t, tb, ap(a4, 3), 0, Translated); m != 20000 {
		t.Fatalf("masquerade port %d, want 20000 (unpublished)", m)
	}
	checkPools(t, tb)
}
