package docker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// addressSpace is the one address space the IPAM driver has: pools must
// not overlap, as Switchyard networks do not.
const addressSpace = "switchyard"

// gatewayRequest is the RequestAddressType option's value when Docker
// asks for a network's gateway address.
const gatewayRequest = "com.docker.network.gateway"

// pool is a pool as its ID names it: the network's subnet and the range
// addresses are given from (the subnet, or --ip-range).
type pool struct {
	subnet netip.Prefix
	rng    netip.Prefix
}

// id is the pool's ID: the subnet, and ",RANGE" for a sub-pool. IDs carry
// the pool itself, so that a restarted plugin understands the IDs Docker
// kept.
func (p pool) id() string {
	if p.rng == p.subnet {
		return p.subnet.String()
	}
	return p.subnet.String() + "," + p.rng.String()
}

// parsePoolID reads an ID made by pool.id.
func parsePoolID(s string) (pool, error) {
	bad := fmt.Errorf("pool ID %q: not one the switchyard IPAM driver gave out (want SUBNET[,RANGE], like 10.98.0.0/24 or fd00:98::/64)", s)
	a, b, hasRange := strings.Cut(s, ",")
	subnet, err := netip.ParsePrefix(a)
	if err != nil || subnet != subnet.Masked() || subnet.Addr().Zone() != "" {
		return pool{}, bad
	}
	p := pool{subnet: subnet, rng: subnet}
	if hasRange {
		r, err := netip.ParsePrefix(b)
		if err != nil || r != r.Masked() || r.Bits() < subnet.Bits() || !subnet.Contains(r.Addr()) {
			return pool{}, bad
		}
		p.rng = r
	}
	return p, nil
}

// parsePool validates the pool (--subnet) and sub-pool (--ip-range) of a
// RequestPool: an IPv4 one, or with V6 (docker network create --ipv6) an
// IPv6 one.
func parsePool(req requestPoolRequest) (pool, error) {
	family, example := "IPv4", "10.98.0.0/24"
	if req.V6 {
		family, example = "IPv6", "fd00:98::/64"
	}
	if req.Pool == "" {
		if req.SubPool != "" {
			return pool{}, fmt.Errorf("ip range %q given without a subnet: give --subnet too", req.SubPool)
		}
		return pool{}, fmt.Errorf("the switchyard IPAM driver needs an %s subnet: give --subnet, like --subnet %s", family, example)
	}
	subnet, err := netip.ParsePrefix(req.Pool)
	switch {
	case err != nil || subnet.Addr().Zone() != "":
		return pool{}, fmt.Errorf("subnet %q: not a CIDR prefix; want one like %s", req.Pool, example)
	case subnet.Addr().Is4() == req.V6:
		return pool{}, fmt.Errorf("subnet %q: Docker asked for an %s pool; want an %s subnet like %s", req.Pool, family, family, example)
	case subnet != subnet.Masked():
		return pool{}, fmt.Errorf("subnet %q: host bits set; want the network address, %s", req.Pool, subnet.Masked())
	case subnet.Bits() > subnet.Addr().BitLen()-2:
		return pool{}, fmt.Errorf("subnet %q: too small for a gateway and an endpoint; want /%d or larger", req.Pool, subnet.Addr().BitLen()-2)
	case req.V6 && !subnet.Addr().IsGlobalUnicast() && !subnet.Addr().IsPrivate():
		return pool{}, fmt.Errorf("subnet %q: want a unicast IPv6 subnet (a ULA like fd00:98::/64, or a global one), not link-local, multicast or loopback", req.Pool)
	}
	p := pool{subnet: subnet, rng: subnet}
	if req.SubPool != "" {
		r, err := netip.ParsePrefix(req.SubPool)
		if err != nil || r.Addr().Is4() != subnet.Addr().Is4() || r != r.Masked() || r.Bits() < subnet.Bits() || !subnet.Contains(r.Addr()) {
			return pool{}, fmt.Errorf("ip range %q: want a network address and prefix inside subnet %s", req.SubPool, subnet)
		}
		p.rng = r
	}
	return p, nil
}

func (p *Plugin) requestPool(_ context.Context, req requestPoolRequest) (any, error) {
	pl, err := parsePool(req)
	if err != nil {
		return nil, err
	}
	return requestPoolResponse{PoolID: pl.id(), Pool: pl.subnet.String(), Data: map[string]string{}}, nil
}

func (p *Plugin) releasePool(_ context.Context, req releasePoolRequest) (any, error) {
	pl, err := parsePoolID(req.PoolID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	delete(p.handed, pl.subnet)
	p.mu.Unlock()
	return nil, nil
}

// usable reports whether a can be given to an endpoint or a gateway of
// subnet: inside it, and not its network address (an IPv4 subnet's
// broadcast address neither; an IPv6 subnet's first address is its
// subnet-router anycast address, RFC 4291).
func usable(subnet netip.Prefix, a netip.Addr) bool {
	if a.Is4() != subnet.Addr().Is4() || a.Zone() != "" || !subnet.Contains(a) || a == subnet.Addr() {
		return false
	}
	return a.Is6() || a != lastAddr(subnet)
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func (p *Plugin) requestAddress(ctx context.Context, req requestAddressRequest) (any, error) {
	pl, err := parsePoolID(req.PoolID)
	if err != nil {
		return nil, err
	}
	var want netip.Addr
	if req.Address != "" {
		want, err = netip.ParseAddr(req.Address)
		if err != nil || !usable(pl.subnet, want) {
			return nil, fmt.Errorf("address %q: want a host address inside subnet %s", req.Address, pl.subnet)
		}
	}
	if req.Options["RequestAddressType"] == gatewayRequest {
		// The network does not exist yet: its gateway is Switchyard's
		// default (the first address) unless --gateway chose one.
		if !want.IsValid() {
			want = pl.subnet.Addr().Next()
		}
		return requestAddressResponse{Address: netip.PrefixFrom(want, pl.subnet.Bits()).String()}, nil
	}
	used, name, err := p.usedAddrs(ctx, pl.subnet)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	handed := p.handed[pl.subnet]
	if handed == nil {
		handed = map[netip.Addr]bool{}
		p.handed[pl.subnet] = handed
	}
	if want.IsValid() {
		if used[want] || handed[want] {
			return nil, fmt.Errorf("address %s is in use in network %s", want, name)
		}
	} else {
		for a := pl.rng.Addr(); pl.rng.Contains(a); a = a.Next() {
			if usable(pl.subnet, a) && !used[a] && !handed[a] {
				want = a
				break
			}
		}
		if !want.IsValid() {
			return nil, fmt.Errorf("no free address left in %s (network %s)", pl.rng, name)
		}
	}
	handed[want] = true
	return requestAddressResponse{Address: netip.PrefixFrom(want, pl.subnet.Bits()).String()}, nil
}

// usedAddrs returns the addresses the Switchyard network of subnet (its
// IPv4 or its IPv6 subnet) holds (its gateway, reserved and endpoint
// addresses of that family), and its name for messages; none if there is
// no such network yet.
func (p *Plugin) usedAddrs(ctx context.Context, subnet netip.Prefix) (map[netip.Addr]bool, string, error) {
	nets, err := p.d.Networks(ctx)
	if err != nil {
		return nil, "", err
	}
	used := map[netip.Addr]bool{}
	for _, n := range nets {
		v6 := n.Subnet6.IsValid() && n.Subnet6 == subnet
		if n.Subnet != subnet && !v6 {
			continue
		}
		used[n.Gateway] = true
		used[n.Gateway6] = true
		for _, a := range n.AuxAddresses {
			used[a] = true
		}
		if n.HostLoopback.IsValid() {
			used[n.HostLoopback] = true
		}
		eps, err := p.d.Endpoints(ctx, n.Name)
		if err != nil {
			return nil, "", err
		}
		for _, e := range eps {
			used[e.Address.Addr()] = true
			used[e.Address6.Addr()] = true
		}
		return used, n.Name, nil
	}
	return used, subnet.String(), nil
}

func (p *Plugin) releaseAddress(_ context.Context, req releaseAddressRequest) (any, error) {
	pl, err := parsePoolID(req.PoolID)
	if err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(req.Address)
	if err != nil {
		return nil, fmt.Errorf("address %q: not an IP address", req.Address)
	}
	p.mu.Lock()
	delete(p.handed[pl.subnet], a)
	p.mu.Unlock()
	return nil, nil
}
