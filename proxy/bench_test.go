package proxy_test

import (
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// benchManager is a Manager that logs nothing, closed at cleanup.
func benchManager(b *testing.B) *proxy.Manager {
	return newManager(b, proxy.Config{Logger: zap.NewNop()})
}

// benchTarget returns the address to connect to for mode: the server
// itself ("direct"), or a binding to it through the loopback dialer, with
// the container conn raw (splice) or hidden (buffered copy).
func benchTarget(b *testing.B, mode string, spec string, tcp, udp netip.AddrPort) netip.AddrPort {
	b.Helper()
	if mode == "direct" {
		if tcp.IsValid() {
			return tcp
		}
		return udp
	}
	m := benchManager(b)
	d := &proxytest.Loopback{
		Opaque:   mode == "buffered" || mode == "opaque",
		Redirect: redirect(map[uint16]netip.AddrPort{80: tcp}, map[uint16]netip.AddrPort{80: udp}),
	}
	pubs, err := m.Publish("bench/a", mapping(b, spec), ctrIP, d, proxy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return clientAddr(pubs[0])
}

// BenchmarkTCPRelay measures one-way throughput over loopback: directly,
// through a binding that splices (kernel sockets on both sides), and
// through one that copies via pooled buffers (a non-TCPConn container
// side, as with the netstack).
func BenchmarkTCPRelay(b *testing.B) {
	for _, mode := range []string{"direct", "splice", "buffered"} {
		b.Run(mode, func(b *testing.B) {
			done := make(chan int64, 1)
			sink := serveTCP(b, "tcp4", "127.0.0.1:0", func(c net.Conn) {
				buf := make([]byte, 256<<10)
				var n int64
				for {
					k, err := c.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				done <- n
			})
			to := benchTarget(b, mode, "127.0.0.1::80", sink, netip.AddrPort{})
			pushBulk(b, to, done)
		})
	}
}

// pushBulk writes b.N chunks of 256 KiB to addr, half-closes, checks that
// the sink reports every byte on done, and reports the CPU time of the
// whole process (client, relay, sink) per MiB.
func pushBulk(b *testing.B, addr netip.AddrPort, done <-chan int64) {
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 256<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case n := <-done:
		if n != int64(b.N)*int64(len(chunk)) {
			b.Fatalf("the sink got %d bytes, want %d", n, int64(b.N)*int64(len(chunk)))
		}
	case <-time.After(time.Minute):
		b.Fatal("the sink never got EOF")
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(float64(b.N)*float64(len(chunk))/(1<<20)), "cpu-ms/MiB")
}

// BenchmarkTCPConnect measures a whole short connection per op: connect,
// one request byte, one reply byte, close; through a binding, the accept,
// the dial to the container and both closes are in it.
func BenchmarkTCPConnect(b *testing.B) {
	for _, mode := range []string{"direct", "splice"} {
		b.Run(mode, func(b *testing.B) {
			srv := serveTCP(b, "tcp4", "127.0.0.1:0", func(c net.Conn) {
				buf := make([]byte, 1)
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(buf)
				}
			})
			to := benchTarget(b, mode, "127.0.0.1::80", srv, netip.AddrPort{}).String()
			buf := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := net.Dial("tcp", to)
				if err != nil {
					b.Fatal(err)
				}
				c.Write(buf)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkUDPRequestResponse measures one 64-byte datagram each way per
// op: directly, through a binding on 127.0.0.1 with a kernel flow socket,
// the same on a wildcard address (replies carry IP_PKTINFO), and with a
// non-kernel flow conn.
func BenchmarkUDPRequestResponse(b *testing.B) {
	modes := []struct{ name, spec string }{
		{"direct", ""},
		{"kernel", "127.0.0.1::80/udp"},
		{"kernel-wildcard", "0.0.0.0::80/udp"},
		{"opaque", "127.0.0.1::80/udp"},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			echo := serveUDP(b, "udp4", "127.0.0.1:0", func(pc *net.UDPConn, p []byte, from netip.AddrPort) {
				pc.WriteToUDPAddrPort(p, from)
			})
			to := benchTarget(b, mode.name, mode.spec, netip.AddrPort{}, echo)
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(clientLoopback(to)))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, buf := make([]byte, 64), make([]byte, 2048)
			c.SetDeadline(time.Now().Add(time.Minute))
			b.SetBytes(int64(2 * len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clientLoopback replaces a wildcard address with 127.0.0.1.
func clientLoopback(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().IsUnspecified() {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	}
	return ap
}
