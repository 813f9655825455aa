package gateway_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/proxy"
)

// pushed is what a ReplyPusher handed over.
type pushed struct {
	p   string
	err error
}

// pushInto returns a push function that sends what it gets to a channel
// (never blocking: a full channel fails the test).
func pushInto(t *testing.T) (func([]byte, error), chan pushed) {
	ch := make(chan pushed, 64)
	return func(p []byte, err error) {
		select {
		case ch <- pushed{string(p), err}:
		default:
			t.Error("push: channel full")
		}
	}, ch
}

func next(t *testing.T, ch chan pushed) pushed {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("nothing pushed in 5 s")
		return pushed{}
	}
}

// firstDatagram writes to c until the container's socket pc reads a
// datagram (the first may wait on ARP), and returns its source.
func firstDatagram(t *testing.T, c net.Conn, pc net.PacketConn) net.Addr {
	t.Helper()
	buf := make([]byte, 64)
	var err error
	for range 20 {
		c.Write([]byte("q"))
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var from net.Addr
		if _, from, err = pc.ReadFrom(buf); err == nil {
			return from
		}
	}
	t.Fatalf("no datagram reached the container: %v", err)
	return nil
}

// TestDialerUDPPushesReplies: a connection from DialUDP is a
// proxy.ReplyPusher; the container's replies are pushed in order (the
// client's address kept as the source the container sees), a closed
// container port is pushed as an error matching ECONNREFUSED, and Close
// removes the listener.
func TestDialerUDPPushesReplies(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	pc, err := n.b.ListenUDP(53)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	client := netip.MustParseAddrPort("198.51.100.7:40005") // exists only inside this test's netstacks
	c, err := n.gw.Dialer(true).DialUDP(context.Background(), client, netip.AddrPortFrom(n.b.Addr(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rp, ok := c.(proxy.ReplyPusher)
	if !ok {
		t.Fatalf("%T is not a proxy.ReplyPusher", c)
	}
	push, ch := pushInto(t)
	if !rp.PushReplies(push) {
		t.Fatal("PushReplies reported false")
	}
	from := firstDatagram(t, c, pc)
	if from.String() != client.String() {
		t.Fatalf("the container saw the datagram from %s, want %s", from, client)
	}
	for _, a := range []string{"a1", "a2", "a3"} {
		pc.WriteTo([]byte(a), from)
	}
	for _, want := range []string{"a1", "a2", "a3"} {
		if got := next(t, ch); got.p != want || got.err != nil {
			t.Fatalf("pushed %q (err %v), want %q", got.p, got.err, want)
		}
	}

	// A closed container port: the ICMP error is pushed, and the
	// connection keeps working.
	closed, err := n.gw.Dialer(false).DialUDP(context.Background(), client, netip.AddrPortFrom(n.b.Addr(), 54))
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	push2, ch2 := pushInto(t)
	closed.(proxy.ReplyPusher).PushReplies(push2)
	closed.Write([]byte("anyone?"))
	if got := next(t, ch2); got.err == nil || !errors.Is(got.err, syscall.ECONNREFUSED) {
		t.Errorf("pushed %q, %v for a closed port; want an error matching ECONNREFUSED", got.p, got.err)
	}

	if !gateway.PushListening(c) {
		t.Fatal("no listener while pushing")
	}
	c.Close()
	if gateway.PushListening(c) {
		t.Error("Close left the listener registered: it could still push")
	}
}

// TestPushedReadDoesNotAllocate: reading a queued reply and pushing it
// allocates nothing of ours (the netstack's own buffers for the arriving
// datagram are made before, on delivery).
func TestPushedReadDoesNotAllocate(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	pc, err := n.b.ListenUDP(55)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := n.gw.Dialer(false).DialUDP(context.Background(), netip.MustParseAddrPort("127.0.0.1:40006"), netip.AddrPortFrom(n.b.Addr(), 55))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	from := firstDatagram(t, c, pc)
	const runs = 200
	// No listener is registered (PushReplies is not called), so each
	// reply waits on the endpoint until ReadPushed takes it. Each is sent
	// and left to arrive before its read is measured: the process's
	// allocation count also holds the switch's and the netstack's work
	// for a reply still crossing them (their buffers, not the read's).
	got, bytes := 0, 0
	push := func(p []byte, err error) {
		if err == nil {
			got++
			bytes += len(p)
		}
	}
	rbuf := make([]byte, 65535)
	var before, after runtime.MemStats
	var mallocs uint64
	for i := range runs + 1 {
		pc.WriteTo([]byte("r"), from)
		for wait := time.Now().Add(5 * time.Second); gateway.QueuedBytes(c) == 0; {
			if time.Now().After(wait) {
				t.Fatalf("reply %d not queued after 5 s", i)
			}
			time.Sleep(time.Millisecond)
		}
		runtime.ReadMemStats(&before)
		ok := gateway.ReadPushed(c, rbuf, push)
		runtime.ReadMemStats(&after)
		if !ok {
			t.Fatalf("reply %d queued but not read", i)
		}
		if i > 0 { // the first read warms up
			mallocs += after.Mallocs - before.Mallocs
		}
	}
	if got != runs+1 || bytes != runs+1 {
		t.Fatalf("pushed %d replies (%d bytes), want %d", got, bytes, runs+1)
	}
	// A read that allocated would show at least 1 per reply; now and then
	// another goroutine of the process (a netstack timer) allocates inside
	// a measured window, which is the fraction this bound leaves room for.
	if allocs := float64(mallocs) / runs; allocs >= 0.5 {
		t.Errorf("%.2f allocations per pushed reply, want 0", allocs)
	}
}
