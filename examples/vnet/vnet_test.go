package vnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// dnsPair is a miekg/dns server on one host answering A queries, and a
// client host whose wire loses frames.
func dnsPair(t testing.TB, loss float64, opts ...vnettest.Option) (client *vnettest.Host, server string) {
	_, client, server = dnsWorld(t, loss, opts...)
	return client, server
}

// dnsWorld is dnsPair that also returns the World.
func dnsWorld(t testing.TB, loss float64, opts ...vnettest.Option) (w *vnettest.World, client *vnettest.Host, server string) {
	w = vnettest.New(t, append([]vnettest.Option{vnettest.Seed(7)}, opts...)...)
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	srvHost, client := lan.NewHost("ns"), lan.NewHost("client")
	pc, err := srvHost.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, 1)})
		rw.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	if err := client.Wire().Impair(vnettest.Loss(loss)); err != nil {
		t.Fatal(err)
	}
	return w, client, net.JoinHostPort(srvHost.Addr().String(), "53")
}

// query asks server for name the way a stub resolver does: a short
// timeout per try, and tries until one is answered.
func query(client *vnettest.Host, server, name string, tries int) (*dns.Msg, int, error) {
	return queryEvery(client, server, name, tries, 100*time.Millisecond)
}

// queryEvery is query with a timeout of its own per try.
func queryEvery(client *vnettest.Host, server, name string, tries int, timeout time.Duration) (*dns.Msg, int, error) {
	c := &dns.Client{Timeout: timeout}
	q := new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeA)
	var lastErr error
	for i := 1; i <= tries; i++ {
		conn, err := client.Dial("udp", server)
		if err != nil {
			return nil, i, err
		}
		r, _, err := c.ExchangeWithConn(q, &dns.Conn{Conn: conn})
		conn.Close()
		if err == nil {
			return r, i, nil
		}
		lastErr = err
	}
	return nil, tries, fmt.Errorf("no answer in %d tries: %w", tries, lastErr)
}

// miekg/dns's client, retried, gets through a link that loses 30% of
// frames each way; with every frame lost it fails cleanly.
func TestDNSRetriesOverLossyUDP(t *testing.T) {
	client, server := dnsPair(t, 0.3)
	retried := 0
	for i := range 20 {
		r, tries, err := query(client, server, fmt.Sprintf("host%d.example", i), 30)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := r.Answer[0].(*dns.A); !ok || !a.A.Equal(net.IPv4(192, 0, 2, 1)) {
			t.Fatalf("answer %v", r.Answer)
		}
		if tries > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no query needed a retry: the loss did not happen")
	}
	if err := client.Wire().Impair(vnettest.Loss(1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := query(client, server, "lost.example", 3); err == nil {
		t.Fatal("a query crossed a link that loses everything")
	}
}

// On virtual time, miekg/dns's client times out as it would on a real
// network: its per-try deadlines (conn deadlines it sets from time.Now)
// run on the World's clock, so five tries of two seconds against a
// server whose datagrams are all lost end after exactly ten virtual
// seconds, in milliseconds of wall time.
func TestDNSTimeoutsOnVirtualTime(t *testing.T) {
	w, client, server := dnsWorld(t, 0, vnettest.VirtualTime())
	ask := func(name string, tries int) (int, time.Duration, error) {
		var n int
		var err error
		var done atomic.Bool
		go func() {
			defer done.Store(true)
			_, n, err = queryEvery(client, server, name, tries, 2*time.Second)
		}()
		ok, took := w.AdvanceUntil(time.Minute, done.Load)
		if !ok {
			t.Fatalf("query %s still runs after a virtual minute", name)
		}
		return n, took, err
	}
	if n, _, err := ask("first.example", 1); err != nil || n != 1 {
		t.Fatalf("a query over a clean link: %d tries, %v", n, err)
	}
	// Lose every UDP datagram the client sends (ARP still gets through).
	noUDP := vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		if len(p.Data) > 23 && p.Data[12] == 0x08 && p.Data[13] == 0x00 && p.Data[23] == 17 {
			return
		}
		emit(p)
	})
	if err := client.Wire().SetStages(vnettest.Up, noUDP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, took, err := ask("lost.example", 5)
	t.Logf("%d tries failed after %v of virtual time, %v of wall time: %v", n, took, time.Since(start), err)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || n != 5 || took != 10*time.Second {
		t.Fatalf("%d tries, %v after %v; want 5 tries timing out after 10s", n, err, took)
	}
}

// net/http moves a body intact over loss, reordering and jitter.
func TestHTTPOverLossAndReordering(t *testing.T) {
	w := vnettest.New(t, vnettest.Seed(11))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	web, client := lan.NewHost("web"), lan.NewHost("client")
	body := make([]byte, 512<<10)
	for i := range body {
		body[i] = byte(i * 7)
	}
	l, err := web.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	if err := client.Wire().Impair(vnettest.Loss(0.03), vnettest.Reorder(0.2, 2*time.Millisecond),
		vnettest.Delay(time.Millisecond, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://web/", nil)
	resp, err := client.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != string(body) {
		t.Fatalf("body: %d bytes of %d, %v", len(got), len(body), err)
	}
	if s := client.Wire().Stats(vnettest.Down); s.Dropped == 0 {
		t.Fatalf("nothing was lost: %+v", s)
	}
}

// Fuzzed frames from the client's port must not stop the DNS server
// answering.
func FuzzDNSServerSurvivesFrames(f *testing.F) {
	client, server := dnsPair(f, 0)
	f.Add([]byte{0, 14, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	f.Fuzz(func(t *testing.T, data []byte) {
		vnettest.FuzzFrames(t, client, data)
		if _, _, err := query(client, server, "alive.example", 20); err != nil {
			t.Fatalf("the DNS server stopped answering: %v", err)
		}
	})
}
