package vnettest

import (
	"fmt"
	"net/netip"
	"sync"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Network is one L2 network of a World: a Switchyard switch (the real
// vswitch.Switch, with its learning table, flooding and counters) and the
// hosts on it.
type Network struct {
	w      *World
	name   string
	subnet netip.Prefix
	sw     *vswitch.Switch

	mu   sync.Mutex
	used map[netip.Addr]string // address → host name
	next netip.Addr            // the next address to try for a host
	gw   *Gateway              // nil until NewGateway
	// leases maps DHCP clients to their addresses.
	leases map[vswitch.MAC]netip.Addr
	// owner, if set, is the network whose address pool (used, next)
	// this one shares: a tunnel joined them into one segment.
	owner *Network
	// router names what holds the gateway address: "" (nothing yet),
	// "the gateway" or "router NAME".
	router string
}

// claimGatewayAddr gives the network's gateway address to holder, once.
func (n *Network) claimGatewayAddr(holder string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.router != "" {
		return fmt.Errorf("network %s: its gateway address %s is held by %s already", n.name, n.GatewayAddr(), n.router)
	}
	n.router = holder
	return nil
}

func (w *World) newNetwork(name, subnet string) (*Network, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return nil, fmt.Errorf("network %q: subnet %q: want an IPv4 prefix such as 10.0.0.0/24", name, subnet)
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("network %q: subnet %q: want an IPv4 prefix of /30 or shorter, such as 10.0.0.0/24", name, subnet)
	}
	p = p.Masked()
	n := &Network{w: w, name: name, subnet: p, used: map[netip.Addr]string{}}
	gw := p.Addr().Next()
	n.used[gw] = "(gateway)"
	n.next = gw.Next()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("network %q: the world is closed", name)
	}
	for _, o := range w.networks {
		if o.name == name {
			return nil, fmt.Errorf("network %q: a network of that name exists already", name)
		}
	}
	n.sw = vswitch.New(vswitch.Config{Name: name, Logger: w.log})
	w.networks = append(w.networks, n)
	return n, nil
}

// Name returns the network's name.
func (n *Network) Name() string { return n.name }

// Subnet returns the network's subnet.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

// GatewayAddr returns the address kept for the network's gateway: the
// first usable one.
func (n *Network) GatewayAddr() netip.Addr { return n.subnet.Addr().Next() }

// Switch returns the network's switch, for its counters and forwarding
// table.
func (n *Network) Switch() *vswitch.Switch { return n.sw }

// NewHost adds a host with the lowest free address of the network.
func (n *Network) NewHost(name string) *Host {
	n.w.t.Helper()
	h, err := n.newHost(name, "")
	if err != nil {
		n.w.fail("%v", err)
	}
	return h
}

// NewHostAt adds a host with the given address, which must lie inside the
// network's subnet and be free.
func (n *Network) NewHostAt(name, addr string) *Host {
	n.w.t.Helper()
	h, err := n.newHost(name, addr)
	if err != nil {
		n.w.fail("%v", err)
	}
	return h
}

// claim reserves an address for host name: addr, or the lowest free one
// if addr is "".
func (n *Network) claim(name, addr string) (netip.Addr, error) {
	p := n.pool()
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr == "" {
		for a := p.next; n.subnet.Contains(a); a = a.Next() {
			if _, taken := p.used[a]; !taken && a.Next().IsValid() && n.subnet.Contains(a.Next()) { // not the broadcast address
				p.used[a] = name
				p.next = a.Next()
				return a, nil
			}
		}
		return netip.Addr{}, fmt.Errorf("host %q: network %s (%s) has no free address left", name, n.name, n.subnet)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host %q: address %q: want an IPv4 address inside %s", name, addr, n.subnet)
	}
	if !n.subnet.Contains(a) || a == n.subnet.Addr() {
		return netip.Addr{}, fmt.Errorf("host %q: address %s is outside network %s (%s): want a host address inside it", name, a, n.name, n.subnet)
	}
	if other, taken := p.used[a]; taken {
		return netip.Addr{}, fmt.Errorf("host %q: address %s on network %s is taken by %s", name, a, n.name, other)
	}
	p.used[a] = name
	return a, nil
}

func (n *Network) release(a netip.Addr) {
	p := n.pool()
	p.mu.Lock()
	delete(p.used, a)
	p.mu.Unlock()
}

func (n *Network) newHost(name, addr string) (*Host, error) { return n.newHostMTU(name, addr, 0) }

// newHostMTU is newHost with an MTU (0: 1500).
func (n *Network) newHostMTU(name, addr string, mtu int) (*Host, error) {
	if name == "" {
		return nil, fmt.Errorf("host on network %s: want a name", n.name)
	}
	if err := n.w.reserve(name); err != nil {
		return nil, err
	}
	a, err := n.claim(name, addr)
	if err != nil {
		n.w.add(name, nil)
		return nil, err
	}
	wire := n.w.newWire(name)
	cfg := HostConfig{Name: name, Addr: netip.PrefixFrom(a, n.subnet.Bits()), Gateway: n.GatewayAddr(), MTU: mtu}
	h, err := newHostOn(n.sw, cfg, func(p vswitch.Port) vswitch.Port { return &wirePort{w: wire, inner: p} }, n.w.newStack(name))
	if err != nil {
		n.release(a)
		n.w.add(name, nil)
		return nil, fmt.Errorf("host %q on network %s: %w", name, n.name, err)
	}
	h.world, h.wire, h.network = n.w, wire, n
	n.w.add(name, h)
	n.refreshNames()
	return h, nil
}

// closeGateway closes the network's gateway, if any.
func (n *Network) closeGateway() {
	n.mu.Lock()
	g := n.gw
	n.mu.Unlock()
	if g != nil {
		g.close()
	}
}
