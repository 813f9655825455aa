package dhcp6_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway/dhcp6"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// checkConfig checks the network configuration a reply carries: the DNS
// server and the domain search list.
func checkConfig(t *testing.T, r *dhcpv6.Message) {
	t.Helper()
	if dns := r.Options.DNS(); len(dns) != 1 || dns[0].String() != dnsServer.String() {
		t.Errorf("%s: DNS %v, want [%s]", r.Type(), dns, dnsServer)
	}
	if l := r.Options.DomainSearchList(); l == nil || len(l.Labels) != 1 || l.Labels[0] != "vms" {
		t.Errorf("%s: domain search list %v, want [vms]", r.Type(), l)
	}
}

// The four-message exchange with a client whose MAC has a reservation:
// the ADVERTISE offers the reserved address and binds nothing; the
// REQUEST binds it, with T1 at half the lease and T2 at four fifths; RENEW
// and REBIND extend it; RELEASE ends it.
func TestExchange(t *testing.T) {
	h := newHarness(t)
	sol := solicit(t, macA)
	adv := h.exchange(t, macA, sol)
	if adv.Type() != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("answer to SOLICIT: %s, want ADVERTISE", adv.Type())
	}
	if got := iaAddrs(t, adv); len(got) != 1 || got[addrA] != leaseTime {
		t.Errorf("ADVERTISE offers %v, want %s for %s", got, addrA, leaseTime)
	}
	ia := adv.Options.OneIANA()
	if ia.IaId != sol.Options.OneIANA().IaId || ia.T1 != leaseTime/2 || ia.T2 != leaseTime/5*4 {
		t.Errorf("IA_NA %x T1 %s T2 %s, want %x %s %s", ia.IaId, ia.T1, ia.T2, sol.Options.OneIANA().IaId, leaseTime/2, leaseTime/5*4)
	}
	checkConfig(t, adv)
	if p := adv.Options.Preference(); p != 255 {
		t.Errorf("ADVERTISE with preference %d, want 255: the client need not wait for other servers", p)
	}
	if l := h.s.Leases(); len(l) != 0 {
		t.Fatalf("an ADVERTISE bound %+v", l)
	}

	req, err := dhcpv6.NewRequestFromAdvertise(adv)
	if err != nil {
		t.Fatal(err)
	}
	rep := h.exchange(t, macA, req)
	if rep.Type() != dhcpv6.MessageTypeReply {
		t.Fatalf("answer to REQUEST: %s, want REPLY", rep.Type())
	}
	if got := iaAddrs(t, rep); len(got) != 1 || got[addrA] != leaseTime {
		t.Errorf("REPLY to REQUEST gives %v, want %s", got, addrA)
	}
	checkConfig(t, rep)
	ls := h.s.Leases()
	if len(ls) != 1 || ls[0].MAC != macA || ls[0].Addr != addrA || ls[0].DUID == "" || ls[0].IAID != 0x0000000a {
		t.Fatalf("lease table after REQUEST: %+v, want %s bound to %s with IAID 0xa", ls, macA, addrA)
	}
	if d := time.Until(ls[0].Expiry); d < leaseTime-time.Minute || d > leaseTime {
		t.Errorf("lease expires in %s, want about %s", d, leaseTime)
	}

	sid := dhcpv6.WithServerID(serverDUID)
	for _, m := range []*dhcpv6.Message{
		followUp(sol, dhcpv6.MessageTypeRenew, sid, withAddrs(addrA)),
		followUp(sol, dhcpv6.MessageTypeRebind, withAddrs(addrA)),
	} {
		r := h.exchange(t, macA, m)
		if got := iaAddrs(t, r); r.Type() != dhcpv6.MessageTypeReply || len(got) != 1 || got[addrA] != leaseTime {
			t.Errorf("answer to %s: %s with %v, want REPLY with %s", m.Type(), r.Type(), got, addrA)
		}
	}
	r := h.exchange(t, macA, followUp(sol, dhcpv6.MessageTypeRelease, sid, withAddrs(addrA)))
	if st := r.Options.Status(); r.Type() != dhcpv6.MessageTypeReply || st == nil || st.StatusCode != iana.StatusSuccess {
		t.Errorf("answer to RELEASE: %s status %v, want REPLY Success", r.Type(), st)
	}
	if l := h.s.Leases(); len(l) != 0 {
		t.Errorf("lease table after RELEASE: %+v", l)
	}
	s := h.s.Stats()
	if s.Solicits != 1 || s.Requests != 1 || s.Renews != 1 || s.Rebinds != 1 || s.Releases != 1 || s.Advertises != 1 || s.Replies != 4 {
		t.Errorf("stats %+v", s)
	}
}

// A SOLICIT with Rapid Commit is answered by a REPLY that binds at once
// and says so.
func TestRapidCommit(t *testing.T) {
	h := newHarness(t)
	r := h.exchange(t, macA, solicit(t, macA, dhcpv6.WithRapidCommit))
	if r.Type() != dhcpv6.MessageTypeReply || r.GetOneOption(dhcpv6.OptionRapidCommit) == nil {
		t.Fatalf("answer to a rapid-commit SOLICIT: %s, rapid commit %v; want REPLY with rapid commit", r.Type(), r.GetOneOption(dhcpv6.OptionRapidCommit))
	}
	if got := iaAddrs(t, r); len(got) != 1 || got[addrA] != leaseTime {
		t.Errorf("REPLY gives %v, want %s", got, addrA)
	}
	if ls := h.s.Leases(); len(ls) != 1 || ls[0].Addr != addrA {
		t.Errorf("lease table %+v, want %s bound", ls, addrA)
	}
}

// A client whose MAC has no reservation gets no address: ADVERTISE with
// NoAddrsAvail only, REPLY to REQUEST with the IA and NoAddrsAvail, and
// what it claims in RENEW and REBIND is withdrawn (lifetimes 0). The DUID
// carrying a reserved MAC does not help: the frame's source decides.
func TestNoReservation(t *testing.T) {
	h := newHarness(t)
	sol := solicit(t, macB, dhcpv6.WithClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: macA[:]}))
	adv := h.exchange(t, macB, sol)
	if st := adv.Options.Status(); adv.Type() != dhcpv6.MessageTypeAdvertise || st == nil || st.StatusCode != iana.StatusNoAddrsAvail || len(adv.Options.IANA()) != 0 {
		t.Errorf("answer to SOLICIT: %s status %v with %d IA_NAs, want ADVERTISE NoAddrsAvail and no IA", adv.Type(), st, len(adv.Options.IANA()))
	}
	sid := dhcpv6.WithServerID(serverDUID)
	r := h.exchange(t, macB, followUp(sol, dhcpv6.MessageTypeRequest, sid))
	ia := r.Options.OneIANA()
	if ia == nil || ia.Options.Status() == nil || ia.Options.Status().StatusCode != iana.StatusNoAddrsAvail || len(ia.Options.Addresses()) != 0 {
		t.Errorf("answer to REQUEST: IA_NA %v, want NoAddrsAvail and no address", ia)
	}
	stolen := addrA
	for _, m := range []*dhcpv6.Message{
		followUp(sol, dhcpv6.MessageTypeRenew, sid, withAddrs(stolen)),
		followUp(sol, dhcpv6.MessageTypeRebind, withAddrs(stolen)),
	} {
		r := h.exchange(t, macB, m)
		if got := iaAddrs(t, r); len(got) != 1 || got[stolen] != 0 {
			t.Errorf("answer to %s: %v, want %s withdrawn (lifetime 0)", m.Type(), got, stolen)
		}
	}
	r = h.exchange(t, macB, followUp(sol, dhcpv6.MessageTypeRenew, sid))
	if st := r.Options.OneIANA().Options.Status(); st == nil || st.StatusCode != iana.StatusNoBinding {
		t.Errorf("answer to RENEW without addresses: status %v, want NoBinding", st)
	}
	if l := h.s.Leases(); len(l) != 0 {
		t.Errorf("lease table %+v, want empty", l)
	}
	if s := h.s.Stats(); s.NoAddrs != 5 {
		t.Errorf("no_addrs %d, want 5", s.NoAddrs)
	}
}

// RENEW from a client that lists another address besides its own: its
// own is renewed, the other withdrawn. A second IA_NA gets NoAddrsAvail:
// one address per client.
func TestOtherAddressesWithdrawn(t *testing.T) {
	h := newHarness(t)
	sol := solicit(t, macA)
	other := netip.MustParseAddr("fd00:99::77")
	m := followUp(sol, dhcpv6.MessageTypeRenew, dhcpv6.WithServerID(serverDUID), withAddrs(addrA, other))
	m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{9, 9, 9, 9}})
	r := h.exchange(t, macA, m)
	ias := r.Options.IANA()
	if len(ias) != 2 {
		t.Fatalf("%d IA_NAs in the REPLY, want 2", len(ias))
	}
	got := map[netip.Addr]time.Duration{}
	for _, a := range ias[0].Options.Addresses() {
		got[netip.MustParseAddr(a.IPv6Addr.String())] = a.ValidLifetime
	}
	if len(got) != 2 || got[addrA] != leaseTime || got[other] != 0 {
		t.Errorf("first IA_NA: %v, want %s for %s and %s withdrawn", got, addrA, leaseTime, other)
	}
	if st := ias[1].Options.Status(); ias[1].IaId != [4]byte{9, 9, 9, 9} || st == nil || st.StatusCode != iana.StatusNoAddrsAvail {
		t.Errorf("second IA_NA %x status %v, want NoAddrsAvail", ias[1].IaId, st)
	}
}

// CONFIRM says whether the client's addresses are on the link, and gets
// no answer without any.
func TestConfirm(t *testing.T) {
	h := newHarness(t)
	sol := solicit(t, macB)
	for _, c := range []struct {
		addr netip.Addr
		want iana.StatusCode
	}{
		{netip.MustParseAddr("fd00:99::1234"), iana.StatusSuccess},
		{netip.MustParseAddr("fd00:98::1"), iana.StatusNotOnLink},
	} {
		r := h.exchange(t, macB, followUp(sol, dhcpv6.MessageTypeConfirm, withAddrs(c.addr)))
		if st := r.Options.Status(); r.Type() != dhcpv6.MessageTypeReply || st == nil || st.StatusCode != c.want {
			t.Errorf("CONFIRM %s: %s status %v, want %s", c.addr, r.Type(), st, c.want)
		}
	}
	h.silent(t, clientFrame(macB, followUp(sol, dhcpv6.MessageTypeConfirm).ToBytes()), "CONFIRM without addresses")
}

// INFORMATION-REQUEST gets the configuration and no address; one with an
// IA_NA is discarded (RFC 8415, section 16.12).
func TestInformationRequest(t *testing.T) {
	h := newHarness(t)
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeInformationRequest, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	r := h.exchange(t, macB, m)
	if r.Type() != dhcpv6.MessageTypeReply || len(r.Options.IANA()) != 0 {
		t.Errorf("answer: %s with %d IA_NAs, want REPLY without", r.Type(), len(r.Options.IANA()))
	}
	checkConfig(t, r)
	m.AddOption(&dhcpv6.OptIANA{})
	h.silent(t, clientFrame(macA, m.ToBytes()), "INFORMATION-REQUEST with an IA_NA")
}

// Messages that break the rules are consumed, answered by nothing, and
// counted by what was wrong.
func TestRefused(t *testing.T) {
	h := newHarness(t)
	sol := solicit(t, macA)
	other := dhcpv6.WithServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: []byte{2, 0, 0, 0, 0, 9}})
	ours := dhcpv6.WithServerID(serverDUID)
	badSum := clientFrame(macA, sol.ToBytes())
	badSum[len(badSum)-1] ^= 0xff
	notLinkLocal := frameFrom(macA, addrA, sol.ToBytes())
	noClientID := followUp(sol, dhcpv6.MessageTypeSolicit)
	noClientID.Options.Del(dhcpv6.OptionClientID)
	truncated := sol.ToBytes()
	truncated = truncated[:len(truncated)-1]
	relay := &dhcpv6.RelayMessage{MessageType: dhcpv6.MessageTypeRelayForward}
	relay.Options.Add(dhcpv6.OptRelayMessage(sol))
	cases := []struct {
		name  string
		frame []byte
		stat  func(dhcp6.Stats) uint64
	}{
		{"REQUEST for another server", clientFrame(macA, followUp(sol, dhcpv6.MessageTypeRequest, other).ToBytes()), func(s dhcp6.Stats) uint64 { return s.Ignored }},
		{"RENEW for another server", clientFrame(macA, followUp(sol, dhcpv6.MessageTypeRenew, other, withAddrs(addrA)).ToBytes()), func(s dhcp6.Stats) uint64 { return s.Ignored }},
		{"REQUEST without server ID", clientFrame(macA, followUp(sol, dhcpv6.MessageTypeRequest).ToBytes()), func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"SOLICIT with a server ID", clientFrame(macA, followUp(sol, dhcpv6.MessageTypeSolicit, ours).ToBytes()), func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"SOLICIT without client ID", clientFrame(macA, noClientID.ToBytes()), func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"ADVERTISE from a client", clientFrame(macA, followUp(sol, dhcpv6.MessageTypeAdvertise).ToBytes()), func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"bad UDP checksum", badSum, func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"not from a link-local address", notLinkLocal, func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"truncated option", clientFrame(macA, truncated), func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"from a group MAC", clientFrame(vswitch.MAC{0x33, 0x33, 0, 0, 0, 1}, sol.ToBytes()), func(s dhcp6.Stats) uint64 { return s.Malformed }},
		{"relayed", clientFrame(macA, relay.ToBytes()), func(s dhcp6.Stats) uint64 { return s.Relayed }},
		{"empty", clientFrame(macA, nil), func(s dhcp6.Stats) uint64 { return s.Malformed }},
	}
	for _, c := range cases {
		before := c.stat(h.s.Stats())
		h.silent(t, c.frame, c.name)
		if after := c.stat(h.s.Stats()); after != before+1 {
			t.Errorf("%s: counter went %d → %d, want +1", c.name, before, after)
		}
	}
	if l := h.s.Leases(); len(l) != 0 {
		t.Errorf("refused messages bound %+v", l)
	}
}

// Sweep forgets a lease once it expires, and not before.
func TestSweep(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, macA, solicit(t, macA, dhcpv6.WithRapidCommit))
	h.s.Sweep(time.Now().Add(leaseTime - time.Minute))
	if len(h.s.Leases()) != 1 {
		t.Fatal("a lease went before its time")
	}
	h.s.Sweep(time.Now().Add(leaseTime + time.Second))
	if l := h.s.Leases(); len(l) != 0 {
		t.Fatalf("expired lease still there: %+v", l)
	}
}

// Frames that are not DHCPv6 client messages are left alone without an
// allocation: the gateway shows the server every frame.
func TestOtherFramesPass(t *testing.T) {
	h := newHarness(t)
	sol := clientFrame(macA, solicit(t, macA).ToBytes())
	toPort := func(port uint16) []byte {
		b := append([]byte(nil), sol...)
		b[14+40+2], b[14+40+3] = byte(port>>8), byte(port)
		return b
	}
	unicast := append([]byte(nil), sol...)
	copy(unicast[14+24:14+40], serverLL.AsSlice())
	ipv4 := append([]byte(nil), sol...)
	ipv4[12], ipv4[13] = 0x08, 0x00
	otherMAC := append([]byte(nil), sol...)
	copy(otherMAC[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	hopByHop := append([]byte(nil), sol...)
	hopByHop[14+6] = 0
	for name, b := range map[string][]byte{
		"to another port": toPort(53), "to the server's unicast address": unicast, "IPv4": ipv4,
		"to all nodes": otherMAC, "with an extension header": hopByHop, "runt": sol[:60], "empty": nil,
	} {
		f := vswitch.Frame{Data: b}
		if h.s.HandleFrame(f) {
			t.Errorf("%s: taken", name)
		}
		if n := testing.AllocsPerRun(100, func() { h.s.HandleFrame(f) }); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
	if !h.s.HandleFrame(vswitch.Frame{Data: sol}) || len(h.take()) != 1 {
		t.Fatal("the SOLICIT itself was not answered")
	}
}

// Bad configurations are refused, each with an error naming what was
// wrong and what is wanted.
func TestConfigErrors(t *testing.T) {
	good := func() dhcp6.Config {
		return dhcp6.Config{Subnet: subnet, ServerMAC: serverMAC, LinkLocal: serverLL, Reservations: reservations{},
			Send: func([]byte) bool { return true }}
	}
	if _, err := dhcp6.New(good()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, c := range []struct {
		change func(*dhcp6.Config)
		want   string
	}{
		{func(c *dhcp6.Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/24") }, "subnet 10.0.0.0/24: want an IPv6 subnet"},
		{func(c *dhcp6.Config) { c.LinkLocal = netip.MustParseAddr("fd00:99::1") }, "server address fd00:99::1: want the gateway's link-local"},
		{func(c *dhcp6.Config) { c.ServerMAC = vswitch.MAC{} }, "server MAC 00:00:00:00:00:00"},
		{func(c *dhcp6.Config) { c.DNS = []netip.Addr{netip.MustParseAddr("10.0.0.1")} }, "DNS server 10.0.0.1: want an IPv6 address"},
		{func(c *dhcp6.Config) { c.DNS = make([]netip.Addr, 9) }, "9 DNS servers: at most 8"},
		{func(c *dhcp6.Config) { c.DomainName = "a b" }, `domain name "a b"`},
		{func(c *dhcp6.Config) { c.DomainName = "a..b" }, "labels of 1 to 63"},
		{func(c *dhcp6.Config) { c.MTU = 1000 }, "MTU 1000: want 1280"},
		{func(c *dhcp6.Config) { c.LeaseTime = time.Millisecond }, "lease time 1ms"},
		{func(c *dhcp6.Config) { c.Reservations = nil }, "no Reservations"},
		{func(c *dhcp6.Config) { c.Send = nil }, "no Send"},
	} {
		cfg := good()
		c.change(&cfg)
		_, err := dhcp6.New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one with %q", err, c.want)
		}
	}
}

// A frame from a VM's TAP whose guest offloads checksums carries only the
// pseudo-header sum in the UDP checksum field (what CHECKSUM_PARTIAL
// leaves), and no offload metadata: it is served. Any other wrong
// checksum is not (TestRefused).
func TestPartialChecksumAccepted(t *testing.T) {
	h := newHarness(t)
	b := clientFrame(macA, solicit(t, macA, dhcpv6.WithRapidCommit).ToBytes())
	ip := header.IPv6(b[14:])
	udp := header.UDP(ip.Payload())
	udp.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), udp.Length()))
	if !h.s.HandleFrame(vswitch.Frame{Data: b}) || len(h.take()) != 1 {
		t.Fatalf("a partial checksum was refused: %+v", h.s.Stats())
	}
	udp.SetChecksum(udp.Checksum() + 1)
	h.silent(t, b, "a partial checksum off by one")
}
