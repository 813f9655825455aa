package dhcp_test

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/switchyard-net/switchyard/gateway/dhcp"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

func TestNewRejectsBadConfig(t *testing.T) {
	alloc := newFakeAlloc("10.99.0.2", "10.99.0.9")
	send := func([]byte) bool { return true }
	ok := func() dhcp.Config {
		c := baseConfig()
		c.Allocator, c.Send = alloc, send
		return c
	}
	if _, err := dhcp.New(ok()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := map[string]func(*dhcp.Config){
		"IPv6 subnet": func(c *dhcp.Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") },
		"/31": func(c *dhcp.Config) {
			c.Subnet = netip.MustParsePrefix("10.99.0.0/31")
			c.Router = netip.MustParseAddr("10.99.0.1")
		},
		"router outside":       func(c *dhcp.Config) { c.Router = netip.MustParseAddr("10.98.0.1") },
		"router is broadcast":  func(c *dhcp.Config) { c.Router = netip.MustParseAddr("10.99.0.255") },
		"router is network":    func(c *dhcp.Config) { c.Router = netip.MustParseAddr("10.99.0.0") },
		"zero MAC":             func(c *dhcp.Config) { c.ServerMAC = vswitch.MAC{} },
		"IPv6 DNS":             func(c *dhcp.Config) { c.DNS = []netip.Addr{netip.MustParseAddr("fd00::53")} },
		"too many DNS":         func(c *dhcp.Config) { c.DNS = make([]netip.Addr, dhcp.MaxDNS+1) },
		"domain with a space":  func(c *dhcp.Config) { c.DomainName = "a b" },
		"MTU too small":        func(c *dhcp.Config) { c.MTU = 500 },
		"negative lease":       func(c *dhcp.Config) { c.LeaseTime = -time.Second },
		"no allocator":         func(c *dhcp.Config) { c.Allocator = nil },
		"no send":              func(c *dhcp.Config) { c.Send = nil },
		"lease beyond 32 bits": func(c *dhcp.Config) { c.LeaseTime = 200 * 365 * 24 * time.Hour },
	}
	for name, mod := range cases {
		c := ok()
		mod(&c)
		if _, err := dhcp.New(c); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "dhcp: ") {
			t.Errorf("%s: error %q does not say where it comes from", name, err)
		}
	}
}

func TestDefaultsLeaseAndMTU(t *testing.T) {
	h := newHarness(t, func(c *dhcp.Config) { c.MTU, c.LeaseTime, c.DNS, c.DomainName = 0, 0, nil, "" })
	r := h.one(broadcastFrame(newMsg(dhcpv4.MessageTypeDiscover, macA), macA))
	checkLeaseOptions(t, r.msg, dhcp.DefaultLeaseTime)
	if mtu := r.msg.Options.Get(dhcpv4.OptionInterfaceMTU); len(mtu) != 2 || binary.BigEndian.Uint16(mtu) != 1500 {
		t.Errorf("MTU option % x, want 1500", mtu)
	}
	if r.msg.Options.Has(dhcpv4.OptionDomainNameServer) || r.msg.Options.Has(dhcpv4.OptionDomainName) {
		t.Errorf("DNS options without DNS configured: %s", r.msg.Options)
	}
}
