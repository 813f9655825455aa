package gateway_test

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
)

// Egress flows take their host sockets from a shared budget
// (EgressConfig.Admit): a flow the budget refuses is refused as one over
// the limit, and every admitted flow gives its slot back when it ends.
func TestEgressSharesTheDescriptorBudget(t *testing.T) {
	var held, refused atomic.Int64
	const budget = 1
	cfg := gateway.Config{HostLoopback: hostLoopback, Egress: gateway.EgressConfig{
		Admit: func() bool {
			if held.Add(1) > budget {
				held.Add(-1)
				refused.Add(1)
				return false
			}
			return true
		},
		Release:    func() { held.Add(-1) },
		UDPTimeout: 300 * time.Millisecond,
	}}
	n := newEgressNet(t, cfg)
	srv := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c1, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, srv.Port()))
	if err != nil {
		t.Fatalf("the first flow, within the budget: %v", err)
	}
	if _, err := n.host.DialTCP(ctx, netip.AddrPortFrom(hostLoopback, srv.Port())); err == nil {
		t.Fatal("a second TCP flow got a host socket past the budget")
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	u, err := n.host.DialUDP(netip.AddrPortFrom(hostLoopback, netip.MustParseAddrPort(pc.LocalAddr().String()).Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Write([]byte("over the budget"))
	waitFor(t, "the UDP flow refused", func() bool { return n.gw.Stats().UDPOverLimit == 1 })
	if st := n.gw.Stats(); st.TCPOverLimit != 1 || refused.Load() != 2 {
		t.Fatalf("over limit: TCP %d, UDP %d, refused by the budget %d; want 1, 1, 2", st.TCPOverLimit, st.UDPOverLimit, refused.Load())
	}
	c1.Close()
	waitFor(t, "the TCP flow's slot given back", func() bool { return held.Load() == 0 })
	u.Write([]byte("within the budget now"))
	waitFor(t, "a UDP flow admitted", func() bool { return n.gw.Stats().UDPTotal == 1 })
	waitFor(t, "the idle UDP flow's slot given back", func() bool { return held.Load() == 0 && n.gw.Stats().UDPActive == 0 })
}
