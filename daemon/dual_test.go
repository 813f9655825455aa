package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/switch/stackport"
	"github.com/switchyard-net/switchyard/testing/attachtest"
)

func boolp(v bool) *bool { return &v }

// onNIC reports whether a is an address of the gateway's netstack NIC.
func onNIC(gw *gateway.Gateway, a netip.Addr) bool {
	for _, pa := range gw.Stack().AllAddresses()[gateway.NICID] {
		if pa.AddressWithPrefix.Address == stackport.Addr(a) {
			return true
		}
	}
	return false
}

// A request's families: what each way of asking makes.
func TestNetworkFamilies(t *testing.T) {
	pool := netip.MustParsePrefix("fd00:77::/48")
	cases := []struct {
		name string
		req  api.NetworkCreate
		// want: the view's subnets (those picked are checked by family
		// and pool), gateways and ranges.
		subnets []string
		gw, gw6 string
		rng6    string
	}{
		{"default IPv4", api.NetworkCreate{}, []string{"172.17.0.0/16"}, "172.17.0.1", "", ""},
		{"old subnet field", api.NetworkCreate{Subnet: "10.1.0.0/24"}, []string{"10.1.0.0/24"}, "10.1.0.1", "", ""},
		{"both families", api.NetworkCreate{Subnets: []string{"fd00:1::/64", "10.1.0.0/24"}, Gateways: []string{"fd00:1::fe", "10.1.0.254"},
			IPRanges: []string{"fd00:1::100/120"}}, []string{"10.1.0.0/24", "fd00:1::/64"}, "10.1.0.254", "fd00:1::fe", "fd00:1::100/120"},
		{"old field and list", api.NetworkCreate{Subnet: "10.1.0.0/24", Subnets: []string{"fd00:1::/64"}}, []string{"10.1.0.0/24", "fd00:1::/64"}, "10.1.0.1", "fd00:1::1", "fd00:1::/64"},
		{"ipv6 picks a ULA /64", api.NetworkCreate{Subnet: "10.1.0.0/24", IPv6: true}, []string{"10.1.0.0/24", "fd00:77::/64"}, "10.1.0.1", "fd00:77::1", "fd00:77::/64"},
		{"ipv6 alone picks both", api.NetworkCreate{IPv6: true}, []string{"172.17.0.0/16", "fd00:77::/64"}, "172.17.0.1", "fd00:77::1", "fd00:77::/64"},
		{"only an IPv6 subnet: IPv6-only, as before", api.NetworkCreate{Subnet: "fd00:1::/64"}, []string{"fd00:1::/64"}, "fd00:1::1", "fd00:1::1", "fd00:1::/64"},
		{"ipv4 false", api.NetworkCreate{IPv4: boolp(false)}, []string{"fd00:77::/64"}, "fd00:77::1", "fd00:77::1", "fd00:77::/64"},
		{"ipv4 true with an IPv6 subnet", api.NetworkCreate{IPv4: boolp(true), Subnets: []string{"fd00:1::/64"}}, []string{"172.17.0.0/16", "fd00:1::/64"}, "172.17.0.1", "fd00:1::1", "fd00:1::/64"},
		{"ipv6 and an IPv6 subnet: dual", api.NetworkCreate{IPv6: true, Subnets: []string{"fd00:1::/64"}}, []string{"172.17.0.0/16", "fd00:1::/64"}, "172.17.0.1", "fd00:1::1", "fd00:1::/64"},
		{"IPv6 longer than /64, with a warning", api.NetworkCreate{Subnets: []string{"10.1.0.0/24", "fd00:1::/80"}}, []string{"10.1.0.0/24", "fd00:1::/80"}, "10.1.0.1", "fd00:1::1", "fd00:1::/80"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
			cfg := e.config()
			cfg.IPv6Pool = pool
			d, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			c.req.Name = "n"
			n, err := d.CreateNetwork(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range n.Subnets {
				got = append(got, p.String())
			}
			if !slices.Equal(got, c.subnets) {
				t.Errorf("subnets %v, want %v", got, c.subnets)
			}
			if n.Subnet.String() != c.subnets[0] || n.Gateway.String() != c.gw {
				t.Errorf("first family %s gateway %s, want %s gateway %s", n.Subnet, n.Gateway, c.subnets[0], c.gw)
			}
			if s := n.Gateway6.String(); c.gw6 == "" && n.Gateway6.IsValid() || c.gw6 != "" && s != c.gw6 {
				t.Errorf("gateway6 %s, want %q", n.Gateway6, c.gw6)
			}
			if s := n.IPRange6.String(); c.rng6 == "" && n.IPRange6.IsValid() || c.rng6 != "" && s != c.rng6 {
				t.Errorf("ip_range6 %s, want %q", n.IPRange6, c.rng6)
			}
			if slow := n.Subnet6.IsValid() && n.Subnet6.Bits() != 64; slow != (len(n.Warnings) == 1) || len(n.Warnings) > 1 {
				t.Errorf("warnings %q for IPv6 subnet %s, want one about SLAAC for a prefix other than /64", n.Warnings, n.Subnet6)
			}
			// The IPv6 side is on the gateway's NIC.
			if c.gw6 != "" {
				if !onNIC(d.networks["n"].gw, netip.MustParseAddr(c.gw6)) {
					t.Errorf("gateway NIC lacks %s", c.gw6)
				}
			}
		})
	}
}

// A dual-stack network comes back from the state as it was; a second
// --ipv6 network gets the next /64, and an IPv6 subnet another network
// uses is refused.
func TestDualStackNetworkRestoredAndExclusive(t *testing.T) {
	e := newEnv(t)
	want := e.createNetwork(api.NetworkCreate{Name: "a", Subnets: []string{"10.1.0.0/24", "fd00:1::/64"}})
	second := e.createNetwork(api.NetworkCreate{Name: "b", Subnet: "10.2.0.0/24", IPv6: true})
	third := e.createNetwork(api.NetworkCreate{Name: "c", Subnet: "10.3.0.0/24", IPv6: true})
	pool := e.d.ipv6Pool()
	if !pool.Contains(second.Subnet6.Addr()) || second.Subnet6.Bits() != 64 || third.Subnet6 == second.Subnet6 || !pool.Contains(third.Subnet6.Addr()) {
		t.Fatalf("picked %s and %s, want two /64s of %s", second.Subnet6, third.Subnet6, pool)
	}
	_, err := e.d.CreateNetwork(context.Background(), api.NetworkCreate{Name: "d", Subnets: []string{"10.4.0.0/24", "fd00:1::/80"}})
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "fd00:1::/80") || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("overlapping IPv6 subnet: %v, want a conflict naming it and network a", err)
	}
	if _, err := e.d.Network("d"); err == nil {
		t.Fatal("a refused network exists")
	}
	e.d.Close()
	e.start()
	got, err := e.d.Network("a")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Subnets, want.Subnets) || got.Subnet6 != want.Subnet6 || got.Gateway6 != want.Gateway6 || got.IPRange6 != want.IPRange6 {
		t.Fatalf("restored %v %s %s %s, want %v %s %s %s", got.Subnets, got.Subnet6, got.Gateway6, got.IPRange6,
			want.Subnets, want.Subnet6, want.Gateway6, want.IPRange6)
	}
	if !onNIC(e.d.networks["a"].gw, want.Gateway6) {
		t.Fatalf("restored gateway lacks %s", want.Gateway6)
	}
}

// Records written before dual stack read unchanged: an IPv6-only network
// kept its subnet in Subnet.
func TestOldRecordsReadAsBefore(t *testing.T) {
	old := store.Network{Name: "v6", Subnet: netip.MustParsePrefix("fd00:9::/64"), Gateway: netip.MustParseAddr("fd00:9::1"),
		IPRange: netip.MustParsePrefix("fd00:9::/64")}
	s, g, r := old.IPv6()
	if s != old.Subnet || g != old.Gateway || r != old.IPRange {
		t.Fatalf("IPv6() of an old IPv6-only record = %s %s %s", s, g, r)
	}
	if s, _, _ := old.IPv4(); s.IsValid() {
		t.Fatalf("IPv4() of an IPv6-only record = %s", s)
	}
	if got := old.Subnets(); len(got) != 1 || got[0] != old.Subnet {
		t.Fatalf("Subnets() = %v", got)
	}
}

// Each bad dual-stack request gets one error naming the field and value
// at fault, and nothing is created.
func TestDualStackFieldErrors(t *testing.T) {
	cases := []struct {
		name  string
		req   api.NetworkCreate
		field string
		value string
	}{
		{"two IPv4 subnets", api.NetworkCreate{Subnets: []string{"10.1.0.0/24", "10.2.0.0/24"}}, "subnets", "10.2.0.0/24"},
		{"IPv4 in field and list", api.NetworkCreate{Subnet: "10.1.0.0/24", Subnets: []string{"10.2.0.0/24"}}, "subnets", "10.2.0.0/24"},
		{"two IPv6 subnets", api.NetworkCreate{Subnets: []string{"fd00:1::/64", "fd00:2::/64"}}, "subnets", "fd00:2::/64"},
		{"two IPv6 gateways", api.NetworkCreate{Subnets: []string{"fd00:1::/64"}, Gateways: []string{"fd00:1::1", "fd00:1::2"}}, "gateways", "fd00:1::2"},
		{"two IPv4 ranges", api.NetworkCreate{Subnet: "10.1.0.0/24", IPRanges: []string{"10.1.0.0/25", "10.1.0.128/25"}}, "ip_ranges", "10.1.0.128/25"},
		{"IPv6 gateway outside", api.NetworkCreate{Subnets: []string{"10.1.0.0/24", "fd00:1::/64"}, Gateways: []string{"fd00:2::1"}}, "gateways", "fd00:2::1"},
		{"IPv6 range outside", api.NetworkCreate{Subnets: []string{"10.1.0.0/24", "fd00:1::/64"}, IPRanges: []string{"fd00:2::/80"}}, "ip_ranges", "fd00:2::/80"},
		{"IPv6 gateway, no IPv6", api.NetworkCreate{Subnet: "10.1.0.0/24", Gateways: []string{"fd00:1::1"}}, "gateways", "fd00:1::1"},
		{"IPv6 aux, no IPv6", api.NetworkCreate{Subnet: "10.1.0.0/24", AuxAddresses: []string{"r=fd00:1::5"}}, "aux_addresses", "r=fd00:1::5"},
		{"IPv4 subnet with ipv4 false", api.NetworkCreate{Subnets: []string{"10.1.0.0/24"}, IPv4: boolp(false)}, "subnets", "10.1.0.0/24"},
		{"IPv6 link-local in the list", api.NetworkCreate{Subnets: []string{"10.1.0.0/24", "fe80::/64"}}, "subnets", "fe80::/64"},
		{"IPv6 loopback", api.NetworkCreate{Subnets: []string{"::1/128"}}, "subnets", "::1/128"},
		{"not a prefix in the list", api.NetworkCreate{Subnets: []string{"10.1.0.0/24", "fd00:1::"}}, "subnets", "fd00:1::"},
		{"tunnel with a picked IPv6 subnet", api.NetworkCreate{Subnet: "10.250.0.0/16", IPv6: true, Tunnel: "vxlan"}, "ipv6", "true"},
		{"slaac false, no IPv6", api.NetworkCreate{Subnet: "10.1.0.0/24", SLAAC: boolp(false)}, "slaac", "false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Name = "n"
			d := checkDaemon()
			_, err := d.newNetworkRecord(c.req)
			fs := fieldsOf(t, err)
			if len(fs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(fs), err)
			}
			if f := fs[0]; f.Field != c.field || f.Value != c.value || f.Problem == "" {
				t.Fatalf("got %+v, want field %q value %q and a problem", f, c.field, c.value)
			}
		})
	}
}

// The default network is IPv4 only unless the daemon is started with
// DefaultIPv6 (Docker's daemon option "ipv6"), and an IPv6 pool that is
// not a prefix of /64 or shorter is refused at start.
func TestDefaultNetworkIPv6Option(t *testing.T) {
	for _, on := range []bool{false, true} {
		e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
		cfg := e.config()
		cfg.NoDefaultNetwork, cfg.DefaultIPv6, cfg.IPv6Pool = false, on, netip.MustParsePrefix("fd00:88::/48")
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n, err := d.Network(DefaultNetwork)
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Subnet6.String(); on && got != "fd00:88::/64" || !on && n.Subnet6.IsValid() {
			t.Errorf("DefaultIPv6 %v: default network's IPv6 subnet %s", on, n.Subnet6)
		}
		if n.Subnet.String() != "172.17.0.0/16" {
			t.Errorf("DefaultIPv6 %v: default network's subnet %s, want 172.17.0.0/16", on, n.Subnet)
		}
	}
	e := &testEnv{t: t, dir: t.TempDir(), att: attachtest.New()}
	cfg := e.config()
	cfg.IPv6Pool = netip.MustParsePrefix("fd00:88::/96")
	if d, err := New(cfg); err == nil {
		d.Close()
		t.Fatal("an IPv6 pool of /96 was accepted")
	}
}
