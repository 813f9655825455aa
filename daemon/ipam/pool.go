package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// Pool manages the addresses of one subnet: the gateway, the aux addresses
// and the addresses held by endpoints. Create it with New. A Pool is not safe
// for concurrent use.
type Pool struct {
	subnet  netip.Prefix
	rng     netip.Prefix // the ip-range; the subnet when none was given
	rngLast netip.Addr   // the last address of rng
	gateway netip.Addr
	first   netip.Addr // network address (IPv4), subnet-router anycast (IPv6)
	last    netip.Addr // broadcast address (IPv4), last address (IPv6)

	aux    map[netip.Addr]string // aux address → its name
	owners map[netip.Addr]string // endpoint address → its owner

	// taken holds every address that may not be handed out: the fixed
	// ones (network, broadcast, gateway, aux) and the endpoints' ones.
	taken spanSet
	// inRange counts the addresses of taken that lie inside rng.
	inRange uint64
}

// Subnet returns the pool's subnet.
func (p *Pool) Subnet() netip.Prefix { return p.subnet }

// Gateway returns the gateway address, the default one if Config.Gateway
// was zero.
func (p *Pool) Gateway() netip.Addr { return p.gateway }

// IPRange returns the prefix Allocate hands out from: Config.IPRange, or the
// subnet if that was zero.
func (p *Pool) IPRange() netip.Prefix { return p.rng }

// Aux returns a copy of the aux addresses, by name.
func (p *Pool) Aux() map[string]netip.Addr {
	m := make(map[string]netip.Addr, len(p.aux))
	for a, name := range p.aux {
		m[name] = a
	}
	return m
}

// Allocate gives owner the lowest free address of the ip-range. An address
// that was released is handed out again before any higher one. When the
// ip-range is full the error wraps ErrExhausted. Owner must not be empty; it
// is what Owner returns and what errors name.
func (p *Pool) Allocate(owner string) (netip.Addr, error) {
	if owner == "" {
		return netip.Addr{}, fmt.Errorf("allocate an address: %w", errNoOwner)
	}
	a := p.taken.firstFree(p.rng.Addr())
	if !a.IsValid() || p.rngLast.Less(a) {
		where := p.subnet.String()
		if p.rng != p.subnet {
			where = fmt.Sprintf("ip-range %s of %s", p.rng, p.subnet)
		}
		return netip.Addr{}, fmt.Errorf("allocate an address for %q: %w in %s", owner, ErrExhausted, where)
	}
	p.take(a, owner)
	return a, nil
}

// Reserve gives addr to owner (docker run --ip). The address may lie
// anywhere in the subnet, inside or outside the ip-range. The error wraps
// ErrOutside if it lies outside the subnet, ErrReserved if it is the network,
// broadcast or subnet-router anycast address, and ErrInUse if the gateway, an
// aux address or an endpoint holds it (the message names which).
func (p *Pool) Reserve(addr netip.Addr, owner string) error {
	if owner == "" {
		return fmt.Errorf("reserve %s: %w", addr, errNoOwner)
	}
	if err := p.check(addr); err != nil {
		return fmt.Errorf("reserve %s for %q: %w", addr, owner, err)
	}
	if holder, ok := p.owners[addr]; ok {
		return fmt.Errorf("reserve %s for %q: %w by %q", addr, owner, ErrInUse, holder)
	}
	p.take(addr, owner)
	return nil
}

// Release frees addr, which an endpoint held through Allocate or Reserve.
// The error wraps ErrNotAllocated if no endpoint holds it (the gateway and
// aux addresses cannot be released) and ErrOutside if it lies outside the
// subnet.
func (p *Pool) Release(addr netip.Addr) error {
	if !addr.IsValid() {
		return errors.New("release: no address given")
	}
	if !p.subnet.Contains(addr) {
		return fmt.Errorf("release %s: %w", addr, p.outside(addr))
	}
	if _, ok := p.owners[addr]; !ok {
		if desc, _, fixed := p.fixed(addr); fixed {
			return fmt.Errorf("release %s: %w to an endpoint: it is %s", addr, ErrNotAllocated, desc)
		}
		return fmt.Errorf("release %s: %w in %s", addr, ErrNotAllocated, p.subnet)
	}
	delete(p.owners, addr)
	p.taken.remove(addr)
	if p.rng.Contains(addr) {
		p.inRange--
	}
	return nil
}

// Owner returns the owner of the endpoint that holds addr. It reports false
// for a free address and for the gateway and aux addresses, which no endpoint
// holds.
func (p *Pool) Owner(addr netip.Addr) (string, bool) {
	o, ok := p.owners[addr]
	return o, ok
}

// InUse returns the number of addresses held by endpoints, inside or outside
// the ip-range. The gateway and aux addresses are not counted.
func (p *Pool) InUse() int { return len(p.owners) }

// Free returns the number of addresses that Allocate can still hand out:
// the size of the ip-range less every address in it that is taken (network,
// broadcast, gateway, aux and endpoint addresses). The count is exact
// whenever it fits in a uint64, which is always the case for IPv4; an IPv6
// range with more free addresses than that reports math.MaxUint64.
func (p *Pool) Free() uint64 {
	switch n := hostBits(p.rng); {
	case n < 64:
		return 1<<n - p.inRange
	case n == 64 && p.inRange > 0:
		return math.MaxUint64 - (p.inRange - 1)
	default:
		return math.MaxUint64
	}
}

// errNoOwner is returned by Allocate and Reserve for an empty owner.
var errNoOwner = errors.New("no owner given: every address must name the endpoint that holds it")

// take gives a, which is free, to owner.
func (p *Pool) take(a netip.Addr, owner string) {
	p.owners[a] = owner
	p.mark(a)
}

// mark records a as taken.
func (p *Pool) mark(a netip.Addr) {
	p.taken.add(a)
	if p.rng.Contains(a) {
		p.inRange++
	}
}

// check returns an error if a is not an address of the subnet that an
// endpoint may hold. It does not look at endpoints.
func (p *Pool) check(a netip.Addr) error {
	if !a.IsValid() {
		return errors.New("no address given")
	}
	if !p.subnet.Contains(a) {
		return p.outside(a)
	}
	return p.fixedErr(a)
}

// special describes a if it is the network or broadcast address of an IPv4
// subnet, or the subnet-router anycast address of an IPv6 subnet.
func (p *Pool) special(a netip.Addr) (string, bool) {
	switch {
	case a == p.first && a.Is4():
		return "the network address of " + p.subnet.String(), true
	case a == p.first:
		return "the subnet-router anycast address of " + p.subnet.String(), true
	case a == p.last && a.Is4():
		return "the broadcast address of " + p.subnet.String(), true
	}
	return "", false
}

// fixed describes a if no endpoint may ever hold it. held is true for the
// gateway and aux addresses, which something holds, and false for the
// addresses that nothing may hold (see special).
func (p *Pool) fixed(a netip.Addr) (desc string, held, ok bool) {
	if desc, ok := p.special(a); ok {
		return desc, false, true
	}
	if a == p.gateway {
		return "the gateway of " + p.subnet.String(), true, true
	}
	if name, ok := p.aux[a]; ok {
		return fmt.Sprintf("aux address %q", name), true, true
	}
	return "", false, false
}

// fixedErr returns an error wrapping ErrInUse or ErrReserved if a is one of
// the fixed addresses, and nil otherwise.
func (p *Pool) fixedErr(a netip.Addr) error {
	desc, held, ok := p.fixed(a)
	switch {
	case !ok:
		return nil
	case held:
		return fmt.Errorf("%w by %s", ErrInUse, desc)
	default:
		return fmt.Errorf("%w: it is %s", ErrReserved, desc)
	}
}

// usable returns the lowest and highest addresses of the subnet that an
// endpoint or gateway may hold.
func (p *Pool) usable() (lo, hi netip.Addr) {
	if p.subnet.Addr().Is4() {
		return p.first.Next(), p.last.Prev()
	}
	return p.first.Next(), p.last
}

// outside returns the error for a, an address outside the subnet. It starts
// with the address, so callers prefix it with what the address is for.
func (p *Pool) outside(a netip.Addr) error {
	lo, hi := p.usable()
	var hint string
	switch {
	case a.Is4In6() && p.subnet.Addr().Is4():
		hint = fmt.Sprintf(" (write %s as %s)", a, a.WithZone("").Unmap())
	case a.Zone() != "":
		hint = fmt.Sprintf(" (without the zone %q)", a.Zone())
	case a.Is4() != p.subnet.Addr().Is4():
		hint = fmt.Sprintf(" (an %s address, not %s)", family(lo), family(a))
	}
	return fmt.Errorf("%s is %w %s: want an address from %s to %s%s", a, ErrOutside, p.subnet, lo, hi, hint)
}
