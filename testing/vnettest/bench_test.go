package vnettest_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
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
	tcpStream(b, lan.NewHost("a"), lan.NewHost("c"))
}

// TCP between hosts on two networks joined by a tunnel over an underlay
// network, no stage.
func BenchmarkTCPThroughTunnel(b *testing.B) {
	for _, mode := range []vnettest.TunnelMode{vnettest.VXLAN, vnettest.Sealed} {
		b.Run(mode.String(), func(b *testing.B) {
			w := vnettest.New(b)
			east := w.NewNetwork("east", "10.1.0.0/24")
			west := w.NewNetwork("west", "10.1.0.0/24")
			w.NewTunnel("t", east, west, w.NewNetwork("dc", "192.168.0.0/24"), vnettest.TunnelConfig{Mode: mode})
			tcpStream(b, east.NewHost("a"), west.NewHost("c"))
		})
	}
}

// tcpStream sends b.N chunks of 64 KiB from a to c:9 over one TCP
// connection and reports the rate in Gbit/s.
func tcpStream(b *testing.B, a, c *vnettest.Host) {
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
	conn, err := a.Dial("tcp", c.Addr().String()+":9")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		if _, err := conn.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	conn.Close()
	if n := <-done; n != int64(b.N*len(chunk)) {
		b.Fatalf("received %d bytes, sent %d", n, b.N*len(chunk))
	}
	b.ReportMetric(float64(b.N*len(chunk))*8/time.Since(t0).Seconds()/1e9, "Gbit/s")
}

// One input of a fuzz target (FuzzFrames) through a switch and a
// gateway: a host injects a handful of frames (ARP, a SYN to the
// gateway, a ping, junk), and the network is checked after each input.
func BenchmarkFuzzFramesThroughGateway(b *testing.B) {
	w := vnettest.New(b, vnettest.Seed(1))
	inet := w.NewNetwork("inet", "203.0.113.0/24")
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	lan.NewGateway(vnettest.GatewayConfig{Uplink: inet})
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	gwMAC := vnettest.DockerMAC(lan.GatewayAddr())
	syn := synTo23()
	copy(syn, gwMAC[:])
	copy(syn[14+16:], lan.GatewayAddr().AsSlice())
	binary.BigEndian.PutUint16(syn[14+22:], 80) // to the gateway's port 80
	junk := make([]byte, 60)
	copy(junk, gwMAC[:])
	input := frameSeed(syn, junk, bytes.Repeat([]byte{0xff}, 42))
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		vnettest.FuzzFrames(b, a, input)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "execs/s")
}

// A World of 1000 hosts on one network: the heap it takes.
func BenchmarkThousandHosts(b *testing.B) {
	var grown int64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		func() {
			w := vnettest.New(b)
			_ = w
			lan := w.NewNetwork("big", "10.0.0.0/20")
			for i := range 1000 {
				lan.NewHost(fmt.Sprintf("h%d", i))
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
		}()
		grown = int64(after.HeapInuse) - int64(before.HeapInuse)
	}
	b.ReportAllocs()
	b.ReportMetric(float64(grown)/(1<<20), "MiB-heap/1000hosts")
}
