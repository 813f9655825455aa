package dhcp6_test

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway/dhcp6"
	"github.com/switchyard-net/switchyard/gateway/dhcp6/dhcp6test"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

var (
	serverMAC = vswitch.MAC{0x02, 0x42, 0x0a, 0x63, 0, 1}
	serverLL  = netip.MustParseAddr("fe80::42:aff:fe63:1")
	subnet    = netip.MustParsePrefix("fd00:99::/64")
	dnsServer = netip.MustParseAddr("fd00:99::1")
	macA      = vswitch.MAC{0x52, 0x54, 0, 0, 0, 0x0a} // reserved: addrA
	macB      = vswitch.MAC{0x52, 0x54, 0, 0, 0, 0x0b} // no reservation
	addrA     = netip.MustParseAddr("fd00:99::a")
	// serverDUID is the DUID-LL of serverMAC, the server's identifier.
	serverDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr(serverMAC[:])}
)

const leaseTime = time.Hour

// reservations is an in-memory dhcp6.Reservations.
type reservations map[vswitch.MAC]netip.Addr

func (r reservations) Reserved(mac vswitch.MAC) (netip.Addr, bool) {
	a, ok := r[mac]
	return a, ok
}

// harness is a Server whose replies are collected.
type harness struct {
	s    *dhcp6.Server
	mu   sync.Mutex
	sent [][]byte
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	h := &harness{}
	s, err := dhcp6.New(dhcp6.Config{
		Subnet: subnet, ServerMAC: serverMAC, LinkLocal: serverLL, DNS: []netip.Addr{dnsServer}, DomainName: "vms",
		LeaseTime: leaseTime, Reservations: reservations{macA: addrA}, Logger: zaptest.NewLogger(tb),
		Send: func(b []byte) bool {
			h.mu.Lock()
			h.sent = append(h.sent, append([]byte(nil), b...))
			h.mu.Unlock()
			return true
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	h.s = s
	return h
}

// take returns and forgets the frames the server sent.
func (h *harness) take() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.sent
	h.sent = nil
	return out
}

func linkLocal(mac vswitch.MAC) netip.Addr { return dhcp6test.LinkLocal(mac) }

func clientFrame(mac vswitch.MAC, msg []byte) []byte {
	return dhcp6test.Frame(mac, linkLocal(mac), msg)
}

func frameFrom(mac vswitch.MAC, src netip.Addr, msg []byte) []byte {
	return dhcp6test.Frame(mac, src, msg)
}

// solicit is a SOLICIT from mac with a DUID-LLT and one IA_NA.
func solicit(t testing.TB, mac vswitch.MAC, mods ...dhcpv6.Modifier) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewSolicit(net.HardwareAddr(mac[:]), mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// followUp is a message of type typ that continues from m (same client
// ID, IA_NA and transaction ID), with mods applied.
func followUp(m *dhcpv6.Message, typ dhcpv6.MessageType, mods ...dhcpv6.Modifier) *dhcpv6.Message {
	out := &dhcpv6.Message{MessageType: typ, TransactionID: m.TransactionID}
	out.AddOption(m.GetOneOption(dhcpv6.OptionClientID))
	if ia := m.Options.OneIANA(); ia != nil {
		out.AddOption(&dhcpv6.OptIANA{IaId: ia.IaId})
	}
	for _, mod := range mods {
		mod(out)
	}
	return out
}

// withAddrs replaces the IA_NA of a message with one holding addrs.
func withAddrs(addrs ...netip.Addr) dhcpv6.Modifier {
	return func(d dhcpv6.DHCPv6) {
		m := d.(*dhcpv6.Message)
		ia := m.Options.OneIANA()
		var id [4]byte
		if ia != nil {
			id = ia.IaId
		}
		n := &dhcpv6.OptIANA{IaId: id}
		for _, a := range addrs {
			n.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.AsSlice(), PreferredLifetime: time.Minute, ValidLifetime: time.Minute})
		}
		m.UpdateOption(n)
	}
}

// exchange hands the server m from mac and returns its one reply, checked
// at every layer: from the gateway's MAC and link-local address to the
// client's, UDP 547 → 546 with a valid checksum.
func (h *harness) exchange(t testing.TB, mac vswitch.MAC, m *dhcpv6.Message) *dhcpv6.Message {
	t.Helper()
	if !h.s.HandleFrame(vswitch.Frame{Data: clientFrame(mac, m.ToBytes())}) {
		t.Fatalf("%s from %s not taken", m.Type(), mac)
	}
	sent := h.take()
	if len(sent) != 1 {
		t.Fatalf("%d replies to %s from %s, want 1", len(sent), m.Type(), mac)
	}
	r := checkReply(t, sent[0], mac, linkLocal(mac))
	if r.TransactionID != m.TransactionID {
		t.Errorf("reply to %s: transaction %s, want %s", m.Type(), r.TransactionID, m.TransactionID)
	}
	if sid := r.Options.ServerID(); sid == nil || !sid.Equal(serverDUID) {
		t.Errorf("reply to %s: server ID %v, want %v", m.Type(), sid, serverDUID)
	}
	if cid := m.Options.ClientID(); cid != nil {
		if got := r.Options.ClientID(); got == nil || !got.Equal(cid) {
			t.Errorf("reply to %s: client ID %v, want %v", m.Type(), got, cid)
		}
	}
	return r
}

// silent hands the server frame and checks it is taken and not answered.
func (h *harness) silent(t testing.TB, frame []byte, why string) {
	t.Helper()
	if !h.s.HandleFrame(vswitch.Frame{Data: frame}) {
		t.Fatalf("%s: frame not taken", why)
	}
	if sent := h.take(); len(sent) != 0 {
		t.Fatalf("%s: %d replies, want none", why, len(sent))
	}
}

// checkReply checks the headers of a frame the server sent to the client
// at mac and client (its link-local address) and decodes its message.
func checkReply(t testing.TB, b []byte, mac vswitch.MAC, client netip.Addr) *dhcpv6.Message {
	t.Helper()
	if len(b) < 14+header.IPv6MinimumSize+header.UDPMinimumSize {
		t.Fatalf("reply of %d bytes", len(b))
	}
	eth := header.Ethernet(b)
	ip := header.IPv6(b[14:])
	if vswitch.MAC(b[0:6]) != mac || vswitch.MAC(b[6:12]) != serverMAC || eth.Type() != header.IPv6ProtocolNumber {
		t.Fatalf("reply from %s to %s type %#x, want %s to %s IPv6", vswitch.MAC(b[6:12]), vswitch.MAC(b[0:6]), eth.Type(), serverMAC, mac)
	}
	if !ip.IsValid(len(ip)) || ip.NextHeader() != uint8(header.UDPProtocolNumber) ||
		addr(ip.SourceAddress()) != serverLL || addr(ip.DestinationAddress()) != client {
		t.Fatalf("reply IPv6 %s → %s proto %d, want %s → %s UDP", ip.SourceAddress(), ip.DestinationAddress(), ip.NextHeader(), serverLL, client)
	}
	udp := header.UDP(ip.Payload())
	if udp.SourcePort() != dhcp6.ServerPort || udp.DestinationPort() != dhcp6.ClientPort || int(udp.Length()) != len(udp) {
		t.Fatalf("reply UDP %d → %d length %d of %d", udp.SourcePort(), udp.DestinationPort(), udp.Length(), len(udp))
	}
	if !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
		t.Fatal("reply UDP checksum is wrong")
	}
	m, err := dhcpv6.FromBytes(udp.Payload())
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	msg, ok := m.(*dhcpv6.Message)
	if !ok {
		t.Fatalf("reply is a %T", m)
	}
	return msg
}

func addr(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

// iaAddrs returns the addresses of the one IA_NA of m with their valid
// lifetimes.
func iaAddrs(t testing.TB, m *dhcpv6.Message) map[netip.Addr]time.Duration {
	t.Helper()
	ias := m.Options.IANA()
	if len(ias) != 1 {
		t.Fatalf("%s has %d IA_NAs, want 1", m.Type(), len(ias))
	}
	out := map[netip.Addr]time.Duration{}
	for _, a := range ias[0].Options.Addresses() {
		if a.PreferredLifetime != a.ValidLifetime {
			t.Errorf("%s: preferred lifetime %s, valid %s: want them equal", a.IPv6Addr, a.PreferredLifetime, a.ValidLifetime)
		}
		out[netip.MustParseAddr(a.IPv6Addr.String())] = a.ValidLifetime
	}
	return out
}
