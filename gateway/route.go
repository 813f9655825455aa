package gateway

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/switchyard-net/switchyard/internal/icmperr"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// Direct routing: packets from endpoints to a routed remote subnet (another
// host's container subnet, Config.Routes) are forwarded as a router
// forwards them — unmodified but for the TTL, source address kept — to the
// next hop, the network's host interface (a TAP of the host kernel on the
// same switch), and the host kernel routes them on to the other host by
// its own table (a static route, a cloud VPC route).
//
//	endpoint ─► switch ─► gateway intercept: dst in Routes?
//	                        no  → NAT, echo proxy, netstack (egress) as before
//	                        yes → copy, TTL−1 (ICMP time exceeded at 0),
//	                              MACs: gateway → host interface
//	                              ─► switch ─► host interface TAP ─► host kernel ─► other host
//
// Where the forward belongs. gVisor can forward (stack.SetForwardingDefaultAndAllNICs)
// but not here: the gateway's NIC is promiscuous and spoofing so that it
// terminates flows to any address (egress), and a promiscuous NIC
// delivers every packet locally instead of forwarding it; a second
// netstack NIC would put a second MAC and a second address on the same
// switch for nothing. The forward is therefore done in the gateway's
// intercept, on the switch's goroutine, before the netstack sees the
// packet, beside the hairpin NAT that works the same way: a few bytes
// rewritten in a copy, no goroutine, no netstack buffer, and the netstack
// never holds state for routed flows. It is not a switch rule because
// decrementing the TTL and answering with ICMP errors is a router's job,
// and the switch knows no addresses.
//
// Into the network the host needs no help: the host kernel has the
// network's subnet on-link on the host interface (its address is inside
// it), so it resolves the endpoint by ARP through the switch and delivers
// the packet straight to it, its source address intact. The host itself
// reaches endpoints the same way. The replies to senders outside the
// routed subnets (the other host's own address, a VPC client) come back
// by the return path (returnpath.go).
//
// The netstack gets a route for each routed subnet via the host interface
// too, so that what it originates for a remote address (ICMP errors, DNS
// answers, connections to published ports from a remote client) takes the
// same way.

// RouteStats counts routed packets.
type RouteStats struct {
	// Forwarded packets went to the host interface.
	Forwarded uint64
	// TTLExceeded packets had no hop left: answered with ICMP time
	// exceeded (as the rate limit allows) and dropped.
	TTLExceeded uint64
	// Looped packets for a routed subnet, or for a sender of the
	// return path, came from the host interface itself (the host routes
	// the address back here): dropped.
	Looped uint64
}

type router struct {
	g      *Gateway
	routes atomic.Pointer[[]netip.Prefix] // read per packet; SetRoutes swaps it
	hopMAC vswitch.MAC
	bufs   sync.Pool // *[]byte, frame copies

	forwarded, expired, looped atomic.Uint64

	ret *returnTable // senders that came in through the host interface (returnpath.go)
}

// checkRoutes validates the routing part of cfg: routes, or a next hop
// alone (a gateway whose routes come later, SetRoutes).
func checkRoutes(cfg *Config) error {
	if len(cfg.Routes) == 0 && !cfg.NextHop.IsValid() {
		return nil
	}
	if cfg.Internal {
		return fmt.Errorf("routes %v on an internal network: an internal network never routes", cfg.Routes)
	}
	if !cfg.NextHop.IsValid() || !cfg.Subnet.Contains(cfg.NextHop) || cfg.NextHop == cfg.Addr {
		return fmt.Errorf("routes %v: next hop %v must be an address of subnet %s other than the gateway's", cfg.Routes, cfg.NextHop, cfg.Subnet)
	}
	if cfg.NextHopMAC.IsZero() || cfg.NextHopMAC.IsMulticast() {
		return fmt.Errorf("routes %v: next hop %s needs a unicast MAC, not %s", cfg.Routes, cfg.NextHop, cfg.NextHopMAC)
	}
	return checkRouteSet(cfg, cfg.Routes)
}

// checkRouteSet checks each route against the network of cfg.
func checkRouteSet(cfg *Config, routes []netip.Prefix) error {
	for _, r := range routes {
		if !r.IsValid() || r != r.Masked() || r.Addr().Is4() != cfg.Subnet.Addr().Is4() || r.Overlaps(cfg.Subnet) {
			return fmt.Errorf("route %v: want a canonical %s prefix outside subnet %s", r, family(cfg.Addr), cfg.Subnet)
		}
	}
	return nil
}

func newRouter(g *Gateway) *router {
	r := &router{g: g, hopMAC: g.cfg.NextHopMAC, ret: newReturnTable(g.cfg.Return)}
	routes := slices.Clone(g.cfg.Routes)
	r.routes.Store(&routes)
	r.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	return r
}

// netstackRoutes are the netstack's routes to the routed subnets, via the
// host interface.
func (r *router) netstackRoutes() []tcpip.Route {
	routes := *r.routes.Load()
	out := make([]tcpip.Route, 0, len(routes))
	for _, p := range routes {
		sub := tcpip.AddressWithPrefix{Address: stackport.Addr(p.Addr()), PrefixLen: p.Bits()}.Subnet()
		out = append(out, tcpip.Route{Destination: sub, Gateway: stackport.Addr(r.g.cfg.NextHop), NIC: NICID})
	}
	return out
}

// routed reports whether dst lies in a routed subnet.
func (r *router) routed(dst netip.Addr) bool {
	for _, p := range *r.routes.Load() {
		if p.Contains(dst) {
			return true
		}
	}
	return false
}

// intercept forwards f, a frame to the gateway MAC carrying the IP packet
// ip (version checked, at least a fixed header long), if its destination
// is routed or a sender the return path remembers; it reports whether it
// consumed f. f.Data stays the caller's: the forwarded frame is a copy.
func (r *router) intercept(f vswitch.Frame, ip []byte, v6 bool) bool {
	var dst netip.Addr
	if v6 {
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
	} else {
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
	}
	routed := r.routed(dst)
	if !routed && !r.returns(dst, ip, v6) {
		return false
	}
	if f.Src() == r.hopMAC {
		r.looped.Add(1)
		return true
	}
	ttlAt := 8
	if v6 {
		ttlAt = 7
	}
	if ip[ttlAt] <= 1 {
		r.expired.Add(1)
		r.timeExceeded(f, ip, v6)
		return true
	}
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	cp := append((*bp)[:0], f.Data...)
	*bp = cp
	out := cp[vswitch.EthHeaderLen:]
	out[ttlAt]--
	if !v6 {
		// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the 16-bit word
		// holding TTL and protocol.
		old := uint16(ip[8])<<8 | uint16(ip[9])
		now := uint16(out[8])<<8 | uint16(out[9])
		hc := uint16(out[10])<<8 | uint16(out[11])
		hc = ^checksum.Combine(checksum.Combine(^hc, ^old), now)
		out[10], out[11] = byte(hc>>8), byte(hc)
	}
	copy(cp[0:6], r.hopMAC[:])
	copy(cp[6:12], r.g.cfg.MAC[:])
	r.g.port.SendFrame(vswitch.Frame{Data: cp, Offload: f.Offload})
	if routed {
		r.forwarded.Add(1)
	} else {
		r.ret.forwarded.Add(1)
	}
	return true
}

// timeExceeded answers the sender of the frame f (packet ip) with ICMP
// time exceeded in transit, from the gateway address, as the gateway's
// one budget of ICMP errors allows (unreach.go; routers rate limit them
// too).
func (r *router) timeExceeded(f vswitch.Frame, ip []byte, v6 bool) {
	if v6 != r.g.cfg.Addr.Is6() || !r.g.icmp.allow(r.g.clock.Now()) {
		return
	}
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	out := (*bp)[:cap(*bp)]
	if len(out) < icmperr.MaxLen {
		out = make([]byte, icmperr.MaxLen)
		*bp = out
	}
	eth := icmperr.Eth{Dst: f.Src(), Src: r.g.cfg.MAC}
	var n int
	if v6 {
		n = icmperr.Error6(out, eth, r.g.cfg.Addr, ip, icmperr.TypeTimeExceeded6, 0, 0)
	} else {
		n = icmperr.Error4(out, eth, r.g.cfg.Addr, ip, icmperr.TypeTimeExceeded4, 0, 0)
	}
	if n > 0 {
		r.g.port.Send(out[:n])
	}
}

func (r *router) stats() RouteStats {
	return RouteStats{Forwarded: r.forwarded.Load(), TTLExceeded: r.expired.Load(), Looped: r.looped.Load()}
}

// RouteStats returns the counters of direct routing (zero without routes).
func (g *Gateway) RouteStats() RouteStats {
	if g.router == nil {
		return RouteStats{}
	}
	return g.router.stats()
}

// SetRoutes replaces the routed subnets while traffic flows: packets the
// switch hands the gateway after it returns are routed by the new set,
// and the netstack's own routes follow. Only a gateway made with a
// NextHop routes; the routes are checked as Config.Routes are, and a
// refused set changes nothing. routes stays the caller's.
func (g *Gateway) SetRoutes(routes []netip.Prefix) error {
	if g.router == nil {
		return fmt.Errorf("gateway for %s: routes %v: the gateway has no next hop to route to (Config.NextHop)", g.cfg.Network, routes)
	}
	if err := checkRouteSet(&g.cfg, routes); err != nil {
		return fmt.Errorf("gateway for %s: %w", g.cfg.Network, err)
	}
	rs := slices.Clone(routes)
	g.routesMu.Lock()
	defer g.routesMu.Unlock()
	g.router.routes.Store(&rs)
	g.setRouteTable()
	return nil
}

// Routes returns the routed subnets (nil for a gateway that does not
// route).
func (g *Gateway) Routes() []netip.Prefix {
	if g.router == nil {
		return nil
	}
	return slices.Clone(*g.router.routes.Load())
}
