package vswitch_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// BenchmarkForwardKnownUnicast measures the switch alone: one frame from an
// in-memory port to another whose MAC is learned, on one goroutine.
func BenchmarkForwardKnownUnicast(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			sw, in, _, fr := knownUnicastPair(b, size)
			defer sw.Close()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in.Inject(fr)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkForwardParallel forwards from every core at once, each
// goroutine between its own pair of ports on one shared switch, to show the
// forwarding table does not serialise readers.
func BenchmarkForwardParallel(b *testing.B) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	var next atomic.Uint32
	b.ReportAllocs()
	b.SetBytes(64)
	b.RunParallel(func(pb *testing.PB) {
		i := byte(next.Add(1))
		src, dst := porttest.New(fmt.Sprintf("src%d", i), 0), porttest.New(fmt.Sprintf("dst%d", i), 0)
		src.Discard, dst.Discard = true, true
		sw.Attach(src, vswitch.AttachOptions{})
		sw.Attach(dst, vswitch.AttachOptions{})
		srcMAC, dstMAC := vswitch.MAC{2, 1, 0, 0, 0, i}, vswitch.MAC{2, 2, 0, 0, 0, i}
		dst.Inject(frame(vswitch.Broadcast, dstMAC, 60))
		fr := frame(dstMAC, srcMAC, 64)
		for pb.Next() {
			src.Inject(fr)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkSegment measures cutting a 64 KiB TCP superframe into 1448-byte
// segments, as the switch does for a port without TSO (the gateway).
func BenchmarkSegment(b *testing.B) {
	sf := tcpSuperframe(false, 65000, 1448, header.TCPFlagAck)
	scratch := make([]byte, len(sf.Data))
	b.ReportAllocs()
	b.SetBytes(int64(len(sf.Data)))
	emit := func([]byte) {}
	for i := 0; i < b.N; i++ {
		if !vswitch.Segment(sf, scratch, emit) {
			b.Fatal("segment refused")
		}
	}
}
