package dhcp_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

func TestDiscoverGetsOfferWithEveryOption(t *testing.T) {
	h := newHarness(t)
	disc := newMsg(dhcpv4.MessageTypeDiscover, macA,
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 1})),
		dhcpv4.WithOption(dhcpv4.OptHostName("vm-1")))
	r := h.one(broadcastFrame(disc, macA))
	m := r.msg
	if m.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("reply %s, want OFFER", m.MessageType())
	}
	if m.TransactionID != xid || vswitch.MAC(m.ClientHWAddr) != macA {
		t.Errorf("xid %s chaddr %s, want %s %s", m.TransactionID, m.ClientHWAddr, xid, macA)
	}
	if got := addr(m.YourIPAddr); got != netip.MustParseAddr("10.99.0.2") {
		t.Errorf("yiaddr %s, want the allocator's lowest free 10.99.0.2", got)
	}
	if !addr(m.ClientIPAddr).IsUnspecified() || !addr(m.GatewayIPAddr).IsUnspecified() {
		t.Errorf("ciaddr %s giaddr %s, want 0.0.0.0", m.ClientIPAddr, m.GatewayIPAddr)
	}
	// No broadcast flag, no client address: unicast to the offered
	// address at the client's MAC.
	if r.dstMAC != macA || r.dstIP != netip.MustParseAddr("10.99.0.2") {
		t.Errorf("sent to %s %s, want %s 10.99.0.2", r.dstMAC, r.dstIP, macA)
	}
	checkConfigOptions(t, m)
	checkLeaseOptions(t, m, time.Hour)
	if id := m.Options.Get(dhcpv4.OptionClientIdentifier); string(id) != string([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 1}) {
		t.Errorf("client identifier % x not echoed", id)
	}
	ls := h.srv.Leases()
	if len(ls) != 1 || ls[0].MAC != macA || ls[0].State != dhcp.StateOffered || ls[0].Hostname != "vm-1" ||
		!ls[0].Expiry.Equal(h.now.Add(dhcp.OfferHold)) {
		t.Errorf("leases %+v, want one offered to %s (vm-1) until now+%s", ls, macA, dhcp.OfferHold)
	}
	if st := h.srv.Stats(); st.Discovers != 1 || st.Offers != 1 {
		t.Errorf("stats %+v, want 1 discover, 1 offer", st)
	}
}

// checkConfigOptions checks the network's options in an OFFER or ACK.
func checkConfigOptions(t *testing.T, m *dhcpv4.DHCPv4) {
	t.Helper()
	if got := net.IP(m.SubnetMask()).String(); got != "255.255.255.0" {
		t.Errorf("subnet mask %s", got)
	}
	if r := m.Router(); len(r) != 1 || addr(r[0]) != router {
		t.Errorf("routers %v, want [%s]", r, router)
	}
	if d := m.DNS(); len(d) != 2 || addr(d[0]) != dns1 || addr(d[1]) != dns2 {
		t.Errorf("DNS %v, want [%s %s]", d, dns1, dns2)
	}
	if d := m.DomainName(); d != "sy.test" {
		t.Errorf("domain %q", d)
	}
	if b := m.BroadcastAddress(); addr(b) != netip.MustParseAddr("10.99.0.255") {
		t.Errorf("broadcast address %s", b)
	}
	if mtu := m.Options.Get(dhcpv4.OptionInterfaceMTU); len(mtu) != 2 || binary.BigEndian.Uint16(mtu) != 1400 {
		t.Errorf("interface MTU option % x, want 1400", mtu)
	}
}

// checkLeaseOptions checks lease time, T1 and T2.
func checkLeaseOptions(t *testing.T, m *dhcpv4.DHCPv4, lease time.Duration) {
	t.Helper()
	if got := m.IPAddressLeaseTime(0); got != lease {
		t.Errorf("lease time %s, want %s", got, lease)
	}
	if got := m.IPAddressRenewalTime(0); got != lease/2 {
		t.Errorf("T1 %s, want %s", got, lease/2)
	}
	if got := m.IPAddressRebindingTime(0); got != lease*7/8 {
		t.Errorf("T2 %s, want %s", got, lease*7/8)
	}
}

func TestBroadcastFlag(t *testing.T) {
	h := newHarness(t)
	r := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithBroadcast(true)), macA))
	if r.dstMAC != vswitch.Broadcast || r.dstIP != bcastIP {
		t.Errorf("OFFER with the broadcast flag sent to %s %s, want ff:ff:ff:ff:ff:ff 255.255.255.255", r.dstMAC, r.dstIP)
	}
	if !r.msg.IsBroadcast() {
		t.Error("reply does not carry the request's broadcast flag")
	}
	yi := addr(r.msg.YourIPAddr)
	req := newMsg(dhcpv4.MessageTypeRequest, macA, dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(yi.AsSlice())))
	ack := h.one(broadcastFrame(req, macA))
	if ack.msg.MessageType() != dhcpv4.MessageTypeAck || ack.dstMAC != vswitch.Broadcast || ack.dstIP != bcastIP {
		t.Errorf("REQUEST with the broadcast flag: %s to %s %s, want a broadcast ACK", ack.msg.MessageType(), ack.dstMAC, ack.dstIP)
	}
}

func TestDORABindsLease(t *testing.T) {
	h := newHarness(t)
	a := h.dora(macA, dhcpv4.WithOption(dhcpv4.OptHostName("web\x1b[31m-1")))
	if a != netip.MustParseAddr("10.99.0.2") {
		t.Fatalf("bound %s, want 10.99.0.2", a)
	}
	ls := h.srv.Leases()
	want := dhcp.Lease{MAC: macA, Addr: a, Hostname: "web31m-1", Expiry: h.now.Add(time.Hour), State: dhcp.StateBound}
	if len(ls) != 1 || ls[0] != want {
		t.Errorf("leases %+v, want [%+v]", ls, want)
	}
	if m, ok := h.alloc.holder(a); !ok || m != macA {
		t.Errorf("allocator holds %s for %s (%v), want %s", a, m, ok, macA)
	}
	if st := h.srv.Stats(); st.Requests != 1 || st.Acks != 1 || st.Naks != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSameMACSameAddress(t *testing.T) {
	h := newHarness(t)
	a1 := h.dora(macA)
	b1 := h.dora(macB)
	if a1 == b1 {
		t.Fatalf("two clients got the same address %s", a1)
	}
	// A client that lost its state starts over: same address.
	if a2 := h.dora(macA); a2 != a1 {
		t.Errorf("second DORA from %s got %s, first %s", macA, a2, a1)
	}
	// Retransmitted DISCOVERs keep offering the same address.
	h2 := newHarness(t)
	var offered []netip.Addr
	for range 3 {
		r := h2.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA))
		offered = append(offered, addr(r.msg.YourIPAddr))
	}
	if offered[0] != offered[1] || offered[1] != offered[2] || h2.alloc.held() != 1 {
		t.Errorf("offers %v with %d addresses held, want one address", offered, h2.alloc.held())
	}
}

func TestRequestedAddressHonoured(t *testing.T) {
	h := newHarness(t)
	want := netip.MustParseAddr("10.99.0.50")
	r := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice()))), macA))
	if got := addr(r.msg.YourIPAddr); got != want {
		t.Errorf("offered %s, want the requested %s", got, want)
	}
	// Taken by A: B asking for it gets the lowest free one.
	r = h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macB,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice()))), macB))
	if got := addr(r.msg.YourIPAddr); got != netip.MustParseAddr("10.99.0.2") {
		t.Errorf("offered %s for a taken address, want 10.99.0.2", got)
	}
	// A changes its mind before requesting: the new preference wins and
	// the first offer is freed.
	other := netip.MustParseAddr("10.99.0.60")
	r = h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(other.AsSlice()))), macA))
	if got := addr(r.msg.YourIPAddr); got != other {
		t.Errorf("re-DISCOVER offered %s, want %s", got, other)
	}
	if _, held := h.alloc.holder(want); held {
		t.Errorf("%s still held after the client asked for another address", want)
	}
	// Outside the subnet: ignored, not passed on.
	r = h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, vswitch.MAC{2, 0, 0, 0, 0, 9},
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{192, 168, 1, 5}))), vswitch.MAC{2, 0, 0, 0, 0, 9}))
	if got := addr(r.msg.YourIPAddr); !subnet.Contains(got) {
		t.Errorf("offered %s", got)
	}
}

func TestStaticLeaseFromAllocator(t *testing.T) {
	h := newHarness(t)
	h.alloc.static[macA] = netip.MustParseAddr("10.99.0.77")
	if got := h.dora(macA); got != netip.MustParseAddr("10.99.0.77") {
		t.Errorf("bound %s, want the static 10.99.0.77", got)
	}
}

func TestRequestForAnotherServerIgnored(t *testing.T) {
	h := newHarness(t)
	offer := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA))
	yi := addr(offer.msg.YourIPAddr)
	req := newMsg(dhcpv4.MessageTypeRequest, macA,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 99, 0, 254})),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(yi.AsSlice())))
	h.none(broadcastFrame(req, macA))
	if st := h.srv.Stats(); st.Ignored != 1 || st.Acks != 0 || st.Naks != 0 {
		t.Errorf("stats %+v, want 1 ignored and no ACK/NAK", st)
	}
	if _, held := h.alloc.holder(yi); held || len(h.srv.Leases()) != 0 {
		t.Errorf("offer of %s kept after the client chose another server: %+v", yi, h.srv.Leases())
	}
}

func TestInitReboot(t *testing.T) {
	h := newHarness(t)
	a := h.dora(macA)
	initReboot := func(mac vswitch.MAC, want netip.Addr) *sentReply {
		return h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeRequest, mac,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice()))), mac))
	}

	// Its own address: ACK.
	if r := initReboot(macA, a); r.msg.MessageType() != dhcpv4.MessageTypeAck || addr(r.msg.YourIPAddr) != a {
		t.Errorf("init-reboot for its own %s: %s %s", a, r.msg.MessageType(), r.msg.YourIPAddr)
	}
	// Another address of the subnet: NAK, broadcast, no address, and
	// the lease stays.
	r := initReboot(macA, netip.MustParseAddr("10.99.0.77"))
	checkNAK(t, r)
	if ls := h.srv.Leases(); len(ls) != 1 || ls[0].Addr != a {
		t.Errorf("leases after NAK %+v", ls)
	}
	// An address of another network (the client moved): NAK.
	checkNAK(t, initReboot(macA, netip.MustParseAddr("192.168.7.20")))
	// A client this server has no record of (a daemon restart) asking
	// for a free address: adopted.
	if r := initReboot(macB, netip.MustParseAddr("10.99.0.40")); r.msg.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("init-reboot of an unknown client for a free address: %s, want ACK", r.msg.MessageType())
	}
	// ... asking for someone else's: NAK, and nothing left held.
	macC := vswitch.MAC{0x52, 0x54, 0, 0x12, 0x34, 3}
	checkNAK(t, initReboot(macC, a))
	if _, ok := h.alloc.byMAC[macC]; ok {
		t.Errorf("NAKed client %s still holds an address", macC)
	}
	if st := h.srv.Stats(); st.Naks != 3 {
		t.Errorf("stats %+v, want 3 NAKs", st)
	}
	if err := h.alloc.check(h.srv.Leases()); err != nil {
		t.Error(err)
	}
}

func checkNAK(t *testing.T, r *sentReply) {
	t.Helper()
	m := r.msg
	if m.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("reply %s, want NAK", m.MessageType())
	}
	if r.dstMAC != vswitch.Broadcast || r.dstIP != bcastIP {
		t.Errorf("NAK sent to %s %s, want broadcast", r.dstMAC, r.dstIP)
	}
	if !addr(m.YourIPAddr).IsUnspecified() || m.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || m.Options.Has(dhcpv4.OptionRouter) {
		t.Errorf("NAK carries yiaddr %s or lease options: %s", m.YourIPAddr, m.Options)
	}
}

func TestRenewAndRebind(t *testing.T) {
	h := newHarness(t)
	a := h.dora(macA)
	h.now = h.now.Add(40 * time.Minute) // past T1

	// RENEWING: unicast to the server from the client's address.
	renew := newMsg(dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(a.AsSlice()))
	r := h.one(clientFrame(renew.ToBytes(), macA, serverMAC, a, router))
	if r.msg.MessageType() != dhcpv4.MessageTypeAck || addr(r.msg.YourIPAddr) != a || addr(r.msg.ClientIPAddr) != a {
		t.Fatalf("renew: %s yiaddr %s ciaddr %s", r.msg.MessageType(), r.msg.YourIPAddr, r.msg.ClientIPAddr)
	}
	if r.dstMAC != macA || r.dstIP != a {
		t.Errorf("renew ACK sent to %s %s, want %s %s", r.dstMAC, r.dstIP, macA, a)
	}
	checkLeaseOptions(t, r.msg, time.Hour)
	if ls := h.srv.Leases(); len(ls) != 1 || !ls[0].Expiry.Equal(h.now.Add(time.Hour)) {
		t.Errorf("lease not extended: %+v", ls)
	}

	// REBINDING: broadcast, from the client's address.
	h.now = h.now.Add(55 * time.Minute)
	r = h.one(clientFrame(renew.ToBytes(), macA, vswitch.Broadcast, a, bcastIP))
	if r.msg.MessageType() != dhcpv4.MessageTypeAck || r.dstIP != a {
		t.Errorf("rebind: %s to %s", r.msg.MessageType(), r.dstIP)
	}
	// Renewing an address that is not its own: NAK.
	wrong := netip.MustParseAddr("10.99.0.99")
	bad := newMsg(dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(wrong.AsSlice()))
	checkNAK(t, h.one(clientFrame(bad.ToBytes(), macA, serverMAC, wrong, router)))
}

func TestRelease(t *testing.T) {
	h := newHarness(t)
	a := h.dora(macA)
	// A RELEASE of an address that is not the client's changes nothing.
	h.none(clientFrame(newMsg(dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(net.IP{10, 99, 0, 9}),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router.AsSlice()))).ToBytes(), macA, serverMAC, a, router))
	if len(h.srv.Leases()) != 1 {
		t.Fatal("lease gone after a RELEASE of another address")
	}
	// One for another server neither.
	h.none(clientFrame(newMsg(dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(a.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 99, 0, 254}))).ToBytes(), macA, serverMAC, a, router))
	if len(h.srv.Leases()) != 1 {
		t.Fatal("lease gone after a RELEASE to another server")
	}
	h.none(clientFrame(newMsg(dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(a.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router.AsSlice()))).ToBytes(), macA, serverMAC, a, router))
	if ls := h.srv.Leases(); len(ls) != 0 {
		t.Errorf("leases after RELEASE: %+v", ls)
	}
	if _, held := h.alloc.holder(a); held {
		t.Errorf("%s still held by the allocator after RELEASE", a)
	}
	if st := h.srv.Stats(); st.Releases != 3 || st.Ignored != 2 {
		t.Errorf("stats %+v, want 3 releases, 2 ignored", st)
	}
}

func TestDeclineGivesAnotherAddress(t *testing.T) {
	h := newHarness(t)
	a := h.dora(macA)
	decline := newMsg(dhcpv4.MessageTypeDecline, macA,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a.AsSlice())))
	h.none(broadcastFrame(decline, macA))
	ls := h.srv.Leases()
	if len(ls) != 1 || ls[0].Addr != a || ls[0].State != dhcp.StateDeclined || ls[0].MAC != macA {
		t.Fatalf("leases after DECLINE %+v, want %s declined by %s", ls, a, macA)
	}
	if holder, _ := h.alloc.holder(a); !holder.IsMulticast() {
		t.Errorf("declined %s held by %s, want a group MAC", a, holder)
	}
	// The client starts over and gets another address, even asking for
	// the declined one.
	b := h.dora(macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a.AsSlice())))
	if b == a {
		t.Fatalf("client got the declined address %s again", a)
	}
	if err := h.alloc.check(h.srv.Leases()); err != nil {
		t.Error(err)
	}
	// After DeclineHold the address is free again.
	h.srv.Sweep(h.now.Add(dhcp.DeclineHold))
	if _, held := h.alloc.holder(a); held {
		t.Errorf("declined %s still held after DeclineHold", a)
	}
	if st := h.srv.Stats(); st.Declines != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestInform(t *testing.T) {
	h := newHarness(t)
	ci := netip.MustParseAddr("10.99.0.40")
	inform := newMsg(dhcpv4.MessageTypeInform, macA, dhcpv4.WithClientIP(ci.AsSlice()))
	r := h.one(clientFrame(inform.ToBytes(), macA, vswitch.Broadcast, ci, bcastIP))
	m := r.msg
	if m.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("INFORM answered with %s", m.MessageType())
	}
	if !addr(m.YourIPAddr).IsUnspecified() || addr(m.ClientIPAddr) != ci {
		t.Errorf("yiaddr %s ciaddr %s, want 0.0.0.0 and %s", m.YourIPAddr, m.ClientIPAddr, ci)
	}
	if r.dstMAC != macA || r.dstIP != ci {
		t.Errorf("sent to %s %s, want %s %s", r.dstMAC, r.dstIP, macA, ci)
	}
	checkConfigOptions(t, m)
	for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue} {
		if m.Options.Has(o) {
			t.Errorf("ACK to INFORM carries %s", o)
		}
	}
	if len(h.srv.Leases()) != 0 || h.alloc.held() != 0 {
		t.Error("INFORM created a lease")
	}
	// From outside the subnet: ignored.
	out := netip.MustParseAddr("192.168.3.3")
	h.none(clientFrame(newMsg(dhcpv4.MessageTypeInform, macA, dhcpv4.WithClientIP(out.AsSlice())).ToBytes(), macA, serverMAC, out, router))
	if st := h.srv.Stats(); st.Informs != 2 || st.Acks != 1 || st.Ignored != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestSweepExpiresLeases(t *testing.T) {
	h := newHarness(t)
	a := h.dora(macA)
	start := h.now
	h.srv.Sweep(start.Add(time.Hour - time.Second))
	if len(h.srv.Leases()) != 1 {
		t.Fatal("lease swept before it expired")
	}
	h.srv.Sweep(start.Add(time.Hour))
	if ls := h.srv.Leases(); len(ls) != 0 {
		t.Fatalf("leases after expiry: %+v", ls)
	}
	if _, held := h.alloc.holder(a); held {
		t.Fatalf("expired %s not returned to the allocator", a)
	}
	// The address is free for someone else.
	if b := h.dora(macB); b != a {
		t.Errorf("next client got %s, want the freed %s", b, a)
	}
	// An offer never requested is returned after OfferHold.
	macC := vswitch.MAC{0x52, 0x54, 0, 0x12, 0x34, 3}
	r := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macC), macC))
	c := addr(r.msg.YourIPAddr)
	h.srv.Sweep(h.now.Add(dhcp.OfferHold - time.Second))
	if _, held := h.alloc.holder(c); !held {
		t.Fatal("offer swept too early")
	}
	h.srv.Sweep(h.now.Add(dhcp.OfferHold))
	if _, held := h.alloc.holder(c); held {
		t.Errorf("unrequested offer of %s not returned after %s", c, dhcp.OfferHold)
	}
}

func TestAllocatorExhausted(t *testing.T) {
	h := newHarness(t)
	h.alloc.last = h.alloc.first // one address
	h.dora(macA)
	h.none(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macB), macB))
	if st := h.srv.Stats(); st.AllocFailures != 1 {
		t.Errorf("stats %+v, want 1 allocation failure", st)
	}
}

func TestSendFailureCounted(t *testing.T) {
	h := newHarness(t, func(c *dhcp.Config) { c.Send = func([]byte) bool { return false } })
	h.srv.HandleFrame(vswitch.Frame{Data: broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA)})
	if st := h.srv.Stats(); st.SendFailures != 1 || st.Offers != 0 {
		t.Errorf("stats %+v, want 1 send failure and no offer counted", st)
	}
}

func TestConcurrentClients(t *testing.T) {
	h := newHarness(t)
	const clients = 32
	var wg sync.WaitGroup
	got := make([]netip.Addr, clients)
	for i := range clients {
		wg.Go(func() {
			mac := vswitch.MAC{0x52, 0x54, 0, 0, 1, byte(i)}
			// Each goroutine drives its own exchange; replies are
			// matched by chaddr from the shared list later.
			h.srv.HandleFrame(vswitch.Frame{Data: broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, mac), mac)})
			h.srv.HandleFrame(vswitch.Frame{Data: broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, mac), mac)})
			_ = h.srv.Leases()
			h.srv.Sweep(h.now)
		})
	}
	wg.Wait()
	for _, b := range h.take() {
		r, err := checkReply(b)
		if err != nil {
			t.Fatal(err)
		}
		i := r.msg.ClientHWAddr[5]
		a := addr(r.msg.YourIPAddr)
		if got[i].IsValid() && got[i] != a {
			t.Errorf("client %d offered %s and %s", i, got[i], a)
		}
		got[i] = a
	}
	seen := map[netip.Addr]bool{}
	for i, a := range got {
		if !a.IsValid() || seen[a] {
			t.Errorf("client %d: offered %s (duplicate or none)", i, a)
		}
		seen[a] = true
	}
	if err := h.alloc.check(h.srv.Leases()); err != nil {
		t.Error(err)
	}
}

func TestLeasesSorted(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		h.dora(vswitch.MAC{0x52, 0x54, 0, 0, 2, byte(5 - i)}, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 99, 0, byte(60 - i)})))
	}
	ls := h.srv.Leases()
	if !slices.IsSortedFunc(ls, func(a, b dhcp.Lease) int { return a.Addr.Compare(b.Addr) }) || len(ls) != 5 {
		t.Errorf("leases not sorted by address: %v", fmt.Sprint(ls))
	}
}
