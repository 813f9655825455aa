package proxy_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// relayModes are the two copy paths of the TCP relay: splice between two
// kernel sockets, and the pooled-buffer copy used when the container side
// is anything else (a netstack conn).
var relayModes = []struct {
	name   string
	opaque bool
}{
	{"splice", false},
	{"buffered", true},
}

// publishTo publishes 127.0.0.1::80 for "web/a" to a single TCP server
// (handle) through a loopback dialer and returns the client address.
func publishTo(t *testing.T, m *proxy.Manager, d *proxytest.Loopback, handle func(net.Conn)) proxy.Published {
	t.Helper()
	srv := serveTCP(t, "tcp4", "127.0.0.1:0", handle)
	if d.Redirect == nil {
		d.Redirect = redirect(map[uint16]netip.AddrPort{80: srv}, nil)
	}
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return pubs[0]
}

func dialPub(t testing.TB, p proxy.Published) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", clientAddr(p).String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c.(*net.TCPConn)
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// TestHalfCloseFromClient: the client sends a request and shuts down its
// write side; the container reads to EOF, then sends a large reply; the
// client gets all of it, then EOF. Byte counters match what crossed.
func TestHalfCloseFromClient(t *testing.T) {
	for _, mode := range relayModes {
		t.Run(mode.name, func(t *testing.T) {
			leakCheck(t)
			m := newManager(t, proxy.Config{})
			request, reply := pattern(1<<20, 1), pattern(4<<20, 2)
			got := make(chan []byte, 1)
			p := publishTo(t, m, &proxytest.Loopback{Opaque: mode.opaque}, func(c net.Conn) {
				b, _ := io.ReadAll(c) // until the client's EOF
				got <- b
				c.Write(reply)
			})
			c := dialPub(t, p)
			if _, err := c.Write(request); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading the reply after CloseWrite: %v (got %d of %d bytes)", err, len(back), len(reply))
			}
			if !bytes.Equal(back, reply) {
				t.Errorf("client got %d bytes, want the %d-byte reply intact", len(back), len(reply))
			}
			if b := <-got; !bytes.Equal(b, request) {
				t.Errorf("container got %d bytes before EOF, want the %d-byte request", len(b), len(request))
			}
			c.Close()
			var st proxy.TCPStats
			if !waitFor(ioTimeout, func() bool { st = m.Stats().TCP; return st.Active == 0 }) {
				t.Fatalf("connection still active after both sides closed: %+v", st)
			}
			want := proxy.TCPStats{Total: 1, BytesIn: uint64(len(request)), BytesOut: uint64(len(reply))}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
}

// TestHalfCloseFromContainer: the container sends a greeting and shuts
// down its write side; the client sees EOF, and can still send a request
// that the container reads whole.
func TestHalfCloseFromContainer(t *testing.T) {
	for _, mode := range relayModes {
		t.Run(mode.name, func(t *testing.T) {
			leakCheck(t)
			m := newManager(t, proxy.Config{})
			greeting, request := []byte("220 ready, say something\n"), pattern(2<<20, 3)
			got := make(chan []byte, 1)
			p := publishTo(t, m, &proxytest.Loopback{Opaque: mode.opaque}, func(c net.Conn) {
				c.Write(greeting)
				c.(*net.TCPConn).CloseWrite()
				b, _ := io.ReadAll(c)
				got <- b
			})
			c := dialPub(t, p)
			g, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(g, greeting) {
				t.Fatalf("client read %q, %v; want the greeting then EOF", g, err)
			}
			if _, err := c.Write(request); err != nil {
				t.Fatalf("writing after the container's EOF: %v", err)
			}
			c.CloseWrite()
			select {
			case b := <-got:
				if !bytes.Equal(b, request) {
					t.Errorf("container got %d bytes, want the %d-byte request", len(b), len(request))
				}
			case <-time.After(ioTimeout):
				t.Fatal("the container never got the client's EOF")
			}
		})
	}
}

// TestNoCloseWrite: with a container conn that cannot be half-closed, the
// relay closes it when the client stops sending (the Dialer contract), and
// the client gets a clean EOF, not a reset.
func TestNoCloseWrite(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := &proxytest.Loopback{Opaque: true, NoCloseWrite: true}
	got := make(chan []byte, 1)
	p := publishTo(t, m, d, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
	})
	c := dialPub(t, p)
	c.Write([]byte("bye"))
	c.CloseWrite()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("client read %q, %v; want a clean EOF", b, err)
	}
	if b := <-got; string(b) != "bye" {
		t.Errorf("container got %q, want %q", b, "bye")
	}
	if !waitFor(ioTimeout, func() bool { return d.Open() == 0 }) {
		t.Errorf("%d container conns left open", d.Open())
	}
}

// TestResetWhenDialFails: when the container cannot be reached (port
// closed, or no answer within DialTimeout) the client's connection is
// reset, promptly: its read fails with ECONNRESET, not EOF and not a hang.
func TestResetWhenDialFails(t *testing.T) {
	closed := func() netip.AddrPort {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).AddrPort()
	}()
	tests := []struct {
		name    string
		d       proxy.Dialer
		timeout time.Duration
	}{
		{"refused", &proxytest.Loopback{Redirect: redirect(map[uint16]netip.AddrPort{80: closed}, nil)}, 0},
		{"timeout", proxytest.Blackhole{}, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakCheck(t)
			m := newManager(t, proxy.Config{DialTimeout: tt.timeout})
			pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, tt.d, proxy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			expectReset(t, clientAddr(pubs[0]))
			took := time.Since(start)
			if took > tt.timeout+2*time.Second {
				t.Errorf("the reset took %v, want about the dial time (%v)", took, tt.timeout)
			}
			if !waitFor(ioTimeout, func() bool { st := m.Stats().TCP; return st.Refused == 1 && st.Active == 0 }) {
				t.Errorf("stats %+v, want 1 refused and none active", m.Stats().TCP)
			}
			t.Logf("reset after %v", took)
		})
	}
}

// expectReset connects to addr and fails the test unless the connection
// is reset, promptly: the connect or the first read fails with
// ECONNRESET, not EOF and not a timeout. (The connect itself can see the
// reset when the proxy's dial fails before the client's connect call has
// collected the handshake's result.)
func expectReset(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connect to %s: %v, want success or ECONNRESET", addr, err)
		}
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read from %s = %d, %v; want ECONNRESET", addr, n, err)
	}
}

// TestDialerGetsClientAddress: the src passed to the Dialer is the
// client's own address, here one other than 127.0.0.1, for TCP and UDP.
func TestDialerGetsClientAddress(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80)
	local := netip.MustParseAddr("127.0.0.7")
	for _, spec := range []string{"127.0.0.1::80", "127.0.0.1::80/udp"} {
		pubs, err := m.Publish("web/a", mapping(t, spec), ctrIP, d, proxy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := pubs[0]
		var client netip.AddrPort
		network := "tcp"
		if p.Proto == proxy.TCP {
			_, client = tcpHello(t, clientAddr(p), local)
		} else {
			network = "udp"
			c := udpClient(t, local)
			udpAsk(t, c, clientAddr(p), "hi")
			client = localUDP(c)
		}
		if call := lastCall(t, d, network); call.Src != client || client.Addr() != local {
			t.Errorf("%s: dialer got src %s, want the client's %s", spec, call.Src, client)
		}
	}
}

// TestHotPublishWhileTransferring: while one binding carries a continuous
// checksummed transfer, others are published, used and unpublished over
// and over; the transfer neither stalls nor errors, and arrives intact.
func TestHotPublishWhileTransferring(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 81)
	sums := make(chan [32]byte, 1)
	sink := serveTCP(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		h := sha256.New()
		io.Copy(h, c)
		sums <- [32]byte(h.Sum(nil))
	})
	inner := d.Redirect
	d.Redirect = func(network string, dst netip.AddrPort) netip.AddrPort {
		if network == "tcp" && dst.Port() == 80 {
			return sink
		}
		return inner(network, dst)
	}
	pubs, err := m.Publish("web/stream", mapping(t, fmt.Sprintf("127.0.0.1:%d:80", portHot)), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialPub(t, pubs[0])
	c.SetDeadline(time.Now().Add(time.Minute))

	stop := make(chan struct{})
	type result struct {
		sum     [32]byte
		n       int64
		maxGap  time.Duration
		err     error
		elapsed time.Duration
	}
	res := make(chan result, 1)
	go func() {
		var r result
		h := sha256.New()
		rng := rand.New(rand.NewSource(7))
		chunk := make([]byte, 64<<10)
		start, last := time.Now(), time.Now()
		for {
			select {
			case <-stop:
				r.sum, r.elapsed = [32]byte(h.Sum(nil)), time.Since(start)
				res <- r
				return
			default:
			}
			rng.Read(chunk)
			if _, r.err = c.Write(chunk); r.err != nil {
				res <- r
				return
			}
			h.Write(chunk)
			r.n += int64(len(chunk))
			r.maxGap = max(r.maxGap, time.Since(last))
			last = time.Now()
		}
	}()

	const rounds = 50
	for i := range rounds {
		owner := fmt.Sprintf("web/hot%d", i)
		for _, spec := range []string{"127.0.0.1::81", "127.0.0.1::81/udp", fmt.Sprintf("127.0.0.1:%d:81", portHot+1)} {
			p, err := m.Publish(owner, mapping(t, spec), ctrIP, d, proxy.Options{})
			if err != nil {
				t.Fatalf("round %d: Publish(%s): %v", i, spec, err)
			}
			checkRoundTrip(t, d, p[0])
		}
		m.UnpublishAll(owner)
	}
	close(stop)
	r := <-res
	if r.err != nil {
		t.Fatalf("transfer failed after %d bytes: %v", r.n, r.err)
	}
	c.CloseWrite()
	select {
	case sum := <-sums:
		if sum != r.sum {
			t.Errorf("the container received a different stream (sha256 %x, sent %x)", sum, r.sum)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the container never got the end of the stream")
	}
	if r.maxGap > time.Second {
		t.Errorf("the transfer stalled for %v", r.maxGap)
	}
	t.Logf("%d rounds of publish/use/unpublish during a %d MiB transfer (%.0f MiB/s), longest write %v",
		rounds, r.n>>20, float64(r.n)/(1<<20)/r.elapsed.Seconds(), r.maxGap)
	if st := m.Stats(); len(st.Bindings) != 1 || st.Bindings[0].TCP.BytesIn < uint64(r.n)-uint64(1<<20) {
		t.Errorf("stats %+v, want the stream's binding alone with about %d bytes in", st, r.n)
	}
}

// TestUnpublishResetsConnections: unpublishing a binding closes its
// listener and resets its live connections, and leaves others alone.
func TestUnpublishResetsConnections(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80)
	a, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Publish("web/b", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := dialPub(t, a[0]), dialPub(t, b[0])
	for _, c := range []*net.TCPConn{ca, cb} {
		c.Write([]byte("hi\n"))
		if _, err := io.ReadFull(c, make([]byte, len("ctr80: hi\n"))); err != nil {
			t.Fatal(err)
		}
	}
	m.UnpublishAll("web/a")
	if _, err := ca.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a live connection of an unpublished binding read %v, want ECONNRESET", err)
	}
	if c, err := net.DialTimeout("tcp", clientAddr(a[0]).String(), ioTimeout); err == nil {
		c.Close()
		t.Errorf("%s still accepts after Unpublish", clientAddr(a[0]))
	}
	cb.Write([]byte("still there?\n"))
	if _, err := io.ReadFull(cb, make([]byte, len("ctr80: still there?\n"))); err != nil {
		t.Errorf("the other binding's connection: %v", err)
	}
}

// TestCloseEndsEverything: Close with live connections, a dial in
// progress and UDP flows returns with every goroutine gone, and the
// Manager refuses further use.
func TestCloseEndsEverything(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80)
	live, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hole, err := m.Publish("web/a", mapping(t, "127.0.0.1::81"), ctrIP, proxytest.Blackhole{}, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	udp, err := m.Publish("web/a", mapping(t, "80/udp"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialPub(t, live[0])
	c.Write([]byte("hi\n"))
	io.ReadFull(c, make([]byte, len("ctr80: hi\n")))
	waiting := dialPub(t, hole[0])
	for _, p := range udp {
		udpAsk(t, udpClient(t, clientAddr(p).Addr()), clientAddr(p), "hi")
	}
	if !waitFor(ioTimeout, func() bool { st := m.Stats(); return st.TCP.Active == 2 && st.UDP.FlowsActive == int64(len(udp)) }) {
		t.Fatalf("stats %+v, want 2 TCP connections and %d flows", m.Stats(), len(udp))
	}

	var wg sync.WaitGroup
	for range 2 { // a second, concurrent Close waits for the first
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, conn := range []*net.TCPConn{c, waiting} {
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("after Close, a connection read %v, want ECONNRESET", err)
		}
	}
	if _, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{}); !errors.Is(err, proxy.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := m.Unpublish("web/a", mapping(t, "127.0.0.1::80")); !errors.Is(err, proxy.ErrClosed) {
		t.Errorf("Unpublish after Close: %v, want ErrClosed", err)
	}
	st := m.Stats()
	if st.TCP.Total != 2 || st.TCP.Active != 0 || st.UDP.FlowsTotal != uint64(len(udp)) || st.UDP.FlowsActive != 0 || len(st.Bindings) != 0 {
		t.Errorf("stats after Close %+v, want the totals kept and nothing active", st)
	}
}

// A client that resets its connection has the container's side reset
// too (the Dialer's conn is closed with SO_LINGER 0), so the container
// sees the failure as a failure and not as a clean end of stream.
func TestClientResetReachesContainer(t *testing.T) {
	leakCheck(t)
	ends := make(chan error, 1)
	srv := serveTCP(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
			ends <- fmt.Errorf("reading the greeting: %w", err)
			return
		}
		_, err := c.Read(make([]byte, 1))
		ends <- err
	})
	m := newManager(t, proxy.Config{})
	d := &proxytest.Loopback{Redirect: redirect(map[uint16]netip.AddrPort{80: srv}, nil)}
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", clientAddr(pubs[0]).String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "hello") // the reset may overtake it: either read must see the reset
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	select {
	case err := <-ends:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the container read %v after the client's reset, want ECONNRESET", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the container saw nothing of the client's reset")
	}
}
