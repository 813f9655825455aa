package gateway

import (
	"errors"
	"net/netip"
	"time"

	"github.com/switchyard-net/switchyard/gateway/dhcp6"
)

// DHCP6Config turns on the gateway's stateful DHCPv6 server, which hands
// each client the IPv6 address reserved for its MAC (package dhcp6). It
// needs Router Advertisements (Config.RA): their M and O flags tell hosts
// to ask it, and its replies come from the gateway's link-local address.
type DHCP6Config struct {
	// Reservations are the network's static leases (the daemon's IPAM).
	Reservations dhcp6.Reservations
	// DNS servers given to clients; typically the gateway's IPv6
	// address when it serves names.
	DNS []netip.Addr
	// DomainName given to clients as their search list; empty leaves
	// the option out.
	DomainName string
	// LeaseTime; 0 means dhcp6.DefaultLeaseTime.
	LeaseTime time.Duration
}

// errDHCP6NeedsRA is New's answer to a DHCP6Config without an RAConfig.
var errDHCP6NeedsRA = errors.New("dhcpv6 needs router advertisements: their M flag sends hosts to it, and it answers from the link-local address they bring")

// prepareDHCP6 creates the DHCPv6 server. It runs in New after prepareRA
// chose the link-local address and before the gateway is attached to its
// switch, so that intercept, which reads g.dhcp6, never sees it change.
// The server sees frames in intercept, before the netstack, and answers by
// putting frames on the switch as the gateway.
func (g *Gateway) prepareDHCP6(c *DHCP6Config) error {
	s, err := dhcp6.New(dhcp6.Config{
		Subnet: g.subnet6(), ServerMAC: g.cfg.MAC, LinkLocal: g.linkLocal, MTU: g.cfg.MTU,
		DNS: c.DNS, DomainName: c.DomainName, LeaseTime: c.LeaseTime,
		Reservations: c.Reservations, Send: g.port.Send, Logger: g.log, Now: g.clock.Now,
	})
	if err != nil {
		return err
	}
	g.dhcp6 = s
	return nil
}

// startDHCP6 starts the sweep that forgets expired leases, on the
// gateway's clock as the DHCP server's.
func (g *Gateway) startDHCP6() {
	s := g.dhcp6
	g.dhcp6Sweeper = g.every(dhcpSweepEvery, func() { s.Sweep(g.clock.Now()) })
}

// DHCP6 returns the gateway's DHCPv6 server, nil if it has none.
func (g *Gateway) DHCP6() *dhcp6.Server { return g.dhcp6 }
