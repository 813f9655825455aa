package gateway_test

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
)

// What an idle UDP egress flow costs, measured: one parked goroutine and
// no datagram buffer. 300 flows are opened, each answered once, then left
// idle; the goroutines and the heap they add are counted.
func TestUDPFlowIdleMemory(t *testing.T) {
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	dst := netip.AddrPortFrom(hostLoopback, udpEcho(t, "").Port())

	const flows = 300
	g0, h0 := goroutinesAndHeap()
	conns := make([]net.Conn, 0, flows)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 16)
	for i := range flows {
		c, err := n.host.DialUDP(dst) // a new source port each: a new flow
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("flow %d: no answer: %v", i, err)
		}
	}
	if st := n.gw.Stats(); st.UDPActive != flows {
		t.Fatalf("%d UDP flows active, want %d", st.UDPActive, flows)
	}
	g1, h1 := goroutinesAndHeap()
	perFlowG := float64(g1-g0) / flows
	perFlowKiB := float64(h1-h0) / flows / 1024
	t.Logf("an idle UDP flow costs %.2f goroutines and %.1f KiB of heap (the container side's socket included)", perFlowG, perFlowKiB)
	// The container side (a vnettest host's socket) adds its own
	// goroutines and buffers; the flow itself must add one goroutine and
	// no 64 KiB datagram buffer.
	if perFlowG > 1.5 {
		t.Errorf("%.2f goroutines per idle flow, want one", perFlowG)
	}
	if perFlowKiB > 48 {
		t.Errorf("%.1f KiB of heap per idle flow: a datagram buffer is held while idle", perFlowKiB)
	}
}

func goroutinesAndHeap() (int, uint64) {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

// udpEcho serves UDP on 127.0.0.1 and answers each datagram with prefix
// and the datagram.
func udpEcho(t *testing.T, prefix string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(prefix), buf[:k]...), from)
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}
