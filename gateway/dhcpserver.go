package gateway

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
)

// DHCPConfig turns on the gateway's DHCPv4 server (IPv4 networks only).
// The router, server identifier, subnet mask and MTU come from the
// gateway's own Config.
type DHCPConfig struct {
	// Allocator hands out the network's addresses (the daemon's IPAM).
	Allocator dhcp.Allocator
	// DNS servers given to clients; typically the gateway itself when it
	// serves names.
	DNS []netip.Addr
	// DomainName given to clients; empty leaves the option out.
	DomainName string
	// LeaseTime; 0 means dhcp.DefaultLeaseTime.
	LeaseTime time.Duration
}

// dhcpSweepEvery is how often expired leases and offers are returned to
// the allocator.
const dhcpSweepEvery = 10 * time.Second

// prepareDHCP creates the DHCP server. It sees frames in intercept, before
// the netstack, and answers by putting frames on the switch as the
// gateway. New calls it before the gateway's port is attached to the
// switch, so that intercept, which reads g.dhcp, never sees it change.
func (g *Gateway) prepareDHCP(c *DHCPConfig) error {
	if !g.cfg.Addr.Is4() {
		return fmt.Errorf("dhcp: network %s is not IPv4", g.cfg.Subnet)
	}
	s, err := dhcp.New(dhcp.Config{
		Subnet: g.cfg.Subnet, Router: g.cfg.Addr, ServerMAC: g.cfg.MAC, MTU: g.cfg.MTU,
		DNS: c.DNS, DomainName: c.DomainName, LeaseTime: c.LeaseTime,
		Allocator: c.Allocator, Send: g.port.Send, Logger: g.log, Now: g.clock.Now,
	})
	if err != nil {
		return err
	}
	g.dhcp = s
	return nil
}

// startDHCP starts the sweep that returns expired leases and offers.
func (g *Gateway) startDHCP() {
	s := g.dhcp
	g.dhcpSweeper = g.every(dhcpSweepEvery, func() { s.Sweep(g.clock.Now()) })
}

// DHCP returns the gateway's DHCP server, nil if it has none.
func (g *Gateway) DHCP() *dhcp.Server { return g.dhcp }
