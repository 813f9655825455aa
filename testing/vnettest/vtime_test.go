package vnettest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// echoServer accepts connections on srv:80 and echoes what they send.
func echoServer(t *testing.T, srv *vnettest.Host) {
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
}

// timeoutRun is what one run of lossyTimeout saw.
type timeoutRun struct {
	echoes int           // round trips done before the deadline
	took   time.Duration // virtual time until the client gave up
	err    error         // why it stopped
	trace  string        // hash of both wires' pcaps
	frames uint64        // frames that entered the client's wire
	wall   time.Duration
}

// lossyTimeout runs a client that echoes 1 KB messages with a server over
// a lossy, jittery link until a 30-second deadline, on virtual time.
func lossyEcho(t *testing.T, seed int64) timeoutRun {
	start := time.Now()
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(seed))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	srv, cli := lan.NewHost("server"), lan.NewHost("client")
	if err := cli.Wire().Impair(vnettest.Loss(0.2), vnettest.Delay(30*time.Millisecond, 10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	echoServer(t, srv)

	var run timeoutRun
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		ctx, cancel := w.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := cli.DialContext(ctx, "tcp", "server:80")
		if err != nil {
			run.err = err
			return
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		msg, back := make([]byte, 1024), make([]byte, 1024)
		for {
			msg[0]++
			if _, err := c.Write(msg); err != nil {
				run.err = err
				break
			}
			if _, err := io.ReadFull(c, back); err != nil {
				run.err = err
				break
			}
			if back[0] != msg[0] {
				run.err = errors.New("echo out of order")
				break
			}
			run.echoes++
		}
		if ctx.Err() != nil {
			run.err = ctx.Err()
		}
		c.Close()
	}()
	ok, took := w.AdvanceUntil(time.Minute, done.Load)
	if !ok {
		t.Fatalf("seed %d: the client still runs after a virtual minute", seed)
	}
	run.took = took
	h := sha256.New()
	h.Write(cli.Wire().Pcap())
	h.Write(srv.Wire().Pcap())
	run.trace = hex.EncodeToString(h.Sum(nil))[:16]
	run.wall = time.Since(start)
	return run
}

// TestVirtualEchoTimeout: a client that echoes messages with a server
// over a lossy, jittery link until a 30-second deadline stops exactly at
// 30 virtual seconds, in a fraction of that in wall time, and a replay
// with the same seed does the same number of round trips. (The frames
// themselves can differ in one field: see TestVirtualTimeReplaysFrames.)
func TestVirtualEchoTimeout(t *testing.T) {
	first := lossyEcho(t, 7)
	t.Logf("seed 7: %d echoes, gave up after %v (%v), wall %v", first.echoes, first.took, first.err, first.wall)
	if first.took != 30*time.Second || !errors.Is(first.err, context.DeadlineExceeded) {
		t.Fatalf("the client stopped after %v with %v; want the 30 s deadline", first.took, first.err)
	}
	if first.echoes < 10 {
		t.Fatalf("only %d echoes in 30 virtual seconds", first.echoes)
	}
	if first.wall > 10*time.Second {
		t.Errorf("30 virtual seconds took %v of wall time", first.wall)
	}
	if again := lossyEcho(t, 7); again.echoes != first.echoes || again.took != first.took {
		t.Fatalf("replay of seed 7: %d echoes in %v; first run %d in %v", again.echoes, again.took, first.echoes, first.took)
	}
}

// lossyUpload runs a client that uploads 256 KB to a server over a lossy,
// jittery, reordering link and then waits for a reply that never comes,
// until a 30-second deadline, on virtual time. The server reads nothing,
// so no application goroutine races the netstacks: the frames are a
// function of the seed alone.
func lossyUpload(t *testing.T, seed int64) timeoutRun {
	start := time.Now()
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(seed))
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	srv, cli := lan.NewHost("server"), lan.NewHost("client")
	if err := cli.Wire().Impair(vnettest.Loss(0.1), vnettest.Delay(40*time.Millisecond, 15*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan io.Closer, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})

	var run timeoutRun
	var done atomic.Bool
	go func() {
		defer done.Store(true)
		ctx, cancel := w.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := cli.DialContext(ctx, "tcp", "server:80")
		if err != nil {
			run.err = err
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if _, err := c.Write(make([]byte, 256<<10)); err != nil {
			run.err = err
			return
		}
		_, run.err = c.Read(make([]byte, 1))
		if ctx.Err() != nil {
			run.err = ctx.Err()
		}
	}()
	ok, took := w.AdvanceUntil(time.Minute, done.Load)
	if !ok {
		t.Fatalf("seed %d: the client still runs after a virtual minute", seed)
	}
	run.took = took
	h := sha256.New()
	h.Write(cli.Wire().Pcap())
	h.Write(srv.Wire().Pcap())
	run.trace = hex.EncodeToString(h.Sum(nil))[:16]
	run.frames = cli.Wire().Stats(vnettest.Up).In + cli.Wire().Stats(vnettest.Down).In
	run.wall = time.Since(start)
	return run
}

// TestVirtualTimeReplaysFrames: a 30-second timeout over a lossy link
// takes a fraction of that in wall time and ends at exactly 30 virtual
// seconds, and every run with the same seed gives the same pcap, byte for
// byte, timestamps included; another seed gives another.
func TestVirtualTimeReplaysFrames(t *testing.T) {
	first := lossyUpload(t, 7)
	t.Logf("seed 7: gave up after %v (%v), %d frames, trace %s, wall %v", first.took, first.err, first.frames, first.trace, first.wall)
	if first.took != 30*time.Second || !errors.Is(first.err, context.DeadlineExceeded) {
		t.Fatalf("the client stopped after %v with %v; want the 30 s deadline", first.took, first.err)
	}
	if first.frames < 100 {
		t.Fatalf("only %d frames crossed the wire", first.frames)
	}
	if first.wall > 10*time.Second {
		t.Errorf("30 virtual seconds took %v of wall time", first.wall)
	}
	for i := range 2 {
		if again := lossyUpload(t, 7); again.trace != first.trace {
			t.Fatalf("replay %d of seed 7: trace %s (%d frames); first run %s (%d frames)", i+1, again.trace, again.frames, first.trace, first.frames)
		}
	}
	if other := lossyUpload(t, 8); other.trace == first.trace {
		t.Fatalf("seeds 7 and 8 gave the same trace %s: the seed does not reach the losses", other.trace)
	}
}

// TestVirtualPingRTT: on virtual time a ping's round trip is exactly the
// delays of the stages it crosses, through a gateway too, and no real
// time needs to pass for it.
func TestVirtualPingRTT(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(1))
	inet := w.NewNetwork("inet", "203.0.113.0/24")
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	lan.NewGateway(vnettest.GatewayConfig{Uplink: inet})
	a, b := lan.NewHost("a"), lan.NewHost("b")
	if err := a.Wire().SetStages(vnettest.Up, vnettest.Delay(7*time.Millisecond, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Wire().SetStages(vnettest.Up, vnettest.Delay(3*time.Millisecond, 0)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dst  netip.Addr
		want time.Duration
	}{{b.Addr(), 10 * time.Millisecond}, {lan.GatewayAddr(), 7 * time.Millisecond}} {
		var rtt time.Duration
		var err error
		var done atomic.Bool
		start := w.Now()
		go func() {
			defer done.Store(true)
			rtt, err = a.Ping(context.Background(), c.dst)
		}()
		if ok, _ := w.AdvanceUntil(time.Minute, done.Load); !ok || err != nil {
			t.Fatalf("ping %v: done %v, %v", c.dst, ok, err)
		}
		// The first ping also waits for ARP, which crosses the delays
		// once more.
		if rtt != c.want && rtt != 2*c.want {
			t.Fatalf("ping %v: rtt %v, want %v (or twice that, with ARP)", c.dst, rtt, c.want)
		}
		if took := w.Now().Sub(start); took != rtt {
			t.Errorf("ping %v: %v passed on the World's clock, rtt %v", c.dst, took, rtt)
		}
	}
}

// TestVirtualGatewayUDPFlowTimeout: the gateway's egress UDP flows idle
// out on the World's clock: a flow quiet for less than the gateway's 60 s
// keeps its uplink port, one quiet for longer is closed, and the next
// datagram leaves from a new port.
func TestVirtualGatewayUDPFlowTimeout(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(5))
	inet := w.NewNetwork("inet", "203.0.113.0/24")
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	lan.NewGateway(vnettest.GatewayConfig{Uplink: inet})
	cli, far := lan.NewHost("client"), inet.NewHost("far")
	pc, err := far.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := cli.Dial("udp", far.Addr().String()+":7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// send sends one datagram and returns the address it came from at far.
	send := func(msg string) string {
		t.Helper()
		var from string
		var done atomic.Bool
		go func() {
			defer done.Store(true)
			buf := make([]byte, 64)
			if _, a, err := pc.ReadFrom(buf); err == nil {
				from = a.String()
			}
		}()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := w.AdvanceUntil(10*time.Second, done.Load); !ok || from == "" {
			t.Fatalf("datagram %q did not reach far", msg)
		}
		return from
	}
	first := send("a")
	w.Advance(50 * time.Second)
	if again := send("b"); again != first {
		t.Fatalf("after 50 quiet seconds the flow left from %s, first from %s: it expired early", again, first)
	}
	w.Advance(70 * time.Second)
	if later := send("c"); later == first {
		t.Fatalf("after 70 quiet seconds the flow still leaves from %s: it did not expire on the World's clock", first)
	}
}

// TestVirtualPublishUDPFlowTimeout: a published UDP port's flow closes
// after 90 s without a datagram either way, on the World's clock: a
// reply 80 s after the last datagram still reaches the client from the
// published port (and keeps the flow), one 100 s after that does not.
func TestVirtualPublishUDPFlowTimeout(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(6))
	inet := w.NewNetwork("inet", "203.0.113.0/24")
	lan := w.NewNetwork("lan", "10.0.0.0/24")
	gw := lan.NewGateway(vnettest.GatewayConfig{Uplink: inet})
	srv, cli := lan.NewHost("srv"), inet.NewHost("cli")
	sc, err := srv.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := gw.PublishUDP(5353, srv, 53); err != nil {
		t.Fatal(err)
	}
	cc, err := cli.ListenPacket("udp", ":4000")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// recv waits up to 5 virtual seconds for a datagram on c.
	recv := func(c net.PacketConn) (string, net.Addr, error) {
		c.SetReadDeadline(w.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		var n int
		var from net.Addr
		var err error
		var done atomic.Bool
		go func() {
			defer done.Store(true)
			n, from, err = c.ReadFrom(buf)
		}()
		if ok, _ := w.AdvanceUntil(time.Minute, done.Load); !ok {
			t.Fatal("a read with a 5 s deadline still waits after a virtual minute")
		}
		return string(buf[:n]), from, err
	}
	published := &net.UDPAddr{IP: gw.Uplink().Addr().AsSlice(), Port: 5353}
	if _, err := cc.WriteTo([]byte("query"), published); err != nil {
		t.Fatal(err)
	}
	_, client, err := recv(sc)
	if err != nil {
		t.Fatalf("the query did not reach the server: %v", err)
	}
	w.Advance(75 * time.Second) // 80 s with recv's wait
	sc.WriteTo([]byte("late reply"), client)
	if msg, from, err := recv(cc); err != nil || msg != "late reply" || from.String() != published.String() {
		t.Fatalf("a reply 80 s into the flow: %q from %v, %v; want it relayed from %v", msg, from, err, published)
	}
	w.Advance(100 * time.Second)
	// With the flow closed, the server's datagram to the client's address
	// is plain egress: the gateway masquerades it from a port of its own.
	sc.WriteTo([]byte("too late"), client)
	if msg, from, err := recv(cc); err == nil && from.String() == published.String() {
		t.Fatalf("a reply 100 s after the last datagram: %q from %v; want the flow closed", msg, from)
	}
}
