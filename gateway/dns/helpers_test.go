package dns_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/gateway"
	gwdns "github.com/switchyard-net/switchyard/gateway/dns"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// testNet is one in-process network: a switch, its gateway with the DNS
// server on the gateway's netstack, and two "containers" whose default
// route (and resolver) is the gateway.
type testNet struct {
	gw    *gateway.Gateway
	srv   *gwdns.Server
	hosts []*vnettest.Host
}

// newTestNet builds network 10.<octet>.0.0/24 (gateway .1, hosts .2, .3).
// The gateway's own egress is refused: no test leaves the machine.
func newTestNet(t testing.TB, octet byte, cfg gwdns.Config) *testNet {
	t.Helper()
	log := zaptest.NewLogger(t)
	name := fmt.Sprintf("net%d", octet)
	sw := vswitch.New(vswitch.Config{Name: name, Logger: log})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{
		Network: name, Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 0, 0}), 24),
		Addr: netip.AddrFrom4([4]byte{10, octet, 0, 1}), MAC: vswitch.MAC{0x02, 0x42, 10, octet, 0, 1}, Logger: log,
		Egress: gateway.EgressConfig{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, fmt.Errorf("test egress to %s refused", addr)
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	n := &testNet{gw: gw}
	for i := range 2 {
		addr := netip.AddrFrom4([4]byte{10, octet, 0, byte(2 + i)})
		h, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: fmt.Sprintf("c%d", i), Addr: netip.PrefixFrom(addr, 24), Gateway: gw.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		n.hosts = append(n.hosts, h)
	}
	cfg.Stack, cfg.NIC, cfg.Addr, cfg.Logger = gw.Stack(), gateway.NICID, gw.Addr(), log
	if cfg.Dial == nil {
		cfg.Dial = loopbackOnly
	}
	srv, err := gwdns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() }) // before the gateway's cleanup: cleanups run last first
	n.srv = srv
	return n
}

// loopbackOnly is the upstream dialer of the tests: host sockets, and only
// to loopback.
func loopbackOnly(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dial to %s refused: loopback only", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (n *testNet) resolver() netip.AddrPort { return netip.AddrPortFrom(n.gw.Addr(), 53) }

// exchange sends m over c (a UDP or, with tcp, a TCP connection) and reads
// the answer with m's ID.
func exchange(c net.Conn, tcp bool, m *dns.Msg) (*dns.Msg, error) {
	b, err := m.Pack()
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if tcp {
		b = append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	for {
		var raw []byte
		if tcp {
			var hdr [2]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return nil, err
			}
			raw = make([]byte, binary.BigEndian.Uint16(hdr[:]))
			if _, err := io.ReadFull(c, raw); err != nil {
				return nil, err
			}
		} else {
			raw = make([]byte, 4096) // no test answer over UDP is larger
			n, err := c.Read(raw)
			if err != nil {
				return nil, err
			}
			raw = raw[:n]
		}
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			return nil, fmt.Errorf("unpack answer: %w", err)
		}
		if r.Id == m.Id {
			return r, nil
		}
	}
}

// query asks the network's resolver from host h, on a new connection.
func (n *testNet) query(t *testing.T, h *vnettest.Host, tcp bool, m *dns.Msg) *dns.Msg {
	t.Helper()
	r, err := n.ask(h, tcp, m)
	if err != nil {
		t.Fatalf("query %s %s (tcp=%v): %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], tcp, err)
	}
	return r
}

func (n *testNet) ask(h *vnettest.Host, tcp bool, m *dns.Msg) (*dns.Msg, error) {
	var c net.Conn
	var err error
	if tcp {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err = h.DialTCP(ctx, n.resolver())
	} else {
		c, err = h.DialUDP(n.resolver())
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return exchange(c, tcp, m)
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// addrs lists the A and AAAA answers of r.
func addrs(r *dns.Msg) []netip.Addr {
	var out []netip.Addr
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(rr.A)
			out = append(out, a.Unmap())
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			out = append(out, a)
		}
	}
	return out
}

// seenQuery is a query a fake upstream received.
type seenQuery struct {
	name  string // lower case
	qtype uint16
	net   string // "udp" or "tcp"
}

// fakeUpstream is a resolver on 127.0.0.1 (UDP and TCP on one port) with
// known answers:
//
//	example.com.      A 93.184.216.34
//	big.example.      over UDP: TC and no answer; over TCP: 40 A records
//	slow*.example.    A 192.0.2.1 after delay
//	anything else     NXDOMAIN
type fakeUpstream struct {
	addr  netip.AddrPort
	delay time.Duration

	mu   sync.Mutex
	seen []seenQuery

	inflight, maxInflight atomic.Int32
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	return newSlowUpstream(t, 500*time.Millisecond)
}

// newSlowUpstream is a fakeUpstream whose slow*.example answers take delay.
func newSlowUpstream(t *testing.T, delay time.Duration) *fakeUpstream {
	t.Helper()
	return newUpstreamOn(t, "127.0.0.1", delay)
}

// newUpstreamOn is a fakeUpstream on loopback address lo (127.0.0.1 or
// ::1).
func newUpstreamOn(t *testing.T, lo string, delay time.Duration) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{delay: delay}
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ { // one port for both: the upstream list has one port per address
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(lo, "0")); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatalf("no port free for UDP and TCP: %v", err)
		}
	}
	f.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	udp := &dns.Server{PacketConn: pc, Handler: f.handler("udp")}
	tcp := &dns.Server{Listener: l, Handler: f.handler("tcp")}
	var wg sync.WaitGroup
	for _, s := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ActivateAndServe()
		}()
		<-started
	}
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
		wg.Wait()
	})
	return f
}

func (f *fakeUpstream) handler(network string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, q *dns.Msg) {
		n := f.inflight.Add(1)
		for {
			m := f.maxInflight.Load()
			if n <= m || f.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		qq := q.Question[0]
		name := strings.ToLower(qq.Name)
		f.mu.Lock()
		f.seen = append(f.seen, seenQuery{name: name, qtype: qq.Qtype, net: network})
		f.mu.Unlock()
		r := new(dns.Msg)
		r.SetReply(q)
		r.RecursionAvailable = true
		a := func(ip string) dns.RR {
			return &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP(ip)}
		}
		switch {
		case name == "example.com." && qq.Qtype == dns.TypeA:
			r.Answer = append(r.Answer, a("93.184.216.34"))
		case name == "big.example." && network == "udp":
			r.Truncated = true
		case name == "big.example.":
			for i := range 40 {
				r.Answer = append(r.Answer, a(fmt.Sprintf("192.0.2.%d", i+1)))
			}
		case strings.HasPrefix(name, "slow") && strings.HasSuffix(name, ".example."):
			time.Sleep(f.delay)
			r.Answer = append(r.Answer, a("192.0.2.1"))
		default:
			r.Rcode = dns.RcodeNameError
		}
		f.inflight.Add(-1) // before the answer leaves: its worker may ask again at once
		w.WriteMsg(r)
	}
}

// queries returns what the upstream has received.
func (f *fakeUpstream) queries() []seenQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenQuery(nil), f.seen...)
}

// saw reports whether the upstream received a query for name (any type).
func (f *fakeUpstream) saw(name string) bool {
	for _, q := range f.queries() {
		if q.name == strings.ToLower(dns.Fqdn(name)) {
			return true
		}
	}
	return false
}

// deadUpstream is a UDP socket on 127.0.0.1 that never answers.
func deadUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// serverGoroutines lists the goroutines running the server's code.
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "gateway/dns.(*Server)") {
			out = append(out, g)
		}
	}
	return out
}

// waitNoServerGoroutines fails t unless every goroutine of the server has
// ended within a few seconds.
func waitNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		gs := serverGoroutines()
		if len(gs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d server goroutines still running after Close:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
