package daemon

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/internal/netipx"
)

// HostPrefixes returns the prefixes the daemon's own network namespace
// uses, of both families: its interface addresses and its routes other
// than the default ones. A subnet picked automatically must overlap none of
// them, as Docker checks its candidate bridge subnets against the host's
// routes, and a subnet named must not either. IPv6 link-local and
// multicast prefixes, which every interface has and no network may use,
// are left out.
func HostPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	keep := func(p netip.Prefix) {
		if a := p.Addr(); p.Bits() > 0 && !a.IsLinkLocalUnicast() && !a.IsMulticast() {
			out = append(out, p.Masked())
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := netipx.PrefixFromIPNet(a.IPNet); ok {
			keep(p)
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, 0)
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := netipx.PrefixFromIPNet(r.Dst); ok {
			keep(p)
		}
	}
	return out, nil
}
