package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultPools returns Docker's predefined local address pools, in the order
// Docker tries them for a network created without --subnet (the default
// bridge network included): 172.17.0.0/16 to 172.31.0.0/16, then
// 192.168.0.0/16 cut into sixteen /20s (192.168.0.0/20, 192.168.16.0/20, …,
// 192.168.240.0/20). Each call returns a new slice.
func DefaultPools() []netip.Prefix {
	pools := make([]netip.Prefix, 0, 15+16)
	for b := byte(17); b <= 31; b++ {
		pools = append(pools, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, b, 0, 0}), 16))
	}
	for c := 0; c < 256; c += 16 {
		pools = append(pools, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(c), 0}), 20))
	}
	return pools
}

// NextFree returns the first of candidates that overlaps none of inUse: the
// host's addresses and routes and the subnets of existing networks. Entries
// of inUse need not be canonical (a host address such as 172.17.0.1/16
// counts as its whole prefix). The caller leaves out default routes
// (0.0.0.0/0, ::/0), which overlap everything. When every candidate is
// taken, the error wraps ErrNoFreePool and lists each candidate with what it
// overlaps.
func NextFree(candidates, inUse []netip.Prefix) (netip.Prefix, error) {
	if len(candidates) == 0 {
		return netip.Prefix{}, errors.New("no candidate address pools given")
	}
	var tried strings.Builder
	for i, c := range candidates {
		hit, ok := overlapsAny(c, inUse)
		if !ok {
			return c, nil
		}
		if i > 0 {
			tried.WriteString(", ")
		}
		fmt.Fprintf(&tried, "%s (overlaps %s)", c, hit)
	}
	return netip.Prefix{}, fmt.Errorf("%w: tried %s; give the network a --subnet", ErrNoFreePool, tried.String())
}

// overlapsAny returns the first prefix of set that overlaps p.
func overlapsAny(p netip.Prefix, set []netip.Prefix) (netip.Prefix, bool) {
	for _, q := range set {
		if Overlaps(p, q) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// Overlaps reports whether a and b have an address in common. Host bits are
// ignored (10.0.0.1/8 is 10.0.0.0/8), prefixes of different families never
// overlap, and an invalid prefix overlaps nothing.
func Overlaps(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Overlaps(b)
}
