package cluster

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"
)

func TestSpaceSubnetsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		network string
		bits    int
		first   string
		last    string
	}{
		{"10.240.0.0/16", 24, "10.240.0.0/24", "10.240.255.0/24"},
		{"10.240.0.0/16", 26, "10.240.0.0/26", "10.240.255.192/26"},
		{"10.0.0.0/8", 32, "10.0.0.0/32", "10.255.255.255/32"},
		{"fd00:1::/48", 64, "fd00:1::/64", "fd00:1:0:ffff::/64"},
		{"fd00::/56", 80, "fd00::/80", "fd00:0:0:ff:ffff::/80"},
		{"fd00::ff00:0:0/104", 128, "fd00::ff00:0:0/128", "fd00::ff00:ff:ffff/128"},
	} {
		s, err := newSpace(netip.MustParsePrefix(tc.network), tc.bits)
		if err != nil {
			t.Fatal(err)
		}
		n := s.count()
		if got := s.subnet(0).String(); got != tc.first {
			t.Errorf("%s/%d: first %s, want %s", tc.network, tc.bits, got, tc.first)
		}
		if got := s.subnet(n - 1).String(); got != tc.last {
			t.Errorf("%s/%d: last %s, want %s", tc.network, tc.bits, got, tc.last)
		}
		for _, i := range []uint64{0, 1, n / 3, n / 2, n - 2, n - 1} {
			p := s.subnet(i)
			if j, ok := s.index(p); !ok || j != i {
				t.Errorf("%s/%d: index(subnet(%d) = %s) = %d, %v", tc.network, tc.bits, i, p, j, ok)
			}
		}
		if st := s.start("some-host"); st >= n {
			t.Errorf("start %d beyond %d subnets", st, n)
		}
	}
	s, _ := newSpace(netip.MustParsePrefix("10.240.0.0/16"), 24)
	for _, bad := range []string{"10.241.0.0/24", "10.240.1.0/25", "10.240.1.1/24", "fd00::/24"} {
		p, _ := netip.ParsePrefix(bad)
		if _, ok := s.index(p); ok {
			t.Errorf("index(%s) accepted", bad)
		}
	}
}

func TestKeysRoundTrip(t *testing.T) {
	k := newKeys("/switchyard/", "web")
	for _, s := range []string{"10.240.7.0/24", "fd00:1:0:7::/64"} {
		p := netip.MustParsePrefix(s)
		key := k.subnet(p)
		if got, ok := k.parseSubnet(key); !ok || got != p {
			t.Errorf("parseSubnet(%q) = %v, %v; want %v", key, got, ok, p)
		}
	}
	if got := k.subnet(netip.MustParsePrefix("10.240.7.0/24")); got != "/switchyard/networks/web/subnets/10.240.7.0-24" {
		t.Errorf("key %q", got)
	}
	for _, bad := range []string{"/switchyard/networks/web/subnets/10.240.7.0", "/switchyard/networks/web/subnets/10.240.7.1-24", "/other/10.0.0.0-24"} {
		if _, ok := k.parseSubnet(bad); ok {
			t.Errorf("parseSubnet(%q) accepted", bad)
		}
	}
	if _, ok := parseLease(k, k.subnet(netip.MustParsePrefix("10.240.7.0/24")), []byte(`{"hostID":"h"}`)); ok {
		t.Error("a lease without an endpoint accepted")
	}
}

// resync reports exactly the difference between what the host knew and
// what etcd holds now.
func TestResyncReportsDifference(t *testing.T) {
	var got []Event
	c := &Cluster{peers: map[string]Lease{}, ownKey: "own"}
	c.cfg.OnChange = func(e Event) { got = append(got, e) }
	c.log = nopLogger()
	l := func(h string, n byte) Lease {
		return Lease{HostID: h, Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, n, 0}), 24), PublicAddr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{1, 1, 1, n}), 4789)}
	}
	c.peers["a"], c.peers["b"], c.peers["c"] = l("a", 1), l("b", 2), l("c", 3)
	moved := l("c", 3)
	moved.PublicAddr = netip.MustParseAddrPort("9.9.9.9:4789")
	c.resync(map[string]Lease{"b": l("b", 2), "c": moved, "d": l("d", 4), "own": l("me", 9)})
	want := []Event{
		{PeerRemoved, l("a", 1)},
		{PeerRemoved, l("c", 3)}, {PeerAdded, moved},
		{PeerAdded, l("d", 4)},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func nopLogger() *zap.Logger { return zap.NewNop() }
