package cluster

import (
	"net/netip"
	"testing"
)

// FuzzParseLease feeds arbitrary keys and values (what another host, or
// anyone with write access to etcd, may have put there) to parseLease: it
// never panics, and whatever it accepts is a lease with a subnet, a host
// ID, a public address and, if any, a masked IPv6 subnet, which writes
// back to a value that parses to the same lease.
func FuzzParseLease(f *testing.F) {
	k := newKeys(DefaultKeyPrefix, "web")
	f.Add(k.subnet(netip.MustParsePrefix("10.240.7.0/24")), `{"hostID":"h1","publicAddr":"10.213.0.1:4789"}`)
	f.Add(k.subnet(netip.MustParsePrefix("10.240.7.0/24")), `{"hostID":"h1","publicAddr":"[fd00:213::1]:4789","subnet6":"fd00:240:0:0:700::/72"}`)
	f.Add(k.subnet(netip.MustParsePrefix("fd00:1::/80")), `{"hostID":"h","publicAddr":"[fe80::1%eth0]:4789"}`)
	f.Add(k.subnets+"10.0.0.0-8", `{"hostID":"h","publicAddr":"1.2.3.4:1","subnet6":"fd00::1/64"}`)
	f.Add(k.subnets+"x", `{"subnet6":"10.0.0.0/8"}`)
	f.Fuzz(func(t *testing.T, key, value string) {
		l, ok := parseLease(k, key, []byte(value))
		if !ok {
			return
		}
		if !l.Subnet.IsValid() || l.HostID == "" || !l.PublicAddr.IsValid() {
			t.Fatalf("accepted an incomplete lease %+v from %q = %q", l, key, value)
		}
		if l.Subnet6.IsValid() && (!l.Subnet6.Addr().Is6() || l.Subnet6.Masked() != l.Subnet6) {
			t.Fatalf("accepted IPv6 subnet %s from %q", l.Subnet6, value)
		}
		back, ok := parseLease(k, k.subnet(l.Subnet), []byte(l.value()))
		if !ok || back != l {
			t.Fatalf("lease %+v written back as %q reads as %+v (%v)", l, l.value(), back, ok)
		}
	})
}
