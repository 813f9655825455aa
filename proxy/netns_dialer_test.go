package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// container is a network namespace standing for a container: ctrIP on
// its loopback, a TCP server on portNetns that answers each line with the
// address it sees the connection come from, one on portNetns+1 that reads
// to EOF and then replies with 4 MiB, and a UDP server on portNetns that
// answers with the datagram's source. Nothing listens on portNetns+2.
type container struct {
	ns    *netnstest.NS
	reply []byte // what the EOF server sends
}

func newContainer(t testing.TB) *container {
	t.Helper()
	ns := netnstest.New(t) // skips where namespaces cannot be made
	ns.MustRun("ip", "addr", "add", ctrIP.String()+"/32", "dev", "lo")
	c := &container{ns: ns, reply: pattern(4<<20, 9)}

	ln, err := ns.Listen(fmt.Sprintf("0.0.0.0:%d", portNetns))
	if err != nil {
		t.Fatal(err)
	}
	serveListener(t, ln, func(conn net.Conn) {
		greeter("ns saw " + conn.RemoteAddr().String())(conn)
	})
	ln2, err := ns.Listen(fmt.Sprintf("0.0.0.0:%d", portNetns+1))
	if err != nil {
		t.Fatal(err)
	}
	serveListener(t, ln2, func(conn net.Conn) {
		io.Copy(io.Discard, conn)
		conn.Write(c.reply)
	})
	pc, err := ns.ListenPacket(fmt.Sprintf("0.0.0.0:%d", portNetns))
	if err != nil {
		t.Fatal(err)
	}
	serveUDPConn(t, pc.(*net.UDPConn), func(pc *net.UDPConn, _ []byte, from netip.AddrPort) {
		src := netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) // the socket is dual-stack
		pc.WriteToUDPAddrPort([]byte("ns saw "+src.String()), from)
	})
	return c
}

// netnsCase is one part of TestNetnsDialer: a Manager with a NetnsDialer
// of its own into ctr.
type netnsCase struct {
	ctr *container
	nd  proxy.NetnsDialer
	m   *proxy.Manager
}

func (nc netnsCase) target(port uint16) netip.AddrPort { return netip.AddrPortFrom(ctrIP, port) }

// publish publishes spec for owner through nc.nd (or d, if given).
func (nc netnsCase) publish(t *testing.T, owner, spec string, d proxy.Dialer) []proxy.Published {
	t.Helper()
	if d == nil {
		d = nc.nd
	}
	pubs, err := nc.m.Publish(owner, mapping(t, spec), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return pubs
}

// TestNetnsDialer publishes ports of a namespace through a Manager's
// NetnsDialer and checks that the sockets live in the namespace, relay
// both protocols (TCP with half-close), and fail as a client expects.
func TestNetnsDialer(t *testing.T) {
	leakCheck(t)
	ctr := newContainer(t)
	m := newManager(t, proxy.Config{})
	nc := netnsCase{ctr: ctr, nd: m.NetnsDialer(ctr.ns.Path), m: m}

	// The servers are in the namespace only: the host has no such ports.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", portNetns), ioTimeout); err == nil {
		c.Close()
		t.Fatalf("the host itself answers on 127.0.0.1:%d; the test needs that port free", portNetns)
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T, netnsCase)
	}{
		{"tcp", testNetnsTCP},
		{"conn type", testNetnsConnType},
		{"half-close", testNetnsHalfClose},
		{"udp", testNetnsUDP},
		{"refused", testNetnsRefused},
		{"no namespace", testNetnsMissing},
		{"timeout", testNetnsTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, nc) })
	}
}

func testNetnsTCP(t *testing.T, nc netnsCase) {
	pubs := nc.publish(t, "ns/a", fmt.Sprintf("127.0.0.1::%d", portNetns), nil)
	reply, _ := tcpHello(t, clientAddr(pubs[0]), netip.Addr{})
	// The container sees its own address as the source (documented).
	if !strings.HasPrefix(reply, "ns saw "+ctrIP.String()+":") {
		t.Errorf("reply %q, want the server in the namespace seeing %s", reply, ctrIP)
	}
}

func testNetnsConnType(t *testing.T, nc netnsCase) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := nc.nd.DialTCP(ctx, netip.MustParseAddrPort("192.0.2.1:1234"), nc.target(portNetns))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("DialTCP returned %T, want *net.TCPConn so that the relay splices", c)
	}
	if tc.RemoteAddr().String() != nc.target(portNetns).String() || !strings.HasPrefix(tc.LocalAddr().String(), ctrIP.String()+":") {
		t.Errorf("conn %s -> %s, want %s -> %s", tc.LocalAddr(), tc.RemoteAddr(), ctrIP, nc.target(portNetns))
	}
	u, err := nc.nd.DialUDP(ctx, netip.AddrPort{}, nc.target(portNetns))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, ok := u.(*net.UDPConn); !ok {
		t.Errorf("DialUDP returned %T, want *net.UDPConn", u)
	}
}

func testNetnsHalfClose(t *testing.T, nc netnsCase) {
	pubs := nc.publish(t, "ns/a", fmt.Sprintf("127.0.0.1::%d", portNetns+1), nil)
	c := dialPub(t, pubs[0])
	c.Write(pattern(1<<20, 1))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, nc.ctr.reply) {
		t.Errorf("after CloseWrite the client read %d bytes, %v; want the %d-byte reply", len(got), err, len(nc.ctr.reply))
	}
}

func testNetnsUDP(t *testing.T, nc netnsCase) {
	for _, p := range nc.publish(t, "ns/a", fmt.Sprintf("%d/udp", portNetns), nil) {
		c := udpClient(t, clientAddr(p).Addr())
		reply, from := udpAsk(t, c, clientAddr(p), "hi")
		if !strings.HasPrefix(reply, "ns saw "+ctrIP.String()+":") || from != clientAddr(p) {
			t.Errorf("via %s: reply %q from %s, want the namespace's server, from %s", clientAddr(p), reply, from, clientAddr(p))
		}
	}
}

func testNetnsRefused(t *testing.T, nc netnsCase) {
	pubs := nc.publish(t, "ns/a", fmt.Sprintf("127.0.0.1::%d", portNetns+2), nil)
	expectReset(t, clientAddr(pubs[0]))
	_, err := nc.nd.DialTCP(context.Background(), netip.AddrPort{}, nc.target(portNetns+2))
	want := fmt.Sprintf("netns %s: dial tcp %s: connect: connection refused", nc.ctr.ns.Path, nc.target(portNetns+2))
	if !errors.Is(err, syscall.ECONNREFUSED) || err.Error() != want {
		t.Errorf("DialTCP to a closed port: %v, want %q", err, want)
	}
}

// testNetnsMissing also covers a NetnsDialer made by hand, without pools.
func testNetnsMissing(t *testing.T, nc netnsCase) {
	missing := proxy.NetnsDialer{NetNS: "/var/run/netns/" + netnstest.Prefix + "missing"}
	_, err := missing.DialTCP(context.Background(), netip.AddrPort{}, nc.target(portNetns))
	if err == nil || !strings.Contains(err.Error(), missing.NetNS) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DialTCP in a missing namespace: %v, want an error naming %s", err, missing.NetNS)
	}
	pubs := nc.publish(t, "ns/b", fmt.Sprintf("127.0.0.1::%d", portNetns), missing)
	expectReset(t, clientAddr(pubs[0]))
}

func testNetnsTimeout(t *testing.T, nc netnsCase) {
	// Routed to the loopback but not local: a SYN to this subnet comes
	// back in, is not for this host, and is dropped unanswered.
	nc.ctr.ns.MustRun("ip", "route", "add", "10.99.9.0/24", "dev", "lo")
	dst := netip.MustParseAddrPort("10.99.9.9:80")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := nc.nd.DialTCP(ctx, netip.AddrPort{}, dst)
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
		t.Errorf("DialTCP to a silent address: %v after %v, want a deadline error after about 200ms", err, took)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = nc.nd.DialTCP(ctx, netip.AddrPort{}, dst)
	if took := time.Since(start); !errors.Is(err, context.Canceled) || took > 2*time.Second {
		t.Errorf("DialTCP cancelled: %v after %v, want context.Canceled after about 100ms", err, took)
	}
}

// BenchmarkNetnsRelay measures throughput from a host client to a server
// in a namespace through NetnsDialer: kernel sockets on both sides, so
// the relay splices.
func BenchmarkNetnsRelay(b *testing.B) {
	ns := netnstest.New(b)
	done := make(chan int64, 1)
	ln, err := ns.Listen("127.0.0.1:80")
	if err != nil {
		b.Fatal(err)
	}
	serveListener(b, ln, func(c net.Conn) {
		n, _ := io.CopyBuffer(io.Discard, readerOnly{c}, make([]byte, 256<<10))
		done <- n
	})
	m := benchManager(b)
	pubs, err := m.Publish("bench/ns", mapping(b, "127.0.0.1::80"), netip.MustParseAddr("127.0.0.1"),
		m.NetnsDialer(ns.Path), proxy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pushBulk(b, clientAddr(pubs[0]), done)
}

type readerOnly struct{ io.Reader }

// TestNetnsDialerPool checks that a Manager's NetnsDialer enters a
// namespace once per batch of sockets, not once per connection; that an
// unused pool closes (a pooled socket keeps its namespace alive); that
// when the path comes to name another namespace, dials go to the new one;
// and that Close empties the pools, after which dials still work.
func TestNetnsDialerPool(t *testing.T) {
	ctr := newContainer(t)
	m := newManager(t, proxy.Config{NetnsPoolIdle: 300 * time.Millisecond})
	second := netnstest.New(t)
	second.MustRun("ip", "addr", "add", ctrIP.String()+"/32", "dev", "lo")
	ln, err := second.Listen(fmt.Sprintf("0.0.0.0:%d", portNetns))
	if err != nil {
		t.Fatal(err)
	}
	serveListener(t, ln, greeter("second"))

	// A path of our own, to re-point at the second namespace.
	link := t.TempDir() + "/ns"
	if err := os.Symlink(ctr.ns.Path, link); err != nil {
		t.Fatal(err)
	}
	nd := m.NetnsDialer(link)
	dst := netip.AddrPortFrom(ctrIP, portNetns)
	ask := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		c, err := nd.DialTCP(ctx, netip.AddrPort{}, dst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		return line
	}

	const dials = 25
	before := m.Stats().Netns.Entries
	for range dials {
		if got := ask(); !strings.HasPrefix(got, "ns saw ") {
			t.Fatalf("reply %q, want one from the first namespace (\"ns saw …\")", got)
		}
	}
	want := uint64((dials + proxy.SocketBatch - 1) / proxy.SocketBatch)
	if n := m.Stats().Netns.Entries - before; n != want || n >= dials {
		t.Errorf("%d dials entered the namespace %d times, want %d (one per batch of %d) and fewer than one per dial", dials, n, want, proxy.SocketBatch)
	}
	if !waitFor(5*time.Second, func() bool { return m.Stats().Netns.Pooled == 0 }) {
		t.Errorf("the idle pool still holds %d sockets after 5 s (idle time 300 ms)", m.Stats().Netns.Pooled)
	}

	ask() // fills the pool again
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(second.Path, link); err != nil {
		t.Fatal(err)
	}
	if got := ask(); !strings.HasPrefix(got, "second: ") {
		t.Fatalf("after re-pointing the path, reply %q, want one from the second namespace (\"second: …\")", got)
	}

	if n := m.Stats().Netns.Pooled; n != proxy.SocketBatch-1 {
		t.Fatalf("the pool holds %d sockets after a fresh batch, want %d", n, proxy.SocketBatch-1)
	}
	m.Close()
	if n := m.Stats().Netns.Pooled; n != 0 {
		t.Errorf("the pools hold %d sockets after Close, want none", n)
	}
	entries := m.Stats().Netns.Entries
	if got := ask(); !strings.HasPrefix(got, "second: ") {
		t.Errorf("after Close, reply %q, want one from the second namespace", got)
	}
	if m.Stats().Netns.Pooled != 0 || m.Stats().Netns.Entries != entries+1 {
		t.Errorf("after Close a dial left %+v, want one more entry (from %d) and nothing pooled", m.Stats().Netns, entries)
	}
}
