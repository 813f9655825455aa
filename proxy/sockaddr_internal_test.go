package proxy

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// sockaddr: a pushed reply's destination in the host socket's family,
// IPv4 clients of a dual-stack socket mapped, zones as interface indexes.
func TestSockaddr(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("skipping: no loopback interface: %v", err)
	}
	v4 := netip.MustParseAddrPort("127.0.0.5:4000")
	if sa, ok := sockaddr(v4, unix.AF_INET).(*unix.SockaddrInet4); !ok || sa.Port != 4000 || sa.Addr != [4]byte{127, 0, 0, 5} {
		t.Errorf("IPv4 on an AF_INET socket: %#v", sockaddr(v4, unix.AF_INET))
	}
	mapped := netip.MustParseAddr("::ffff:127.0.0.5").As16()
	if sa, ok := sockaddr(v4, unix.AF_INET6).(*unix.SockaddrInet6); !ok || sa.Port != 4000 || sa.Addr != mapped || sa.ZoneId != 0 {
		t.Errorf("IPv4 on an AF_INET6 socket: %#v, want ::ffff:127.0.0.5", sockaddr(v4, unix.AF_INET6))
	}
	for _, tt := range []struct {
		zone string
		want uint32
	}{
		{"", 0},
		{"lo", uint32(lo.Index)},
		{"7", 7},
		{"no-such-if0", 0},
	} {
		ap := netip.AddrPortFrom(netip.MustParseAddr("fe80::1").WithZone(tt.zone), 53)
		sa, ok := sockaddr(ap, unix.AF_INET6).(*unix.SockaddrInet6)
		if !ok || sa.ZoneId != tt.want || sa.Addr != netip.MustParseAddr("fe80::1").As16() || sa.Port != 53 {
			t.Errorf("%s: %#v, want zone index %d", ap, sockaddr(ap, unix.AF_INET6), tt.want)
		}
	}
}
