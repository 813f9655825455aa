package dns_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	gwdns "github.com/switchyard-net/switchyard/gateway/dns"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// Garbage is dropped (UDP) or ends the connection (TCP), counted; the
// server goes on answering.
func TestMalformedQueries(t *testing.T) {
	n := newTestNet(t, 240, gwdns.Config{Domain: "web"})
	n.srv.SetNames(webNames())
	h := n.hosts[0]

	response := question("db.", dns.TypeA)
	response.Response = true
	resp, _ := response.Pack()
	truncated, _ := question("db.", dns.TypeA).Pack()
	dropped := [][]byte{
		{0x01},                   // shorter than a header
		make([]byte, 11),         // still shorter
		{1, 2, 0, 0, 0, 1, 0, 0}, // a header cut short
		truncated[:len(truncated)-3],
		resp, // a response: never answered (no loops)
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
	c, err := h.DialUDP(n.resolver())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One good exchange first: until the host has resolved the gateway's
	// MAC, its netstack holds back (and may drop) what it sends, which
	// would make the counts below a race against ARP.
	if r, err := exchange(c, false, question("db.", dns.TypeA)); err != nil || !slices.Equal(addrs(r), []netip.Addr{dbAddr}) {
		t.Fatalf("first query: %v %v", r, err)
	}
	for _, d := range dropped {
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	// A query without a question parses: it gets FORMERR.
	noQuestion := new(dns.Msg)
	noQuestion.Id = 7
	r, err := exchange(c, false, noQuestion)
	if err != nil || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("query without a question: %v %v, want FORMERR", r, err)
	}
	// An opcode other than QUERY: NOTIMP.
	notify := question("db.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	if r, err := exchange(c, false, notify); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("NOTIFY: %v %v, want NOTIMP", r, err)
	}
	// Nothing was answered but those, and the server still works.
	if r, err := exchange(c, false, question("db.", dns.TypeA)); err != nil || !slices.Equal(addrs(r), []netip.Addr{dbAddr}) {
		t.Fatalf("after garbage: %v %v", r, err)
	}
	if st := n.srv.Stats(); st.Malformed != uint64(len(dropped)+1) || st.UDPQueries != uint64(len(dropped)+4) {
		t.Errorf("stats %+v: want %d malformed of %d", st, len(dropped)+1, len(dropped)+4)
	}

	// TCP: garbage, or an empty message, closes the connection.
	for _, msg := range [][]byte{{0, 3, 1, 2, 3}, {0, 0}, append([]byte{0, byte(len(resp))}, resp...)} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tc, err := h.DialTCP(ctx, n.resolver())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		tc.Write(msg)
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(tc); err != nil || len(b) != 0 {
			t.Errorf("TCP %x: read %x, %v; want the connection closed", msg, b, err)
		}
		tc.Close()
	}
	if r := n.query(t, h, true, question("web.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{webAddr}) {
		t.Fatalf("TCP after garbage: %v", addrs(r))
	}
	if st := n.srv.Stats(); st.Malformed != uint64(len(dropped)+4) {
		t.Errorf("Malformed %d, want %d", st.Malformed, len(dropped)+4)
	}
}

// Several queries on one TCP connection, pipelined: every one answered.
func TestTCPPipelined(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}})
	n.srv.SetNames(webNames())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := n.hosts[0].DialTCP(ctx, n.resolver())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qs := []*dns.Msg{question("example.com.", dns.TypeA), question("db.", dns.TypeA), question("nx.example.", dns.TypeA), question("web.web.", dns.TypeA)}
	var out []byte
	for i, q := range qs {
		q.Id = uint16(100 + i)
		b, _ := q.Pack()
		out = append(out, byte(len(b)>>8), byte(len(b)))
		out = append(out, b...)
	}
	c.Write(out)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := map[uint16]*dns.Msg{}
	for range qs {
		var hdr [2]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, int(hdr[0])<<8|int(hdr[1]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		got[r.Id] = r
	}
	if !slices.Equal(addrs(got[100]), []netip.Addr{exampleAddr}) || !slices.Equal(addrs(got[101]), []netip.Addr{dbAddr}) ||
		got[102].Rcode != dns.RcodeNameError || !slices.Equal(addrs(got[103]), []netip.Addr{webAddr}) {
		t.Fatalf("pipelined answers: %v", got)
	}
}

// At most MaxTCPConns connections at once; idle ones are closed.
func TestTCPConnectionLimitAndIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	n := newTestNet(t, 240, gwdns.Config{MaxTCPConns: 2, TCPIdleTimeout: idle})
	n.srv.SetNames(webNames())
	dial := func() net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := n.hosts[0].DialTCP(ctx, n.resolver())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	if _, err := exchange(a, true, question("db.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(b, true, question("db.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	third := dial()
	if _, err := exchange(third, true, question("db.", dns.TypeA)); err == nil {
		t.Fatal("a third connection was served with MaxTCPConns 2")
	}
	if st := n.srv.Stats(); st.TCPRejected != 1 {
		t.Errorf("TCPRejected %d, want 1", st.TCPRejected)
	}
	// a and b go idle and are closed after about idle.
	start := time.Now()
	for _, c := range []net.Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: read %v, want EOF", err)
		}
	}
	if took := time.Since(start); took > idle+2*time.Second {
		t.Errorf("idle connections closed after %v, want about %v", took, idle)
	}
	// Their slots are free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := exchange(dial(), true, question("web.", dns.TypeA))
		if err == nil && slices.Equal(addrs(r), []netip.Addr{webAddr}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TCP slot free after the idle ones closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close ends every goroutine: reader, acceptor, workers busy with a slow
// upstream, and open client connections.
func TestCloseEndsEveryGoroutine(t *testing.T) {
	up := newSlowUpstream(t, 1500*time.Millisecond)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}, Workers: 3})
	n.srv.SetNames(webNames())
	n.query(t, n.hosts[0], false, question("db.", dns.TypeA))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	idle, err := n.hosts[0].DialTCP(ctx, n.resolver()) // an open, idle client connection
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	slow, err := n.hosts[1].DialUDP(n.resolver()) // a query the workers are busy with
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	b, _ := question("slow1.example.", dns.TypeA).Pack()
	slow.Write(b)
	deadline := time.Now().Add(5 * time.Second)
	for up.inflight.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow query never reached the upstream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(serverGoroutines()) < 3+2+1 {
		t.Fatalf("expected reader, acceptor, workers and a connection; running: %d", len(serverGoroutines()))
	}
	start := time.Now()
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v: it must not wait for the upstream", took)
	}
	waitNoServerGoroutines(t)
	if err := n.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	st := stackport.NewStack()
	defer func() { st.Close(); st.Wait() }()
	for _, c := range []struct {
		name string
		cfg  gwdns.Config
	}{
		{"no stack", gwdns.Config{Addr: netip.MustParseAddr("10.0.0.1")}},
		{"no address", gwdns.Config{Stack: st}},
		{"bad domain", gwdns.Config{Stack: st, Addr: netip.MustParseAddr("10.0.0.1"), Domain: "a..b"}},
		{"bad upstream", gwdns.Config{Stack: st, Addr: netip.MustParseAddr("10.0.0.1"), Upstreams: []netip.AddrPort{{}}}},
	} {
		if s, err := gwdns.New(c.cfg); err == nil {
			s.Close()
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// A connection idle longer than TCPIdleTimeout stays open while one of its
// queries is with the upstreams, and gets the answer.
func TestTCPIdleWaitsForForwardedAnswer(t *testing.T) {
	up := newSlowUpstream(t, 700*time.Millisecond)
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{up.addr}, TCPIdleTimeout: 200 * time.Millisecond})
	r := n.query(t, n.hosts[0], true, question("slow.example.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("slow answer over TCP: %v", r)
	}
}
