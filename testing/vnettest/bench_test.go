package vnettest_test

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// Frames from one host's wire through the switch to another's, with no
// stage: the cost of the World's own plumbing.
func BenchmarkFramesHostToHost(b *testing.B) {
	w := vnettest.New(b)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, c := lan.NewHost("a"), lan.NewHost("c")
	frame := make([]byte, 64)
	cm := vnettest.DockerMAC(c.Addr())
	am := vnettest.DockerMAC(a.Addr())
	copy(frame, cm[:])
	copy(frame[6:], am[:])
	binary.BigEndian.PutUint16(frame[12:], 0x88b5)
	a.Inject(frame) // teaches the switch where a is
	start := c.Wire().Stats(vnettest.Down).Out
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		a.Inject(frame)
	}
	for c.Wire().Stats(vnettest.Down).Out-start < uint64(b.N) {
		time.Sleep(time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "frames/s")
}

// TCP between two hosts, no stage.
func BenchmarkTCPHostToHost(b *testing.B) {
	w := vnettest.New(b)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	a, c := lan.NewHost("a"), lan.NewHost("c")
	l, err := c.Listen("tcp", ":9")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int64)
	go func() {
		s, err := l.Accept()
		if err != nil {
			done <- -1
			return
		}
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		done <- n
	}()
	conn, err := a.Dial("tcp", "c:9")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := conn.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	conn.Close()
	if n := <-done; n != int64(b.N*len(chunk)) {
		b.Fatalf("received %d bytes, sent %d", n, b.N*len(chunk))
	}
}
