package vnettest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-net/switchyard/gateway"
	gwdns "github.com/switchyard-net/switchyard/gateway/dns"
	"github.com/switchyard-net/switchyard/internal/relay"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// GatewayConfig describes a network's gateway.
type GatewayConfig struct {
	// Uplink is the network the gateway's egress leaves on, standing for
	// "the internet": TCP and UDP flows from the network's hosts to
	// addresses outside it are re-originated by the gateway from a host of
	// its own on Uplink (masquerade, as Switchyard re-originates them on
	// the machine's sockets), so the far side sees the uplink address.
	// Nil makes an internal network: such flows are refused.
	Uplink *Network
	// UplinkAddr is the gateway's address on Uplink; "" takes the lowest
	// free one.
	UplinkAddr string
	// DHCP runs the gateway's DHCPv4 server for clients that configure
	// themselves (frames injected with Host.Inject, or a port of your
	// own): it leases the network's free addresses, names the gateway as
	// router and DNS server and the network as domain, and the lease's
	// host name (or dhcp-MAC) resolves in the gateway's DNS.
	DHCP bool
}

// Gateway is Switchyard's real gateway (package gateway) on a network of
// a World, at the network's first address: it answers ARP and pings, serves
// DNS with the names of the network's hosts, forwards egress onto its
// uplink, and publishes ports of the network's hosts on its uplink
// address. Pings to addresses outside the network go unanswered: the real
// gateway sends them from the machine's ICMP sockets, which a World never
// uses.
type Gateway struct {
	n      *Network
	gw     *gateway.Gateway
	dns    *gwdns.Server
	uplink *Host // nil for an internal network

	mu          sync.Mutex
	listeners   []net.Listener
	packetConns []net.PacketConn
	relays      sync.WaitGroup
}

// NewGateway puts a gateway on the network. A network has at most one.
func (n *Network) NewGateway(cfg GatewayConfig) *Gateway {
	n.w.t.Helper()
	g, err := n.newGateway(cfg)
	if err != nil {
		n.w.fail("%v", err)
	}
	return g
}

func (n *Network) newGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Uplink == n {
		return nil, fmt.Errorf("gateway of network %s: uplink is the network itself: want another network of the World", n.name)
	}
	if cfg.Uplink != nil && cfg.Uplink.w != n.w {
		return nil, fmt.Errorf("gateway of network %s: uplink %s belongs to another World", n.name, cfg.Uplink.name)
	}
	if err := n.claimGatewayAddr("the gateway"); err != nil {
		return nil, fmt.Errorf("gateway of %w", err)
	}
	g := &Gateway{n: n}
	egress := gateway.EgressConfig{NoPing: true, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		// Reached only if the gateway failed to refuse the flow itself.
		n.w.errorf("vnettest: the gateway of internal network %s dialed %s %s: it must refuse egress", n.name, network, addr)
		return nil, fmt.Errorf("vnettest: internal network: egress to %s refused", addr)
	}}
	if cfg.Uplink != nil {
		up, err := cfg.Uplink.newHost(n.name+"-gw", cfg.UplinkAddr)
		if err != nil {
			return nil, fmt.Errorf("gateway of network %s: uplink: %w", n.name, err)
		}
		g.uplink = up
		egress.Dial = up.DialContext
	}
	a := n.GatewayAddr()
	var dhcpCfg *gateway.DHCPConfig
	if cfg.DHCP {
		dhcpCfg = &gateway.DHCPConfig{Allocator: (*dhcpLeases)(n), DNS: []netip.Addr{a}, DomainName: n.name}
	}
	gcfg := gateway.Config{
		Network: n.name, Subnet: n.subnet, Addr: a, MAC: DockerMAC(a),
		Internal: cfg.Uplink == nil, Egress: egress, DHCP: dhcpCfg, Logger: n.w.log,
	}
	if r := n.w.rng("gateway " + n.name); r != nil { // VirtualTime
		gcfg.Clock, gcfg.Rand = n.w.tcpipClock(), r
	}
	gw, err := gateway.New(n.sw, gcfg)
	if err != nil {
		return nil, fmt.Errorf("gateway of network %s: %w", n.name, err)
	}
	g.gw = gw
	g.dns, err = gwdns.New(gwdns.Config{Stack: gw.Stack(), NIC: gateway.NICID, Addr: a, Domain: n.name, Logger: n.w.log,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, fmt.Errorf("vnettest: no upstream DNS for %s", addr)
		}})
	if err != nil {
		gw.Close()
		return nil, fmt.Errorf("gateway of network %s: DNS: %w", n.name, err)
	}
	n.mu.Lock()
	n.gw = g
	n.mu.Unlock()
	n.refreshNames()
	return g, nil
}

// Addr returns the gateway's address on its network.
func (g *Gateway) Addr() netip.Addr { return g.gw.Addr() }

// Uplink returns the gateway's host on its uplink network (whose Wire
// impairs the uplink), or nil for an internal network.
func (g *Gateway) Uplink() *Host { return g.uplink }

// Link returns the gateway's port on its network's switch, for counters.
func (g *Gateway) Link() *vswitch.Link { return g.gw.Link() }

// PublishTCP publishes port of host h (on the gateway's network) on port
// hostPort of the gateway's uplink address, like docker run -p: each
// connection accepted there is dialled into the network through the
// gateway (from the client's own address, as Switchyard does with
// KeepSource) and relayed by Switchyard's relay.
func (g *Gateway) PublishTCP(hostPort uint16, h *Host, port uint16) error {
	if g.uplink == nil {
		return fmt.Errorf("vnettest: publish %d → %s:%d: network %s is internal (no uplink)", hostPort, h.Name(), port, g.n.name)
	}
	if h.network != g.n {
		return fmt.Errorf("vnettest: publish %d → %s:%d: host %s is not on network %s", hostPort, h.Name(), port, h.Name(), g.n.name)
	}
	l, err := g.uplink.Listen("tcp", fmt.Sprintf(":%d", hostPort))
	if err != nil {
		return fmt.Errorf("vnettest: publish %d → %s:%d: %w", hostPort, h.Name(), port, err)
	}
	g.mu.Lock()
	g.listeners = append(g.listeners, l)
	g.mu.Unlock()
	dst := netip.AddrPortFrom(h.Addr(), port)
	d := g.gw.Dialer(true)
	g.relays.Add(1)
	go func() {
		defer g.relays.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			g.relays.Add(1)
			go func() {
				defer g.relays.Done()
				src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
				in, err := d.DialTCP(context.Background(), src, dst)
				if err != nil {
					c.Close()
					return
				}
				relay.Stream(c, in)
			}()
		}
	}()
	return nil
}

// udpFlowTimeout closes a published UDP port's flow idle this long
// (Docker's 90 s).
const udpFlowTimeout = 90 * time.Second

// PublishUDP publishes UDP port of host h on port hostPort of the
// gateway's uplink address: each client gets a flow of its own, dialled
// into the network through the gateway from the client's own address, and
// closed after 90 s without a datagram either way, as Switchyard does.
func (g *Gateway) PublishUDP(hostPort uint16, h *Host, port uint16) error {
	if g.uplink == nil {
		return fmt.Errorf("vnettest: publish %d/udp → %s:%d: network %s is internal (no uplink)", hostPort, h.Name(), port, g.n.name)
	}
	if h.network != g.n {
		return fmt.Errorf("vnettest: publish %d/udp → %s:%d: host %s is not on network %s", hostPort, h.Name(), port, h.Name(), g.n.name)
	}
	pc, err := g.uplink.ListenPacket("udp", fmt.Sprintf(":%d", hostPort))
	if err != nil {
		return fmt.Errorf("vnettest: publish %d/udp → %s:%d: %w", hostPort, h.Name(), port, err)
	}
	g.mu.Lock()
	g.packetConns = append(g.packetConns, pc)
	g.mu.Unlock()
	dst := netip.AddrPortFrom(h.Addr(), port)
	d := g.gw.Dialer(true)
	g.relays.Add(1)
	go func() {
		defer g.relays.Done()
		flows := map[netip.AddrPort]net.Conn{}
		var mu sync.Mutex
		defer func() {
			mu.Lock()
			for _, c := range flows {
				c.Close()
			}
			mu.Unlock()
		}()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			src, _ := netip.ParseAddrPort(from.String())
			mu.Lock()
			c := flows[src]
			if c == nil {
				c, err = d.DialUDP(context.Background(), src, dst)
				if err != nil {
					mu.Unlock()
					continue
				}
				c = g.n.w.onWorldClock(c)
				flows[src] = c
				g.relays.Add(1)
				go func() { // replies for this client, until the flow idles out
					defer g.relays.Done()
					rbuf := make([]byte, 65536)
					for {
						c.SetReadDeadline(g.n.w.Now().Add(udpFlowTimeout))
						n, err := c.Read(rbuf)
						if err != nil {
							mu.Lock()
							if flows[src] == c {
								delete(flows, src)
							}
							mu.Unlock()
							c.Close()
							return
						}
						pc.WriteTo(rbuf[:n], from)
					}
				}()
			}
			mu.Unlock()
			c.Write(buf[:n])
		}
	}()
	return nil
}

// close shuts the gateway down; its network's close calls it.
func (g *Gateway) close() {
	g.mu.Lock()
	ls, pcs := g.listeners, g.packetConns
	g.listeners, g.packetConns = nil, nil
	g.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, pc := range pcs {
		pc.Close()
	}
	g.dns.Close()
	g.gw.Close()
	g.relays.Wait()
}

// refreshNames gives the gateway's DNS server the network's host names.
func (n *Network) refreshNames() {
	n.mu.Lock()
	g := n.gw
	names := map[string][]netip.Addr{}
	for a, name := range n.used {
		if name != "(gateway)" {
			names[name] = append(names[name], a)
		}
	}
	n.mu.Unlock()
	if g != nil {
		g.dns.SetNames(names)
	}
}

// Resolver returns a resolver that asks the DNS server of the host's
// network gateway, as a container asks its gateway; names of the
// network's hosts resolve, with or without the network's name as domain.
// It is nil if the host's network has no gateway.
func (h *Host) Resolver() *net.Resolver {
	if h.network == nil {
		return nil
	}
	h.network.mu.Lock()
	g := h.network.gw
	h.network.mu.Unlock()
	if g == nil {
		return nil
	}
	server := netip.AddrPortFrom(g.Addr(), 53).String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return h.DialContext(ctx, network, server)
	}}
}

// dhcpLeases is a network as the DHCP server's allocator: leases take the
// network's free addresses, as hosts do.
type dhcpLeases Network

// Lease implements dhcp.Allocator.
func (l *dhcpLeases) Lease(mac vswitch.MAC, hostname string, requested netip.Addr) (netip.Addr, error) {
	n := (*Network)(l)
	n.mu.Lock()
	if a, ok := n.leases[mac]; ok {
		n.mu.Unlock()
		return a, nil
	}
	n.mu.Unlock()
	name := hostname
	if name == "" {
		name = "dhcp-" + strings.ReplaceAll(mac.String(), ":", "-")
	}
	var a netip.Addr
	var err error
	if requested.IsValid() {
		a, err = n.claim(name, requested.String())
	}
	if !requested.IsValid() || err != nil {
		a, err = n.claim(name, "")
	}
	if err != nil {
		return netip.Addr{}, err
	}
	n.mu.Lock()
	if n.leases == nil {
		n.leases = map[vswitch.MAC]netip.Addr{}
	}
	n.leases[mac] = a
	n.mu.Unlock()
	n.refreshNames()
	return a, nil
}

// Release implements dhcp.Allocator.
func (l *dhcpLeases) Release(mac vswitch.MAC, addr netip.Addr) {
	n := (*Network)(l)
	n.mu.Lock()
	if n.leases[mac] != addr {
		n.mu.Unlock()
		return
	}
	delete(n.leases, mac)
	n.mu.Unlock()
	n.release(addr)
	n.refreshNames()
}
