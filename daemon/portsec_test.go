package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

func TestParseAllowedAddresses(t *testing.T) {
	got, err := parseAllowedAddresses([]string{"10.1.0.0/24", "10.2.0.9", "fd00::/64", "fd00::7", "10.3.0.1/16"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.9/32"), netip.MustParsePrefix("fd00::/64"),
		netip.MustParsePrefix("fd00::7/128"), netip.MustParsePrefix("10.3.0.0/16"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	for _, bad := range []string{"", "10.1.0.0/33", "fe80::1%eth0", "host"} {
		if _, err := parseAllowedAddresses([]string{bad}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q: err = %v, want an invalid-input error", bad, err)
		}
	}
	_, err = parseAllowedAddresses([]string{"10.0.0.0/8", "x", "y/3"})
	var ve *api.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 2 || ve.Fields[0].Value != "x" || ve.Fields[1].Field != "allowed_addresses" {
		t.Errorf("two bad entries: %v, want both named under allowed_addresses", err)
	}
}

func TestEndpointBinding(t *testing.T) {
	rec := store.Endpoint{
		MAC: vswitch.MAC{2, 0x42, 10, 0, 0, 2}, Address: netip.MustParsePrefix("10.0.0.2/24"),
		AllowedAddresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}, MACSpoofing: true,
	}
	b := endpointBinding(rec)
	if b.MAC != rec.MAC || !slices.Equal(b.Addrs, []netip.Addr{rec.Address.Addr()}) ||
		!slices.Equal(b.Allowed, rec.AllowedAddresses) || !b.MACSpoofing {
		t.Errorf("binding %+v does not match the record %+v", b, rec)
	}
}

// boundLink returns the switch link of network/name.
func (e *testEnv) boundLink(network, name string) *vswitch.Link {
	e.t.Helper()
	e.d.mu.Lock()
	defer e.d.mu.Unlock()
	ep := e.d.networks[network].endpoints[name]
	if ep == nil {
		e.t.Fatalf("no endpoint %s/%s", network, name)
	}
	return ep.link
}

// pinned reports the MAC the gateway's netstack holds for addr as a
// static neighbour entry, if any.
func (e *testEnv) pinned(network string, addr netip.Addr) (vswitch.MAC, bool) {
	e.t.Helper()
	e.d.mu.Lock()
	gw := e.d.networks[network].gw
	e.d.mu.Unlock()
	ns, err := gw.Stack().Neighbors(gateway.NICID, ipv4.ProtocolNumber)
	if err != nil {
		e.t.Fatalf("neighbours: %s", err)
	}
	for _, n := range ns {
		if a, _ := netip.AddrFromSlice(n.Addr.AsSlice()); a == addr && n.State == stack.Static {
			return vswitch.MAC([]byte(n.LinkAddr)), true
		}
	}
	return vswitch.MAC{}, false
}

// Connect binds the endpoint's port to its MAC, address and allowed
// prefixes and pins the gateway's neighbour entry; a restart does it again
// from the stored record; disconnect unpins.
func TestConnectBindsPort(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/a")
	ep := e.connect("web", api.EndpointCreate{NetNS: "/run/netns/a", AllowedAddresses: []string{"10.9.0.0/24"}, MACSpoofing: true})
	if !slices.Equal(ep.AllowedAddresses, []string{"10.9.0.0/24"}) || !ep.MACSpoofing {
		t.Errorf("endpoint view: allowed %v, mac spoofing %v", ep.AllowedAddresses, ep.MACSpoofing)
	}
	mac, _ := vswitch.ParseMAC(ep.MAC)
	want := vswitch.Binding{MAC: mac, Addrs: []netip.Addr{ep.Address.Addr()},
		Allowed: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}, MACSpoofing: true}
	check := func(when string) {
		t.Helper()
		b := e.boundLink("web", "a").Binding()
		if b == nil || b.MAC != want.MAC || !slices.Equal(b.Addrs, want.Addrs) || !slices.Equal(b.Allowed, want.Allowed) || !b.MACSpoofing {
			t.Fatalf("%s: binding %+v, want %+v", when, b, want)
		}
		if got, ok := e.pinned("web", ep.Address.Addr()); !ok || got != mac {
			t.Fatalf("%s: gateway neighbour %s = %s (static %v), want %s pinned", when, ep.Address.Addr(), got, ok, mac)
		}
	}
	check("after connect")

	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()
	check("after a restart")

	if err := e.d.Disconnect(context.Background(), "web", "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.pinned("web", ep.Address.Addr()); ok {
		t.Error("the neighbour entry is still pinned after disconnect")
	}
	e.att.AddNetNS("/run/netns/b")
	_, err := e.d.Connect(context.Background(), "web", api.EndpointCreate{NetNS: "/run/netns/b", AllowedAddresses: []string{"10.9.0.0/33"}})
	var ve *api.ValidationError
	if !errors.As(err, &ve) || ve.Fields[0].Field != "allowed_addresses" {
		t.Errorf("a bad allowed address: %v, want a validation error naming allowed_addresses", err)
	}
}
