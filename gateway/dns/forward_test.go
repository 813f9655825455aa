package dns_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	gwdns "github.com/switchyard-net/switchyard/gateway/dns"
)

var exampleAddr = netip.MustParseAddr("93.184.216.34")

func TestForwarding(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Upstreams: []netip.AddrPort{up.addr}})
	n.srv.SetNames(webNames())
	for _, tcp := range []bool{false, true} {
		q := question("Example.COM.", dns.TypeA)
		q.Id = 0xbeef
		r := n.query(t, n.hosts[0], tcp, q)
		if r.Id != 0xbeef || r.Rcode != dns.RcodeSuccess || !slices.Equal(addrs(r), []netip.Addr{exampleAddr}) {
			t.Fatalf("example.com (tcp=%v): id %#x rcode %s %v; want the upstream's answer with the client's ID", tcp, r.Id, dns.RcodeToString[r.Rcode], addrs(r))
		}
		if r.Answer[0].Header().Ttl != 300 || !r.RecursionAvailable {
			t.Errorf("example.com: the upstream's answer was changed: %v", r)
		}
		if r := n.query(t, n.hosts[1], tcp, question("nx.example.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
			t.Fatalf("nx.example (tcp=%v): %s, want the upstream's NXDOMAIN", tcp, dns.RcodeToString[r.Rcode])
		}
	}
	want := []seenQuery{
		{"example.com.", dns.TypeA, "udp"}, {"nx.example.", dns.TypeA, "udp"},
		{"example.com.", dns.TypeA, "tcp"}, {"nx.example.", dns.TypeA, "tcp"}, // TCP clients are forwarded over TCP
	}
	if got := up.queries(); !slices.Equal(got, want) {
		t.Errorf("upstream saw %v, want %v", got, want)
	}
	if st := n.srv.Stats(); st.Forwarded != 4 || st.NXDomain != 2 || st.Local != 0 || st.UpstreamFailures != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Upstreams of either family: a resolver on ::1 answers over UDP and TCP,
// and one of each family in one list is tried in order.
func TestForwardingToIPv6Upstream(t *testing.T) {
	dead, err := net.ListenPacket("udp", "[::1]:0") // never answers
	if err != nil {
		t.Skipf("skipping: this machine has no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { dead.Close() })
	dead6 := netip.MustParseAddrPort(dead.LocalAddr().String())
	up6 := newUpstreamOn(t, "::1", 500*time.Millisecond)
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{dead6, up6.addr}, Timeout: time.Second})
	for _, tcp := range []bool{false, true} {
		r := n.query(t, n.hosts[0], tcp, question("example.com.", dns.TypeA))
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(addrs(r), []netip.Addr{exampleAddr}) {
			t.Fatalf("example.com (tcp=%v) through [::1]: rcode %s %v", tcp, dns.RcodeToString[r.Rcode], addrs(r))
		}
	}
	if got := up6.queries(); len(got) != 2 || got[0].net != "udp" || got[1].net != "tcp" {
		t.Errorf("the IPv6 upstream saw %v, want one UDP and one TCP query", got)
	}
}

// The upstream answers big.example over UDP with TC set and nothing else,
// and in full over TCP: the server asks again over TCP.
func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{up.addr}})

	q := question("big.example.", dns.TypeA)
	q.SetEdns0(4096, false)
	r := n.query(t, n.hosts[0], false, q)
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("EDNS0 4096 client over UDP: tc %v, %d answers; want the 40 records from the TCP retry", r.Truncated, len(r.Answer))
	}
	if got, want := up.queries(), []seenQuery{{"big.example.", dns.TypeA, "udp"}, {"big.example.", dns.TypeA, "tcp"}}; !slices.Equal(got, want) {
		t.Fatalf("upstream saw %v, want %v", got, want)
	}
	if st := n.srv.Stats(); st.TruncatedRetried != 1 {
		t.Errorf("TruncatedRetried %d, want 1", st.TruncatedRetried)
	}

	// A client without EDNS0 takes 512 bytes: it gets what fits, with TC,
	// and can ask over TCP itself.
	c, err := n.hosts[0].DialUDP(n.resolver())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err = exchange(c, false, question("big.example.", dns.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	r.Compress = true // as it was sent
	if packed, _ := r.Pack(); !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 40 || len(packed) > 512 {
		t.Fatalf("plain UDP client: tc %v, %d answers, %d bytes; want TC and as many as fit in 512", r.Truncated, len(r.Answer), len(packed))
	}
	// Over TCP: the whole answer, asked over TCP only.
	before := len(up.queries())
	r = n.query(t, n.hosts[1], true, question("big.example.", dns.TypeA))
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("TCP client: tc %v, %d answers", r.Truncated, len(r.Answer))
	}
	if got := up.queries()[before:]; !slices.Equal(got, []seenQuery{{"big.example.", dns.TypeA, "tcp"}}) {
		t.Fatalf("TCP client: upstream saw %v, want one TCP query", got)
	}
}

func TestDeadUpstreamServfail(t *testing.T) {
	const timeout = 300 * time.Millisecond
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{deadUpstream(t)}, Timeout: timeout})
	start := time.Now()
	r := n.query(t, n.hosts[0], false, question("example.com.", dns.TypeA))
	took := time.Since(start)
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("SERVFAIL after %v, want about the timeout %v", took, timeout)
	}
	if st := n.srv.Stats(); st.UpstreamFailures != 1 || st.ServFail != 1 {
		t.Errorf("stats %+v: want 1 upstream failure, 1 SERVFAIL", st)
	}
}

func TestSecondUpstreamUsed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{deadUpstream(t), up.addr}, Timeout: timeout})
	for _, tcp := range []bool{false, true} {
		start := time.Now()
		r := n.query(t, n.hosts[0], tcp, question("example.com.", dns.TypeA))
		took := time.Since(start)
		if !slices.Equal(addrs(r), []netip.Addr{exampleAddr}) {
			t.Fatalf("tcp=%v: rcode %s %v, want the second upstream's answer", tcp, dns.RcodeToString[r.Rcode], addrs(r))
		}
		if !tcp && (took < timeout || took > timeout+2*time.Second) {
			t.Errorf("answer after %v, want about the timeout %v (the first upstream's)", took, timeout)
		}
	}
	if st := n.srv.Stats(); st.UpstreamFailures != 2 || st.ServFail != 0 {
		t.Errorf("stats %+v: want 2 upstream failures (the dead one, UDP and TCP), no SERVFAIL", st)
	}
}

// Upstreams that answer SERVFAIL or REFUSED are skipped like dead ones.
func TestUpstreamServfailTriesNext(t *testing.T) {
	bad := refusingUpstream(t)
	up := newFakeUpstream(t)
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{bad, up.addr}})
	if r := n.query(t, n.hosts[0], false, question("example.com.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{exampleAddr}) {
		t.Fatalf("rcode %s %v, want the second upstream's answer", dns.RcodeToString[r.Rcode], addrs(r))
	}
	n2 := newTestNet(t, 241, gwdns.Config{Upstreams: []netip.AddrPort{bad}})
	if r := n2.query(t, n2.hosts[0], false, question("example.com.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("only a refusing upstream: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

// refusingUpstream answers every UDP query REFUSED.
func refusingUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		w.WriteMsg(r.SetRcode(q, dns.RcodeRefused))
	})}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() { defer close(done); s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { s.Shutdown(); <-done })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// Without upstreams (an internal network) other names are REFUSED and
// nothing is dialed; the network's names still resolve.
func TestNoUpstreamsRefused(t *testing.T) {
	dialed := make(chan string, 10)
	n := newTestNet(t, 240, gwdns.Config{Domain: "web", Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed <- addr
		return nil, net.ErrClosed
	}})
	n.srv.SetNames(webNames())
	for _, tcp := range []bool{false, true} {
		if r := n.query(t, n.hosts[0], tcp, question("example.com.", dns.TypeA)); r.Rcode != dns.RcodeRefused || r.RecursionAvailable {
			t.Fatalf("tcp=%v: rcode %s ra %v, want REFUSED without RA", tcp, dns.RcodeToString[r.Rcode], r.RecursionAvailable)
		}
		if r := n.query(t, n.hosts[0], tcp, question("db.web.", dns.TypeA)); !slices.Equal(addrs(r), []netip.Addr{dbAddr}) {
			t.Fatalf("db.web: %v", addrs(r))
		}
	}
	if len(dialed) != 0 {
		t.Fatalf("dialed %s without upstreams", <-dialed)
	}
	if st := n.srv.Stats(); st.Refused != 2 || st.Local != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Many slow queries at once: never more than Workers reach the upstream
// together, QueueLen wait, and the rest are answered SERVFAIL at once and
// counted.
func TestOverflowIsBoundedAndCounted(t *testing.T) {
	const workers, queue, clients = 2, 2, 12
	up := newSlowUpstream(t, 400*time.Millisecond)
	n := newTestNet(t, 240, gwdns.Config{Upstreams: []netip.AddrPort{up.addr}, Workers: workers, QueueLen: queue, Timeout: 5 * time.Second})
	type result struct {
		r    *dns.Msg
		took time.Duration
		err  error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			start := time.Now()
			r, err := n.ask(n.hosts[i%2], false, question("slow"+string(rune('a'+i))+".example.", dns.TypeA))
			results[i] = result{r, time.Since(start), err}
		})
	}
	wg.Wait()
	var answered, servfail int
	for i, res := range results {
		switch {
		case res.err != nil:
			t.Fatalf("client %d: %v", i, res.err)
		case res.r.Rcode == dns.RcodeSuccess && len(res.r.Answer) == 1:
			answered++
		case res.r.Rcode == dns.RcodeServerFailure:
			servfail++
			if res.took > up.delay {
				t.Errorf("client %d: SERVFAIL after %v; an overflow is answered at once", i, res.took)
			}
		default:
			t.Errorf("client %d: %v", i, res.r)
		}
	}
	st := n.srv.Stats()
	t.Logf("answered %d, SERVFAIL %d, stats %+v, upstream max in flight %d", answered, servfail, st, up.maxInflight.Load())
	if servfail == 0 || answered < workers || answered+servfail != clients {
		t.Errorf("answered %d, SERVFAIL %d: want at least %d answered and the rest refused at once", answered, servfail, workers)
	}
	if st.Overflow != uint64(servfail) || st.Forwarded != uint64(answered) {
		t.Errorf("Overflow %d Forwarded %d, want %d and %d", st.Overflow, st.Forwarded, servfail, answered)
	}
	if m := up.maxInflight.Load(); m > workers {
		t.Errorf("%d queries reached the upstream at once, want at most %d (the workers)", m, workers)
	}
}
