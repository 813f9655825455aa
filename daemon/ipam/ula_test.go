package ipam_test

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

func TestULAPool(t *testing.T) {
	a, b := ipam.ULAPool([]byte("host-a")), ipam.ULAPool([]byte("host-b"))
	for _, p := range []netip.Prefix{a, b} {
		if p.Bits() != 48 || p.Addr().As16()[0] != 0xfd || p != p.Masked() {
			t.Fatalf("ULAPool = %s, want an fdXX:XXXX:XXXX::/48", p)
		}
	}
	if a == b {
		t.Fatalf("two seeds gave the same pool %s", a)
	}
	if again := ipam.ULAPool([]byte("host-a")); again != a {
		t.Fatalf("one seed gave %s then %s", a, again)
	}
}

func TestSplit(t *testing.T) {
	got := ipam.Split(netip.MustParsePrefix("fd00:1::/48"), 64, 3)
	want := []string{"fd00:1::/64", "fd00:1:0:1::/64", "fd00:1:0:2::/64"}
	if len(got) != len(want) {
		t.Fatalf("Split = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("Split = %v, want %v", got, want)
		}
	}
	// Fewer than asked when the pool holds fewer; carries across bytes.
	got = ipam.Split(netip.MustParsePrefix("10.0.0.0/23"), 24, 10)
	if len(got) != 2 || got[1].String() != "10.0.1.0/24" {
		t.Fatalf("Split of a /23 into /24s = %v", got)
	}
	got = ipam.Split(netip.MustParsePrefix("10.0.0.0/16"), 25, 4)
	if got[3].String() != "10.0.1.128/25" {
		t.Fatalf("Split into /25s = %v", got)
	}
	if ipam.Split(netip.MustParsePrefix("fd00::/64"), 48, 1) != nil {
		t.Fatal("Split into shorter prefixes than the pool")
	}
}
