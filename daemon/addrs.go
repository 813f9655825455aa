package daemon

import (
	"net/netip"
	"sync"

	"github.com/switchyard-net/switchyard/daemon/ipam"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// addrs is a network's address pool, shared by the daemon (endpoint
// addresses, under Daemon.mu) and the gateway's DHCP server (clients that
// configure themselves, under the server's lock). Lock order: Daemon.mu or
// the DHCP server's lock, then addrs.mu; addrs never calls out.
//
// It is the DHCP server's Allocator: an endpoint's MAC gets the endpoint's
// address (a static lease, how `connect --dhcp` and `--tap-only --mac`
// hand a client its IPAM address); any other MAC gets the lowest free
// address of the pool, held as "dhcp:MAC" until the lease ends. An IPv6
// pool is the DHCPv6 server's Reservations (reservations6): static leases
// only.
type addrs struct {
	mu      sync.Mutex
	pool    *ipam.Pool
	static  map[vswitch.MAC]netip.Addr // endpoint MAC → its address
	dynamic map[vswitch.MAC]netip.Addr // DHCP client MAC → its leased address
}

func newAddrs(p *ipam.Pool) *addrs {
	return &addrs{pool: p, static: map[vswitch.MAC]netip.Addr{}, dynamic: map[vswitch.MAC]netip.Addr{}}
}

// Allocate gives owner the lowest free address.
func (a *addrs) Allocate(owner string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pool.Allocate(owner)
}

// Reserve gives addr to owner.
func (a *addrs) Reserve(addr netip.Addr, owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pool.Reserve(addr, owner)
}

// Release frees addr.
func (a *addrs) Release(addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pool.Release(addr)
}

// Bind makes addr the static DHCP lease of mac (an endpoint's).
func (a *addrs) Bind(mac vswitch.MAC, addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.static[mac] = addr
}

// Unbind removes mac's static lease if it is addr.
func (a *addrs) Unbind(mac vswitch.MAC, addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.static[mac] == addr {
		delete(a.static, mac)
	}
}

// reservations6 is the IPv6 pool as the DHCPv6 server sees it: an
// endpoint's MAC has its endpoint's IPv6 address as a static lease; no
// other MAC has one (no dynamic DHCPv6 leases).
type reservations6 struct{ *addrs }

// Reserved implements dhcp6.Reservations.
func (r reservations6) Reserved(mac vswitch.MAC) (netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.static[mac]
	return a, ok
}

// dhcpAllocator is addrs as the DHCP server sees it. binder, if set,
// learns of dynamic leases (port security).
type dhcpAllocator struct {
	*addrs
	binder *leaseBinder
}

// Lease implements dhcp.Allocator.
func (d dhcpAllocator) Lease(mac vswitch.MAC, hostname string, requested netip.Addr) (netip.Addr, error) {
	addr, dynamic, err := d.lease(mac, requested)
	if err == nil && dynamic && d.binder != nil {
		d.binder.leased(mac, addr) // outside addrs.mu: addrs never calls out
	}
	return addr, err
}

// lease finds or allocates mac's address and reports whether it is a
// dynamic lease (not an endpoint's own address).
func (d dhcpAllocator) lease(mac vswitch.MAC, requested netip.Addr) (netip.Addr, bool, error) {
	a := d.addrs
	a.mu.Lock()
	defer a.mu.Unlock()
	if addr, ok := a.static[mac]; ok {
		return addr, false, nil
	}
	if addr, ok := a.dynamic[mac]; ok {
		return addr, true, nil
	}
	owner := "dhcp:" + mac.String()
	if requested.IsValid() && a.pool.Reserve(requested, owner) == nil {
		a.dynamic[mac] = requested
		return requested, true, nil
	}
	addr, err := a.pool.Allocate(owner)
	if err != nil {
		return netip.Addr{}, false, err
	}
	a.dynamic[mac] = addr
	return addr, true, nil
}

// Release implements dhcp.Allocator: a dynamic lease's address goes back
// to the pool; an endpoint's stays with the endpoint.
func (d dhcpAllocator) Release(mac vswitch.MAC, addr netip.Addr) {
	a := d.addrs
	a.mu.Lock()
	cur, ok := a.dynamic[mac]
	released := ok && cur == addr
	if released {
		delete(a.dynamic, mac)
		a.pool.Release(addr)
	}
	a.mu.Unlock()
	if released && d.binder != nil {
		d.binder.released(addr)
	}
}
