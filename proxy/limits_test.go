package proxy_test

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

const overLimitMsg = "connection limit reached; refusing new connections"

// observed returns a logger that records what the Manager logs.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return zap.New(core), logs
}

// lineClient is a relayed connection that exchanges lines with a greeter.
type lineClient struct {
	c *net.TCPConn
	r *bufio.Reader
}

func dialLines(t *testing.T, p proxy.Published) *lineClient {
	t.Helper()
	c := dialPub(t, p)
	return &lineClient{c: c, r: bufio.NewReader(c)}
}

// ask sends a line and returns the answer, or the error.
func (l *lineClient) ask(msg string) (string, error) {
	if _, err := l.c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := l.r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// mustAsk is ask that fails the test unless the greeter answers.
func (l *lineClient) mustAsk(t *testing.T, name, msg string) {
	t.Helper()
	got, err := l.ask(msg)
	if want := name + ": " + msg; got != want || err != nil {
		t.Fatalf("ask %q: %q, %v; want %q", msg, got, err, want)
	}
}

// wantReset fails the test unless a connection to p is reset by the
// proxy without reaching the container: at connect (if the reset comes
// first) or at the first exchange.
func wantReset(t *testing.T, p proxy.Published) {
	t.Helper()
	c, err := net.DialTimeout("tcp", clientAddr(p).String(), ioTimeout)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		l := &lineClient{c: c.(*net.TCPConn), r: bufio.NewReader(c)}
		var got string
		got, err = l.ask("over")
		if err == nil {
			t.Fatalf("a connection over the limit answered %q; want a reset", got)
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("a connection over the limit failed with %v; want a reset", err)
	}
}

func bindingOf(t *testing.T, m *proxy.Manager, p proxy.Published) proxy.BindingStats {
	t.Helper()
	for _, b := range m.BindingStats(p.Owner) {
		if b.Published == p {
			return b
		}
	}
	t.Fatalf("no stats for %v among %v", p, m.Stats().Bindings)
	return proxy.BindingStats{}
}

// With a port limit of 5, the 6th connection is reset at once and counted,
// the five keep working, a freed slot is taken by the next client, and the
// refusals give one warning, not one each.
func TestTCPPortLimit(t *testing.T) {
	leakCheck(t)
	log, logs := observed()
	m := newManager(t, proxy.Config{Logger: log, MaxConns: 100, MaxConnsPerPort: 5, WarnInterval: time.Hour})
	d := &proxytest.Loopback{}
	p := publishTo(t, m, d, greeter("c"))

	var held []*lineClient
	for range 5 {
		c := dialLines(t, p)
		c.mustAsk(t, "c", "in")
		held = append(held, c)
	}
	wantReset(t, p)
	if st := bindingOf(t, m, p); st.TCP.OverLimit != 1 || st.TCP.Active != 5 || st.TCP.Total != 5 {
		t.Errorf("after the 6th: %+v; want 1 over the limit, 5 active, 5 accepted", st.TCP)
	}
	if n := len(d.Calls()); n != 5 {
		t.Errorf("%d dials to the container, want 5: a refused connection must not reach it", n)
	}
	for i, c := range held {
		c.mustAsk(t, "c", "still "+string(rune('a'+i)))
	}

	// A freed slot is taken by the next client.
	held[0].c.Close()
	if !waitFor(ioTimeout, func() bool { return m.Stats().Conns == 4 }) {
		t.Fatalf("the closed connection's slot is not given back: %d held", m.Stats().Conns)
	}
	dialLines(t, p).mustAsk(t, "c", "next")

	// Twenty more refusals: still one warning, saying how many it covers.
	for range 20 {
		wantReset(t, p)
	}
	if st := bindingOf(t, m, p); st.TCP.OverLimit != 21 {
		t.Errorf("%d connections counted over the limit, want 21", st.TCP.OverLimit)
	}
	warns := logs.FilterMessage(overLimitMsg).All()
	if len(warns) != 1 || warns[0].Level != zapcore.WarnLevel {
		t.Fatalf("%d lines about the limit, want one warning: %v", len(warns), warns)
	}
	f := warns[0].ContextMap()
	if f["limit"] != "port" || f["max"] != int64(5) || f["refused"] != uint64(1) {
		t.Errorf("the warning says %v; want limit=port max=5 refused=1", f)
	}
	if st := m.Stats(); st.TCP.OverLimit != 21 || st.MaxConns != 100 || st.MaxConnsPerPort != 5 {
		t.Errorf("Manager totals: over limit %d, limits %d/%d; want 21, 100/5", st.TCP.OverLimit, st.MaxConns, st.MaxConnsPerPort)
	}
}

// The Manager's limit holds across ports: when it is full a second port
// refuses too, though its own limit is not reached; Options.MaxConns gives
// one mapping a limit of its own.
func TestTCPGlobalLimit(t *testing.T) {
	leakCheck(t)
	log, logs := observed()
	m := newManager(t, proxy.Config{Logger: log, MaxConns: 3, MaxConnsPerPort: 10, WarnInterval: time.Hour})
	srv := serveTCP(t, "tcp4", "127.0.0.1:0", greeter("c"))
	d := &proxytest.Loopback{Redirect: redirect(map[uint16]netip.AddrPort{80: srv, 81: srv}, nil)}
	a, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, d, proxy.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Publish("web/b", mapping(t, "127.0.0.1::81"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dialLines(t, a[0]).mustAsk(t, "c", "a1")
	wantReset(t, a[0]) // a's own limit: 1
	dialLines(t, b[0]).mustAsk(t, "c", "b1")
	dialLines(t, b[0]).mustAsk(t, "c", "b2")
	wantReset(t, b[0]) // the Manager's: 3

	if st := bindingOf(t, m, a[0]); st.TCP.OverLimit != 1 {
		t.Errorf("port a: %d over the limit, want 1", st.TCP.OverLimit)
	}
	if st := bindingOf(t, m, b[0]); st.TCP.OverLimit != 1 {
		t.Errorf("port b: %d over the limit, want 1", st.TCP.OverLimit)
	}
	scopes := map[any]bool{}
	for _, e := range logs.FilterMessage(overLimitMsg).All() {
		scopes[e.ContextMap()["limit"]] = true
	}
	if !scopes["port"] || !scopes["global"] || len(scopes) != 2 {
		t.Errorf("warnings name the limits %v; want one for port a's, one for the Manager's", scopes)
	}
}

// publishUDPGreeter publishes 127.0.0.1::53/udp for "web/a" to a UDP
// greeter "u" and returns the listener and the address clients send to.
func publishUDPGreeter(t *testing.T, m *proxy.Manager) (proxy.Published, netip.AddrPort) {
	t.Helper()
	srv := serveUDP(t, "udp4", "127.0.0.1:0", udpGreeter("u"))
	d := &proxytest.Loopback{Redirect: redirect(nil, map[uint16]netip.AddrPort{53: srv})}
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::53/udp"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return pubs[0], clientAddr(pubs[0])
}

// Past the Manager's limit a new UDP client's datagram is dropped and
// counted while existing flows keep working; once a flow expires, its slot
// serves the next client.
func TestUDPGlobalLimit(t *testing.T) {
	leakCheck(t)
	log, logs := observed()
	m := newManager(t, proxy.Config{Logger: log, MaxConns: 2, MaxConnsPerPort: 10, UDPTimeout: 300 * time.Millisecond, WarnInterval: time.Hour})
	p, addr := publishUDPGreeter(t, m)
	lo := netip.MustParseAddr("127.0.0.1")
	c1, c2, c3 := udpClient(t, lo), udpClient(t, lo), udpClient(t, lo)
	if got, _ := udpAsk(t, c1, addr, "1"); got != "u: 1" {
		t.Fatalf("client 1 got %q", got)
	}
	if got, _ := udpAsk(t, c2, addr, "2"); got != "u: 2" {
		t.Fatalf("client 2 got %q", got)
	}
	if _, err := c3.WriteToUDPAddrPort([]byte("3"), addr); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ioTimeout, func() bool { return bindingOf(t, m, p).UDP.FlowsOverLimit == 1 }) {
		t.Fatalf("client 3's datagram is not counted over the limit: %+v", bindingOf(t, m, p).UDP)
	}
	if st := bindingOf(t, m, p).UDP; st.FlowsActive != 2 || st.FlowsTotal != 2 || st.Dropped != 1 {
		t.Errorf("%+v; want 2 flows active, 2 made, 1 datagram dropped", st)
	}
	if n := logs.FilterMessage(overLimitMsg).Len(); n != 1 {
		t.Errorf("%d warnings about the limit, want 1", n)
	}

	// The flows expire; the third client then gets one.
	if !waitFor(ioTimeout, func() bool { return m.Stats().Conns == 0 }) {
		t.Fatalf("the expired flows still hold %d slots", m.Stats().Conns)
	}
	if got, _ := udpAsk(t, c3, addr, "3 again"); got != "u: 3 again" {
		t.Errorf("client 3 after the expiry got %q", got)
	}
}

// A port's limit caps each UDP listener's flow table below MaxUDPFlows:
// a new client evicts the least recently active flow.
func TestUDPPortLimitEvicts(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{MaxConns: 100, MaxConnsPerPort: 2, MaxUDPFlows: 50})
	p, addr := publishUDPGreeter(t, m)
	lo := netip.MustParseAddr("127.0.0.1")
	for i := range 3 {
		msg := string(rune('1' + i))
		if got, _ := udpAsk(t, udpClient(t, lo), addr, msg); got != "u: "+msg {
			t.Fatalf("client %d got %q", i, got)
		}
	}
	if st := bindingOf(t, m, p).UDP; st.FlowsActive != 2 || st.FlowsEvicted != 1 || st.FlowsOverLimit != 0 {
		t.Errorf("%+v; want 2 flows active, 1 evicted, none refused", st)
	}
}

// Both listeners of a mapping without a host address share its limit.
func TestTCPPortLimitSharedByListeners(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{MaxConnsPerPort: 1, MaxConns: 10})
	srv := serveTCP(t, "tcp4", "127.0.0.1:0", greeter("c"))
	d := &proxytest.Loopback{Redirect: redirect(map[uint16]netip.AddrPort{80: srv}, nil)}
	pubs, err := m.Publish("web/a", mapping(t, "80"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 2 {
		t.Skipf("skipping: the host has no IPv6 loopback ([::] not bound): %v", pubs)
	}
	dialLines(t, pubs[0]).mustAsk(t, "c", "first")
	wantReset(t, pubs[1])
	var over uint64
	for _, b := range m.Stats().Bindings {
		over += b.TCP.OverLimit
	}
	if over != 1 {
		t.Errorf("%d over the limit, want 1", over)
	}
}

// When accept fails for want of file descriptors, the listener backs off
// instead of spinning, counts each failure and warns once per interval;
// when descriptors are free again, the waiting client is served.
//
// The test lowers its own process's soft RLIMIT_NOFILE for a moment (and
// puts it back), so it must not run in parallel with others.
func TestAcceptOutOfFiles(t *testing.T) {
	leakCheck(t)
	log, logs := observed()
	m := newManager(t, proxy.Config{Logger: log, MaxConns: -1, MaxConnsPerPort: -1, WarnInterval: time.Hour})
	// The container's server runs short of descriptors too, so it retries
	// failed accepts, as servers do.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			greeter("c")(c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-served })
	dl := &proxytest.Loopback{Redirect: redirect(map[uint16]netip.AddrPort{80: ln.Addr().(*net.TCPAddr).AddrPort()}, nil)}
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::80"), ctrIP, dl, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := pubs[0]

	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: uint64(len(ents) + 32), Max: orig.Max}
	if low.Cur >= orig.Cur {
		t.Skipf("skipping: the soft open-file limit (%d) is already at the descriptors in use", orig.Cur)
	}
	var fillers []*os.File
	restore := func() { // the limit first: the test's own server must never run out
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore RLIMIT_NOFILE %+v: %v", orig, err)
		}
		for _, f := range fillers {
			f.Close()
		}
		fillers = nil
	}
	t.Cleanup(restore)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	for range low.Cur { // bounded: the limit is a few dozen above what is open
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fillers = append(fillers, f)
	}
	if len(fillers) == 0 {
		t.Fatal("no descriptor left to fill")
	}
	fillers[len(fillers)-1].Close() // the client's socket takes the last one
	fillers = fillers[:len(fillers)-1]
	c := dialLines(t, p)

	if !waitFor(ioTimeout, func() bool { return bindingOf(t, m, p).TCP.AcceptErrors >= 3 }) {
		t.Fatalf("accept failures not counted: %+v", bindingOf(t, m, p).TCP)
	}
	warns := logs.FilterMessage("accept failed; backing off").All()
	if len(warns) != 1 || warns[0].Level != zapcore.WarnLevel {
		t.Errorf("%d lines about failed accepts after %d failures, want one warning: %v",
			len(warns), bindingOf(t, m, p).TCP.AcceptErrors, warns)
	}

	restore()
	c.mustAsk(t, "c", "served at last")
	// The backoff doubles from 5 ms up to a second: in the ten seconds
	// allowed, a listener that spun would fail thousands of times.
	if n := bindingOf(t, m, p).TCP.AcceptErrors; n > 200 {
		t.Errorf("%d accept failures: the listener spins", n)
	}
}
