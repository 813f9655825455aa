package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Link is what CHECK reads of the container's interface, in its
// namespace.
type Link struct {
	MAC    string
	Addrs  []netip.Prefix
	Routes []Route
}

// Route is one route through the interface; Dst 0.0.0.0/0 is the
// default.
type Route struct {
	Dst netip.Prefix
	GW  netip.Addr
}

// errNoNetNS marks a namespace path that cannot be opened.
var errNoNetNS = errors.New("network namespace cannot be opened")

// inspectLink reads ifName in the namespace at nsPath through a netlink
// socket opened there (the calling thread never changes namespace).
func inspectLink(nsPath, ifName string) (Link, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return Link{}, fmt.Errorf("%s: %w: %w", nsPath, errNoNetNS, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		return Link{}, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifName)
	if err != nil {
		return Link{}, fmt.Errorf("interface %s in %s: %w", ifName, nsPath, err)
	}
	out := Link{MAC: l.Attrs().HardwareAddr.String()}
	addrs, err := nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return Link{}, fmt.Errorf("addresses of %s in %s: %w", ifName, nsPath, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			bits, _ := a.Mask.Size()
			out.Addrs = append(out.Addrs, netip.PrefixFrom(ip.Unmap(), bits))
		}
	}
	routes, err := nl.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		return Link{}, fmt.Errorf("routes of %s in %s: %w", ifName, nsPath, err)
	}
	for _, r := range routes {
		var rt Route
		if r.Dst != nil {
			ip, _ := netip.AddrFromSlice(r.Dst.IP)
			bits, _ := r.Dst.Mask.Size()
			rt.Dst = netip.PrefixFrom(ip.Unmap(), bits)
		} else if r.Family == unix.AF_INET6 {
			rt.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			rt.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			rt.GW = gw.Unmap()
		}
		out.Routes = append(out.Routes, rt)
	}
	return out, nil
}

// compareLink says how the interface in the namespace differs from
// prev's interface idx: its MAC, and each of its addresses and routes,
// must be there.
func compareLink(prev *types100.Result, idx int, l Link) error {
	pi := prev.Interfaces[idx]
	if pi.Mac != "" && !strings.EqualFold(pi.Mac, l.MAC) {
		return fmt.Errorf("interface %s has MAC %s in its namespace, prevResult says %s", pi.Name, l.MAC, pi.Mac)
	}
	for _, ip := range prev.IPs {
		if ip.Interface != nil && *ip.Interface != idx {
			continue
		}
		want, ok := prefixOf(ip.Address.IP, ip.Address.Mask)
		if !ok || !slices.Contains(l.Addrs, want) {
			return fmt.Errorf("interface %s lacks address %s in its namespace (it has %v)", pi.Name, ip.Address.String(), l.Addrs)
		}
	}
	for _, r := range prev.Routes {
		dst, ok := prefixOf(r.Dst.IP, r.Dst.Mask)
		if !ok {
			continue
		}
		found := false
		for _, have := range l.Routes {
			if have.Dst == dst && (r.GW == nil || have.GW.String() == r.GW.String()) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("the namespace lacks route %s via %s through %s", dst, r.GW, pi.Name)
		}
	}
	return nil
}

func prefixOf(ip []byte, mask []byte) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := net.IPMask(mask).Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if bits == 128 && a.Is4In6() {
		ones -= 96
	}
	return netip.PrefixFrom(a.Unmap(), ones), true
}
