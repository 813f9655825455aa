package netavark

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// fakeDaemon is an in-memory Daemon: networks with an IPv4 subnet and
// perhaps an IPv6 one (Subnets[0], or fd00:18::/64 for IPv6), endpoints
// with lowest-free addresses, the daemon's kinds of error.
type fakeDaemon struct {
	mu       sync.Mutex
	networks map[string]api.Network
	eps      map[string][]api.Endpoint // by network
	// down makes every call fail as an unreachable daemon does.
	down bool
	// connects are the connect requests received, in order.
	connects []api.EndpointCreate
	creates  []api.NetworkCreate
}

func newFake() *fakeDaemon {
	return &fakeDaemon{networks: map[string]api.Network{}, eps: map[string][]api.Endpoint{}}
}

var _ Daemon = (*fakeDaemon)(nil)

var errDown = fmt.Errorf("cannot reach the switchyard daemon at /fake.sock: %w", api.ErrUnreachable)

func (f *fakeDaemon) Network(_ context.Context, name string) (api.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return api.Network{}, errDown
	}
	n, ok := f.networks[name]
	if !ok {
		return n, fmt.Errorf("network %q: %w", name, api.ErrNotFound)
	}
	return n, nil
}

func (f *fakeDaemon) CreateNetwork(_ context.Context, req api.NetworkCreate) (api.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return api.Network{}, errDown
	}
	f.creates = append(f.creates, req)
	if _, ok := f.networks[req.Name]; ok {
		return api.Network{}, fmt.Errorf("network %q exists: %w", req.Name, api.ErrConflict)
	}
	subnet := netip.MustParsePrefix("172.18.0.0/16")
	if req.Subnet != "" {
		p, err := netip.ParsePrefix(req.Subnet)
		if err != nil {
			return api.Network{}, api.Validate(req, []api.FieldError{{Field: "subnet", Value: req.Subnet, Problem: "not a subnet", Accepted: "CIDR"}})
		}
		subnet = p
	}
	gw := subnet.Addr().Next()
	if req.Gateway != "" {
		gw = netip.MustParseAddr(req.Gateway)
	}
	n := api.Network{Name: req.Name, Subnet: subnet, Gateway: gw, Internal: req.Internal, MTU: req.MTU}
	if len(req.Subnets) == 1 || req.IPv6 {
		s6 := netip.MustParsePrefix("fd00:18::/64")
		if len(req.Subnets) == 1 {
			s6 = netip.MustParsePrefix(req.Subnets[0])
		}
		n.Subnet6, n.Gateway6 = s6, s6.Addr().Next()
		if len(req.Gateways) == 1 {
			n.Gateway6 = netip.MustParseAddr(req.Gateways[0])
		}
	}
	f.networks[req.Name] = n
	return n, nil
}

func (f *fakeDaemon) Connect(_ context.Context, network string, req api.EndpointCreate) (api.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return api.Endpoint{}, errDown
	}
	f.connects = append(f.connects, req)
	n, ok := f.networks[network]
	if !ok {
		return api.Endpoint{}, fmt.Errorf("network %q: %w", network, api.ErrNotFound)
	}
	used := map[netip.Addr]bool{n.Gateway: true}
	for _, e := range f.eps[network] {
		if e.Name == req.Name {
			return api.Endpoint{}, fmt.Errorf("endpoint %q already exists: %w", req.Name, api.ErrConflict)
		}
		used[e.Address.Addr()] = true
	}
	var addr netip.Addr
	if req.IP != "" {
		a, err := netip.ParseAddr(req.IP)
		if err != nil || !n.Subnet.Contains(a) {
			return api.Endpoint{}, api.Validate(req, []api.FieldError{{Field: "ip", Value: req.IP, Problem: "outside the subnet", Accepted: "an address inside " + n.Subnet.String()}})
		}
		if used[a] {
			return api.Endpoint{}, fmt.Errorf("address %s is in use: %w", a, api.ErrConflict)
		}
		addr = a
	} else {
		for a := n.Subnet.Addr().Next(); n.Subnet.Contains(a); a = a.Next() {
			if !used[a] {
				addr = a
				break
			}
		}
	}
	var addr6 netip.Prefix
	if n.Subnet6.IsValid() {
		a := n.Gateway6.Next()
		if req.IP6 != "" {
			a = netip.MustParseAddr(req.IP6)
		}
		for _, e := range f.eps[network] {
			if e.Address6.Addr() == a {
				a = a.Next()
			}
		}
		addr6 = netip.PrefixFrom(a, n.Subnet6.Bits())
	}
	mac := req.MAC
	if mac == "" {
		b := addr.As4()
		mac = fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
	}
	ep := api.Endpoint{Network: network, Name: req.Name, NetNS: req.NetNS, IfName: req.IfName, MAC: mac,
		Address: netip.PrefixFrom(addr, n.Subnet.Bits()), Gateway: n.Gateway, DNS: n.Gateway, Aliases: req.Aliases,
		ContainerID: req.ContainerID, Runtime: req.Runtime}
	if addr6.IsValid() {
		ep.Address6, ep.Gateway6 = addr6, n.Gateway6
	}
	f.eps[network] = append(f.eps[network], ep)
	return ep, nil
}

func (f *fakeDaemon) Disconnect(_ context.Context, network, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	eps := f.eps[network]
	for i, e := range eps {
		if e.Name == name {
			f.eps[network] = append(eps[:i:i], eps[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("endpoint %s/%s: %w", network, name, api.ErrNotFound)
}

func (f *fakeDaemon) Endpoints(_ context.Context, network string) ([]api.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errDown
	}
	if _, ok := f.networks[network]; !ok {
		return nil, fmt.Errorf("network %q: %w", network, api.ErrNotFound)
	}
	return append([]api.Endpoint(nil), f.eps[network]...), nil
}
