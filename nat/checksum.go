package nat

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Incremental checksum updates, RFC 1624. When 16-bit words m of a
// checksummed range change to m', the new checksum is
//
//	HC' = ~(~HC + ~m + m')        (RFC 1624, eqn. 3)
//
// in one's complement arithmetic. A delta accumulates ~m + m' over every
// word a rewrite changed; apply folds it into a checksum field. Every field
// this package rewrites starts at an even offset from the start of the
// range its checksum covers (IP header, transport segment, ICMP message),
// so the sum of its bytes taken on their own is its contribution to the
// checksum.

// delta is the one's complement sum of ~m + m' over changed words. The zero
// value means nothing changed.
type delta uint16

// add accounts for a field whose bytes summed to old before a change and to
// new after it.
func (d *delta) add(old, new uint16) {
	*d = delta(checksum.Combine(uint16(*d), checksum.Combine(^old, new)))
}

// plus returns the delta of both d's and e's changes.
func (d delta) plus(e delta) delta { return delta(checksum.Combine(uint16(d), uint16(e))) }

// full returns checksum field hc updated for the changes in d (eqn. 3).
func (d delta) full(hc uint16) uint16 { return ^checksum.Combine(^hc, uint16(d)) }

// partial returns a partial checksum field (the uncomplemented
// pseudo-header sum that checksum offload leaves) updated for d.
func (d delta) partial(sum uint16) uint16 { return checksum.Combine(sum, uint16(d)) }

// sum16 is the one's complement sum of b, of even length.
func sum16(b []byte) uint16 { return checksum.Checksum(b, 0) }

// putAddr writes a over b (4 or 16 bytes, matching a's family) and returns
// the sums of b before and after.
func putAddr(b []byte, a netip.Addr) (old, new uint16) {
	old = sum16(b)
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	} else {
		v := a.As16()
		copy(b, v[:])
	}
	return old, sum16(b)
}

// put16 writes v at b[0:2] and returns the old and new values, which are
// their own sums.
func put16(b []byte, v uint16) (old, new uint16) {
	old = binary.BigEndian.Uint16(b)
	binary.BigEndian.PutUint16(b, v)
	return old, v
}

// setField writes checksum field b[0:2] = v and accounts for the change in
// d, for a checksum field that lies inside a range another checksum covers
// (an inner header quoted by an ICMP error).
func setField(b []byte, v uint16, d *delta) {
	d.add(put16(b, v))
}
