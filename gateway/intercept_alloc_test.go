package gateway

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// The echo check that every frame to the gateway passes through
// allocates nothing for frames that are not echo requests: an IPv6 TCP
// segment to the outside goes on to the netstack with no allocation in
// intercept.
func TestInterceptNonEchoDoesNotAllocate(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	t.Cleanup(func() { sw.Close() })
	gmac := vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}
	g, err := New(sw, Config{Network: "a", Subnet: netip.MustParsePrefix("10.240.0.0/24"), Addr: netip.MustParseAddr("10.240.0.1"),
		Subnet6: netip.MustParsePrefix("fd00:1::/64"), Addr6: netip.MustParseAddr("fd00:1::1"), MAC: gmac,
		Egress: EgressConfig{NoPing: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	const plen = header.TCPMinimumSize + 100
	b := make([]byte, 14+header.IPv6MinimumSize+plen)
	copy(b[0:6], gmac[:])
	copy(b[6:12], []byte{2, 0x42, 0, 0, 0, 9})
	b[12], b[13] = 0x86, 0xdd
	header.IPv6(b[14:]).Encode(&header.IPv6Fields{PayloadLength: plen, TransportProtocol: 6, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16(netip.MustParseAddr("fd00:1::9").As16()), DstAddr: tcpip.AddrFrom16(netip.MustParseAddr("2001:db8::5").As16())})
	f := vswitch.Frame{Data: b}
	ip := b[14:]
	if g.interceptEcho(f, ip, true) {
		t.Fatal("a TCP segment was taken for an echo request")
	}
	if n := testing.AllocsPerRun(1000, func() { g.interceptEcho(f, ip, true) }); n != 0 {
		t.Errorf("interceptEcho: %v allocations per frame, want 0", n)
	}
}
