package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// The test doubles satisfy the interface the Manager takes.
var (
	_ proxy.Dialer = (*proxytest.Loopback)(nil)
	_ proxy.Dialer = proxytest.Blackhole{}
)

// Host ports the tests publish on explicitly, below the usual ephemeral
// range (32768-60999) so that no client socket of this or a concurrent
// test binary takes them, and away from well-known services. Each test
// uses its own block of ten or so.
const (
	portForms    = 21000 // 21000-21002, 21010-21020, 21080-21082
	portErrors   = 21200
	portUDP      = 21300
	portHot      = 21400
	portNetns    = 21500
	portRange    = 21600
	portUnpub    = 21700
	portLifetime = 21800
)

// ctrIP is the fake container address the tests publish to; Redirect in
// the loopback dialer turns it into the address of a test server.
var ctrIP = netip.MustParseAddr("10.99.0.2")

// ioTimeout bounds every client read and write in these tests.
const ioTimeout = 10 * time.Second

// leakCheck fails the test if, when it ends (after every cleanup
// registered later, so call it first), more goroutines are running than
// when it was called. It polls for up to five seconds.
func leakCheck(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		if err := waitGoroutines(base, 5*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// waitGoroutines polls until at most n goroutines run, or fails with a
// dump of every stack.
func waitGoroutines(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("goroutine leak: %d goroutines running, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// waitFor polls cond every few milliseconds until it holds or timeout
// passes, and reports whether it held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// newManager returns a Manager logging to the test, closed at cleanup.
func newManager(t testing.TB, cfg proxy.Config) *proxy.Manager {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	m := proxy.NewManager(cfg)
	t.Cleanup(func() { m.Close() })
	return m
}

// mapping parses a -p value that gives exactly one Mapping.
func mapping(t testing.TB, spec string) proxy.Mapping {
	t.Helper()
	mps, err := proxy.ParsePublish(spec)
	if err != nil || len(mps) != 1 {
		t.Fatalf("ParsePublish(%q) = %v, %v; want one mapping", spec, mps, err)
	}
	return mps[0]
}

// redirect maps ctrIP's TCP and UDP ports to test servers.
func redirect(tcp, udp map[uint16]netip.AddrPort) func(string, netip.AddrPort) netip.AddrPort {
	return func(network string, dst netip.AddrPort) netip.AddrPort {
		ports := tcp
		if network == "udp" {
			ports = udp
		}
		if a, ok := ports[dst.Port()]; ok && dst.Addr() == ctrIP {
			return a
		}
		return dst
	}
}

// clientAddr is where a test client connects to reach p: its own address,
// or the loopback of its family for a wildcard.
func clientAddr(p proxy.Published) netip.AddrPort {
	ip := p.HostIP
	if ip.IsUnspecified() {
		ip = netip.IPv6Loopback()
		if p.HostIP.Is4() {
			ip = netip.MustParseAddr("127.0.0.1")
		}
	}
	return netip.AddrPortFrom(ip, p.HostPort)
}

// serveTCP runs a fake container port: a listener on addr whose every
// connection is handled by handle (which need not close it). Listener,
// connections and goroutines are gone at cleanup.
func serveTCP(t testing.TB, network, addr string, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return serveListener(t, ln, handle)
}

// serveListener is serveTCP on a listener made elsewhere (in a namespace).
func serveListener(t testing.TB, ln net.Listener, handle func(net.Conn)) netip.AddrPort {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetDeadline(time.Now().Add(time.Minute))
				handle(c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// greeter answers each line with "name: line".
func greeter(name string) func(net.Conn) {
	return func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if _, err := c.Write([]byte(name + ": " + sc.Text() + "\n")); err != nil {
				return
			}
		}
	}
}

// serveUDP runs a fake container UDP port on addr; handle gets each
// datagram and its source, and may reply on pc. Gone at cleanup.
func serveUDP(t testing.TB, network, addr string, handle func(pc *net.UDPConn, p []byte, from netip.AddrPort)) netip.AddrPort {
	t.Helper()
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP(network, ua)
	if err != nil {
		t.Fatal(err)
	}
	return serveUDPConn(t, pc, handle)
}

// serveUDPConn is serveUDP on a socket made elsewhere (in a namespace).
func serveUDPConn(t testing.TB, pc *net.UDPConn, handle func(pc *net.UDPConn, p []byte, from netip.AddrPort)) netip.AddrPort {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			handle(pc, buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpGreeter answers each datagram with "name: datagram".
func udpGreeter(name string) func(*net.UDPConn, []byte, netip.AddrPort) {
	return func(pc *net.UDPConn, p []byte, from netip.AddrPort) {
		pc.WriteToUDPAddrPort([]byte(name+": "+string(p)), from)
	}
}

// tcpHello connects to addr (from local, if valid), sends "hi" and returns
// the reply line and the client's own address.
func tcpHello(t testing.TB, addr netip.AddrPort, local netip.Addr) (string, netip.AddrPort) {
	t.Helper()
	d := net.Dialer{Timeout: ioTimeout}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte("hi\n")); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v (got %q)", addr, err, line)
	}
	return strings.TrimSuffix(line, "\n"), c.LocalAddr().(*net.TCPAddr).AddrPort()
}

// udpClient is an unconnected UDP socket, so that it sees the source of
// every reply.
func udpClient(t testing.TB, local netip.Addr) *net.UDPConn {
	t.Helper()
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpAsk sends msg from c to addr and returns the first reply and its
// source.
func udpAsk(t testing.TB, c *net.UDPConn, addr netip.AddrPort, msg string) (string, netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 65535)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no reply from %s to %q: %v", addr, msg, err)
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

// localUDP returns the address of c.
func localUDP(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// canBind reports whether proto can be bound on addr now, that is whether
// whoever held it has let go.
func canBind(proto proxy.Proto, addr netip.AddrPort) error {
	fam := "4"
	if addr.Addr().Is6() {
		fam = "6"
	}
	if proto == proxy.TCP {
		l, err := net.ListenTCP("tcp"+fam, net.TCPAddrFromAddrPort(addr))
		if err != nil {
			return err
		}
		return l.Close()
	}
	c, err := net.ListenUDP("udp"+fam, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	return c.Close()
}

// lastCall returns the dialer's last call for network.
func lastCall(t testing.TB, d *proxytest.Loopback, network string) proxytest.Call {
	t.Helper()
	calls := d.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Network == network {
			return calls[i]
		}
	}
	t.Fatalf("the dialer has no %s call", network)
	return proxytest.Call{}
}
