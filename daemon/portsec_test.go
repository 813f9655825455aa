package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"go.uber.org/zap"
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
	b := endpointBinding(rec, netip.Prefix{})
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

// A dynamic DHCP lease to a client behind a --mac-spoofing endpoint joins
// that endpoint's binding and is pinned at the gateway until released;
// behind an endpoint without --mac-spoofing it changes nothing.
func TestLeaseBinder(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.7.0.0/24"})
	e.att.AddNetNS("/run/netns/vmhost")
	e.att.AddNetNS("/run/netns/plain")
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/vmhost", MACSpoofing: true})
	e.connect("web", api.EndpointCreate{NetNS: "/run/netns/plain"})
	e.d.mu.Lock()
	n := e.d.networks["web"]
	e.d.mu.Unlock()
	b := newLeaseBinder(zap.NewNop())
	b.start(n.sw, n.gw)

	vm, stranger := vswitch.MAC{0x52, 0x54, 0, 0, 0, 1}, vswitch.MAC{0x52, 0x54, 0, 0, 0, 2}
	for _, c := range []struct {
		mac  vswitch.MAC
		port string
	}{{vm, "vmhost"}, {stranger, "plain"}} {
		// A DHCP DISCOVER from the client: the switch learns its MAC
		// on the port (or, without --mac-spoofing, drops it).
		f := make([]byte, 14+20+8)
		copy(f[0:6], vswitch.Broadcast[:])
		copy(f[6:12], c.mac[:])
		f[12], f[13] = 0x08, 0x00
		f[14], f[23] = 0x45, 17
		f[34], f[35], f[36], f[37] = 0, 68, 0, 67
		e.boundLink("web", c.port).Receive(vswitch.Frame{Data: f})
	}
	addr, other := netip.MustParseAddr("10.7.0.50"), netip.MustParseAddr("10.7.0.51")
	b.leased(vm, addr)
	b.leased(stranger, other)
	if got := e.boundLink("web", "vmhost").Binding().Addrs; !slices.Contains(got, addr) {
		t.Errorf("vmhost's binding %v lacks the leased %s", got, addr)
	}
	if got, ok := e.pinned("web", addr); !ok || got != vm {
		t.Errorf("leased %s pinned to %s (%v), want %s", addr, got, ok, vm)
	}
	if got := e.boundLink("web", "plain").Binding().Addrs; slices.Contains(got, other) {
		t.Errorf("an endpoint without --mac-spoofing got a lease in its binding: %v", got)
	}
	b.released(addr)
	if got := e.boundLink("web", "vmhost").Binding().Addrs; slices.Contains(got, addr) {
		t.Errorf("vmhost's binding %v keeps the released %s", got, addr)
	}
	if _, ok := e.pinned("web", addr); ok {
		t.Error("the released address is still pinned")
	}
}
