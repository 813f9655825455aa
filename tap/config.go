package tap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/netipx"
	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// nlHandle returns a netlink handle for the namespace at nsPath, or for the
// calling process's namespace if nsPath is "".
func nlHandle(nsPath string) (*netlink.Handle, error) {
	if nsPath == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	return h, nil
}

// configure sets the device's MAC, MTU, addresses and default route and
// brings it (and the namespace's loopback) up. It is idempotent: applied to
// a device that already has the configuration it changes nothing, and it
// removes addresses a previous life left that are not in cfg. nsPath is
// the namespace h works in ("" for the calling thread's).
func configure(h *netlink.Handle, nsPath, name string, cfg Config) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := setLinkAttrs(h, link, cfg); err != nil {
		return err
	}
	if slices.ContainsFunc(cfg.Addrs, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		// Before the address and the link come up: no SLAAC address may
		// form beside the static one (a stale one is removed below).
		if err := disableAutoconf(nsPath, name); err != nil {
			return err
		}
	}
	if err := syncAddrs(h, link, cfg.Addrs); err != nil {
		return err
	}
	if err := bringUp(h, link); err != nil {
		return err
	}
	for _, gw := range []netip.Addr{cfg.Gateway, cfg.Gateway6} {
		if gw.IsValid() {
			if err := defaultRoute(h, link.Attrs().Index, name, gw); err != nil {
				return err
			}
		}
	}
	return nil
}

// disableAutoconf sets net.ipv6.conf.NAME.autoconf to 0 in the namespace
// at nsPath ("" for the calling thread's), so that the kernel forms no
// SLAAC address from the gateway's Router Advertisements beside the static
// one the daemon gives the interface: Linux would prefer the newer SLAAC
// address as the source of replies from a socket bound to [::], and a
// client's connected UDP socket drops them. The advertisements still give
// the default route and the DNS server (accept_ra is left as it is).
//
// The kernel takes no devconf through netlink (RTM_SETLINK's IFLA_INET6
// accepts only the token and the address generation mode), and
// /proc/sys/net is the netns of the thread that opens it: the file is
// written from a thread inside the namespace.
func disableAutoconf(nsPath, name string) error {
	path := "/proc/sys/net/ipv6/conf/" + name + "/autoconf"
	write := func() error {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == "0" {
			return nil
		}
		return os.WriteFile(path, []byte("0\n"), 0o644)
	}
	var err error
	if nsPath == "" {
		err = write()
	} else {
		err = nsenter.Do(nsPath, write)
	}
	if err != nil {
		return fmt.Errorf("turn off IPv6 autoconfiguration (SLAAC) on %s: %w", name, err)
	}
	return nil
}

// configureLink gives the device name cfg's MAC and MTU only (LinkOnly).
func configureLink(h *netlink.Handle, name string, cfg Config) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	return setLinkAttrs(h, link, cfg)
}

// setLinkAttrs gives link cfg's MAC and MTU where they differ.
func setLinkAttrs(h *netlink.Handle, link netlink.Link, cfg Config) error {
	attrs := link.Attrs()
	if !cfg.MAC.IsZero() && !equalMAC(attrs.HardwareAddr, cfg.MAC[:]) {
		if err := h.LinkSetHardwareAddr(link, net.HardwareAddr(cfg.MAC[:])); err != nil {
			return fmt.Errorf("set MAC %s on %s: %w", cfg.MAC, attrs.Name, err)
		}
	}
	if cfg.MTU > 0 && attrs.MTU != cfg.MTU {
		if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("set MTU %d on %s: %w", cfg.MTU, attrs.Name, err)
		}
	}
	return nil
}

// syncAddrs leaves link with the addresses addrs plus its link-local ones:
// others are removed, missing ones added.
func syncAddrs(h *netlink.Handle, link netlink.Link, addrs []netip.Prefix) error {
	name := link.Attrs().Name
	want := map[netip.Prefix]bool{}
	for _, p := range addrs {
		want[p] = true
	}
	have, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for _, a := range have {
		p, ok := netipx.PrefixFromIPNet(a.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() || want[p] {
			delete(want, p)
			continue
		}
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove stale address %s from %s: %w", p, name, err)
		}
	}
	for _, p := range addrs {
		if !want[p] {
			continue
		}
		a := &netlink.Addr{IPNet: netipx.IPNet(p)}
		if p.Addr().Is6() {
			// The daemon hands out each address once: no duplicate to
			// detect, and no second of tentative address to wait for
			// (Docker's containers get nodad too).
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrReplace(link, a); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, name, err)
		}
	}
	return nil
}

// bringUp sets link, and the namespace's loopback, up if they are down.
func bringUp(h *netlink.Handle, link netlink.Link) error {
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring %s up: %w", link.Attrs().Name, err)
		}
	}
	if lo, err := h.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring lo up: %w", err)
		}
	}
	return nil
}

// defaultRoute makes gw on link the namespace's default route, unless the
// namespace already has one through another interface: as in Docker, an
// endpoint connected to a second network keeps the first one's gateway.
func defaultRoute(h *netlink.Handle, index int, name string, gw netip.Addr) error {
	family := netlink.FAMILY_V4
	if gw.Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := netipx.PrefixFromIPNet(r.Dst); (r.Dst == nil || ok && p.Bits() == 0) && r.LinkIndex != index {
			return nil // another interface's default route stays
		}
	}
	r := &netlink.Route{LinkIndex: index, Gw: gw.AsSlice(), Scope: netlink.SCOPE_UNIVERSE}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add default route via %s on %s: %w", gw, name, err)
	}
	return nil
}

func equalMAC(a net.HardwareAddr, b []byte) bool {
	return len(a) == len(b) && string(a) == string(b)
}

// Remove deletes the interface name from the namespace at nsPath, if it is
// there and is a TAP Switchyard made (see Mark); anything else under that
// name is left alone and reported with ErrNotOurs. It is how a device
// whose Port is gone (a failed restore) is cleaned up; a live Port is
// removed with Port.Remove.
func Remove(nsPath, name string) error {
	if needsHelper(nsPath) {
		return removeViaHelper(nsPath, name)
	}
	h, err := nlHandle(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find %s in %s: %w", name, nsPath, err)
	}
	if !ours(link) {
		return fmt.Errorf("interface %s (%s): %w", name, link.Type(), ErrNotOurs)
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s in %s: %w", name, nsPath, err)
	}
	return nil
}

// Links lists the interface names in the namespace at nsPath.
func Links(nsPath string) ([]string, error) {
	if needsHelper(nsPath) {
		return linksViaHelper(nsPath)
	}
	links, err := linkList(nsPath)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names, nil
}

// linkList lists the links of the namespace at nsPath, which this process
// may enter itself.
func linkList(nsPath string) ([]netlink.Link, error) {
	h, err := nlHandle(nsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces in %s: %w", nsPath, err)
	}
	return links, nil
}
