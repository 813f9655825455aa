package dhcp_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

var (
	subnet    = netip.MustParsePrefix("10.99.0.0/24")
	router    = netip.MustParseAddr("10.99.0.1")
	serverMAC = vswitch.MAC{0x02, 0x42, 10, 99, 0, 1}
	dns1      = netip.MustParseAddr("10.99.0.1")
	dns2      = netip.MustParseAddr("192.0.2.53")
	bcastIP   = netip.MustParseAddr("255.255.255.255")
	zeroIP    = netip.IPv4Unspecified()
	macA      = vswitch.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x01}
	macB      = vswitch.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x02}
	xid       = dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}
)

// errExhausted is the fake allocator's "no address left".
var errExhausted = errors.New("fake allocator: no free address")

// fakeAlloc is an Allocator like the daemon's IPAM: the lowest free
// address of [first, last], the requested one if free, static leases by
// MAC, the same address for a MAC while it holds one.
type fakeAlloc struct {
	mu       sync.Mutex
	first    netip.Addr
	last     netip.Addr
	static   map[vswitch.MAC]netip.Addr
	byMAC    map[vswitch.MAC]netip.Addr
	byAddr   map[netip.Addr]vswitch.MAC
	released []netip.Addr
}

func newFakeAlloc(first, last string) *fakeAlloc {
	return &fakeAlloc{
		first: netip.MustParseAddr(first), last: netip.MustParseAddr(last),
		static: map[vswitch.MAC]netip.Addr{},
		byMAC:  map[vswitch.MAC]netip.Addr{}, byAddr: map[netip.Addr]vswitch.MAC{},
	}
}

func (a *fakeAlloc) inRange(x netip.Addr) bool {
	return x.IsValid() && a.first.Compare(x) <= 0 && x.Compare(a.last) <= 0
}

func (a *fakeAlloc) Lease(mac vswitch.MAC, _ string, requested netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if x, ok := a.byMAC[mac]; ok {
		return x, nil
	}
	take := func(x netip.Addr) netip.Addr {
		a.byMAC[mac], a.byAddr[x] = x, mac
		return x
	}
	if x, ok := a.static[mac]; ok {
		if _, held := a.byAddr[x]; !held {
			return take(x), nil
		}
	}
	if _, held := a.byAddr[requested]; a.inRange(requested) && !held && !a.isStaticLocked(requested) {
		return take(requested), nil
	}
	for x := a.first; a.inRange(x); x = x.Next() {
		if _, held := a.byAddr[x]; !held && !a.isStaticLocked(x) {
			return take(x), nil
		}
	}
	return netip.Addr{}, errExhausted
}

func (a *fakeAlloc) isStaticLocked(x netip.Addr) bool {
	for _, s := range a.static {
		if s == x {
			return true
		}
	}
	return false
}

func (a *fakeAlloc) Release(mac vswitch.MAC, x netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byAddr[x] == mac && a.byMAC[mac] == x {
		delete(a.byAddr, x)
		delete(a.byMAC, mac)
		a.released = append(a.released, x)
	}
}

// holder returns who holds x.
func (a *fakeAlloc) holder(x netip.Addr) (vswitch.MAC, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.byAddr[x]
	return m, ok
}

// held returns how many addresses are held.
func (a *fakeAlloc) held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byAddr)
}

// check verifies that the server's lease table and the allocator agree:
// every entry is held in the allocator, by its client (or, declined, by a
// group MAC), no address twice.
func (a *fakeAlloc) check(leases []dhcp.Lease) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[netip.Addr]bool{}
	for _, l := range leases {
		if seen[l.Addr] {
			return fmt.Errorf("address %s in the lease table twice: %v", l.Addr, leases)
		}
		seen[l.Addr] = true
		h, ok := a.byAddr[l.Addr]
		switch {
		case !ok:
			return fmt.Errorf("lease %+v: address not held by the allocator", l)
		case l.State == dhcp.StateDeclined && !h.IsMulticast():
			return fmt.Errorf("declined %s held by %s, want a group MAC", l.Addr, h)
		case l.State != dhcp.StateDeclined && h != l.MAC:
			return fmt.Errorf("lease %+v: allocator has it for %s", l, h)
		}
	}
	return nil
}

// harness is a Server with a fake allocator and a Send that records
// copies of the frames.
type harness struct {
	t     testing.TB
	srv   *dhcp.Server
	alloc *fakeAlloc
	now   time.Time

	mu   sync.Mutex
	sent [][]byte
}

func baseConfig() dhcp.Config {
	return dhcp.Config{
		Subnet: subnet, Router: router, ServerMAC: serverMAC,
		DNS: []netip.Addr{dns1, dns2}, DomainName: "sy.test", MTU: 1400,
	}
}

func newHarness(t testing.TB, mods ...func(*dhcp.Config)) *harness {
	t.Helper()
	h := &harness{t: t, alloc: newFakeAlloc("10.99.0.2", "10.99.0.254"), now: time.Unix(1_700_000_000, 0)}
	cfg := baseConfig()
	cfg.Allocator = h.alloc
	cfg.Send = func(b []byte) bool {
		h.mu.Lock()
		h.sent = append(h.sent, append([]byte(nil), b...))
		h.mu.Unlock()
		return true
	}
	if _, ok := t.(*testing.T); ok {
		cfg.Logger = zaptest.NewLogger(t)
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := dhcp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dhcp.SetClock(srv, func() time.Time { return h.now })
	h.srv = srv
	return h
}

// take returns the frames sent since the last call.
func (h *harness) take() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sent
	h.sent = nil
	return s
}

// exchange hands frame to the server, requires it to be consumed, and
// returns the decoded replies, each checked by checkReply.
func (h *harness) exchange(frame []byte) []*sentReply {
	h.t.Helper()
	if !h.srv.HandleFrame(vswitch.Frame{Data: frame}) {
		h.t.Fatalf("DHCP frame not consumed")
	}
	var out []*sentReply
	for _, b := range h.take() {
		r, err := checkReply(b)
		if err != nil {
			h.t.Fatalf("invalid reply frame: %v\n% x", err, b)
		}
		out = append(out, r)
	}
	return out
}

// one is exchange that wants exactly one reply.
func (h *harness) one(frame []byte) *sentReply {
	h.t.Helper()
	rs := h.exchange(frame)
	if len(rs) != 1 {
		h.t.Fatalf("%d replies, want 1", len(rs))
	}
	return rs[0]
}

// none is exchange that wants no reply.
func (h *harness) none(frame []byte) {
	h.t.Helper()
	if rs := h.exchange(frame); len(rs) != 0 {
		h.t.Fatalf("%d replies (first %s), want none", len(rs), rs[0].msg.MessageType())
	}
}

// dora runs DISCOVER, OFFER, REQUEST, ACK for mac and returns the address.
func (h *harness) dora(mac vswitch.MAC, mods ...dhcpv4.Modifier) netip.Addr {
	h.t.Helper()
	offer := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, mac, mods...), mac))
	if offer.msg.MessageType() != dhcpv4.MessageTypeOffer {
		h.t.Fatalf("DISCOVER answered with %s", offer.msg.MessageType())
	}
	yi := addr(offer.msg.YourIPAddr)
	ack := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeRequest, mac, append(mods,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(yi.AsSlice())))...), mac))
	if ack.msg.MessageType() != dhcpv4.MessageTypeAck || addr(ack.msg.YourIPAddr) != yi {
		h.t.Fatalf("REQUEST for %s answered with %s for %s", yi, ack.msg.MessageType(), ack.msg.YourIPAddr)
	}
	return yi
}

// newMsg builds a client message.
func newMsg(typ dhcpv4.MessageType, mac vswitch.MAC, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid), dhcpv4.WithHwAddr(net.HardwareAddr(mac[:])), dhcpv4.WithMessageType(typ),
	}, mods...)...)
	if err != nil {
		panic(err)
	}
	return m
}

// broadcastFrame carries m from a client without an address: 0.0.0.0:68 →
// 255.255.255.255:67, at the broadcast MAC.
func broadcastFrame(m *dhcpv4.DHCPv4, src vswitch.MAC) []byte {
	return clientFrame(m.ToBytes(), src, vswitch.Broadcast, zeroIP, bcastIP)
}

// clientFrame builds an Ethernet frame carrying the DHCP message msg from
// srcIP:68 to dstIP:67, with valid checksums.
func clientFrame(msg []byte, src, dst vswitch.MAC, srcIP, dstIP netip.Addr) []byte {
	b := make([]byte, 14+20+8+len(msg))
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: header.IPv4ProtocolNumber,
	})
	s, d := tcpip.AddrFrom4(srcIP.As4()), tcpip.AddrFrom4(dstIP.As4())
	ip := header.IPv4(b[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b) - 14), TTL: 64, Protocol: 17, SrcAddr: s, DstAddr: d})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(b[34:])
	u.Encode(&header.UDPFields{SrcPort: 68, DstPort: 67, Length: uint16(8 + len(msg))})
	copy(b[42:], msg)
	fixUDPChecksum(b)
	return b
}

// fixUDPChecksum recomputes the UDP checksum of an Ethernet/IPv4/UDP frame
// whose headers are sound.
func fixUDPChecksum(b []byte) {
	ip := header.IPv4(b[14:])
	ihl := int(ip.HeaderLength())
	u := header.UDP(ip[ihl:])
	ul := u.Length()
	u.SetChecksum(0)
	xsum := header.PseudoHeaderChecksum(17, ip.SourceAddress(), ip.DestinationAddress(), ul)
	xsum = checksum.Checksum(u[8:ul], xsum)
	sum := ^u.CalculateChecksum(xsum)
	if sum == 0 {
		sum = 0xffff
	}
	u.SetChecksum(sum)
}

// sentReply is a reply frame taken apart.
type sentReply struct {
	dstMAC vswitch.MAC
	dstIP  netip.Addr
	msg    *dhcpv4.DHCPv4
}

// checkReply validates a frame the server sent with gVisor's header
// checks: Ethernet from the gateway's MAC, IPv4 with a valid header
// checksum from the router, UDP 67 → 68 with a valid (non-zero) checksum
// and length, carrying a BOOTREPLY; and decodes it.
func checkReply(b []byte) (*sentReply, error) {
	if len(b) < header.EthernetMinimumSize+header.IPv4MinimumSize+header.UDPMinimumSize {
		return nil, fmt.Errorf("frame of %d bytes", len(b))
	}
	eth := header.Ethernet(b)
	if eth.Type() != header.IPv4ProtocolNumber {
		return nil, fmt.Errorf("EtherType %#x", eth.Type())
	}
	if got := vswitch.MAC([]byte(eth.SourceAddress())); got != serverMAC {
		return nil, fmt.Errorf("source MAC %s, want the gateway's %s", got, serverMAC)
	}
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || int(ip.TotalLength()) != len(ip) {
		return nil, fmt.Errorf("invalid IPv4 header (total length %d, frame carries %d)", ip.TotalLength(), len(ip))
	}
	if !ip.IsChecksumValid() {
		return nil, errors.New("bad IPv4 header checksum")
	}
	if ip.Protocol() != 17 || ip.More() || ip.FragmentOffset() != 0 || ip.TTL() == 0 {
		return nil, fmt.Errorf("IPv4 protocol %d, more %v, offset %d, TTL %d", ip.Protocol(), ip.More(), ip.FragmentOffset(), ip.TTL())
	}
	if src := ip.SourceAddress(); src != tcpip.AddrFrom4(router.As4()) {
		return nil, fmt.Errorf("source address %s, want the router %s", src, router)
	}
	u := header.UDP(ip.Payload())
	if len(u) < header.UDPMinimumSize || int(u.Length()) != len(u) {
		return nil, fmt.Errorf("UDP length %d, datagram carries %d", u.Length(), len(u))
	}
	if u.SourcePort() != 67 || u.DestinationPort() != 68 {
		return nil, fmt.Errorf("UDP ports %d → %d, want 67 → 68", u.SourcePort(), u.DestinationPort())
	}
	lenOK, csumOK := header.UDPValid(u, func() uint16 { return checksum.Checksum(u.Payload(), 0) }, uint16(len(u.Payload())),
		header.IPv4ProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), false)
	if !lenOK || !csumOK || u.Checksum() == 0 {
		return nil, fmt.Errorf("UDP length ok %v, checksum %#04x ok %v", lenOK, u.Checksum(), csumOK)
	}
	m, err := dhcpv4.FromBytes(u.Payload())
	if err != nil {
		return nil, fmt.Errorf("decode DHCP reply: %w", err)
	}
	if m.OpCode != dhcpv4.OpcodeBootReply {
		return nil, fmt.Errorf("op %s, want BootReply", m.OpCode)
	}
	dstMAC := vswitch.MAC([]byte(eth.DestinationAddress()))
	if dstMAC != vswitch.Broadcast && dstMAC != vswitch.MAC(m.ClientHWAddr) {
		return nil, fmt.Errorf("sent to MAC %s, neither broadcast nor the client's %s", dstMAC, m.ClientHWAddr)
	}
	dstIP := netip.AddrFrom4(ip.DestinationAddress().As4())
	if dstMAC == vswitch.Broadcast && dstIP != bcastIP {
		return nil, fmt.Errorf("broadcast frame to IP %s", dstIP)
	}
	if sid := addr(m.ServerIdentifier()); sid != router {
		return nil, fmt.Errorf("server identifier %s, want %s", sid, router)
	}
	return &sentReply{dstMAC: dstMAC, dstIP: dstIP, msg: m}, nil
}

func addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
