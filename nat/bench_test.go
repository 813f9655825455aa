package nat

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
)

// BenchmarkProcessEstablished translates a data segment of an established
// TCP connection, from the initiator and from the responder. Each round
// restores the headers the previous one rewrote (40 bytes).
func BenchmarkProcessEstablished(b *testing.B) {
	for _, size := range []int{0, 1460, 64<<10 - 40 - 40} {
		for _, dir := range []string{"orig", "reply"} {
			b.Run(fmt.Sprintf("%s/%d", dir, size), func(b *testing.B) {
				tb := newTestTable(b, testConfig(), testMappings())
				fromA, fromB := establish(b, tb, size)
				pkt := fromA
				if dir == "reply" {
					pkt = fromB
				}
				hdr := append([]byte(nil), pkt[:40]...)
				b.SetBytes(int64(len(pkt)))
				b.ReportAllocs()
				for b.Loop() {
					copy(pkt, hdr)
					if tb.Process(pkt, 1) != Translated {
						b.Fatal("not translated")
					}
				}
			})
		}
	}
}

// BenchmarkProcessPass is the cost nat adds to every egress packet.
func BenchmarkProcessPass(b *testing.B) {
	tb := newTestTable(b, testConfig(), testMappings())
	establish(b, tb, 0)
	for name, pkt := range map[string][]byte{
		"egress":           tcpSeg(ap(a4, 1), ap(netip.MustParseAddr("8.8.8.8"), 443), ack, 1, 1, make([]byte, 1460)),
		"to gateway, miss": udpDgram(ap(a4, 1), ap(gw4, 53), make([]byte, 40), false),
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if tb.Process(pkt, 1) != Pass {
					b.Fatal("not passed")
				}
			}
		})
	}
}

// BenchmarkProcessParallel runs one established connection per goroutine
// through one table: the cost of sharing its lock.
func BenchmarkProcessParallel(b *testing.B) {
	tb := newTestTable(b, testConfig(), testMappings())
	var next atomic.Uint32
	b.SetBytes(1500)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		port := uint16(10000 + next.Add(1))
		aEnd, pub := ap(a4, port), ap(gw4, 8080)
		s := tcpSeg(aEnd, pub, syn, 1, 0, nil)
		tb.Process(s, 0)
		tb.Process(tcpSeg(ap(b4, 80), flowOf(b, s).src, syn|ack, 1, 2, nil), 0)
		pkt := tcpSeg(aEnd, pub, ack|psh, 2, 2, make([]byte, 1460))
		hdr := append([]byte(nil), pkt[:40]...)
		for pb.Next() {
			copy(pkt, hdr)
			if tb.Process(pkt, 1) != Translated {
				b.Error("not translated")
				return
			}
		}
	})
}

// manyMappings publishes 256 ports, 10000-10255, each to its own port of
// b, so that a benchmark's flows spread over 256 responders.
func manyMappings() []PortMapping {
	ms := make([]PortMapping, 256)
	for k := range ms {
		ms[k] = PortMapping{Proto: TCP, HostPort: uint16(10000 + k), Target: ap(b4, uint16(1000+k))}
	}
	return ms
}

// synFlood writes the i-th distinct SYN into pkt, from hdr: source address
// and port, and destination port, vary. The checksums are not fixed up:
// nat does not verify them.
func synFlood(pkt, hdr []byte, i int) {
	copy(pkt, hdr)
	pkt[14], pkt[15] = byte(i>>24), byte(i>>16)
	pkt[20], pkt[21] = byte(i>>8), byte(i)
	pkt[22], pkt[23] = byte((10000+i%256)>>8), byte(10000+i%256)
}

// BenchmarkNewFlow creates an entry per SYN, in a table that fills up and
// then evicts its oldest entry for each new one.
func BenchmarkNewFlow(b *testing.B) {
	tb := newTestTable(b, testConfig(), manyMappings())
	pkt := tcpSeg(ap(a4, 1), ap(gw4, 10000), syn, 1, 0, nil)
	hdr := append([]byte(nil), pkt...)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		synFlood(pkt, hdr, i)
		if tb.Process(pkt, int64(i)) != Translated {
			b.Fatal("not translated")
		}
	}
}

// BenchmarkSweep sweeps a full table in which nothing has expired.
func BenchmarkSweep(b *testing.B) {
	tb := newTestTable(b, testConfig(), manyMappings())
	pkt := tcpSeg(ap(a4, 1), ap(gw4, 10000), syn, 1, 0, nil)
	hdr := append([]byte(nil), pkt...)
	for i := range DefaultMaxEntries {
		synFlood(pkt, hdr, i)
		tb.Process(pkt, 0)
	}
	if n := tb.Stats().Entries; n != DefaultMaxEntries {
		b.Fatalf("%d entries", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if tb.Sweep(1) != 0 {
			b.Fatal("swept")
		}
	}
	b.ReportMetric(float64(DefaultMaxEntries), "entries")
}
