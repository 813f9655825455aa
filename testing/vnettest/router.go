package vnettest

import (
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// Router is a plain IPv4 router between networks of a World: one TCP/IP
// stack with forwarding on and a leg on each network, at the network's
// gateway address (its first usable one), so that the networks' hosts
// route through it. Each leg is a Wire of its own, named ROUTER@NETWORK.
type Router struct {
	name  string
	stack *stack.Stack
	legs  []routerLeg
	once  sync.Once
}

type routerLeg struct {
	n    *Network
	link *vswitch.Link
	wire *Wire
}

// NewRouter joins the networks with a router. Each network must have
// neither a gateway nor another router.
func (w *World) NewRouter(name string, networks ...*Network) *Router {
	w.t.Helper()
	r, err := w.newRouter(name, networks)
	if err != nil {
		w.fail("%v", err)
	}
	return r
}

func (w *World) newRouter(name string, networks []*Network) (*Router, error) {
	if len(networks) < 2 {
		return nil, fmt.Errorf("router %q: want two networks or more, got %d", name, len(networks))
	}
	seen := map[*Network]bool{}
	for _, n := range networks {
		if n == nil || n.w != w {
			return nil, fmt.Errorf("router %q: a network is nil or of another World", name)
		}
		if seen[n] {
			return nil, fmt.Errorf("router %q: network %s given twice", name, n.name)
		}
		seen[n] = true
	}
	addrs := make([]netip.Addr, len(networks))
	for i, n := range networks {
		if err := n.claimGatewayAddr("router " + name); err != nil {
			return nil, fmt.Errorf("router %q: %w", name, err)
		}
		addrs[i] = n.GatewayAddr()
	}
	return w.newRouterAt(name, networks, addrs)
}

// newRouterAt makes a router with a leg on each network at the address of
// the same index, which the caller has claimed.
func (w *World) newRouterAt(name string, networks []*Network, addrs []netip.Addr) (*Router, error) {
	r := &Router{name: name, stack: w.newStack("router " + name)}
	w.mu.Lock()
	w.routers = append(w.routers, r) // closed with the World even if set-up fails below
	w.mu.Unlock()
	var routes []tcpip.Route
	for i, n := range networks {
		a := addrs[i]
		legName := name + "@" + n.name
		wire := w.newWire(legName)
		port := stackport.New(stackport.Config{Name: legName, Kind: "router", MAC: DockerMAC(a)})
		link, err := n.sw.Attach(&wirePort{w: wire, inner: port}, vswitch.AttachOptions{})
		if err != nil {
			return nil, fmt.Errorf("router %q: attach to %s: %w", name, n.name, err)
		}
		r.legs = append(r.legs, routerLeg{n: n, link: link, wire: wire})
		route, err := port.AddNIC(r.stack, tcpip.NICID(i+1), netip.PrefixFrom(a, n.subnet.Bits()))
		if err != nil {
			return nil, fmt.Errorf("router %q: leg on %s: %w", name, n.name, err)
		}
		routes = append(routes, route)
	}
	r.stack.SetRouteTable(routes)
	if terr := r.stack.SetForwardingDefaultAndAllNICs(ipv4.ProtocolNumber, true); terr != nil {
		return nil, fmt.Errorf("router %q: enable forwarding: %s", name, terr)
	}
	return r, nil
}

// Name returns the router's name.
func (r *Router) Name() string { return r.name }

// Wire returns the router's leg on network n, nil if it has none there.
func (r *Router) Wire(n *Network) *Wire {
	for _, l := range r.legs {
		if l.n == n {
			return l.wire
		}
	}
	return nil
}

func (r *Router) close() {
	r.once.Do(func() {
		for _, l := range r.legs {
			l.n.sw.Detach(l.link)
		}
		r.stack.Close()
		r.stack.Wait()
	})
}
