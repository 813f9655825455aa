package vnettest_test

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// dhcpFrame wraps a DHCP message from client mac in UDP 68→67, IPv4
// 0.0.0.0→255.255.255.255 and a broadcast Ethernet frame. The UDP
// checksum is left out (0), as IPv4 allows.
func dhcpFrame(mac net.HardwareAddr, m *dhcpv4.DHCPv4) []byte {
	payload := m.ToBytes()
	f := make([]byte, 14+20+8+len(payload))
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], mac)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[16:], []byte{255, 255, 255, 255})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 68)
	binary.BigEndian.PutUint16(udp[2:], 67)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return f
}

// dhcpReplies collects the DHCP messages that reach host h.
func dhcpReplies(t *testing.T, h *vnettest.Host) func() []*dhcpv4.DHCPv4 {
	var mu sync.Mutex
	var got []*dhcpv4.DHCPv4
	err := h.Wire().SetStages(vnettest.Down, vnettest.StageFunc(func(_ *vnettest.StageContext, p vnettest.Packet, emit func(vnettest.Packet)) {
		f := p.Data
		if len(f) > 14+20+8 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[14+9] == 17 {
			udp := f[14+int(f[14]&0xf)*4:]
			if binary.BigEndian.Uint16(udp[2:]) == 68 {
				if m, err := dhcpv4.FromBytes(udp[8:]); err == nil {
					mu.Lock()
					got = append(got, m)
					mu.Unlock()
				}
			}
		}
		emit(p)
	}))
	if err != nil {
		t.Fatal(err)
	}
	return func() []*dhcpv4.DHCPv4 {
		mu.Lock()
		defer mu.Unlock()
		return append([]*dhcpv4.DHCPv4(nil), got...)
	}
}

// A client that configures itself gets a lease from the real gateway's
// DHCP server: an address of the network, the gateway as router and DNS
// server; and its name then resolves.
func TestGatewayDHCP(t *testing.T) {
	w := vnettest.New(t)
	lan := w.NewNetwork("lan", "10.5.0.0/24")
	gw := lan.NewGateway(vnettest.GatewayConfig{DHCP: true})
	a := lan.NewHost("a") // 10.5.0.2: the lease must not take it
	replies := dhcpReplies(t, a)
	vm := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}

	disc, err := dhcpv4.NewDiscovery(vm, dhcpv4.WithOption(dhcpv4.OptHostName("vm1")))
	if err != nil {
		t.Fatal(err)
	}
	a.Inject(dhcpFrame(vm, disc))
	waitFor(t, "a DHCP offer", func() bool { return len(replies()) > 0 })
	offer := replies()[0]
	if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.TransactionID != disc.TransactionID {
		t.Fatalf("got %s", offer.Summary())
	}
	if ip := offer.YourIPAddr.String(); ip != "10.5.0.3" {
		t.Fatalf("offered %s, want the lowest free address 10.5.0.3", ip)
	}
	if r := offer.Router(); len(r) != 1 || r[0].String() != gw.Addr().String() {
		t.Fatalf("router %v, want the gateway %s", r, gw.Addr())
	}
	if d := offer.DNS(); len(d) != 1 || d[0].String() != gw.Addr().String() {
		t.Fatalf("DNS %v, want the gateway %s", d, gw.Addr())
	}

	req, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptHostName("vm1")))
	if err != nil {
		t.Fatal(err)
	}
	a.Inject(dhcpFrame(vm, req))
	waitFor(t, "a DHCP ack", func() bool { return len(replies()) > 1 })
	if ack := replies()[1]; ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("got %s", ack.Summary())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := a.Resolver().LookupHost(ctx, "vm1.lan")
	if err != nil || len(addrs) != 1 || addrs[0] != "10.5.0.3" {
		t.Fatalf("vm1.lan resolves to %v, %v; want [10.5.0.3]", addrs, err)
	}
	// The leased address is taken for hosts too.
	if b := lan.NewHost("b"); b.Addr().String() != "10.5.0.4" {
		t.Fatalf("next host got %s, want 10.5.0.4", b.Addr())
	}
}

// TestVirtualDHCPLeaseExpiry: the gateway's DHCP leases expire on the
// World's clock: an hour (the default lease) after the ACK, with no
// renewal, the address goes back to the network's pool, and a client
// that asks for it gets it.
func TestVirtualDHCPLeaseExpiry(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(4))
	lan := w.NewNetwork("lan", "10.5.0.0/24")
	lan.NewGateway(vnettest.GatewayConfig{DHCP: true})
	a := lan.NewHost("a") // 10.5.0.2
	replies := dhcpReplies(t, a)
	// exchange sends m from mac and returns the reply to it.
	exchange := func(mac net.HardwareAddr, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		t.Helper()
		seen := len(replies())
		a.Inject(dhcpFrame(mac, m))
		if ok, _ := w.AdvanceUntil(time.Second, func() bool { return len(replies()) > seen }); !ok {
			t.Fatalf("no reply to %s", m.MessageType())
		}
		return replies()[seen]
	}
	vm := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}
	disc, err := dhcpv4.NewDiscovery(vm)
	if err != nil {
		t.Fatal(err)
	}
	req, err := dhcpv4.NewRequestFromOffer(exchange(vm, disc))
	if err != nil {
		t.Fatal(err)
	}
	if ack := exchange(vm, req); ack.MessageType() != dhcpv4.MessageTypeAck || ack.YourIPAddr.String() != "10.5.0.3" {
		t.Fatalf("got %s; want an ACK of 10.5.0.3", ack.Summary())
	}
	// offered asks, from a client of its own, for 10.5.0.3.
	offered := func(last byte) string {
		t.Helper()
		mac := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x01, last}
		d, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 5, 0, 3))))
		if err != nil {
			t.Fatal(err)
		}
		return exchange(mac, d).YourIPAddr.String()
	}
	w.Advance(59 * time.Minute)
	if got := offered(1); got == "10.5.0.3" {
		t.Fatal("59 minutes into the lease, 10.5.0.3 was offered to another client")
	}
	w.Advance(2 * time.Minute) // past the hour, and a sweep (every 10 s)
	if got := offered(2); got != "10.5.0.3" {
		t.Fatalf("61 minutes after the ACK another client was offered %s; want the expired lease's 10.5.0.3", got)
	}
}
