package gateway_test

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/nat"
)

func TestHairpinThroughGateway(t *testing.T) {
	table, err := nat.NewTable(nat.Config{
		Network: "web", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Gateway: netip.MustParseAddr("10.240.0.1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := newEgressNet(t, gateway.Config{NAT: table})
	// b publishes its port 80 on the host's port 8080.
	if err := table.SetMappings([]nat.PortMapping{{Proto: nat.TCP, HostPort: 8080, Target: netip.AddrPortFrom(n.b.Addr(), 80)}}); err != nil {
		t.Fatal(err)
	}
	whoServer(t, n)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.host.DialTCP(ctx, netip.AddrPortFrom(n.gw.Addr(), 8080))
	if err != nil {
		t.Fatalf("container a → gateway:8080 (published by b): %v", err)
	}
	defer c.Close()
	if ra := c.RemoteAddr().String(); ra != "10.240.0.1:8080" {
		t.Errorf("a sees its peer as %s, want the address it dialled", ra)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "10.240.0.1:") {
		t.Errorf("b saw the hairpinned connection from %q, want the gateway (masquerade)", got)
	}
	st, lost := n.gw.NATStats()
	// The first SYN goes while b's MAC is being resolved (the gateway had
	// never heard from b); its retransmission gets through.
	if st.TranslatedOrig == 0 || st.TranslatedReply == 0 || lost > 1 {
		t.Errorf("NAT stats %+v, lost %d: want translations both ways and at most the first SYN lost", st, lost)
	}

	// A port nobody published at the gateway address is the netstack's:
	// refused.
	if _, err := n.host.DialTCP(ctx, netip.AddrPortFrom(n.gw.Addr(), 8081)); err == nil {
		t.Error("an unpublished port on the gateway accepted a connection")
	}
}
