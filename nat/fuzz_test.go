package nat

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// fuzzTable returns a table with a few flows of each kind open, the same
// ones on every call, so that seed packets built against one table match
// flows in the next.
func fuzzTable(t testing.TB) (*Table, map[string][]byte) {
	ms := append(testMappings(), PortMapping{Proto: ICMP, HostIP: host4, Target: ap(b4, 0)}, PortMapping{Proto: ICMP, HostIP: host6, Target: ap(b6, 0)})
	tb := newTestTable(t, testConfig(), ms)
	seeds := validPackets(t, tb)
	req := echo(a4, host4, true, 3, 1)
	tb.Process(req, 0)
	seeds["echo reply"] = echo(b4, gw4, false, flowOf(t, req).src.Port(), 1)
	req6 := echo(a6, host6, true, 3, 1)
	tb.Process(req6, 0)
	seeds["echo6 reply"] = echo(b6, gw6, false, flowOf(t, req6).src.Port(), 1)
	return tb, seeds
}

// FuzzProcess feeds arbitrary bytes to a table with open flows. Process
// must not panic, must leave the packet alone unless it translates it,
// must never touch bytes past the IP packet's length, and must keep valid
// checksums valid.
func FuzzProcess(f *testing.F) {
	_, seeds := fuzzTable(f)
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(append(bytes.Clone(s), 0, 0, 0, 0), true) // with padding, partial
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0x45}, false)
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64}, false)
	f.Fuzz(func(t *testing.T, data []byte, partial bool) {
		tb, _ := fuzzTable(t)
		// pkt is followed, in the same array, by canary bytes that
		// Process cannot reach without writing out of bounds.
		buf := append(bytes.Clone(data), 0xa5, 0xa5, 0xa5, 0xa5)
		pkt := buf[:len(data):len(data)]
		defer func() {
			if !bytes.Equal(buf[len(data):], []byte{0xa5, 0xa5, 0xa5, 0xa5}) {
				t.Fatal("wrote past the end of the packet")
			}
		}()
		var v Verdict
		if partial {
			v = tb.ProcessPartial(pkt, 1)
		} else {
			v = tb.Process(pkt, 1)
		}
		if v != Translated {
			if !bytes.Equal(pkt, data) {
				t.Fatalf("%v, but the packet changed", v)
			}
			return
		}
		var p packet
		if !parse(data, &p) {
			t.Fatal("translated a packet that does not parse")
		}
		if !bytes.Equal(pkt[p.end:], data[p.end:]) {
			t.Fatal("bytes past the IP packet changed")
		}
		if !bytes.Equal(pkt[:4], data[:4]) || (p.v6 && !bytes.Equal(pkt[4:8], data[4:8])) {
			t.Fatal("IP version, header or total length changed")
		}
		if !partial && checksumError(data) == "" {
			if msg := checksumError(pkt); msg != "" {
				t.Fatalf("valid checksums became invalid: %s", msg)
			}
		}
	})
}

// FuzzTranslateReverse builds a valid packet from the fuzzer's values,
// translates it, answers it as the responder would (addresses and ports
// swapped), translates the answer, and checks that the initiator gets
// exactly its own tuple reversed, with valid checksums. Mode 1 answers
// with an ICMP error quoting what the responder got; mode 2 has the
// initiator send an ICMP error about the answer. Either must come out
// quoting the packet its receiver sent.
func FuzzTranslateReverse(f *testing.F) {
	f.Add(false, uint8(protoTCP), []byte{172, 18, 0, 2}, uint16(40000), false, uint16(8080), uint16(80), []byte("GET /"), false, uint8(0), uint16(1000))
	f.Add(false, uint8(protoUDP), []byte{172, 18, 0, 2}, uint16(53000), true, uint16(5353), uint16(53), []byte("q"), true, uint8(1), uint16(28))
	f.Add(false, uint8(protoUDP), []byte{10, 1, 2, 3}, uint16(61005), false, uint16(61000), uint16(1), []byte{}, false, uint8(2), uint16(100))
	f.Add(true, uint8(protoTCP), []byte{0xfd, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, uint16(1), false, uint16(443), uint16(8443), []byte("x"), false, uint8(1), uint16(48))
	f.Add(true, uint8(protoICMPv6), []byte{0xfd, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, uint16(7), true, uint16(0), uint16(0), []byte("ping"), false, uint8(0), uint16(0))
	f.Add(false, uint8(protoICMPv4), []byte{172, 18, 0, 3}, uint16(7), false, uint16(0), uint16(0), []byte("ping"), false, uint8(1), uint16(36))
	f.Add(false, uint8(protoTCP), []byte{172, 18, 0, 3}, uint16(80), true, uint16(80), uint16(80), []byte{0xff, 0xff}, false, uint8(2), uint16(40))
	f.Fuzz(func(t *testing.T, v6 bool, proto uint8, aBytes []byte, aPort uint16, viaHost bool, hostPort, bPort uint16, payload []byte, udpNoCsum bool, mode uint8, quoteLen uint16) {
		gw, host, b := gw4, host4, b4
		a, ok := netip.AddrFromSlice(aBytes)
		if v6 {
			gw, host, b = gw6, host6, b6
			ok = ok && a.Is6() && !a.Is4In6()
		} else {
			ok = ok && a.Is4()
		}
		if !ok || len(payload) > 1200 {
			return
		}
		dialed := gw
		if viaHost {
			dialed = host
		}
		var kind Proto
		switch proto {
		case protoTCP:
			kind = TCP
		case protoUDP:
			kind = UDP
		default:
			kind, hostPort, bPort = ICMP, 0, 0
		}
		if kind != ICMP && (hostPort == 0 || bPort == 0) {
			return
		}
		udpNoCsum = udpNoCsum && !v6
		tb := newTestTable(t, testConfig(), []PortMapping{{Proto: kind, HostPort: hostPort, Target: ap(b, bPort)}})

		var sent []byte
		switch kind {
		case TCP:
			sent = tcpSeg(ap(a, aPort), ap(dialed, hostPort), syn, 1, 0, payload)
		case UDP:
			sent = udpDgram(ap(a, aPort), ap(dialed, hostPort), payload, udpNoCsum)
		default:
			sent = icmpMsg(a, dialed, echoType(v6, true), 0, uint32(aPort)<<16|1, payload)
		}
		fwd := bytes.Clone(sent)
		if v := tb.Process(fwd, 0); v != Translated {
			t.Fatalf("%v: first packet %v, want translated", kind, v)
		}
		checksumsValid(t, fwd)
		got := flowOf(t, fwd)
		if got.src.Addr() != gw || got.dst.Addr() != b || (kind != ICMP && got.dst.Port() != bPort) {
			t.Fatalf("left as %v → %v, want %v:masq → %v", got.src, got.dst, gw, ap(b, bPort))
		}
		masq := got.src.Port()

		// The responder's answer, built from what it received.
		var ans []byte
		switch kind {
		case TCP:
			ans = tcpSeg(got.dst, got.src, syn|ack, 7, 2, payload)
		case UDP:
			ans = udpDgram(got.dst, got.src, payload, udpNoCsum)
		default:
			ans = icmpMsg(b, gw, echoType(v6, false), 0, uint32(masq)<<16|1, payload)
		}

		switch mode % 3 {
		case 0, 2:
			ansSent := bytes.Clone(ans)
			if v := tb.Process(ans, 0); v != Translated {
				t.Fatalf("answer %v, want translated", v)
			}
			checksumsValid(t, ans)
			back := flowOf(t, ans)
			want := flowOf(t, sent)
			if back.src != want.dst || back.dst != want.src {
				t.Fatalf("answer left as %v → %v, want %v → %v", back.src, back.dst, want.dst, want.src)
			}
			if mode%3 == 2 {
				// The initiator complains about the answer.
				e := icmpError(a, dialed, unreachType(v6), 3, 0, ans, quoteSize(quoteLen, ans))
				checkError(t, tb, e, gw, b, ansSent[:quoteSize(quoteLen, ans)])
			}
		case 1:
			// The responder complains about what it received.
			e := icmpError(b, gw, unreachType(v6), 3, 0, fwd, quoteSize(quoteLen, fwd))
			checkError(t, tb, e, dialed, a, sent[:quoteSize(quoteLen, fwd)])
		}
	})
}

func echoType(v6, request bool) uint8 {
	switch {
	case v6 && request:
		return icmp6EchoRequest
	case v6:
		return icmp6EchoReply
	case request:
		return icmp4Echo
	}
	return icmp4EchoReply
}

func unreachType(v6 bool) uint8 {
	if v6 {
		return uint8(header.ICMPv6DstUnreachable)
	}
	return uint8(header.ICMPv4DstUnreachable)
}

// quoteSize is how much of pkt an error quotes: at least its IP header and
// eight bytes, at most all of it.
func quoteSize(n uint16, pkt []byte) int {
	return max(min(int(n), len(pkt)), ipHeaderLen(pkt)+8)
}

// checkError processes ICMP error e and checks that it leaves from src to
// dst, with valid checksums, quoting want.
func checkError(t *testing.T, tb *Table, e []byte, src, dst netip.Addr, want []byte) {
	t.Helper()
	if v := tb.Process(e, 0); v != Translated {
		t.Fatalf("ICMP error %v, want translated", v)
	}
	checksumsValid(t, e)
	if s, d := srcDst(e); s != src || d != dst {
		t.Fatalf("ICMP error left as %v → %v, want %v → %v", s, d, src, dst)
	}
	q := quote(e)
	// A quote that ends one byte into the TCP checksum cannot have that
	// byte restored: a checksum is updated a 16-bit word at a time.
	if hl := ipHeaderLen(want); protoOf(want) == protoTCP && len(want) == hl+header.TCPChecksumOffset+1 {
		want = append(bytes.Clone(want[:len(want)-1]), q[len(q)-1])
	}
	if !sameModuloZero(q, want) {
		t.Fatalf("quote not restored:\n got % x\nwant % x", q, want)
	}
	if header.IPVersion(q) == 4 && !header.IPv4(q).IsChecksumValid() {
		t.Fatal("quoted IPv4 header checksum invalid")
	}
	// The quoted transport checksum, when the quote holds the whole
	// segment, must verify against the quoted addresses.
	var p packet
	if parse(q, &p) && p.kind == kindFlow {
		if msg := checksumError(q); msg != "" {
			t.Fatalf("quoted packet: %s", msg)
		}
	}
}

// protoOf returns the transport protocol of IP packet b (no extension
// headers).
func protoOf(b []byte) uint8 {
	if header.IPVersion(b) == 4 {
		return b[9]
	}
	return b[6]
}
