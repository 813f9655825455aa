package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// addrOwner6 returns who holds addr in network's IPv6 pool ("" if free).
func (e *testEnv) addrOwner6(network string, addr netip.Addr) string {
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	n := e.d.networks[network]
	n.addrs6.mu.Lock()
	defer n.addrs6.mu.Unlock()
	owner, _ := n.addrs6.pool.Owner(addr)
	return owner
}

// An endpoint of a dual-stack network gets an address of each family
// (the lowest free, or --ip6), both on its device with both default
// routes, both in its port-security binding and in DNS (A and AAAA); a
// disconnect frees both and a restart keeps both.
func TestDualStackEndpoint(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnets: []string{"10.7.0.0/24", "fd00:7::/64"}})
	e.att.AddNetNS("/run/netns/a")
	e.att.AddNetNS("/run/netns/b")
	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", Aliases: []string{"db"}})
	if ep.Address.String() != "10.7.0.2/24" || ep.Address6.String() != "fd00:7::2/64" || ep.Gateway.String() != "10.7.0.1" || ep.Gateway6.String() != "fd00:7::1" {
		t.Fatalf("endpoint %s %s via %s %s, want 10.7.0.2/24 fd00:7::2/64 via 10.7.0.1 fd00:7::1", ep.Address, ep.Address6, ep.Gateway, ep.Gateway6)
	}
	b := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/b", IP6: "fd00:7::beef"})
	if b.Address.String() != "10.7.0.3/24" || b.Address6.String() != "fd00:7::beef/64" {
		t.Fatalf("endpoint b %s %s, want 10.7.0.3/24 and the asked fd00:7::beef/64", b.Address, b.Address6)
	}
	for _, dev := range e.att.Devices() {
		if dev.NetNS != "/run/netns/a" {
			continue
		}
		c := dev.Config
		if !slices.Equal(c.Addrs, []netip.Prefix{ep.Address, ep.Address6}) || c.Gateway != ep.Gateway || c.Gateway6 != ep.Gateway6 {
			t.Errorf("device config addrs %v gateways %s %s, want both families", c.Addrs, c.Gateway, c.Gateway6)
		}
	}
	if got := e.addrOwner6("web", ep.Address6.Addr()); got != "a" {
		t.Errorf("IPv6 address owner %q, want a", got)
	}
	e.d.mu.Lock()
	n := e.d.networks["web"]
	bind := n.endpoints["a"].link.Binding()
	e.d.mu.Unlock()
	// Both addresses, and the one the kernel forms by SLAAC from the
	// gateway's advertisements (EUI-64 of the MAC 02:42:0a:07:00:02).
	slaac := netip.MustParseAddr("fd00:7::42:aff:fe07:2")
	if bind == nil || !slices.Equal(bind.Addrs, []netip.Addr{ep.Address.Addr(), ep.Address6.Addr(), slaac}) {
		t.Errorf("port-security binding %+v, want both addresses and %s", bind, slaac)
	}
	checkDNS(t, n, "db", dns.TypeAAAA, ep.Address6.Addr())
	checkDNS(t, n, "a", dns.TypeA, ep.Address.Addr())
	rev, err := dns.ReverseAddr(ep.Address6.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r := askDNS(t, n, rev, dns.TypePTR); len(r.Answer) == 0 || !strings.Contains(r.Answer[0].String(), "\ta.") {
		t.Errorf("PTR %s answered %v, want a", rev, r.Answer)
	}

	// The taken --ip6 is a conflict; a connect that fails holds nothing.
	e.att.AddNetNS("/run/netns/c")
	_, err = e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/c", IP6: "fd00:7::beef"})
	if !errors.Is(err, api.ErrConflict) {
		t.Fatalf("taken ip6: %v, want a conflict", err)
	}
	if got := e.addrOwner("web", netip.MustParseAddr("10.7.0.4")); got != "" {
		t.Fatalf("a refused connect holds 10.7.0.4 (%q)", got)
	}

	if err := e.d.Disconnect(context.Background(), "web", "b"); err != nil {
		t.Fatal(err)
	}
	if got := e.addrOwner6("web", b.Address6.Addr()); got != "" {
		t.Errorf("IPv6 address still held by %q after disconnect", got)
	}

	e.d.Close()
	e.start()
	eps, err := e.d.Endpoints("web")
	if err != nil || len(eps) != 1 || eps[0].Address6 != ep.Address6 || eps[0].Gateway6 != ep.Gateway6 {
		t.Fatalf("after restart %+v %v, want a with %s", eps, err, ep.Address6)
	}
	if got := e.addrOwner6("web", ep.Address6.Addr()); got != "a" {
		t.Errorf("after restart the IPv6 address is held by %q, want a", got)
	}
	// The next endpoint does not get a's IPv6 address.
	if c := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/c"}); c.Address6.String() != "fd00:7::3/64" {
		t.Errorf("after restart the next endpoint got %s, want fd00:7::3/64", c.Address6)
	}
}

// --ip6 is checked: one error naming it.
func TestDualStackEndpointIP6Errors(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "v4", Subnet: "10.8.0.0/24"})
	e.createNetwork(api.NetworkCreate{Name: "dual", Subnets: []string{"10.9.0.0/24", "fd00:9::/64"}})
	e.att.AddNetNS("/run/netns/a")
	for _, c := range []struct{ network, ip6 string }{
		{"v4", "fd00:8::2"},         // no IPv6 on the network
		{"dual", "10.9.0.5"},        // not IPv6
		{"dual", "fd00:10::2"},      // outside
		{"dual", "not an address"},  // not an address
		{"dual", "::ffff:10.9.0.5"}, // mapped
	} {
		_, err := e.d.Connect(context.Background(), c.network, api.EndpointCreate{NetNS: "/run/netns/a", IP6: c.ip6})
		var ve *api.ValidationError
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s --ip6 %s: %v, want invalid", c.network, c.ip6, err)
			continue
		}
		if errors.As(err, &ve) && (len(ve.Fields) != 1 || ve.Fields[0].Field != "ip6" || ve.Fields[0].Value != c.ip6) {
			t.Errorf("%s --ip6 %s: fields %+v, want ip6 only", c.network, c.ip6, ve.Fields)
		}
		if devs := e.att.Devices(); len(devs) != 0 {
			t.Fatalf("a refused connect left devices %+v", devs)
		}
	}
}

// checkDNS asks the network's DNS server, from a host on its switch, for
// name's records of type typ and wants addr.
func checkDNS(t *testing.T, n *network, name string, typ uint16, want netip.Addr) {
	t.Helper()
	r := askDNS(t, n, name, typ)
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, _ := netip.AddrFromSlice(rr.A.To4()); a == want {
				return
			}
		case *dns.AAAA:
			if a, _ := netip.AddrFromSlice(rr.AAAA); a == want {
				return
			}
		}
	}
	t.Errorf("DNS %s %s answered %v, want %s", name, dns.TypeToString[typ], r.Answer, want)
}

// askDNS asks the network's DNS server, from a host on its switch, for
// name's records of type typ.
func askDNS(t *testing.T, n *network, name string, typ uint16) *dns.Msg {
	t.Helper()
	h, err := vnettest.NewHost(n.sw, vnettest.HostConfig{Name: "dnsclient", Addr: netip.MustParsePrefix("10.7.0.200/24")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := h.DialUDP(netip.AddrPortFrom(n.rec.Gateway, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := &dns.Conn{Conn: c}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), typ)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	r, err := conn.ReadMsg()
	if err != nil {
		t.Fatalf("DNS %s %s: %v", name, dns.TypeToString[typ], err)
	}
	return r
}

// A --dhcp endpoint of a dual-stack network leaves both families to the
// namespace's clients: its device gets no address and no default route of
// either (IPv6 comes by SLAAC from the gateway's advertisements, or by
// DHCPv6), yet IPAM holds its IPv6 address for DHCPv6 and port security
// lets it send from that address and from the SLAAC one of its MAC.
func TestDualStackDHCPEndpointLeavesIPv6ToClients(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnets: []string{"10.7.0.0/24", "fd00:7::/64"}})
	e.att.AddNetNS("/run/netns/a")
	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", DHCP: true, MAC: "02:42:0a:07:00:09"})
	if ep.Address6.String() != "fd00:7::2/64" {
		t.Fatalf("endpoint's IPv6 address %s, want fd00:7::2/64 from IPAM", ep.Address6)
	}
	found := false
	for _, dev := range e.att.Devices() {
		if dev.NetNS != "/run/netns/a" {
			continue
		}
		found = true
		if c := dev.Config; len(c.Addrs) != 0 || c.Gateway.IsValid() || c.Gateway6.IsValid() || !c.Configure {
			t.Errorf("device config addrs %v gateways %s %s configure %v, want no address and no route, MAC and MTU only", c.Addrs, c.Gateway, c.Gateway6, c.Configure)
		}
	}
	if !found {
		t.Fatal("no device in /run/netns/a")
	}
	if got := e.addrOwner6("web", ep.Address6.Addr()); got != ep.Name {
		t.Errorf("IPv6 address owner %q, want %s", got, ep.Name)
	}
	e.d.mu.Lock()
	bind := e.d.networks["web"].endpoints[ep.Name].link.Binding()
	e.d.mu.Unlock()
	slaac := netip.MustParseAddr("fd00:7::42:aff:fe07:9")
	if bind == nil || !slices.Contains(bind.Addrs, ep.Address6.Addr()) || !slices.Contains(bind.Addrs, slaac) {
		t.Errorf("port-security binding %+v, want %s and the SLAAC %s", bind, ep.Address6.Addr(), slaac)
	}
}

// A network created with SLAAC false (the Docker plugin's) has its
// gateway advertise the /64 without the autonomous flag, says so in its
// view, and lets an endpoint send only from the addresses it was given:
// no SLAAC address in the port-security binding. A restart keeps it.
func TestNetworkWithoutSLAAC(t *testing.T) {
	e := newEnv(t)
	v := e.createNetwork(api.NetworkCreate{Name: "web", Subnets: []string{"10.7.0.0/24", "fd00:7::/64"}, SLAAC: boolp(false)})
	if v.SLAAC {
		t.Errorf("view: SLAAC true, want false")
	}
	if on := e.createNetwork(api.NetworkCreate{Name: "other", Subnets: []string{"10.8.0.0/24", "fd00:8::/64"}}); !on.SLAAC {
		t.Errorf("a network created without slaac: view SLAAC false, want true (the default)")
	}
	e.att.AddNetNS("/run/netns/a")
	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a"})
	check := func(when string) {
		t.Helper()
		e.d.mu.Lock()
		n := e.d.networks["web"]
		bind := n.endpoints["a"].link.Binding()
		ra, _ := e.d.ipv6Config(n.rec, ep.Gateway6, netPools{})
		e.d.mu.Unlock()
		if bind == nil || !slices.Equal(bind.Addrs, []netip.Addr{ep.Address.Addr(), ep.Address6.Addr()}) {
			t.Errorf("%s: port-security binding %+v, want %s and %s only", when, bind, ep.Address.Addr(), ep.Address6.Addr())
		}
		if ra == nil || !ra.NoSLAAC {
			t.Errorf("%s: the gateway's advertisement config %+v, want NoSLAAC", when, ra)
		}
	}
	check("created")
	e.d.Close()
	e.start()
	check("after a restart")
	if v, err := e.d.Network("web"); err != nil || v.SLAAC {
		t.Errorf("after a restart: view SLAAC %v (%v), want false", v.SLAAC, err)
	}
}
