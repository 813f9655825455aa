package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/gateway/dhcp6/dhcp6test"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// dhcp6Ask sends a rapid-commit SOLICIT from the VM behind the TAP
// vmName (a --tap-only endpoint) with MAC mac, and returns the address
// the network's DHCPv6 server gives it (the zero Addr for none).
func dhcp6Ask(t *testing.T, e *testEnv, vmName string, mac vswitch.MAC) netip.Addr {
	t.Helper()
	p := e.att.Port("", vmName)
	if p == nil {
		t.Fatalf("no port for %s", vmName)
	}
	p.Take()
	if err := p.Inject(dhcp6test.Frame(mac, dhcp6test.LinkLocal(mac), dhcp6test.Solicit(mac, dhcpv6.WithRapidCommit).ToBytes())); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		for _, f := range p.Take() {
			if !dhcp6test.IsReply(f.Data) {
				continue
			}
			m, err := dhcp6test.Decode(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			if ia := m.Options.OneIANA(); ia != nil && ia.Options.OneAddress() != nil {
				a, _ := netip.AddrFromSlice(ia.Options.OneAddress().IPv6Addr)
				return a
			}
			return netip.Addr{}
		}
		select {
		case <-p.Notify():
		case <-deadline:
			t.Fatalf("no DHCPv6 answer for %s within 5 s", vmName)
		}
	}
}

// A VM on a --tap-only TAP of a dual-stack or IPv6-only network gets, by
// DHCPv6, the IPv6 address IPAM gave its endpoint (a static lease by its
// --mac), which shows in the network's leases; after a disconnect and a
// connect of another endpoint under the same MAC, the new address.
func TestDHCP6LeasesAreIPAMs(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "dual", Subnets: []string{"10.60.0.0/24", "fd00:60::/64"}})
	e.createNetwork(api.NetworkCreate{Name: "six", Subnet: "fd00:61::/64"})
	macA := vswitch.MAC{0x52, 0x54, 0, 0x60, 0, 1}
	macB := vswitch.MAC{0x52, 0x54, 0, 0x61, 0, 1}
	e.connect("dual", api.EndpointCreate{TapOnly: "vmf"}) // takes fd00:60::2
	a := e.connect("dual", api.EndpointCreate{TapOnly: "vma", MAC: macA.String(), IP6: "fd00:60::77"})
	b := e.connect("six", api.EndpointCreate{TapOnly: "vmb", MAC: macB.String()})
	if got := dhcp6Ask(t, e, "vma", macA); got != a.Address6.Addr() || got != netip.MustParseAddr("fd00:60::77") {
		t.Errorf("dual-stack VM got %s by DHCPv6, want its endpoint's %s", got, a.Address6)
	}
	if got := dhcp6Ask(t, e, "vmb", macB); got != b.Address.Addr() || !got.Is6() {
		t.Errorf("IPv6-only VM got %s by DHCPv6, want its endpoint's %s", got, b.Address)
	}
	n, err := e.d.Network("dual")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range n.DHCPLeases {
		found = found || l.MAC == macA.String() && l.Addr == a.Address6.Addr() && l.State == "bound" && l.DUID != ""
	}
	if !found {
		t.Errorf("network leases %+v lack %s bound to %s", n.DHCPLeases, macA, a.Address6.Addr())
	}

	// A MAC with no endpoint gets nothing; nor does a disconnected one.
	if err := e.d.Disconnect(context.Background(), "dual", "vma"); err != nil {
		t.Fatal(err)
	}
	// vmc may send from other MACs and their link-local addresses, as a
	// VM with nested guests would.
	c := e.connect("dual", api.EndpointCreate{TapOnly: "vmc", MACSpoofing: true, AllowedAddresses: []string{"fe80::/64"}})
	if got := dhcp6Ask(t, e, "vmc", macA); got.IsValid() {
		t.Errorf("after its endpoint left, %s still got %s", macA, got)
	}
	macC, err := vswitch.ParseMAC(c.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if got := dhcp6Ask(t, e, "vmc", macC); got != c.Address6.Addr() {
		t.Errorf("the new endpoint got %s, want %s", got, c.Address6)
	}
}
