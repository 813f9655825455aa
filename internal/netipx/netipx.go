// Package netipx converts between net/netip and the net.IP types that
// netlink and other libraries use at Switchyard's edges.
package netipx

import (
	"net"
	"net/netip"
)

// PrefixFromIPNet converts n (as netlink reports addresses and routes),
// unmapping IPv4-in-IPv6 forms. It reports false for nil or malformed n.
func PrefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 || (bits != a.BitLen() && !(bits == 128 && a.Is4())) {
		return netip.Prefix{}, false
	}
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

// IPNet converts p for netlink.
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
