// Package icmperr builds the ICMP error frames Switchyard sends on behalf of
// a router: "fragmentation needed" and "packet too big" from the switch
// (path MTU feedback), "host unreachable" and "port unreachable" from the
// gateway when an egress flow cannot be completed, "time exceeded" from the
// gateway when a routed packet's TTL runs out. Each builder writes a
// whole Ethernet frame into a caller-provided buffer and allocates nothing.
package icmperr

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

const ethLen = 14

// ICMPv4 destination-unreachable codes used here.
const (
	CodeNetUnreachable4  = 0
	CodeHostUnreachable4 = 1
	CodePortUnreachable4 = 3
	CodeFragNeeded4      = 4
	CodeProhibited4      = 13 // communication administratively prohibited
)

// ICMPv4 types used here.
const (
	TypeDstUnreachable4 = 3
	TypeTimeExceeded4   = 11
)

// ICMPv6 types and destination-unreachable codes used here.
const (
	TypeDstUnreachable6 = 1
	TypePacketTooBig6   = 2
	TypeTimeExceeded6   = 3

	CodeNoRoute6         = 0
	CodeProhibited6      = 1 // communication administratively prohibited
	CodeAddrUnreachable6 = 3
	CodePortUnreachable6 = 4
)

// MaxLen is the longest frame a builder writes: an IPv6 error fills the
// IPv6 minimum MTU.
const MaxLen = ethLen + header.IPv6MinimumMTU

// IsError reports whether an ICMP (v6: ICMPv6) message of type t is an
// error. An error must never be answered with another error.
func IsError(v6 bool, t uint8) bool {
	if v6 {
		return t < 128
	}
	return t != 0 && t != 8 && t != 13 && t != 14 && t != 17 && t != 18 // not echo, timestamp, mask
}

// Eth is the Ethernet addressing of an error frame.
type Eth struct {
	Dst, Src [6]byte
}

// Unreachable4 writes into out (at least MaxLen long) an Ethernet frame
// carrying ICMPv4 destination unreachable with code from src to the sender
// of the IPv4 packet ip, quoting its header and first 8 payload bytes. mtu
// is the next-hop MTU for CodeFragNeeded4 (0 otherwise). It returns the
// frame's length, or 0 if ip is malformed, is itself an ICMP error, is a
// later fragment, or comes from an address no error may be sent to.
func Unreachable4(out []byte, eth Eth, src netip.Addr, ip []byte, code uint8, mtu uint16) int {
	return Error4(out, eth, src, ip, TypeDstUnreachable4, code, uint32(mtu))
}

// Error4 writes into out (at least MaxLen long) an Ethernet frame carrying
// an ICMPv4 error of type typ and code from src to the sender of the IPv4
// packet ip, quoting its header and first 8 payload bytes. param is the
// 32-bit field after the checksum (the next-hop MTU in its low half for
// fragmentation needed; zero for time exceeded). It returns the frame's
// length, or 0 when no error is due, as Unreachable4 says.
func Error4(out []byte, eth Eth, src netip.Addr, ip []byte, typ, code uint8, param uint32) int {
	h := header.IPv4(ip)
	if len(h) < header.IPv4MinimumSize || h[0]>>4 != 4 {
		return 0
	}
	ihl := int(h.HeaderLength())
	if ihl < header.IPv4MinimumSize || len(h) < ihl || h.FragmentOffset() != 0 {
		return 0
	}
	dst := netip.AddrFrom4([4]byte(h[12:16]))
	if dst.IsMulticast() || dst.IsUnspecified() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return 0
	}
	if h.Protocol() == 1 && len(h) > ihl && IsError(false, h[ihl]) {
		return 0
	}
	quote := min(len(h), ihl+8)
	const icmpHdr = 8
	total := header.IPv4MinimumSize + icmpHdr + quote
	n := ethLen + total
	writeEth(out, eth, 0x0800)
	o := header.IPv4(out[ethLen:])
	o.Encode(&header.IPv4Fields{
		TOS: 0xc0, TotalLength: uint16(total), TTL: 64, Protocol: 1,
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4()),
	})
	o.SetChecksum(^o.CalculateChecksum())
	icmp := out[ethLen+header.IPv4MinimumSize : n]
	icmp[0], icmp[1] = typ, code
	clear(icmp[2:4])
	binary.BigEndian.PutUint32(icmp[4:8], param)
	copy(icmp[icmpHdr:], h[:quote])
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, 0))
	return n
}

// Error6 writes into out (at least MaxLen long) an Ethernet frame carrying
// an ICMPv6 error of type typ and code from src to the sender of the IPv6
// packet ip, quoting as much of it as fits the IPv6 minimum MTU. param is
// the 32-bit field after the checksum (the MTU for packet too big). It
// returns the frame's length, or 0 when no error is due.
func Error6(out []byte, eth Eth, src netip.Addr, ip []byte, typ, code uint8, param uint32) int {
	h := header.IPv6(ip)
	if len(h) < header.IPv6MinimumSize || h[0]>>4 != 6 {
		return 0
	}
	dst := netip.AddrFrom16([16]byte(h[8:24]))
	if dst.IsMulticast() || dst.IsUnspecified() {
		return 0
	}
	if h.NextHeader() == 58 && len(h) > header.IPv6MinimumSize && IsError(true, h[header.IPv6MinimumSize]) {
		return 0
	}
	const icmpHdr = 8
	quote := min(len(h), header.IPv6MinimumMTU-header.IPv6MinimumSize-icmpHdr)
	plen := icmpHdr + quote
	n := ethLen + header.IPv6MinimumSize + plen
	writeEth(out, eth, 0x86dd)
	o := header.IPv6(out[ethLen:])
	srcA, dstA := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	o.Encode(&header.IPv6Fields{PayloadLength: uint16(plen), TransportProtocol: 58, HopLimit: 255, SrcAddr: srcA, DstAddr: dstA})
	icmp := out[ethLen+header.IPv6MinimumSize : n]
	icmp[0], icmp[1], icmp[2], icmp[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(icmp[4:8], param)
	copy(icmp[icmpHdr:], h[:quote])
	sum := header.PseudoHeaderChecksum(58, srcA, dstA, uint16(plen))
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, sum))
	return n
}

func writeEth(out []byte, eth Eth, etherType uint16) {
	copy(out[0:6], eth.Dst[:])
	copy(out[6:12], eth.Src[:])
	binary.BigEndian.PutUint16(out[12:14], etherType)
}
