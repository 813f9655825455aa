package daemon

import (
	"net"
	"net/netip"

	"github.com/switchyard-net/switchyard/internal/netipx"
)

// ownListener reports whether target (an egress flow's host destination)
// is one of the daemon's own TCP listeners (Config.OwnListeners: metrics),
// which containers must never reach, not even through --host-loopback. A
// listener on an unspecified address is reached at any local address, so
// those are looked up, only for flows to its port.
func (d *Daemon) ownListener(target netip.AddrPort) bool {
	for _, l := range d.cfg.OwnListeners {
		if l.Port() != target.Port() {
			continue
		}
		if l.Addr() == target.Addr() {
			return true
		}
		if l.Addr().IsUnspecified() && (target.Addr().IsLoopback() || isLocalAddr(target.Addr())) {
			return true
		}
	}
	return false
}

// isLocalAddr reports whether a is an address of one of the host's
// interfaces (or it cannot tell: then it refuses rather than risk it).
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if p, ok := netipx.PrefixFromIPNet(n); ok && p.Addr() == a {
				return true
			}
		}
	}
	return false
}
