package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/net/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// hostLoopback is the virtual address containers reach the host's
// loopback through in these tests (slirp4netns's 10.0.2.2).
var hostLoopback = netip.MustParseAddr("10.0.2.2")

type egressNet struct {
	sw   *vswitch.Switch
	gw   *gateway.Gateway
	host *vnettest.Host // the "container"
	b    *vnettest.Host // a second one
}

func newEgressNet(t *testing.T, cfg gateway.Config) *egressNet {
	t.Helper()
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "web", Logger: log})
	t.Cleanup(func() { sw.Close() })
	cfg.Network = "web"
	cfg.Subnet = netip.MustParsePrefix("10.240.0.0/24")
	cfg.Addr = netip.MustParseAddr("10.240.0.1")
	cfg.MAC = vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}
	cfg.Logger = log
	gw, err := gateway.New(sw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	n := &egressNet{sw: sw, gw: gw}
	for i, h := range []**vnettest.Host{&n.host, &n.b} {
		addr := netip.AddrFrom4([4]byte{10, 240, 0, byte(2 + i)})
		host, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: fmt.Sprintf("c%d", i), Addr: netip.PrefixFrom(addr, 24), Gateway: gw.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(host.Close)
		*h = host
	}
	return n
}

// echoServer serves TCP on 127.0.0.1 and echoes one line.
func echoServer(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "from %s: ", c.RemoteAddr())
				io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

func TestEgressTCPThroughHostLoopback(t *testing.T) {
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	srv := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, srv.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.(interface{ CloseWrite() error }).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(got), "from 127.0.0.1:") || !strings.HasSuffix(string(got), "hello") {
		t.Fatalf("got %q (err %v): want the host server's echo, seen from the host's loopback", got, err)
	}
	if st := n.gw.Stats(); st.TCPTotal != 1 {
		t.Errorf("TCPTotal = %d, want 1", st.TCPTotal)
	}
}

func TestEgressHostLoopbackOffByDefault(t *testing.T) {
	n := newEgressNet(t, gateway.Config{Egress: gateway.EgressConfig{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, fmt.Errorf("dialed %s: no test may egress to a real address", addr)
	}}})
	srv := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Without --host-loopback, 10.0.2.2 is an ordinary outside address;
	// the fake dialer refuses it, so this must fail — and never reach the
	// server on 127.0.0.1.
	if c, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, srv.Port())); err == nil {
		c.Close()
		t.Fatal("reached the host's loopback without --host-loopback")
	}
}

func TestEgressRefusedIsReset(t *testing.T) {
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := netip.MustParseAddrPort(l.Addr().String()).Port()
	l.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, port))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial a closed host port: err %v, want connection refused", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("refusal took %v; the RST should come at once", time.Since(start))
	}
}

// A destination that cannot be reached is answered with ICMP host
// unreachable, and a blackholed one does not stall other flows.
func TestEgressUnreachableAndBlackhole(t *testing.T) {
	srv := echoServer(t)
	var blackholed atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch {
		case strings.HasPrefix(addr, "192.0.2.1:"): // "no route"
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.EHOSTUNREACH}
		case strings.HasPrefix(addr, "192.0.2.2:"): // blackhole: SYNs vanish
			blackholed.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		case strings.HasPrefix(addr, "192.0.2.3:"): // stands for a live server
			var d net.Dialer
			return d.DialContext(ctx, network, srv.String())
		}
		return nil, fmt.Errorf("dialed %s: no test may egress to a real address", addr)
	}
	n := newEgressNet(t, gateway.Config{Egress: gateway.EgressConfig{Dial: dial, DialTimeout: 3 * time.Second, MaxTCPInFlight: 8}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := n.host.DialTCP(ctx, netip.MustParseAddrPort("192.0.2.1:80"))
	if err == nil || !(strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "no route")) {
		t.Fatalf("dial an unreachable host: err %v, want host unreachable", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("unreachable reported after %v; the ICMP error should come at once", time.Since(start))
	}

	// Four connections to a blackhole hang; a fifth to a live server goes
	// through meanwhile.
	for i := 0; i < 4; i++ {
		go func() {
			c, err := n.host.DialTCP(ctx, netip.MustParseAddrPort("192.0.2.2:80"))
			if err == nil {
				c.Close()
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for blackholed.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	live, cancelLive := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelLive()
	c, err := n.b.DialTCP(live, netip.MustParseAddrPort("192.0.2.3:80"))
	if err != nil {
		t.Fatalf("a live destination was stalled by blackholed ones: %v", err)
	}
	c.Close()
}

func TestEgressUDPAndPortUnreachable(t *testing.T) {
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	port := udpEcho(t, "echo ").Port()
	c, err := n.host.DialUDP(netip.AddrPortFrom(hostLoopback, port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	k, err := c.Read(buf)
	if err != nil || string(buf[:k]) != "echo ping" {
		t.Fatalf("UDP reply %q (err %v), want %q", buf[:k], err, "echo ping")
	}

	// A closed port: the host socket is refused and the container is sent
	// ICMP port unreachable from the address it wrote to, quoting its
	// datagram's ports. (gVisor's UDP sockets, which stand in for the
	// container here, do not report it on read; Linux's do, as the e2e
	// tests check.)
	closed, _ := net.ListenPacket("udp", "127.0.0.1:0")
	cport := netip.MustParseAddrPort(closed.LocalAddr().String()).Port()
	closed.Close()
	var icmpErrs atomic.Int32
	c2, err := n.host.DialUDP(netip.AddrPortFrom(hostLoopback, cport))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	localPort := netip.MustParseAddrPort(c2.LocalAddr().String()).Port()
	n.host.Link().SetCapture(func(d vswitch.Direction, f vswitch.Frame) {
		b := f.Data
		if d != vswitch.DirTX || len(b) < 14+20+8+28 || b[23] != 1 {
			return
		}
		ip := header.IPv4(b[14:])
		icmp := header.ICMPv4(ip.Payload())
		quoted := header.UDP(icmp.Payload()[20:])
		if ip.SourceAddress().String() == hostLoopback.String() && icmp.Type() == header.ICMPv4DstUnreachable &&
			icmp.Code() == header.ICMPv4PortUnreachable && quoted.SourcePort() == localPort && quoted.DestinationPort() == cport {
			icmpErrs.Add(1)
		}
	})
	for i := 0; i < 20 && icmpErrs.Load() == 0; i++ {
		c2.Write([]byte("anyone?"))
		time.Sleep(50 * time.Millisecond)
	}
	if icmpErrs.Load() == 0 {
		t.Fatalf("no ICMP port unreachable reached the container (stats %+v)", n.gw.Stats())
	}
}

// Pinging the host loopback goes out through a host ICMP socket and the
// reply comes from the address the container pinged.
func TestEgressPing(t *testing.T) {
	if c, err := icmp.ListenPacket("udp4", "127.0.0.1"); err == nil {
		c.Close()
	} else if c, err := icmp.ListenPacket("ip4:icmp", "127.0.0.1"); err == nil {
		c.Close()
	} else {
		t.Skipf("skipping: this process may open no ICMP socket (ping_group_range excludes it and it lacks CAP_NET_RAW): %v", err)
	}
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.host.Ping(ctx, hostLoopback); err != nil {
		t.Fatal(err)
	}
	if st := n.gw.Stats(); st.ICMPEchoes == 0 || st.ICMPReplies == 0 {
		t.Errorf("echo counters %d/%d, want both > 0", st.ICMPEchoes, st.ICMPReplies)
	}
}

// An internal network has no egress: connections are refused and pings
// unanswered, while the gateway itself still answers.
func TestInternalHasNoEgress(t *testing.T) {
	n := newEgressNet(t, gateway.Config{Internal: true, HostLoopback: hostLoopback})
	srv := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if c, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, srv.Port())); err == nil {
		c.Close()
		t.Fatal("an internal network reached the host")
	}
	if _, err := n.host.Ping(ctx, n.gw.Addr()); err != nil {
		t.Fatalf("the gateway of an internal network does not answer ping: %v", err)
	}
}

// The gateway must not answer ARP for addresses that are not its own:
// spoofing makes its netstack think every address is local.
func TestGatewayAnswersARPOnlyForItself(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	var foreign atomic.Int32
	n.gw.Link().SetCapture(func(d vswitch.Direction, f vswitch.Frame) {
		b := f.Data
		if d == vswitch.DirRX && len(b) >= 42 && b[12] == 0x08 && b[13] == 0x06 && b[21] == 2 && // ARP reply
			netip.AddrFrom4([4]byte(b[28:32])) != n.gw.Addr() {
			foreign.Add(1)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.host.Ping(ctx, n.b.Addr()); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	if _, err := n.host.Ping(short, netip.MustParseAddr("10.240.0.99")); err == nil {
		t.Fatal("an absent address answered ping")
	}
	if foreign.Load() != 0 {
		t.Fatalf("the gateway sent %d ARP replies for addresses not its own", foreign.Load())
	}
}

// A reset crosses an egress flow both ways, as the kernel's NAT passes an
// RST through: the host server's reset fails the container's read, and the
// container's reset fails the host server's.
func TestEgressResetsCross(t *testing.T) {
	n := newEgressNet(t, gateway.Config{HostLoopback: hostLoopback})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := netip.MustParseAddrPort(l.Addr().String()).Port()
	serverReads := make(chan error, 1)
	accept := func(resetFirst bool) {
		c, err := l.Accept()
		if err != nil {
			serverReads <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
			serverReads <- fmt.Errorf("reading the greeting: %w", err)
			return
		}
		if resetFirst {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		c.Write([]byte("ab"))
		_, err = c.Read(make([]byte, 1))
		serverReads <- err
	}
	dial := func() net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, port))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		return c
	}

	// The host server resets.
	go accept(true)
	c := dial()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	c.Close()
	if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "reset") {
		t.Errorf("after the host server's reset the container read %v, want a connection reset", err)
	}

	// The container resets: it closes with "b" still unread, which a TCP
	// stack answers with a RST.
	go accept(false)
	c = dial()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case err := <-serverReads:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("after the container's reset the host server read %v, want ECONNRESET", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host server saw nothing of the container's reset")
	}
}
