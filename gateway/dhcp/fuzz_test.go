package dhcp_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// FuzzHandleFrame feeds arbitrary frames to a server that already has a
// bound lease (macA) and an offer (macB). No frame may panic it; every
// frame it sends must be a valid Ethernet/IPv4/UDP packet from the gateway
// with correct checksums, carrying a decodable BOOTREPLY; the lease table
// must agree with the allocator; and a sweep far in the future must
// return every address.
//
// With fix set, the harness first repairs the IPv4 and UDP checksums of
// frames whose headers are sound, so that mutations reach the DHCP
// decoder and the protocol logic instead of stopping at a bad checksum.
// With offload set, the frame claims a partial transport checksum, as
// frames from a TAP with checksum offload do.
func FuzzHandleFrame(f *testing.F) {
	a := netip.MustParseAddr("10.99.0.2")
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router.AsSlice()))
	req := func(x netip.Addr) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(x.AsSlice()))
	}
	seeds := [][]byte{
		broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA),
		broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithBroadcast(true), req(netip.MustParseAddr("10.99.0.9"))), macA),
		broadcastFrame(newMsg(dhcpv4.MessageTypeRequest, macB, sid, req(netip.MustParseAddr("10.99.0.3"))), macB),
		broadcastFrame(newMsg(dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{1, 2, 3, 4})), req(a)), macB),
		broadcastFrame(newMsg(dhcpv4.MessageTypeRequest, macA, req(netip.MustParseAddr("10.99.0.77"))), macA),
		clientFrame(newMsg(dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(a.AsSlice())).ToBytes(), macA, serverMAC, a, router),
		clientFrame(newMsg(dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(a.AsSlice()), sid).ToBytes(), macA, serverMAC, a, router),
		broadcastFrame(newMsg(dhcpv4.MessageTypeDecline, macA, sid, req(a)), macA),
		clientFrame(newMsg(dhcpv4.MessageTypeInform, macA, dhcpv4.WithClientIP(a.AsSlice())).ToBytes(), macA, vswitch.Broadcast, a, bcastIP),
		broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(net.IP{10, 0, 0, 1})), macA),
		broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(make([]byte, 300)))), macA),
	}
	for _, b := range notDHCP() {
		seeds = append(seeds, b)
	}
	for i, s := range seeds {
		f.Add(s, i%2 == 0, false)
	}
	f.Add(seeds[0], false, true)

	// The state every input meets: A bound to 10.99.0.2, B offered
	// 10.99.0.3.
	preamble := [][]byte{
		broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA),
		broadcastFrame(newMsg(dhcpv4.MessageTypeRequest, macA, sid, req(a)), macA),
		broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macB), macB),
	}

	f.Fuzz(func(t *testing.T, frame []byte, fix, offload bool) {
		h := newHarness(t, func(c *dhcp.Config) { c.Logger = nil })
		for _, b := range preamble {
			h.srv.HandleFrame(vswitch.Frame{Data: b})
		}
		if n := len(h.take()); n != 3 || len(h.srv.Leases()) != 2 {
			t.Fatalf("preamble: %d replies, leases %+v", n, h.srv.Leases())
		}

		if fix {
			fixChecksums(frame)
		}
		fr := vswitch.Frame{Data: frame}
		if offload {
			fr.Offload = vswitch.Offload{Flags: vswitch.OffloadNeedsCsum}
		}
		h.srv.HandleFrame(fr)
		for _, b := range h.take() {
			if len(b) > 1400+14 {
				t.Fatalf("reply of %d bytes exceeds the MTU", len(b))
			}
			if _, err := checkReply(b); err != nil {
				t.Fatalf("invalid reply: %v\n% x", err, b)
			}
		}
		if err := h.alloc.check(h.srv.Leases()); err != nil {
			t.Fatal(err)
		}
		h.srv.Sweep(h.now.Add(24 * time.Hour))
		if n := h.alloc.held(); n != 0 || len(h.srv.Leases()) != 0 {
			t.Fatalf("after a sweep past every expiry: %d addresses held, leases %+v", n, h.srv.Leases())
		}
	})
}

// fixChecksums repairs the IPv4 header and UDP checksums of an
// Ethernet/IPv4/UDP frame whose lengths are consistent, and leaves any
// other frame alone.
func fixChecksums(b []byte) {
	if len(b) < 14+20 || b[12] != 0x08 || b[13] != 0x00 {
		return
	}
	ip := header.IPv4(b[14:])
	ihl := int(ip.HeaderLength())
	tlen := int(ip.TotalLength())
	if ip[0]>>4 != 4 || ihl < 20 || tlen < ihl || tlen > len(ip) {
		return
	}
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	if ip.Protocol() != 17 || tlen < ihl+8 {
		return
	}
	u := header.UDP(ip[ihl:tlen])
	if ul := int(u.Length()); ul < 8 || ul > len(u) {
		return
	}
	fixUDPChecksum(b[:14+ihl+len(u)])
}
