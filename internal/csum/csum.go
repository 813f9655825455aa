// Package csum holds the transport-checksum steps the data path takes on
// raw frames: the pseudo-header sum of a segment behind an IPv4 or IPv6
// header, the value a checksum field is given, and completing a partial
// checksum (virtio-net NEEDS_CSUM, as a TAP with checksum offload leaves
// it). The arithmetic is gVisor's checksum.Checksum; gVisor has no call
// for a header of either family held as bytes that is cheap enough for the
// per-segment path (see Pseudo), nor one for the offload case, and the
// switch, the tunnel and the netstack port each used to carry a copy of
// these steps.
//
// Every function works in place, on views of the caller's buffer, and
// allocates nothing.
package csum

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Pseudo returns the one's-complement sum (not complemented) of the
// pseudo-header of a transport segment of n bytes of protocol proto
// carried behind the IP header ip: IPv6 if v6, else IPv4. ip must hold at
// least the fixed header (20 or 40 bytes); its version is not checked.
//
// It sums the addresses where they lie, the last bytes of the fixed header
// in both families, rather than calling header.PseudoHeaderChecksum: that
// takes tcpip.Address values, and building them from the header made the
// sum three to four times slower on the per-segment path (BenchmarkPseudo). The
// fuzzers hold it to gVisor's function and to RFC 1071.
func Pseudo(ip []byte, v6 bool, proto tcpip.TransportProtocolNumber, n int) uint16 {
	addrs := ip[header.IPv4MinimumSize-2*header.IPv4AddressSize : header.IPv4MinimumSize]
	if v6 {
		addrs = ip[header.IPv6MinimumSize-2*header.IPv6AddressSize : header.IPv6MinimumSize]
	}
	var tail [4]byte
	binary.BigEndian.PutUint16(tail[0:], uint16(proto))
	binary.BigEndian.PutUint16(tail[2:], uint16(n))
	return checksum.Checksum(tail[:], checksum.Checksum(addrs, 0))
}

// Field returns the checksum field of a segment whose one's-complement
// sum, pseudo-header included and checksum field taken as zero, is sum.
// A UDP checksum that comes out as 0 is sent as 0xffff, the same number
// in one's complement, because 0 means "no checksum" (RFC 768).
func Field(sum uint16, udp bool) uint16 {
	if f := ^sum; f != 0 || !udp {
		return f
	}
	return 0xffff
}

// Complete finishes a partial checksum in frame b in place: the 16-bit
// field at offset field holds the pseudo-header sum, and b[start:] is
// what the checksum covers. Like the kernel's skb_checksum_help it writes
// a result of 0 as 0xffff, whatever the protocol. It reports false, and
// leaves b alone, if start is below floor (the end of the headers the
// checksum may not cover) or the field lies outside b[start:].
func Complete(b []byte, start, field, floor int) bool {
	if start < floor || field < start || field+2 > len(b) {
		return false
	}
	binary.BigEndian.PutUint16(b[field:], Field(checksum.Checksum(b[start:], 0), true))
	return true
}
