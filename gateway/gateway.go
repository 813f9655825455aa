// Package gateway is the router of a Switchyard network: a gVisor netstack
// attached to the network's switch as one more port, owning the gateway
// address (Docker's docker0 address, 172.17.0.1 on the default network).
//
//	endpoints ──► vswitch ──► stackport ──┬─ intercept (switch's goroutine)
//	                                      │    ├─ router solicitations → router advertisement  (ra.go)
//	                                      │    ├─ DHCP: clients with no address yet (broadcast) (dhcpserver.go)
//	                                      │    ├─ DHCPv6: clients at ff02::1:2, static leases  (dhcp6server.go)
//	                                      │    ├─ routed remote subnets → host interface, TTL−1  (route.go)
//	                                      │    ├─ senders that came in through it → back there    (returnpath.go)
//	                                      │    ├─ NAT: published ports reached from inside (hairpin) (nat.go)
//	                                      │    └─ ICMP echo to the outside → host ICMP socket   (echo.go)
//	                                      └─ netstack NIC (gateway MAC, gateway IP of each family,
//	                                           │  link-local fe80:: with RA; promiscuous)
//	                                           ├─ ARP, NDP, ICMP and ICMPv6 echo for the gateway addresses
//	                                           ├─ TCP/UDP to the outside → host sockets          (egress.go)
//	                                           └─ connections for published ports, from the client's address (dialer.go)
//
// The netstack runs in promiscuous mode with spoofing on: it terminates
// flows to any address (egress), and originates flows from any address
// (published ports keep the client's address). DHCP (dhcpserver.go) sees
// frames in intercept, before the netstack; DNS (package dns) runs on the
// stack, which Stack returns.
package gateway

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	"github.com/switchyard-net/switchyard/gateway/dhcp6"
	"github.com/switchyard-net/switchyard/nat"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// NICID is the gateway's one NIC on its netstack.
const NICID tcpip.NICID = 1

// TimeWait is how long a TCP connection of the gateway's netstack stays
// in TIME_WAIT after both sides closed, its side first (an egress flow
// whose outside server closed first; a published port's connection whose
// client did). gVisor's default is 60 s, and while it lasts a new SYN on
// the same four addresses and ports is dropped: gVisor takes such a SYN
// only for a listening endpoint, and egress has none. A container that
// reused its source port to the same server then waited out SYN
// retransmissions (seen at 1.5 s with rr crr; benchmarks/RESULTS.md,
// "Egress connections"). Linux hosts and Docker's NAT take the new SYN at
// once. On a TAP nothing arrives late or out of order, so TIME_WAIT only
// re-acknowledges a container's retransmitted FIN, which comes after its
// 200 ms minimum retransmission timeout; half a second covers that and
// ends before the SYN's first retransmission (1 s).
const TimeWait = 500 * time.Millisecond

// Config describes a gateway.
type Config struct {
	// Network names the network, for logs and the port name.
	Network string
	// Subnet is the network's subnet; Addr, inside it, is the gateway's
	// own address.
	Subnet netip.Prefix
	Addr   netip.Addr
	// MAC is the gateway's Ethernet address.
	MAC vswitch.MAC
	// Subnet6 and Addr6, if valid, are the IPv6 side of a dual-stack
	// network, whose Subnet and Addr are then IPv4: the NIC has both
	// addresses. A single-family network leaves them zero.
	Subnet6 netip.Prefix
	Addr6   netip.Addr
	// MTU of the network. 0 means 1500.
	MTU int
	// Internal networks have no egress: flows to the outside are refused
	// (RST, ICMP port unreachable) and pings go unanswered.
	Internal bool
	// HostLoopback, if valid, is a virtual address (like slirp4netns's
	// 10.0.2.2) through which containers reach the host's own loopback:
	// flows to it are re-originated to 127.0.0.1. Zero: the host's
	// loopback is unreachable.
	HostLoopback netip.Addr
	// Egress bounds and times egress flows.
	Egress EgressConfig
	// Refuse, if set, is asked about each egress flow's host destination
	// (after HostLoopback is mapped to 127.0.0.1); true refuses the flow
	// as on an internal network. The daemon keeps containers away from
	// its own listeners with it. It must be safe for concurrent use.
	Refuse func(netip.AddrPort) bool
	// NAT, if set, translates packets for published ports that arrive
	// from inside the network (hairpin) before the netstack sees them.
	// The gateway sweeps its connection table; the owner sets its
	// mappings and host addresses.
	NAT *nat.Table
	// DHCP, if set, runs a DHCPv4 server on the gateway for clients that
	// configure themselves (VMs on a TAP).
	DHCP *DHCPConfig
	// RA, if set, sends Router Advertisements for the IPv6 subnet
	// (ra.go).
	RA *RAConfig
	// DHCP6, if set, runs a stateful DHCPv6 server on the gateway that
	// hands clients the addresses reserved for their MACs
	// (dhcp6server.go); it needs RA, whose advertisements then carry the
	// M and O flags.
	DHCP6 *DHCP6Config
	// Routes are remote subnets (other hosts' container subnets) the
	// gateway forwards as a router, unmodified but for the TTL, to
	// NextHop, the network's host interface, whose MAC is NextHopMAC
	// (route.go). They must lie outside Subnet, in its family; an
	// internal network has none.
	Routes     []netip.Prefix
	NextHop    netip.Addr
	NextHopMAC vswitch.MAC
	// Return bounds the return path's table of senders that came in
	// through the host interface (returnpath.go); it is used with a
	// NextHop, whose port must be attached through HostInterfacePort.
	Return ReturnConfig
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Clock, if set, is the time the gateway runs on: its netstack's
	// timers and its own timeouts and sweeps (the idle timeouts of egress
	// UDP and echo flows, the NAT table's sweep, DHCP lease expiry, the
	// rate limit of ICMP errors). Package vnettest runs gateways on a
	// virtual clock; nil means the real clock. The deadlines of the host
	// sockets of UDP flows are taken from it too, so EgressConfig.Dial
	// must return conns whose deadlines follow it (real sockets do
	// for the real clock). Ping sockets keep real-time deadlines and only
	// check the flows' idle times on the clock.
	Clock tcpip.Clock
	// Rand, if set, is the netstack's source of random bytes (vnettest
	// seeds it); nil means crypto/rand.
	Rand io.Reader
}

// Gateway is a network's router. Create it with New; Close removes it.
type Gateway struct {
	cfg    Config
	log    *zap.Logger
	clock  tcpip.Clock // Config.Clock, or the real one
	stack  *stack.Stack
	port   *stackport.Port
	link   *vswitch.Link
	sw     *vswitch.Switch
	ctx    context.Context
	cancel context.CancelFunc
	egress *egress
	echo   *echoProxy
	nat    *natPath
	// up is set once start has finished: until then intercept drops the
	// frames to the gateway's MAC (counted in notUp), as g.echo and g.nat
	// are still being set.
	up     atomic.Bool
	notUp  atomic.Uint64
	dhcp   *dhcp.Server  // set before the port is attached; never changed after
	dhcp6  *dhcp6.Server // set before the port is attached; never changed after
	router *router       // nil without Routes or NextHop
	// routesMu serialises changes of the netstack's route table;
	// nicRoutes are the subnets' on-link routes in it (one per family).
	routesMu  sync.Mutex
	nicRoutes []tcpip.Route
	wg        sync.WaitGroup // goroutines started by the gateway (janitors)
	// dhcpSweeper returns expired DHCP leases; nil without DHCP.
	dhcpSweeper *periodic
	// dhcp6Sweeper forgets expired DHCPv6 leases; nil without DHCPv6.
	dhcp6Sweeper *periodic

	neighbors *neighborTable // endpoint addresses → MACs (neighbors.go)

	ra        *advertiser // nil unless Config.RA
	linkLocal netip.Addr  // the NIC's fe80:: address, with RA

	icmp icmpCounters // ICMP errors sent to containers, pings dropped (unreach.go)
}

// New creates the gateway's netstack and attaches it to sw.
func New(sw *vswitch.Switch, cfg Config) (*Gateway, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.MTU <= 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	g := newGateway(sw, cfg)
	if err := g.prepare(); err != nil {
		g.stack.Close()
		return nil, fmt.Errorf("gateway for %s: %w", cfg.Network, err)
	}
	// The gateway's MAC is static: frames to it never flood to the
	// endpoints, whether or not the gateway has spoken lately.
	link, err := sw.Attach(g.port, vswitch.AttachOptions{StaticMAC: cfg.MAC})
	if err != nil {
		g.stack.Close()
		return nil, fmt.Errorf("gateway for %s: %w", cfg.Network, err)
	}
	g.link = link
	if err := g.start(); err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway for %s: %w", cfg.Network, err)
	}
	g.announce()
	return g, nil
}

// checkConfig refuses a configuration New cannot build a gateway from,
// with an error that names the network and the offending input.
func checkConfig(cfg *Config) error {
	if err := checkAddrs(cfg); err != nil {
		return err
	}
	if err := checkRoutes(cfg); err != nil {
		return fmt.Errorf("gateway for %s: %w", cfg.Network, err)
	}
	if cfg.DHCP6 != nil && cfg.RA == nil {
		return fmt.Errorf("gateway for %s: %w", cfg.Network, errDHCP6NeedsRA)
	}
	return nil
}

// checkAddrs checks the gateway's addresses against their subnets: the
// first address inside Subnet, the IPv6 one (if any) inside Subnet6 of a
// network whose first address is IPv4, the host-loopback address outside
// Subnet and of its family.
func checkAddrs(cfg *Config) error {
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Contains(cfg.Addr) {
		return fmt.Errorf("gateway for %s: address %s is not inside subnet %s", cfg.Network, cfg.Addr, cfg.Subnet)
	}
	if (cfg.Addr6.IsValid() || cfg.Subnet6.IsValid()) && !validAddr6(cfg) {
		return fmt.Errorf("gateway for %s: IPv6 address %s is not inside IPv6 subnet %s of a network whose first address %s is IPv4",
			cfg.Network, cfg.Addr6, cfg.Subnet6, cfg.Addr)
	}
	if cfg.HostLoopback.IsValid() && (cfg.Subnet.Contains(cfg.HostLoopback) || cfg.HostLoopback.Is4() != cfg.Addr.Is4()) {
		return fmt.Errorf("gateway for %s: host-loopback address %s must be an %s address outside %s",
			cfg.Network, cfg.HostLoopback, family(cfg.Addr), cfg.Subnet)
	}
	return nil
}

// validAddr6 reports whether a dual-stack network's IPv6 side fits its
// IPv4 one: Addr is IPv4, Addr6 a real IPv6 address inside Subnet6.
func validAddr6(cfg *Config) bool {
	return cfg.Addr.Is4() && cfg.Addr6.Is6() && !cfg.Addr6.Is4In6() && cfg.Subnet6.Contains(cfg.Addr6)
}

// newGateway builds the gateway's parts that need no rollback but the
// netstack's Close: its netstack, its port (not yet attached) and its
// router.
func newGateway(sw *vswitch.Switch, cfg Config) *Gateway {
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Logger.Named("gateway").With(zap.String("network", cfg.Network)),
		clock:     cfg.Clock,
		sw:        sw,
		neighbors: newNeighbors(),
	}
	if g.clock == nil {
		g.clock = tcpip.NewStdClock()
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if len(cfg.Routes) > 0 || cfg.NextHop.IsValid() {
		g.router = newRouter(g)
	}
	g.stack = stackport.NewStackWith(cfg.Clock, cfg.Rand)
	tw := tcpip.TCPTimeWaitTimeoutOption(TimeWait)
	g.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &tw)
	g.port = stackport.New(stackport.Config{Name: "gateway", Kind: "gateway", MAC: cfg.MAC, MTU: cfg.MTU, Offload: true, Intercept: g.intercept})
	return g
}

// prepare sets, before the port is attached, the router advertiser and
// the DHCPv6 and DHCP servers: once the port is attached, the switch's
// goroutine runs intercept, which reads them; they never change after.
// (g.nat and g.echo, which intercept also reads for frames to the
// gateway's MAC, are set by start, after the attach; intercept drops
// such frames until start has finished and set g.up.)
func (g *Gateway) prepare() error {
	if g.cfg.RA != nil {
		if err := g.prepareRA(g.cfg.RA); err != nil {
			return err
		}
	}
	if g.cfg.DHCP6 != nil {
		if err := g.prepareDHCP6(g.cfg.DHCP6); err != nil {
			return err
		}
	}
	if g.cfg.DHCP != nil {
		if err := g.prepareDHCP(g.cfg.DHCP); err != nil {
			return err
		}
	}
	return nil
}

// start brings the attached gateway up: its NIC, egress and ping proxy,
// hairpin NAT, router advertisements and the DHCP janitors. On error the
// caller closes the gateway.
func (g *Gateway) start() error {
	if err := g.configureNIC(); err != nil {
		return err
	}
	if !g.cfg.Internal {
		g.egress = newEgress(g.ctx, g, g.cfg.Egress)
		if !g.cfg.Egress.NoPing {
			g.echo = newEchoProxy(g)
		}
	}
	if g.cfg.NAT != nil {
		if err := g.startNAT(g.cfg.NAT); err != nil {
			return err
		}
	}
	if g.cfg.RA != nil {
		if err := g.startRA(); err != nil {
			return err
		}
	}
	if g.dhcp6 != nil {
		g.startDHCP6()
	}
	if g.dhcp != nil {
		g.startDHCP()
	}
	g.up.Store(true)
	return nil
}

// announce makes the gateway the switch's router (the source of its ICMP
// errors), starts the route janitor and logs that the gateway is up.
func (g *Gateway) announce() {
	cfg := g.cfg
	router6 := v6(cfg.Addr)
	if cfg.Addr6.IsValid() {
		router6 = cfg.Addr6
	}
	g.sw.SetRouter(&vswitch.Router{MAC: cfg.MAC, IPv4: v4(cfg.Addr), IPv6: router6})
	if g.router != nil {
		g.wg.Add(1)
		go g.router.janitor()
	}
	mode := "none"
	if g.echo != nil {
		mode = g.echo.mode
	}
	g.log.Info("gateway up", zap.Stringer("addr", cfg.Addr), zap.Stringer("subnet", cfg.Subnet), zap.Stringer("addr6", cfg.Addr6),
		zap.Stringer("mac", cfg.MAC), zap.Int("mtu", cfg.MTU), zap.Bool("internal", cfg.Internal),
		zap.Stringer("host_loopback", cfg.HostLoopback), zap.String("ping_egress", mode))
}

func (g *Gateway) configureNIC() error {
	route, err := g.port.AddNIC(g.stack, NICID, netip.PrefixFrom(g.cfg.Addr, g.cfg.Subnet.Bits()))
	if err != nil {
		return err
	}
	// Promiscuous: accept packets to any address (egress, and replies to
	// connections opened from a client's address). Spoofing: send from
	// any address.
	if err := g.stack.SetPromiscuousMode(NICID, true); err != nil {
		return fmt.Errorf("promiscuous mode: %s", err)
	}
	if err := g.stack.SetSpoofing(NICID, true); err != nil {
		return fmt.Errorf("spoofing: %s", err)
	}
	routes := []tcpip.Route{route}
	if g.cfg.Addr6.IsValid() {
		awp := tcpip.AddressWithPrefix{Address: stackport.Addr(g.cfg.Addr6), PrefixLen: g.cfg.Subnet6.Bits()}
		pa := tcpip.ProtocolAddress{Protocol: stackport.Protocol(g.cfg.Addr6), AddressWithPrefix: awp}
		if err := g.stack.AddProtocolAddress(NICID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("add address %s: %s", g.cfg.Addr6, err)
		}
		routes = append(routes, tcpip.Route{Destination: awp.Subnet(), NIC: NICID})
	}
	g.routesMu.Lock()
	defer g.routesMu.Unlock()
	g.nicRoutes = routes
	g.setRouteTable()
	return nil
}

// setRouteTable sets the netstack's routes: the subnets on-link, the
// routed subnets via the next hop, everything else on-link too (the NIC
// is promiscuous and spoofing: egress). routesMu is held.
func (g *Gateway) setRouteTable() {
	routes := append([]tcpip.Route(nil), g.nicRoutes...)
	if g.router != nil {
		routes = append(routes, g.router.netstackRoutes()...)
	}
	g.stack.SetRouteTable(append(routes,
		tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: NICID},
		tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: NICID},
	))
}

// inSubnet reports whether a is an address of the network, of either
// family.
func (g *Gateway) inSubnet(a netip.Addr) bool {
	return g.cfg.Subnet.Contains(a) || g.cfg.Subnet6.Contains(a)
}

// own reports whether a is one of the gateway's addresses.
func (g *Gateway) own(a netip.Addr) bool {
	return a == g.cfg.Addr || (g.cfg.Addr6.IsValid() && a == g.cfg.Addr6) || (g.linkLocal.IsValid() && a == g.linkLocal)
}

// addrFor returns the gateway's address of a's family, or its first
// address if it has none of that family.
func (g *Gateway) addrFor(a netip.Addr) netip.Addr {
	if a.Is6() && g.cfg.Addr6.IsValid() {
		return g.cfg.Addr6
	}
	return g.cfg.Addr
}

func v4(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	return netip.Addr{}
}

func v6(a netip.Addr) netip.Addr {
	if a.Is6() {
		return a
	}
	return netip.Addr{}
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func addrFrom(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

// intercept runs on the switch's goroutine for every frame written to the
// gateway port. It reports whether it consumed the frame; a frame it
// leaves goes on to the netstack.
func (g *Gateway) intercept(f vswitch.Frame) bool {
	if len(f.Data) < vswitch.EthHeaderLen {
		return false
	}
	if g.interceptLinkScope(f) {
		return true
	}
	if f.Dst() != g.cfg.MAC {
		return false
	}
	if !g.up.Load() { // New is still starting the gateway
		g.notUp.Add(1)
		return true
	}
	ip, is6, ok := g.learnSender(f)
	if !ok {
		return false
	}
	return g.interceptToGateway(f, ip, is6)
}

// interceptLinkScope takes the frames the gateway answers whatever their
// destination MAC: neighbor queries for other addresses (dropped), router
// solicitations, and DHCP and DHCPv6 requests.
func (g *Gateway) interceptLinkScope(f vswitch.Frame) bool {
	if g.foreignNeighborQuery(f.Data) {
		return true
	}
	// Router Solicitations go to the all-routers group.
	if g.ra != nil && isRouterSolicit(f.Data) {
		g.ra.solicited(g.clock.Now())
		return true
	}
	// DHCP clients have no address yet and send to the broadcast MAC;
	// DHCPv6 clients to the servers' group, from link-local addresses.
	if g.dhcp != nil && g.dhcp.HandleFrame(f) {
		return true
	}
	return g.dhcp6 != nil && g.dhcp6.HandleFrame(f)
}

// learnSender learns the source address of an IPv4 or IPv6 packet sent to
// the gateway's MAC as the sender's, and returns the packet and its
// family; ok is false for anything else.
func (g *Gateway) learnSender(f vswitch.Frame) (ip []byte, is6, ok bool) {
	b := f.Data
	ip = b[vswitch.EthHeaderLen:]
	switch {
	case b[12] == 0x08 && b[13] == 0x00 && len(ip) >= header.IPv4MinimumSize && ip[0]>>4 == 4:
		g.learn(netip.AddrFrom4([4]byte(ip[12:16])), f.Src())
		return ip, false, true
	case b[12] == 0x86 && b[13] == 0xdd && len(ip) >= header.IPv6MinimumSize && ip[0]>>4 == 6:
		g.learn(netip.AddrFrom16([16]byte(ip[8:24])), f.Src())
		return ip, true, true
	}
	return nil, false, false
}

// interceptToGateway takes the IP packets sent to the gateway's MAC that
// do not end in its netstack: routed subnets, hairpin NAT, and pings to
// the outside.
func (g *Gateway) interceptToGateway(f vswitch.Frame, ip []byte, is6 bool) bool {
	if g.router != nil && g.router.intercept(f, ip, is6) {
		return true
	}
	if g.nat != nil && g.nat.intercept(f) {
		return true
	}
	return g.interceptEcho(f, ip, is6)
}

// foreignNeighborQuery reports whether frame b is an ARP request or an IPv6
// neighbor solicitation for an address other than the gateway's. Spoofing
// makes the netstack consider every address its own, and it would answer
// those for every address of the network, claiming the other endpoints'
// addresses; they are dropped before it sees them.
func (g *Gateway) foreignNeighborQuery(b []byte) bool {
	switch {
	case b[12] == 0x08 && b[13] == 0x06: // ARP
		arp := header.ARP(b[vswitch.EthHeaderLen:])
		if !arp.IsValid() || arp.Op() != header.ARPRequest {
			return false
		}
		target, ok := netip.AddrFromSlice(arp.ProtocolAddressTarget())
		return !ok || !g.own(target)
	case b[12] == 0x86 && b[13] == 0xdd: // neighbor solicitation
		ip := header.IPv6(b[vswitch.EthHeaderLen:])
		if len(ip) < header.IPv6MinimumSize+header.ICMPv6NeighborSolicitMinimumSize || ip.NextHeader() != 58 {
			return false
		}
		icmp := header.ICMPv6(ip[header.IPv6MinimumSize:])
		if icmp.Type() != header.ICMPv6NeighborSolicit {
			return false
		}
		target := netip.AddrFrom16([16]byte(icmp[8:24]))
		return !g.own(target)
	}
	return false
}

// egressTarget maps a destination a container asked for to the host
// address to reach it at, and reports false if the flow must not leave:
// the gateway itself, the network's own subnet, the host's loopback (unless
// through HostLoopback), broadcast and multicast, and what Config.Refuse
// refuses.
func (g *Gateway) egressTarget(dst netip.AddrPort) (netip.AddrPort, bool) {
	target, ok := g.mapEgress(dst)
	if ok && g.cfg.Refuse != nil && g.cfg.Refuse(target) {
		return dst, false
	}
	return target, ok
}

// mapEgress is egressTarget without Config.Refuse.
func (g *Gateway) mapEgress(dst netip.AddrPort) (netip.AddrPort, bool) {
	a := dst.Addr()
	switch {
	case g.cfg.Internal:
		return dst, false
	case g.cfg.HostLoopback.IsValid() && a == g.cfg.HostLoopback:
		if a.Is4() {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), dst.Port()), true
		}
		return netip.AddrPortFrom(netip.IPv6Loopback(), dst.Port()), true
	case g.own(a), g.inSubnet(a), a.IsLoopback(), a.IsMulticast(), a.IsUnspecified(),
		a.IsLinkLocalUnicast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return dst, false
	}
	return dst, true
}

// Stack returns the gateway's netstack, for the services that run on it.
func (g *Gateway) Stack() *stack.Stack { return g.stack }

// Addr returns the gateway address.
func (g *Gateway) Addr() netip.Addr { return g.cfg.Addr }

// MAC returns the gateway's Ethernet address.
func (g *Gateway) MAC() vswitch.MAC { return g.cfg.MAC }

// Link returns the gateway's port on the switch, for its counters.
func (g *Gateway) Link() *vswitch.Link { return g.link }

// NetworkProtocol is the netstack protocol number of the gateway address.
func (g *Gateway) NetworkProtocol() tcpip.NetworkProtocolNumber {
	return stackport.Protocol(g.cfg.Addr)
}

// Stats describes the gateway's egress.
func (g *Gateway) Stats() EgressStats {
	var s EgressStats
	if g.egress != nil {
		s = g.egress.stats()
	}
	s.ICMPDropped = g.icmp.pingsDropped.Load()
	if g.echo != nil {
		s.ICMPEchoes, s.ICMPReplies = g.echo.requests.Load(), g.echo.replies.Load()
		s.ICMPDropped += g.echo.dropped.Load()
		s.ICMPErrors = g.echo.errs.Load()
	}
	s.Unreachables, s.UnreachablesLimited = g.icmp.sent.Load(), g.icmp.limited.Load()
	return s
}

// Close detaches the gateway from the switch and shuts its netstack down,
// ending every egress flow. When it returns, no goroutine of the gateway's
// is left: every egress relay has ended.
func (g *Gateway) Close() {
	g.cancel()
	if g.egress != nil {
		g.egress.shut()
	}
	g.wg.Wait()
	g.dhcpSweeper.stop()
	g.dhcp6Sweeper.stop()
	if g.nat != nil {
		g.nat.wait()
	}
	if g.echo != nil {
		g.echo.close()
	}
	g.sw.SetRouter(nil)
	if g.link != nil {
		g.sw.Detach(g.link)
	}
	g.stack.Close() // aborts the netstack's endpoints: relays blocked on them end
	if g.egress != nil {
		g.egress.wait()
	}
	g.stack.Wait()
}
