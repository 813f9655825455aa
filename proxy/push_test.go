package proxy_test

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// pushedFlow publishes a pushing container on 127.0.0.1 and returns the
// client, its flow's address at the container, and the flow's push.
func pushedFlow(t *testing.T, m *proxy.Manager) (*net.UDPConn, proxy.Published, netip.AddrPort, *proxytest.Loopback, func([]byte, error)) {
	t.Helper()
	d := whoContainer(t, "push")
	pubs, err := m.Publish("web/a", mapping(t, "127.0.0.1::53/udp"), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := udpClient(t, netip.MustParseAddr("127.0.0.1"))
	flow := flowOf(t, c, pubs[0])
	return c, pubs[0], flow, d, flowPush(t, m, d, localUDP(c))
}

// flowPush returns the push of client's flow, which holds the dialer's
// push lock around each call (one call at a time, as the connection
// makes them).
func flowPush(t *testing.T, m *proxy.Manager, d *proxytest.Loopback, client netip.AddrPort) func([]byte, error) {
	t.Helper()
	fp := proxy.FlowPush(m, client)
	if fp == nil {
		t.Fatal("the flow of a ReplyPusher connection does not push")
	}
	mu := d.PushLock()
	return func(p []byte, err error) {
		mu.Lock()
		fp(p, err)
		mu.Unlock()
	}
}

// TestUDPPushedReplyDoesNotAllocate: a pushed reply goes to the client
// from the published address, and sending it allocates nothing.
func TestUDPPushedReplyDoesNotAllocate(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	c, p, _, _, push := pushedFlow(t, m)
	before := m.Stats().UDP.PacketsOut
	msg := []byte("pushed")
	const runs = 100
	allocs := testing.AllocsPerRun(runs, func() { push(msg, nil) })
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	for i := range runs + 1 {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "pushed" || from != clientAddr(p) {
			t.Fatalf("reply %d: %q from %s (%v), want %q from %s", i, buf[:n], from, err, msg, clientAddr(p))
		}
	}
	if out := m.Stats().UDP.PacketsOut - before; out != runs+1 {
		t.Errorf("%d replies counted out, want %d", out, runs+1)
	}
	if allocs != 0 {
		t.Errorf("%.1f allocations per pushed reply, want 0", allocs)
	}
}

// TestUDPPushedFlowEnds: a pushing flow survives up to
// 64 consecutive refusals (as a reading flow does); after more, or after
// its connection reports it closed, it is dead: the client's next
// datagram dials a new flow, and the janitor removes a dead flow nobody
// uses, neither counted as expired.
func TestUDPPushedFlowEnds(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{UDPTimeout: time.Hour})
	c, p, flow, d, push := pushedFlow(t, m)
	refused := &net.OpError{Op: "read", Net: "udp", Err: syscall.ECONNREFUSED}
	for range 64 {
		push(nil, refused)
	}
	if f := flowOf(t, c, p); f != flow {
		t.Fatalf("64 refusals ended the flow: %s is now %s", flow, f)
	}
	for range 65 { // the reply flowOf got reset the count
		push(nil, refused)
	}
	f2 := flowOf(t, c, p)
	if f2 == flow {
		t.Fatalf("after 65 refusals the client still has its flow %s", flow)
	}
	if st := m.Stats().UDP; st.FlowsTotal != 2 || st.FlowsActive != 1 || st.FlowsExpired != 0 {
		t.Errorf("stats %+v, want a second flow, the first not counted as expired", st)
	}

	// Closed under the flow, and the client does not come back.
	flowPush(t, m, d, localUDP(c))(nil, net.ErrClosed)
	if !waitFor(ioTimeout, func() bool { return m.Stats().UDP.FlowsActive == 0 }) {
		t.Fatalf("stats %+v, want the dead flow removed", m.Stats().UDP)
	}
	if st := m.Stats().UDP; st.FlowsExpired != 0 {
		t.Errorf("stats %+v: a dead flow counted as expired", st)
	}
}
