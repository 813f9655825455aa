package netipx

import (
	"net"
	"net/netip"
	"testing"
)

func TestPrefixFromIPNet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"10.1.2.3/24", "10.1.2.3/24"},
		{"fd00::1/64", "fd00::1/64"},
		{"0.0.0.0/0", "0.0.0.0/0"},
	} {
		_, n, _ := net.ParseCIDR(tc.in)
		ip, _, _ := net.ParseCIDR(tc.in)
		n.IP = ip
		got, ok := PrefixFromIPNet(n)
		if !ok || got != netip.MustParsePrefix(tc.want) {
			t.Errorf("PrefixFromIPNet(%s) = %v, %v; want %s", tc.in, got, ok, tc.want)
		}
		if back := IPNet(got); back.String() != n.String() {
			t.Errorf("IPNet(%v) = %v, want %v", got, back, n)
		}
	}
	// net.ParseCIDR gives 16-byte IPs for IPv4 with a 4-byte mask; a
	// 16-byte IP with a 16-byte mask must unmap too.
	n := &net.IPNet{IP: net.ParseIP("10.0.0.1"), Mask: net.CIDRMask(120, 128)}
	if got, ok := PrefixFromIPNet(n); !ok || got != netip.MustParsePrefix("10.0.0.1/24") {
		t.Errorf("mapped IPv4 with IPv6 mask: got %v, %v", got, ok)
	}
	if _, ok := PrefixFromIPNet(nil); ok {
		t.Error("nil accepted")
	}
}
