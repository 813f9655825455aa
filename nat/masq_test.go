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
		checkPool(t, p, w.ports, w.bySrc, w.lists)
	}
}

// checkPool fails the test unless pool p holds exactly the ports in
// ports, counts bySrc, and has lists[k] entries on each list k.
func checkPool(t testing.TB, p *portPool, ports map[uint16]bool, bySrc map[netip.Addr]int32, lists [numClasses]int) {
	t.Helper()
	for off := range p.ports.n {
		port := p.ports.lo + uint16(off)
		if p.ports.taken(port) != ports[port] {
			t.Fatalf("port %d: taken %v, held by an entry or published %v", port, p.ports.taken(port), ports[port])
		}
	}
	if p.ports.free != int(p.ports.n)-len(ports) {
		t.Fatalf("%d free ports, want %d", p.ports.free, int(p.ports.n)-len(ports))
	}
	if !maps.Equal(p.bySrc, bySrc) {
		t.Fatalf("per-source counts %v, want %v", p.bySrc, bySrc)
	}
	for _, k := range []connClass{classFresh, classClosed} {
		n := 0
		for c := p.lists[k].head; c != nil; c = c.links[linkPool].next {
			if c.pclass != k || c.pool != p {
				t.Fatalf("entry %v of class %d on list %d", c.orig, c.pclass, k)
			}
			n++
		}
		if n != lists[k] {
			t.Fatalf("list %d holds %d entries, want %d", k, n, lists[k])
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
	if s := tb.Stats(); s.PortsOverShare != 1 || s.Dropped() != 1 || s.PortsExhausted != 0 || s.Evicted != 0 || s.Entries != 25 {
		t.Fatalf("Stats = %+v, want 1 dropped over share, nothing evicted, 25 entries", s)
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

// FuzzMasqTable drives a table with an 8-port range and a share of 3
// through new flows from three sources toward three responders, replies,
// resets, the passing of time, sweeps and a port published inside the
// range and unpublished again. After every step the pools must agree with
// the entries (checkPools), and every refusal must have its reason: the
// source holds its share, or every port is held by an entry that may not
// give it up. Each op is two bytes.
func FuzzMasqTable(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 1, 0, 2, 3, 0, 6})
	f.Add([]byte{0, 0, 0, 0x10, 0, 0x20, 0, 0x30, 0, 0x40, 0, 0x50, 0, 0x60, 0, 0x70, 0, 0x80, 5, 0, 0, 0x90})
	f.Add([]byte{4, 0, 4, 1, 4, 2, 4, 3, 1, 0, 4, 4, 2, 200, 3, 0, 4, 5})
	// Eight assured connections fill the range; one is reset; a new one
	// takes its port.
	f.Add([]byte{4, 0, 4, 1, 4, 2, 4, 4, 4, 5, 4, 6, 4, 8, 4, 9,
		1, 0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 5, 0, 4, 10, 4, 14})
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := testConfig()
		cfg.MasqPorts = [2]uint16{20000, 20007}
		cfg.MasqPortsPerSource = 3
		ms := append(testMappings(), PortMapping{Proto: UDP, HostPort: 5354, Target: ap(b4, 54)})
		published := append(ms[:len(ms):len(ms)], PortMapping{Proto: UDP, HostPort: 20003, Target: ap(c4, 53)})
		tb := newTestTable(t, cfg, ms)
		srcs := []netip.Addr{a4, c4, netip.MustParseAddr("172.18.0.5")}
		var now int64
		type sentFlow struct {
			from netip.AddrPort // the initiator
			out  flow           // its first packet, as it left
		}
		var sent []sentFlow // flows to answer
		for i := 0; i+2 <= len(ops); i += 2 {
			op, arg := ops[i]%6, ops[i+1]
			src := ap(srcs[arg%3], 1000+uint16(arg>>2))
			var pkt []byte
			switch op {
			case 0: // a new UDP flow toward b:53 or b:54
				pkt = udpDgram(src, ap(gw4, 5353+uint16(arg>>7)), nil, false)
			case 4: // a new TCP connection toward b:80
				pkt = tcpSeg(src, ap(gw4, 8080), syn, 1, 0, nil)
			case 1, 5: // a reply (op 1) or a reset (op 5) from the responder
				if len(sent) == 0 {
					continue
				}
				fl := sent[int(arg)%len(sent)]
				b, m := fl.out.dst, fl.out.src // the responder, and the gateway end it sees
				switch {
				case b.Port() != 80:
					if op == 1 {
						tb.Process(udpDgram(b, m, nil, false), now)
					}
				case op == 1: // the handshake: the connection is assured
					tb.Process(tcpSeg(b, m, syn|ack, 1, 2, nil), now)
					tb.Process(tcpSeg(fl.from, ap(gw4, 8080), ack, 2, 2, nil), now)
				default:
					tb.Process(tcpSeg(b, m, rst|ack, 1, 1, nil), now)
				}
			case 2:
				now += sec(float64(arg))
			case 3:
				if arg&1 == 0 {
					tb.Sweep(now)
				} else if err := tb.SetMappings([][]PortMapping{ms, published}[arg>>1&1]); err != nil {
					t.Fatal(err)
				}
			}
			if pkt != nil {
				before := tb.Stats()
				switch tb.Process(pkt, now) {
				case Translated:
					sent = append(sent, sentFlow{src, flowOf(t, pkt)})
				case Drop:
					checkRefusal(t, tb, pkt, before)
				}
			}
			checkPools(t, tb)
		}
	})
}

// checkRefusal fails unless the new flow of pkt, just dropped, was
// refused for a reason that holds: its source holds its share of the
// responder's ports, or the responder's ports are all held by entries
// that may not give them up.
func checkRefusal(t *testing.T, tb *Table, pkt []byte, before Stats) {
	t.Helper()
	var p packet
	parse(pkt, &p)
	m, _ := tb.rules.Load().match(Proto(p.proto), p.dst, p.dport)
	after := tb.Stats()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	pool := tb.pools[poolKey{m.Proto, m.Target}]
	switch {
	case after.PortsOverShare == before.PortsOverShare+1:
		if n := pool.bySrc[p.src]; n < pool.share {
			t.Fatalf("flow from %v refused over share, holding %d of %d", p.src, n, pool.share)
		}
	case after.PortsExhausted == before.PortsExhausted+1:
		if pool.ports.free != 0 {
			t.Fatalf("flow from %v refused for want of ports, with %d free", p.src, pool.ports.free)
		}
		for k, c := range tb.conns {
			if k == c.orig && c.pool == pool && c.evictable() {
				t.Fatalf("flow from %v refused for want of ports, but the flow from %v:%d could give port %d up", p.src, c.orig.src, c.orig.sport, masqPort(c))
			}
		}
	default:
		t.Fatalf("flow from %v dropped, stats %+v", p.src, after)
	}
}

// TestMasqFloodDoesNotAllocate: once a flood of new flows from spoofed
// sources has filled a responder's ports, each further flow takes the port
// of the oldest without allocating: the evicted entry is reused.
func TestMasqFloodDoesNotAllocate(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	pkt := udpDgram(ap(netip.AddrFrom4([4]byte{10, 2, 0, 0}), 5000), ap(gw4, 5353), nil, false)
	hdr := append([]byte(nil), pkt...)
	i := 0
	flood := func() {
		i++
		copy(pkt, hdr)
		pkt[13], pkt[14], pkt[15] = byte(i>>16), byte(i>>8), byte(i)
		if v := tb.Process(pkt, 0); v != Translated {
			t.Fatalf("flow %d: %v", i, v)
		}
	}
	for range int(DefaultMasqPorts[1]-DefaultMasqPorts[0]) + 1 {
		flood()
	}
	if n := testing.AllocsPerRun(1000, flood); n != 0 {
		t.Errorf("%v allocations per new flow, want 0", n)
	}
	if s := tb.Stats(); s.Evicted < 1000 {
		t.Fatalf("Stats = %+v, want the flood's flows evicting each other", s)
	}
}
