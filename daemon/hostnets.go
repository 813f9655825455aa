package daemon

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/internal/netipx"
)

// HostPrefixes returns the IPv4 prefixes the daemon's own network namespace
// uses: its interface addresses and its routes other than the default one.
// A subnet picked automatically must overlap none of them, as Docker checks
// its candidate bridge subnets against the host's routes.
func HostPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := netipx.PrefixFromIPNet(a.IPNet); ok {
			out = append(out, p.Masked())
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, 0)
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := netipx.PrefixFromIPNet(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}
