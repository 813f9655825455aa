package ipam

import (
	"crypto/sha256"
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

// ULAPool returns an RFC 4193 unique local /48, fdXX:XXXX:XXXX::/48,
// whose 40-bit global ID is taken from seed (a stable, random host
// identity): every host picks its own, as the RFC asks, and one host
// always the same.
func ULAPool(seed []byte) netip.Prefix {
	sum := sha256.Sum256(seed)
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}

// Split returns the first max prefixes of length bits inside pool, in
// address order (fewer if pool holds fewer). It returns nil if bits is
// shorter than pool's length or longer than the family allows.
func Split(pool netip.Prefix, bits, max int) []netip.Prefix {
	pool = pool.Masked()
	if !pool.IsValid() || bits < pool.Bits() || bits > pool.Addr().BitLen() || max <= 0 {
		return nil
	}
	if n := bits - pool.Bits(); n < 31 && 1<<n < max {
		max = 1 << n
	}
	out := make([]netip.Prefix, 0, max)
	a := pool.Addr()
	for range max {
		p := netip.PrefixFrom(a, bits)
		out = append(out, p)
		next, ok := addAtBit(a, bits)
		if !ok {
			break
		}
		a = next
	}
	return out
}

// addAtBit adds 1 at bit position bits (counted from the top, 1-based)
// of a, returning false on overflow.
func addAtBit(a netip.Addr, bits int) (netip.Addr, bool) {
	b := a.AsSlice()
	i := bits - 1
	for ; i >= 0; i-- {
		byteI, mask := i/8, byte(0x80>>(i%8))
		if b[byteI]&mask == 0 {
			b[byteI] |= mask
			break
		}
		b[byteI] &^= mask
	}
	if i < 0 {
		return netip.Addr{}, false
	}
	out, _ := netip.AddrFromSlice(b)
	return out, true
}
