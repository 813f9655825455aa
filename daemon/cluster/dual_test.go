package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/cluster"
)

var testNet6 = netip.MustParsePrefix("fd00:240::/64")

// dualConfig is hostConfig for a dual-stack network with an IPv6
// underlay: testNet cut into /24s and testNet6 beside it.
func dualConfig(t *testing.T, endpoints []string, n int, r *recorder) host {
	h := hostConfig(t, endpoints, n, time.Minute, r)
	h.NetworkCIDR6 = testNet6
	h.PublicAddr = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0xfd, 0, 2, 0x13, 15: byte(n)}), 4789)
	return h
}

// Dual-stack leases: each host's lease holds an IPv4 /24 and, by the same
// index, an IPv6 /72 (a /64 cut as many times as the /16), disjoint
// between hosts; the other hosts read both and the host's IPv6 endpoint;
// a host that rejoins gets both back; the config key records both cuts
// and a host that cuts the IPv6 range differently is refused.
func TestDualStackLeases(t *testing.T) {
	endpoints := startEtcd(t)
	r1 := &recorder{}
	h1, h2 := dualConfig(t, endpoints, 1, r1), dualConfig(t, endpoints, 2, nil)
	c1, c2 := join(t, h1), join(t, h2)
	l1, l2 := c1.Lease(), c2.Lease()
	for _, l := range []cluster.Lease{l1, l2} {
		if l.Subnet.Bits() != 24 || !testNet.Contains(l.Subnet.Addr()) ||
			l.Subnet6.Bits() != 72 || !testNet6.Contains(l.Subnet6.Addr()) || l.Subnet6.Masked() != l.Subnet6 {
			t.Fatalf("%s leased %s and %s, want a /24 of %s and a /72 of %s", l.HostID, l.Subnet, l.Subnet6, testNet, testNet6)
		}
		// The same index in both ranges: 10.240.X.0/24 ↔ fd00:240::X00:0:0:0/72.
		if got, want := l.Subnet6.Addr().As16()[8], l.Subnet.Addr().As4()[2]; got != want {
			t.Errorf("%s: IPv6 subnet %s is not number %d like %s", l.HostID, l.Subnet6, want, l.Subnet)
		}
	}
	if l1.Subnet6 == l2.Subnet6 || l1.Subnet6.Overlaps(l2.Subnet6) {
		t.Fatalf("both hosts hold %s / %s", l1.Subnet6, l2.Subnet6)
	}
	waitFor(t, 10*time.Second, "host 1 to see host 2", func() bool { return peersOf(c1)[h2.HostID] == l2 })
	if got := peersOf(c2)[h1.HostID]; got != l1 {
		t.Errorf("host 2 sees host 1 as %+v, want %+v", got, l1)
	}
	waitFor(t, 5*time.Second, "host 1's added event", func() bool { return r1.count(cluster.PeerAdded, h2.HostID) == 1 })
	for _, e := range r1.snapshot() {
		if e.Type == cluster.PeerAdded && e.Lease != l2 {
			t.Errorf("added event %+v, want %+v", e.Lease, l2)
		}
	}

	c2.Close()
	again := join(t, h2)
	if got := again.Lease(); got != l2 {
		t.Errorf("host 2 rejoined with %+v, want %+v", got, l2)
	}

	bad := dualConfig(t, endpoints, 3, nil)
	bad.SubnetLen6 = 80
	_, err := bad.join(context.Background())
	if !errors.Is(err, cluster.ErrConfigMismatch) || !strings.Contains(err.Error(), "/72") || !strings.Contains(err.Error(), "/80") {
		t.Fatalf("a host cutting the IPv6 range into /80s: %v, want ErrConfigMismatch naming /72 and /80", err)
	}
	v4only := hostConfig(t, endpoints, 4, time.Minute, nil)
	if _, err := v4only.join(context.Background()); !errors.Is(err, cluster.ErrConfigMismatch) || !strings.Contains(err.Error(), testNet6.String()) {
		t.Fatalf("an IPv4-only host on a dual-stack network: %v, want ErrConfigMismatch naming %s", err, testNet6)
	}
}

// An IPv6 range cut into fewer subnets than the IPv4 one bounds the
// leases: the third host on two IPv6 subnets gets none.
func TestDualStackLeasesBoundedByIPv6(t *testing.T) {
	endpoints := startEtcd(t)
	var hosts []host
	for n := 1; n <= 3; n++ {
		h := dualConfig(t, endpoints, n, nil)
		h.NetworkCIDR6, h.SubnetLen6 = netip.MustParsePrefix("fd00:240::/120"), 121 // two /121s
		hosts = append(hosts, h)
	}
	a, b := join(t, hosts[0]), join(t, hosts[1])
	if a.Lease().Subnet6 == b.Lease().Subnet6 || !a.Lease().Subnet6.IsValid() || !b.Lease().Subnet6.IsValid() {
		t.Fatalf("leases %+v and %+v, want two different IPv6 /121s", a.Lease(), b.Lease())
	}
	if _, err := hosts[2].join(context.Background()); !errors.Is(err, cluster.ErrNoSubnet) {
		t.Fatalf("a third host on two IPv6 subnets: %v, want ErrNoSubnet", err)
	}
}

// Bad dual-stack configurations are refused before etcd is asked.
func TestJoinRefusesBadDualStack(t *testing.T) {
	base := cluster.Config{
		Network: "web", NetworkCIDR: testNet, SubnetLen: 24, NetworkCIDR6: testNet6,
		PublicAddr: netip.MustParseAddrPort("[fd00::1]:4789"), HostID: "h",
	}
	for _, tc := range []struct {
		name string
		mod  func(*cluster.Config)
		want string
	}{
		{"v4 as v6", func(c *cluster.Config) { c.NetworkCIDR6 = netip.MustParsePrefix("10.9.0.0/16") }, "want an IPv6 range"},
		{"v6 twice", func(c *cluster.Config) { c.NetworkCIDR = netip.MustParsePrefix("fd00:9::/48"); c.SubnetLen = 64 }, "IPv4 range in NetworkCIDR"},
		{"len without range", func(c *cluster.Config) { c.NetworkCIDR6 = netip.Prefix{}; c.SubnetLen6 = 72 }, "IPv6 network CIDR"},
		{"too long", func(c *cluster.Config) { c.NetworkCIDR6 = netip.MustParsePrefix("fd00::/120") }, "/128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			b := &closeCounter{}
			cfg.Backend = b
			tc.mod(&cfg)
			_, err := cluster.Join(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
			if b.closed != 1 {
				t.Fatalf("backend closed %d times, want once", b.closed)
			}
		})
	}
}
