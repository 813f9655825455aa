// Package gateway is the router of a Switchyard network: a gVisor netstack
// attached to the network's switch as one more port, owning the gateway
// address (Docker's docker0 address, 172.17.0.1 on the default network).
//
//	endpoints ──► vswitch ──► stackport ──► netstack NIC (gateway MAC, gateway IP)
//	                                            ├─ ARP, ICMP echo        (this package)
//	                                            ├─ egress flows          (Services: host sockets)
//	                                            ├─ published ports       (Services: the proxy dials through Stack)
//	                                            └─ DNS, DHCP             (Services)
//
// The gateway answers ARP and ICMP echo for its address by itself. Every
// other job is a service that runs on the gateway's netstack: it gets the
// *stack.Stack from Stack and registers handlers there (transport protocol
// handlers for egress, UDP endpoints for DNS and DHCP). The gateway knows
// nothing about them; it only owns the NIC and its addresses.
package gateway

import (
	"fmt"
	"net/netip"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
)

// NICID is the gateway's one NIC on its netstack.
const NICID tcpip.NICID = 1

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
	// MTU of the network. 0 means 1500.
	MTU int
	// Logger; nil means no logging.
	Logger *zap.Logger
}

// Gateway is a network's router. Create it with New; Close removes it.
type Gateway struct {
	cfg   Config
	log   *zap.Logger
	stack *stack.Stack
	port  *stackport.Port
	link  *vswitch.Link
	sw    *vswitch.Switch
}

// New creates the gateway's netstack and attaches it to sw.
func New(sw *vswitch.Switch, cfg Config) (*Gateway, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Contains(cfg.Addr) {
		return nil, fmt.Errorf("gateway for %s: address %s is not inside subnet %s", cfg.Network, cfg.Addr, cfg.Subnet)
	}
	if cfg.MTU <= 0 {
		cfg.MTU = vswitch.DefaultMTU
	}
	g := &Gateway{
		cfg: cfg,
		log: cfg.Logger.Named("gateway").With(zap.String("network", cfg.Network)),
		sw:  sw,
	}
	g.stack = stackport.NewStack()
	g.port = stackport.New(stackport.Config{Name: "gateway", Kind: "gateway", MAC: cfg.MAC, MTU: cfg.MTU})

	link, err := sw.Attach(g.port, vswitch.AttachOptions{})
	if err != nil {
		g.stack.Close()
		return nil, fmt.Errorf("gateway for %s: %w", cfg.Network, err)
	}
	g.link = link
	if err := g.configureNIC(); err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway for %s: %w", cfg.Network, err)
	}
	g.log.Info("gateway up", zap.Stringer("addr", cfg.Addr), zap.Stringer("subnet", cfg.Subnet),
		zap.Stringer("mac", cfg.MAC), zap.Int("mtu", cfg.MTU))
	return g, nil
}

func (g *Gateway) configureNIC() error {
	route, err := g.port.AddNIC(g.stack, NICID, netip.PrefixFrom(g.cfg.Addr, g.cfg.Subnet.Bits()))
	if err != nil {
		return err
	}
	g.stack.SetRouteTable([]tcpip.Route{route})
	return nil
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

// Close detaches the gateway from the switch and shuts its netstack down.
func (g *Gateway) Close() {
	if g.link != nil {
		g.sw.Detach(g.link)
	}
	g.stack.Close()
	g.stack.Wait()
}
