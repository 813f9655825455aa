package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Config describes the addresses of one network in one address family, as
// the flags of `docker network create` do.
type Config struct {
	// Subnet is the network's prefix (--subnet). It is required and must be
	// canonical: 10.240.0.0/24, not 10.240.0.1/24. IPv4 prefixes longer
	// than /30 and IPv6 prefixes longer than /126 are refused: they leave
	// no room for a gateway and an endpoint.
	Subnet netip.Prefix

	// Gateway is the address of the network's gateway (--gateway). It must
	// lie in Subnet and must not be the network or broadcast address. If
	// zero, the first address after the network address, as Docker does
	// (10.240.0.1 for 10.240.0.0/24, fd00:1::1 for fd00:1::/64). It may lie
	// outside IPRange.
	Gateway netip.Addr

	// IPRange is the part of Subnet that Allocate hands out from
	// (--ip-range). It must be canonical and lie inside Subnet. If zero,
	// the whole subnet. Reserve is not restricted to it.
	IPRange netip.Prefix

	// Aux holds addresses used by other hosts on the network
	// (--aux-address name=IP). They must lie in Subnet, must not be the
	// network, broadcast or gateway address, and must differ from each
	// other. They are never handed out. New copies the map.
	Aux map[string]netip.Addr
}

// New checks cfg and returns an empty Pool for it. The error names the
// offending field and value and says what would be accepted.
func New(cfg Config) (*Pool, error) {
	if err := checkSubnet(cfg.Subnet); err != nil {
		return nil, err
	}
	p := &Pool{
		subnet: cfg.Subnet,
		first:  cfg.Subnet.Addr(),
		last:   lastAddr(cfg.Subnet),
		aux:    make(map[netip.Addr]string, len(cfg.Aux)),
		owners: make(map[netip.Addr]string),
	}
	var err error
	if p.gateway, err = p.checkGateway(cfg.Gateway); err != nil {
		return nil, err
	}
	if p.rng, err = p.checkRange(cfg.IPRange); err != nil {
		return nil, err
	}
	p.rngLast = lastAddr(p.rng)
	if err = p.checkAux(cfg.Aux); err != nil {
		return nil, err
	}

	p.mark(p.first)
	if p.subnet.Addr().Is4() {
		p.mark(p.last)
	}
	p.mark(p.gateway)
	for a := range p.aux {
		p.mark(a)
	}
	return p, nil
}

// checkSubnet checks that sn is a usable, canonical subnet.
func checkSubnet(sn netip.Prefix) error {
	if !sn.IsValid() {
		return errors.New("no subnet given: want a prefix such as 10.240.0.0/24 or fd00:1::/64")
	}
	if sn.Addr().Is4In6() || sn.Masked().Addr().Is4In6() {
		if sn.Bits() >= 96 {
			v4 := netip.PrefixFrom(sn.Addr().Unmap(), sn.Bits()-96).Masked()
			return fmt.Errorf("subnet %s is an IPv4-mapped IPv6 prefix: use %s", sn, v4)
		}
		return fmt.Errorf("subnet %s is an IPv4-mapped IPv6 prefix: use an IPv4 prefix such as 10.240.0.0/24", sn)
	}
	if sn != sn.Masked() {
		return fmt.Errorf("subnet %s has host bits set: use %s", sn, sn.Masked())
	}
	if sn.Addr().Is4() && sn.Bits() > 30 {
		return fmt.Errorf("subnet %s is too small: it must hold a gateway and an endpoint besides the network and broadcast addresses; use a /30 or shorter prefix such as %s",
			sn, netip.PrefixFrom(sn.Addr(), 30).Masked())
	}
	if sn.Addr().Is6() && sn.Bits() > 126 {
		return fmt.Errorf("subnet %s is too small: it must hold a gateway and an endpoint besides the subnet-router anycast address; use a /126 or shorter prefix such as %s",
			sn, netip.PrefixFrom(sn.Addr(), 126).Masked())
	}
	return nil
}

// checkGateway returns the gateway to use for g, the configured one.
func (p *Pool) checkGateway(g netip.Addr) (netip.Addr, error) {
	if !g.IsValid() {
		return p.first.Next(), nil
	}
	if !p.subnet.Contains(g) {
		return netip.Addr{}, fmt.Errorf("gateway %w", p.outside(g))
	}
	if desc, ok := p.special(g); ok {
		lo, hi := p.usable()
		return netip.Addr{}, fmt.Errorf("gateway %s is %s: %w; want an address from %s to %s", g, desc, ErrReserved, lo, hi)
	}
	return g, nil
}

// checkRange returns the ip-range to use for r, the configured one.
func (p *Pool) checkRange(r netip.Prefix) (netip.Prefix, error) {
	if !r.IsValid() {
		return p.subnet, nil
	}
	m := r.Masked()
	if m.Addr().Is4() != p.subnet.Addr().Is4() || m.Bits() < p.subnet.Bits() || !p.subnet.Contains(m.Addr()) {
		return netip.Prefix{}, fmt.Errorf("ip-range %s is %w %s: want a /%d or longer prefix inside it",
			r, ErrOutside, p.subnet, p.subnet.Bits())
	}
	if r != m {
		return netip.Prefix{}, fmt.Errorf("ip-range %s has host bits set: use %s", r, m)
	}
	return r, nil
}

// checkAux checks the aux addresses and records them in p.aux. It runs after
// the gateway is known. Names are checked in sorted order, so the error for
// a given Config is always the same.
func (p *Pool) checkAux(aux map[string]netip.Addr) error {
	for _, name := range slices.Sorted(maps.Keys(aux)) {
		a := aux[name]
		if !a.IsValid() {
			return fmt.Errorf("aux address %q: no address given: want name=IP with IP in %s", name, p.subnet)
		}
		if !p.subnet.Contains(a) {
			return fmt.Errorf("aux address %q=%w", name, p.outside(a))
		}
		if err := p.fixedErr(a); err != nil {
			return fmt.Errorf("aux address %q=%s: %w", name, a, err)
		}
		p.aux[a] = name
	}
	return nil
}
