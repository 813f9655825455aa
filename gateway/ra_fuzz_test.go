package gateway

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// isRouterSolicit never panics, and says yes only to an IPv6 packet
// carrying ICMPv6 type 133.
func FuzzIsRouterSolicit(f *testing.F) {
	mac := vswitch.MAC{0x02, 0x42, 10, 0, 0, 1}
	ra := buildRA(mac, linkLocal(mac), netip.MustParsePrefix("fd00:1::/64"), true, time.Minute, []netip.Addr{netip.MustParseAddr("fd00:1::1")}, time.Minute, false)
	f.Add(ra)
	rs := append([]byte(nil), ra[:vswitch.EthHeaderLen+header.IPv6MinimumSize+8]...)
	rs[vswitch.EthHeaderLen+header.IPv6MinimumSize] = byte(header.ICMPv6RouterSolicit)
	header.IPv6(rs[vswitch.EthHeaderLen:]).SetPayloadLength(8)
	f.Add(rs)
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !isRouterSolicit(b) {
			return
		}
		ip := header.IPv6(b[vswitch.EthHeaderLen:])
		if b[12] != 0x86 || b[13] != 0xdd || ip.NextHeader() != 58 || header.ICMPv6(ip.Payload()).Type() != header.ICMPv6RouterSolicit {
			t.Fatalf("%x taken for a router solicitation", b)
		}
	})
}
