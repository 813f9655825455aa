package tunnel_test

import (
	"fmt"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

// benchFrame returns an IPv4/UDP frame of exactly size bytes.
func benchFrame(size int) []byte {
	fl := baseFlow()
	fl.proto = 17
	fl.payload = size - 14 - 20 - 8
	return fl.frame()
}

var benchSizes = []int{1514, 9014} // 1500- and 9000-byte MTU frames

func BenchmarkSeal(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			s := mustSealer(b, testKey(1), 1, 2, 0)
			frame := benchFrame(size)
			buf := packet(frame)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := s.Seal(buf, 42); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkOpen opens distinct datagrams (a replayed one would be refused
// before decryption); it includes copying each datagram into the receive
// buffer, as Open destroys its input.
func BenchmarkOpen(b *testing.B) {
	const ring = 256
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			key := testKey(1)
			s := mustSealer(b, key, 1, 2, 0)
			frame := benchFrame(size)
			var ds [ring][]byte
			newOpener := func() *tunnel.Opener { return mustOpener(b, 3, map[uint16]tunnel.Key{1: key}) }
			o := newOpener()
			rx := make([]byte, len(frame)+tunnel.SecureHeadroom+tunnel.TagLen)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				if i%ring == 0 {
					// Fresh datagrams and a fresh Opener whose replay
					// window for the sender already exists.
					b.StopTimer()
					o = newOpener()
					if _, _, err := o.Open(seal(b, s, 42, frame)); err != nil {
						b.Fatal(err)
					}
					for j := range ds {
						ds[j] = seal(b, s, 42, frame)
					}
					b.StartTimer()
				}
				copy(rx, ds[i%ring])
				if _, _, err := o.Open(rx); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

func BenchmarkEncodeVXLAN(b *testing.B) {
	frame := benchFrame(1514)
	buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
	copy(buf[tunnel.VXLANHeaderLen:], frame)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := tunnel.EncodeVXLAN(buf, 42); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeVXLAN(b *testing.B) {
	frame := benchFrame(1514)
	buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
	copy(buf[tunnel.VXLANHeaderLen:], frame)
	_ = tunnel.EncodeVXLAN(buf, 42)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, _, err := tunnel.DecodeVXLAN(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReplayWindow(b *testing.B) {
	var w tunnel.ReplayWindow
	b.ReportAllocs()
	c := uint64(0)
	for b.Loop() {
		if w.Check(c) {
			w.Accept(c)
		}
		c++
	}
}
