package dhcp

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// lease is one entry of the lease table. Its fields are guarded by
// Server.mu.
type lease struct {
	// holder is the MAC the Allocator knows addr under: the client's,
	// or for a declined address its quarantine MAC.
	holder   vswitch.MAC
	client   vswitch.MAC
	addr     netip.Addr
	hostname string
	expiry   time.Time
	state    LeaseState
}

// quarantineMAC is the holder of a declined address: a group MAC (the I/G
// bit set), which no station can send from, so it never meets a client's.
func quarantineMAC(a netip.Addr) vswitch.MAC {
	b := a.As4()
	return vswitch.MAC{0x03, 0x00, b[0], b[1], b[2], b[3]}
}

// usable reports whether a may be given to a client: an IPv4 address of
// the subnet other than its network, broadcast and router addresses.
func (s *Server) usable(a netip.Addr) bool {
	if !a.Is4() || !s.cfg.Subnet.Contains(a) {
		return false
	}
	b := a.As4()
	return b != s.network && b != s.bcast && b != s.router
}

// allocateLocked asks the Allocator for an address for mac, preferring
// requested if it is usable. It reports false (and counts the failure) if
// the Allocator has none to give.
func (s *Server) allocateLocked(mac vswitch.MAC, hostname string, requested netip.Addr) (netip.Addr, bool) {
	if !s.usable(requested) {
		requested = netip.Addr{}
	}
	a, err := s.cfg.Allocator.Lease(mac, hostname, requested)
	if err != nil {
		s.stats.allocFailures.Add(1)
		s.log.Debug("no address for client", zap.Stringer("mac", mac), zap.Error(err))
		return netip.Addr{}, false
	}
	if !s.usable(a) {
		// The allocator is misconfigured (a range outside the subnet,
		// the router's address): give nothing rather than a broken
		// configuration.
		s.cfg.Allocator.Release(mac, a)
		s.stats.allocFailures.Add(1)
		s.log.Debug("allocator returned an unusable address", zap.Stringer("mac", mac), zap.Stringer("addr", a))
		return netip.Addr{}, false
	}
	return a, true
}

// adoptLocked makes want the address of a client the table has no entry
// for (its lease predates this server: a daemon restart), if the Allocator
// agrees. It reports whether the client now holds want, bound until
// now+LeaseTime.
func (s *Server) adoptLocked(mac vswitch.MAC, hostname string, want netip.Addr, now time.Time) bool {
	if !s.usable(want) {
		return false
	}
	a, ok := s.allocateLocked(mac, hostname, want)
	if !ok {
		return false
	}
	if a != want {
		s.cfg.Allocator.Release(mac, a)
		return false
	}
	s.leases[mac] = &lease{holder: mac, client: mac, addr: a, hostname: hostname,
		expiry: now.Add(s.leaseTime), state: StateBound}
	return true
}

// releaseLocked returns l's address to the Allocator and forgets l.
func (s *Server) releaseLocked(l *lease) {
	s.cfg.Allocator.Release(l.holder, l.addr)
	delete(s.leases, l.holder)
}

// quarantineLocked keeps addr, which client declined, out of use for
// DeclineHold by leasing it to its quarantine MAC. If the Allocator will
// not give it to that MAC, the address is simply free again.
func (s *Server) quarantineLocked(client vswitch.MAC, addr netip.Addr, now time.Time) {
	q := quarantineMAC(addr)
	a, err := s.cfg.Allocator.Lease(q, "", addr)
	if err != nil {
		return
	}
	if a != addr {
		s.cfg.Allocator.Release(q, a)
		return
	}
	s.leases[q] = &lease{holder: q, client: client, addr: addr, expiry: now.Add(DeclineHold), state: StateDeclined}
}

// Sweep returns the addresses of leases, offers and declines that expired
// by now to the Allocator. The gateway's janitor calls it every few
// seconds.
func (s *Server) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.leases {
		if now.Before(l.expiry) {
			continue
		}
		s.log.Debug("lease expired", zap.Stringer("mac", l.client), zap.Stringer("addr", l.addr),
			zap.String("state", string(l.state)))
		s.releaseLocked(l) // deleting during range is allowed
	}
}

// Leases returns the lease table, ordered by address: bound leases, offers
// still reserved, and declined addresses kept out of use.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		out = append(out, Lease{MAC: l.client, Addr: l.addr, Hostname: l.hostname, Expiry: l.expiry, State: l.state})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.State, b.State)) })
	return out
}
