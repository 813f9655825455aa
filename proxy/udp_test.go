package proxy_test

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// whoContainer starts a UDP server that answers every datagram with the
// datagram's source, which is the proxy flow's socket, and returns a
// loopback dialer to it for ctrIP:53/udp.
// mode is "kernel" (the flow's conn is a *net.UDPConn), "opaque" (a
// wrapped one, read by the flow's goroutine) or "push" (one that pushes
// its replies, as the gateway's netstack conns do).
func whoContainer(t testing.TB, mode string) *proxytest.Loopback {
	t.Helper()
	srv := serveUDP(t, "udp4", "127.0.0.1:0", func(pc *net.UDPConn, _ []byte, from netip.AddrPort) {
		pc.WriteToUDPAddrPort([]byte(from.String()), from)
	})
	return &proxytest.Loopback{Opaque: mode != "kernel", Push: mode == "push", Redirect: redirect(nil, map[uint16]netip.AddrPort{53: srv})}
}

// flowOf asks through p from c and returns the address of the flow socket
// the container saw.
func flowOf(t testing.TB, c *net.UDPConn, p proxy.Published) netip.AddrPort {
	t.Helper()
	reply, _ := udpAsk(t, c, clientAddr(p), "who")
	ap, err := netip.ParseAddrPort(reply)
	if err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	return ap
}

// TestUDPReplySource: on a wildcard listener, a reply leaves from the
// address the client sent to (127.0.0.3 here, while the kernel would pick
// 127.0.0.1), for the implicit and the explicit wildcard, IPv4 and IPv6,
// whether the flow reads its replies or has them pushed.
func TestUDPReplySource(t *testing.T) {
	for _, mode := range []string{"kernel", "push"} {
		t.Run(mode, func(t *testing.T) { testUDPReplySource(t, mode == "push") })
	}
}

// testUDPReplySource is TestUDPReplySource with the flows' replies read
// by their goroutines (kernel sockets) or pushed (sent with sendmsg from
// the delivering goroutine: the client's sockaddr in the socket's family,
// the pktinfo control message).
func testUDPReplySource(t *testing.T, push bool) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80)
	d.Opaque, d.Push = push, push
	implicit, err := m.Publish("web/a", mapping(t, fmt.Sprintf("%d:80/udp", portUDP)), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish("web/a", mapping(t, fmt.Sprintf("0.0.0.0:%d:80/udp", portUDP+1)), ctrIP, d, proxy.Options{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ client, to string }{
		{"127.0.0.1", fmt.Sprintf("127.0.0.3:%d", portUDP)},
		{"127.0.0.1", fmt.Sprintf("127.0.0.1:%d", portUDP)},
		{"127.0.0.5", fmt.Sprintf("127.0.0.3:%d", portUDP)},
		{"127.0.0.1", fmt.Sprintf("127.0.0.3:%d", portUDP+1)},
		{"127.0.0.1", fmt.Sprintf("127.0.0.4:%d", portUDP+1)},
		{"::1", fmt.Sprintf("[::1]:%d", portUDP)},
	}
	for _, tt := range tests {
		c := udpClient(t, netip.MustParseAddr(tt.client))
		to := netip.MustParseAddrPort(tt.to)
		for i := range 2 { // the flow's first datagram and a later one
			reply, from := udpAsk(t, c, to, "hi")
			if reply != "ctr80: hi" || from != to {
				t.Errorf("client %s to %s (datagram %d): reply %q from %s, want %q from %s",
					tt.client, to, i, reply, from, "ctr80: hi", to)
			}
		}
	}
	if len(implicit) != 2 {
		t.Errorf("%d listeners for a wildcard mapping, want 2", len(implicit))
	}
}

// TestUDPFlowExpires: a flow idle for UDPTimeout is closed (its socket
// released, its goroutine gone, counted as expired), a flow kept busy is
// not, and the client's next datagram gets a new flow.
func TestUDPFlowExpires(t *testing.T) {
	for _, mode := range []string{"kernel", "opaque", "push"} {
		opaque := mode != "kernel"
		t.Run(mode, func(t *testing.T) {
			leakCheck(t)
			// Long enough that a loaded machine (CI runs the packages in
			// parallel) does not open a timeout-sized gap in the busy
			// client's datagrams.
			const timeout = 1500 * time.Millisecond
			m := newManager(t, proxy.Config{UDPTimeout: timeout})
			d := whoContainer(t, mode)
			pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::53/udp"), ctrIP, d, proxy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p := pubs[0]
			busy, idle := udpClient(t, netip.MustParseAddr("127.0.0.1")), udpClient(t, netip.MustParseAddr("127.0.0.1"))
			busyFlow := flowOf(t, busy, p)
			idleFlow := flowOf(t, idle, p)
			if !opaque {
				if err := canBind(proxy.UDP, idleFlow); err == nil {
					t.Fatalf("the live flow's socket %s is not held", idleFlow)
				}
			}
			withFlows := runtime.NumGoroutine()

			// Keep one flow busy for three timeouts; the other idles.
			for end := time.Now().Add(3 * timeout); time.Now().Before(end); time.Sleep(timeout / 10) {
				if f := flowOf(t, busy, p); f != busyFlow {
					t.Fatalf("the busy client's flow changed from %s to %s", busyFlow, f)
				}
			}
			var st proxy.UDPStats
			if !waitFor(ioTimeout, func() bool { st = m.Stats().UDP; return st.FlowsExpired == 1 }) {
				t.Fatalf("stats %+v, want the idle flow expired", st)
			}
			if st.FlowsActive != 1 || st.FlowsTotal != 2 {
				t.Errorf("stats %+v, want 1 active of 2", st)
			}
			if !opaque {
				if err := canBind(proxy.UDP, idleFlow); err != nil {
					t.Errorf("the expired flow's socket %s is still held: %v", idleFlow, err)
				}
			} else if !waitFor(ioTimeout, func() bool { return d.Open() == 1 }) {
				t.Errorf("%d container conns open, want 1 (the expired one closed)", d.Open())
			}
			if err := waitGoroutines(withFlows-1, ioTimeout); err != nil {
				t.Errorf("the expired flow's goroutine: %v", err)
			}

			// The idle client comes back: a new flow.
			if f := flowOf(t, idle, p); f == idleFlow && !opaque {
				t.Errorf("the expired flow %s answered again", f)
			}
			if st := m.Stats().UDP; st.FlowsTotal != 3 || st.FlowsActive != 2 {
				t.Errorf("stats %+v, want a third flow", st)
			}
		})
	}
}

// TestUDPRepliesKeepFlowAlive: datagrams from the container count as
// activity too: a client that sent once and keeps receiving is not cut off.
func TestUDPRepliesKeepFlowAlive(t *testing.T) {
	leakCheck(t)
	// A datagram every tenth of the timeout, for three timeouts: the flow
	// survives unless a gap of ten intervals opens (a stalled machine:
	// 500 ms opened on a loaded 2-core machine, 1.5 s has not).
	const timeout = 1500 * time.Millisecond
	const count = 30
	srv := serveUDP(t, "udp4", "127.0.0.1:0", func(pc *net.UDPConn, _ []byte, from netip.AddrPort) {
		for i := range count {
			pc.WriteToUDPAddrPort([]byte(fmt.Sprint(i)), from)
			time.Sleep(timeout / 10)
		}
	})
	m := newManager(t, proxy.Config{UDPTimeout: timeout})
	d := &proxytest.Loopback{Redirect: redirect(nil, map[uint16]netip.AddrPort{53: srv})}
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::53/udp"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := udpClient(t, netip.MustParseAddr("127.0.0.1"))
	if _, err := c.WriteToUDPAddrPort([]byte("stream"), clientAddr(pubs[0])); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 64)
	for i := range count {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v (stats %+v)", i, count, err, m.Stats().UDP)
		}
		if got := string(buf[:n]); got != fmt.Sprint(i) {
			t.Fatalf("datagram %d is %q", i, got)
		}
	}
	// The proxy counts a datagram after sending it: the client may read
	// the last one first.
	var st proxy.UDPStats
	waitFor(ioTimeout, func() bool { st = m.Stats().UDP; return st.PacketsOut == count })
	if st.FlowsExpired != 0 || st.FlowsTotal != 1 || st.PacketsOut != count {
		t.Errorf("stats %+v, want one flow, never expired, %d datagrams out", st, count)
	}
}

// TestUDPEviction: with MaxUDPFlows reached, a new client evicts the least
// recently active flow (not the oldest created), whose socket and
// goroutine go away.
func TestUDPEviction(t *testing.T) {
	for _, mode := range []string{"kernel", "opaque", "push"} {
		opaque := mode != "kernel"
		t.Run(mode, func(t *testing.T) {
			leakCheck(t)
			m := newManager(t, proxy.Config{})
			d := whoContainer(t, mode)
			pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::53/udp"), ctrIP, d, proxy.Options{MaxUDPFlows: 2})
			if err != nil {
				t.Fatal(err)
			}
			p := pubs[0]
			lo := netip.MustParseAddr("127.0.0.1")
			c1, c2, c3 := udpClient(t, lo), udpClient(t, lo), udpClient(t, lo)
			f1 := flowOf(t, c1, p)
			f2 := flowOf(t, c2, p)
			withFlows := runtime.NumGoroutine()
			f3 := flowOf(t, c3, p) // evicts c1's, the least recent
			st := m.Stats().UDP
			if st.FlowsEvicted != 1 || st.FlowsActive != 2 {
				t.Errorf("stats %+v, want 1 evicted and 2 active", st)
			}
			if !opaque {
				if err := canBind(proxy.UDP, f1); err != nil {
					t.Errorf("the evicted flow's socket %s is still held: %v", f1, err)
				}
			} else if !waitFor(ioTimeout, func() bool { return d.Open() == 2 }) {
				t.Errorf("%d container conns open, want 2", d.Open())
			}

			// c2 is refreshed, so c1's return evicts c3's (created after c2's).
			if f := flowOf(t, c2, p); f != f2 {
				t.Errorf("c2's flow changed from %s to %s, want it kept", f2, f)
			}
			flowOf(t, c1, p)
			if f := flowOf(t, c2, p); f != f2 {
				t.Errorf("c1's return evicted c2's flow (now %s), want c3's, the least recent", f)
			}
			if f := flowOf(t, c3, p); f == f3 && !opaque {
				t.Errorf("c3's flow %s survived, want it evicted", f)
			}
			if st := m.Stats().UDP; st.FlowsEvicted != 3 || st.FlowsActive != 2 || st.FlowsTotal != 5 {
				t.Errorf("stats %+v, want 3 evicted, 2 active, 5 in all", st)
			}

			// Many evictions leave the goroutine count where it was.
			for range 20 {
				flowOf(t, udpClient(t, lo), p)
			}
			if err := waitGoroutines(withFlows, ioTimeout); err != nil {
				t.Errorf("after 20 evictions: %v", err)
			}
		})
	}
}

// TestUDPContainerPortClosed: datagrams to a closed container port (ICMP
// port unreachable comes back) keep one flow, which then expires; a dial
// that fails is counted and the binding keeps serving.
func TestUDPContainerPortClosed(t *testing.T) {
	leakCheck(t)
	closed := func() netip.AddrPort {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).AddrPort()
	}()
	m := newManager(t, proxy.Config{UDPTimeout: 200 * time.Millisecond})
	d := &proxytest.Loopback{Redirect: redirect(nil, map[uint16]netip.AddrPort{53: closed})}
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::53/udp"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := udpClient(t, netip.MustParseAddr("127.0.0.1"))
	for range 5 {
		c.WriteToUDPAddrPort([]byte("anyone?"), clientAddr(pubs[0]))
		time.Sleep(10 * time.Millisecond)
	}
	if !waitFor(ioTimeout, func() bool { st := m.Stats().UDP; return st.FlowsExpired == 1 && st.FlowsActive == 0 }) {
		t.Fatalf("stats %+v, want the one flow expired", m.Stats().UDP)
	}
	if st := m.Stats().UDP; st.FlowsTotal != 1 || st.PacketsIn != 5 {
		t.Errorf("stats %+v, want 1 flow carrying 5 datagrams", st)
	}

	// A target the dialer refuses: the datagram is dropped and counted.
	bad, err := m.Publish("web/a", mapping(t, "127.0.0.1::54/udp"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.WriteToUDPAddrPort([]byte("anyone?"), clientAddr(bad[0]))
	if !waitFor(ioTimeout, func() bool { st := m.Stats().UDP; return st.FlowsRefused == 1 && st.Dropped == 1 }) {
		t.Errorf("stats %+v, want 1 refused and 1 dropped", m.Stats().UDP)
	}
}

// TestUDPBatches: a busy binding switches to batched reads (recvmmsg) and,
// towards a kernel socket, batched writes (sendmmsg); every datagram still
// arrives, whole, in order, from two clients whose datagrams interleave,
// over IPv4 and IPv6, and the replies come back.
func TestUDPBatches(t *testing.T) {
	for _, c := range []struct {
		name     string
		opaque   bool
		host, to string
	}{{"kernel", false, "127.0.0.1", "udp4"}, {"generic", true, "127.0.0.1", "udp4"}, {"kernel6", false, "::1", "udp6"}} {
		t.Run(c.name, func(t *testing.T) {
			leakCheck(t)
			type rec struct {
				from netip.AddrPort
				seq  int
			}
			got := make(chan rec, 8192)
			srv := serveUDP(t, c.to, net.JoinHostPort(c.host, "0"), func(pc *net.UDPConn, p []byte, from netip.AddrPort) {
				var seq int
				fmt.Sscanf(string(p), "seq %d", &seq)
				if len(p) != 1000 {
					seq = -1 // cut or merged
				}
				got <- rec{from, seq}
				pc.WriteToUDPAddrPort(p[:8], from)
			})
			d := &proxytest.Loopback{Opaque: c.opaque, Redirect: redirect(nil, map[uint16]netip.AddrPort{53: srv})}
			m := newManager(t, proxy.Config{})
			pubs, err := m.Publish("web/a", mapping(t, fmt.Sprintf("[%s]::53/udp", c.host)), ctrIP, d, proxy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			dst := clientAddr(pubs[0])
			clients := []*net.UDPConn{udpClient(t, netip.MustParseAddr(c.host)), udpClient(t, netip.MustParseAddr(c.host))}
			const total, burst = 3008, 32 // well past batchAfter
			payload := make([]byte, 1000)
			last := map[netip.AddrPort]int{}
			for i := 0; i < total; i += burst {
				// A burst arrives back to back: the reader takes it in
				// batches. Waiting for it before the next keeps every
				// socket buffer far from full, so nothing may be lost.
				for k := i; k < i+burst; k++ {
					copy(payload, fmt.Sprintf("seq %d ", k))
					if _, err := clients[(k/16)%2].WriteToUDPAddrPort(payload, dst); err != nil {
						t.Fatal(err)
					}
				}
				for k := 0; k < burst; k++ {
					select {
					case r := <-got:
						if prev, ok := last[r.from]; r.seq < 0 || (ok && r.seq <= prev) {
							t.Fatalf("datagram %d from flow %s damaged or out of order (after %d)", r.seq, r.from, prev)
						}
						last[r.from] = r.seq
					case <-time.After(ioTimeout):
						t.Fatalf("burst at %d: %d of %d datagrams arrived (stats %+v)", i, k, burst, m.Stats().UDP)
					}
				}
			}
			if len(last) != 2 {
				t.Errorf("%d flows reached the container, want 2", len(last))
			}
			for _, cl := range clients {
				cl.SetReadDeadline(time.Now().Add(ioTimeout))
				buf := make([]byte, 64)
				if n, err := cl.Read(buf); err != nil || n != 8 {
					t.Errorf("reply: %d bytes, %v", n, err)
				}
			}
		})
	}
}
