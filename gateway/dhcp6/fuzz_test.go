package dhcp6_test

import (
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// FuzzHandleFrame feeds arbitrary messages, from a client with a
// reservation (macA, already bound) or without (macB), to the server. No
// message may panic it; every frame it sends must be a valid
// Ethernet/IPv6/UDP packet from the gateway to the client with a correct
// checksum, carrying an ADVERTISE or REPLY that a reference decoder
// (insomniacslk/dhcp) reads, with the server's identifier; the only
// address it may hand out with a lifetime is the client's reservation;
// and the lease table holds nothing but that reservation.
//
// With raw set, the input is the whole frame instead of a message
// wrapped in a sound one.
func FuzzHandleFrame(f *testing.F) {
	t := &testing.T{}
	sol := solicit(t, macA)
	sid := dhcpv6.WithServerID(serverDUID)
	info := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeInformationRequest}
	seeds := [][]byte{
		sol.ToBytes(),
		solicit(t, macA, dhcpv6.WithRapidCommit).ToBytes(),
		followUp(sol, dhcpv6.MessageTypeRequest, sid).ToBytes(),
		followUp(sol, dhcpv6.MessageTypeRenew, sid, withAddrs(addrA, netip.MustParseAddr("fd00:99::5"))).ToBytes(),
		followUp(sol, dhcpv6.MessageTypeRebind, withAddrs(addrA)).ToBytes(),
		followUp(sol, dhcpv6.MessageTypeConfirm, withAddrs(addrA)).ToBytes(),
		followUp(sol, dhcpv6.MessageTypeRelease, sid, withAddrs(addrA)).ToBytes(),
		followUp(sol, dhcpv6.MessageTypeDecline, sid, withAddrs(addrA)).ToBytes(),
		info.ToBytes(),
	}
	for i, s := range seeds {
		f.Add(s, i%2 == 0, false)
	}
	f.Add(clientFrame(macA, seeds[0]), true, true)
	f.Fuzz(func(t *testing.T, b []byte, fromA, raw bool) {
		h := newHarness(t)
		h.exchange(t, macA, solicit(t, macA, dhcpv6.WithRapidCommit))
		mac := macB
		if fromA {
			mac = macA
		}
		frame, client := b, linkLocal(mac)
		if !raw {
			frame = clientFrame(mac, b)
		} else if len(frame) >= 14+40 {
			mac = vswitch.MAC(frame[6:12])
			client = netip.AddrFrom16([16]byte(frame[14+8 : 14+24]))
		}
		h.s.HandleFrame(vswitch.Frame{Data: frame})
		for _, out := range h.take() {
			r := checkReply(t, out, mac, client)
			if r.Type() != dhcpv6.MessageTypeAdvertise && r.Type() != dhcpv6.MessageTypeReply {
				t.Fatalf("sent a %s", r.Type())
			}
			if sid := r.Options.ServerID(); sid == nil || !sid.Equal(serverDUID) {
				t.Fatalf("server ID %v", sid)
			}
			for _, ia := range r.Options.IANA() {
				for _, a := range ia.Options.Addresses() {
					if a.ValidLifetime != 0 && (mac != macA || a.IPv6Addr.String() != addrA.String()) {
						t.Fatalf("gave %s to %s for %s", a.IPv6Addr, mac, a.ValidLifetime)
					}
				}
			}
		}
		for _, l := range h.s.Leases() {
			if l.MAC != macA || l.Addr != addrA {
				t.Fatalf("lease table holds %+v", l)
			}
		}
	})
}
