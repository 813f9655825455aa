package gateway_test

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/nat"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// attackerServer makes h answer TCP port 80 with "hijacked".
func attackerServer(t *testing.T, h *vnettest.Host) {
	t.Helper()
	l, err := h.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hijacked")
			c.Close()
		}
	}()
}

// spoofedARP is the frame of issue 11 item 2: "who-has <gateway> tell
// <victim>" from the attacker's MAC.
func spoofedARP(attacker vswitch.MAC, victim, gw netip.Addr) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(attacker[:]), DstAddr: tcpip.LinkAddress(vswitch.Broadcast[:]), Type: header.ARPProtocolNumber,
	})
	a := header.ARP(b[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), attacker[:])
	v, g := victim.As4(), gw.As4()
	copy(a.ProtocolAddressSender(), v[:])
	copy(a.ProtocolAddressTarget(), g[:])
	return b
}

// spoofedUDP is an IPv4/UDP packet to the gateway from the victim's
// address and the attacker's MAC.
func spoofedUDP(attacker, gwMAC vswitch.MAC, victim, gw netip.Addr) []byte {
	const n = header.IPv4MinimumSize + header.UDPMinimumSize
	b := make([]byte, header.EthernetMinimumSize+n)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(attacker[:]), DstAddr: tcpip.LinkAddress(gwMAC[:]), Type: header.IPv4ProtocolNumber,
	})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: n, TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(victim.As4()), DstAddr: tcpip.AddrFrom4(gw.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.UDP(ip[header.IPv4MinimumSize:]).Encode(&header.UDPFields{SrcPort: 9, DstPort: 9, Length: header.UDPMinimumSize})
	return b
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func neighborMAC(t *testing.T, gw *gateway.Gateway, proto tcpip.NetworkProtocolNumber, addr netip.Addr) (vswitch.MAC, bool) {
	t.Helper()
	ns, err := gw.Stack().Neighbors(gateway.NICID, proto)
	if err != nil {
		t.Fatalf("neighbours: %s", err)
	}
	for _, n := range ns {
		if a, _ := netip.AddrFromSlice(n.Addr.AsSlice()); a == addr {
			return vswitch.MAC([]byte(n.LinkAddr)), true
		}
	}
	return vswitch.MAC{}, false
}

// Issue 11 item 2: one ARP request "who-has <gateway> tell <e>" from d
// must not redirect connections to e's published port to d.
func TestPinnedNeighborIgnoresSpoofedARP(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	d, e := n.host, n.b
	dst := whoServer(t, n)
	attackerServer(t, d)
	if err := n.gw.PinNeighbor(e.Addr(), e.MAC()); err != nil {
		t.Fatal(err)
	}

	replies := n.gw.Stack().Stats().ARP.OutgoingRepliesSent
	before := replies.Value()
	d.Link().Receive(vswitch.Frame{Data: spoofedARP(d.MAC(), e.Addr(), n.gw.Addr())})
	// The netstack has handled the request once it has answered it.
	waitFor(t, "the gateway's ARP reply", func() bool { return replies.Value() > before })

	if mac, ok := neighborMAC(t, n.gw, ipv4.ProtocolNumber, e.Addr()); !ok || mac != e.MAC() {
		t.Fatalf("gateway's neighbour entry for %s = %s (found %v), want %s", e.Addr(), mac, ok, e.MAC())
	}
	client := netip.MustParseAddrPort("198.51.100.7:40001")
	if got := seenAs(t, n.gw.Dialer(true), client, dst); got != client.String() {
		t.Fatalf("published-port connection to %s answered %q, want e's server (%s)", dst, got, client)
	}

	// Unpinned, the entry is the netstack's own again: d can claim it.
	n.gw.UnpinNeighbor(e.Addr())
	if _, ok := neighborMAC(t, n.gw, ipv4.ProtocolNumber, e.Addr()); ok {
		t.Fatal("entry still there after UnpinNeighbor")
	}
}

// Issue 11 item 2 on icc=true: one IP packet to the gateway with e's
// source address must not move the hairpin NAT's entry for e to d.
func TestPinnedNeighborSurvivesSpoofedSource(t *testing.T) {
	table, err := nat.NewTable(nat.Config{
		Network: "web", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Gateway: netip.MustParseAddr("10.240.0.1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := newEgressNet(t, gateway.Config{NAT: table})
	d, e := n.host, n.b
	if err := table.SetMappings([]nat.PortMapping{{Proto: nat.TCP, HostPort: 8080, Target: netip.AddrPortFrom(e.Addr(), 80)}}); err != nil {
		t.Fatal(err)
	}
	whoServer(t, n)
	attackerServer(t, d)
	for _, h := range []*vnettest.Host{d, e} {
		if err := n.gw.PinNeighbor(h.Addr(), h.MAC()); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway reads the source on the switch's goroutine: once
	// Receive returns, the packet has been seen.
	d.Link().Receive(vswitch.Frame{Data: spoofedUDP(d.MAC(), n.gw.MAC(), e.Addr(), n.gw.Addr())})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialTCP(ctx, netip.AddrPortFrom(n.gw.Addr(), 8080))
	if err != nil {
		t.Fatalf("d → gateway:8080 (published by e): %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "10.240.0.1:") {
		t.Fatalf("hairpin to e's published port answered %q, want e's server", got)
	}
	if _, lost := n.gw.NATStats(); lost != 0 {
		t.Errorf("%d translated packets had no neighbour, want 0 (both pinned)", lost)
	}
}

func TestPinNeighborBothFamilies(t *testing.T) {
	n := newEgressNet(t, gateway.Config{})
	v6 := netip.MustParseAddr("fd00::3")
	m := vswitch.MAC{2, 0x42, 0, 0, 0, 3}
	if err := n.gw.PinNeighbor(v6, m); err != nil {
		t.Fatal(err)
	}
	if got, ok := neighborMAC(t, n.gw, ipv6.ProtocolNumber, v6); !ok || got != m {
		t.Fatalf("IPv6 neighbour %s = %s (%v), want %s", v6, got, ok, m)
	}
	if err := n.gw.PinNeighbor(v6, vswitch.Broadcast); err == nil {
		t.Fatal("pinned to the broadcast MAC")
	}
}
