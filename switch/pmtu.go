package vswitch

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Path MTU feedback. A port may carry less than the network's MTU (a
// tunnel adds its own headers). A unicast frame too big for its egress port
// is dropped; if the switch knows who routes for the network (Config.Router)
// it also answers the sender the way a router on the path would, with ICMP
// "fragmentation needed" (IPv4) or "packet too big" (IPv6) naming the
// port's MTU, so path MTU discovery works instead of black-holing the flow.
// The Linux vxlan device does the same for frames a bridge hands it.

// Router identifies the router of the switch's network, the source of the
// ICMP errors the switch generates.
type Router struct {
	MAC  MAC
	IPv4 netip.Addr // source of ICMPv4 errors; zero: none are sent
	IPv6 netip.Addr // source of ICMPv6 errors; zero: none are sent
}

// icmpPerSecond bounds the ICMP errors a switch sends, as routers rate
// limit them (a flood of big frames must not turn into a flood of errors).
const icmpPerSecond = 100

// icmpLimiter is a token bucket refilled from the coarse clock.
type icmpLimiter struct {
	mu     sync.Mutex
	tokens int
	last   int64
}

func (r *icmpLimiter) allow(now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now-r.last >= 1e9 {
		r.tokens, r.last = icmpPerSecond, now
	}
	if r.tokens == 0 {
		return false
	}
	r.tokens--
	return true
}

// pmtuState is the switch's part of path MTU feedback.
type pmtuState struct {
	router  atomic.Pointer[Router]
	limit   icmpLimiter
	sent    atomic.Uint64
	limited atomic.Uint64
}

// SetRouter sets (or, with nil, clears) who the switch answers for when a
// frame is too big for its egress port.
func (s *Switch) SetRouter(r *Router) { s.pmtu.router.Store(r) }

// tooBig answers the sender of f, which came in on in and was too big for
// a port of MTU mtu, with an ICMP error, if the switch has a router and
// the frame deserves one.
func (s *Switch) tooBig(in *Link, f Frame, mtu int) {
	r := s.pmtu.router.Load()
	if r == nil {
		return
	}
	l3, et, ok := l3Offset(f.Data)
	if !ok {
		return
	}
	buf := segPool.Get().(*[]byte)
	defer segPool.Put(buf)
	var n int
	switch {
	case et == etherTypeIPv4 && r.IPv4.IsValid():
		n = fragNeeded4(*buf, f.Data, l3, r, mtu)
	case et == etherTypeIPv6 && r.IPv6.IsValid():
		n = packetTooBig6(*buf, f.Data, l3, r, mtu)
	}
	if n == 0 {
		return
	}
	if !s.pmtu.limit.allow(s.now.Load()) {
		s.pmtu.limited.Add(1)
		return
	}
	s.pmtu.sent.Add(1)
	in.send(Frame{Data: (*buf)[:n]})
}

// isICMPError reports whether an ICMP(v6) message of type t is an error,
// which must never be answered with another error.
func isICMPError(v6 bool, t uint8) bool {
	if v6 {
		return t < 128
	}
	return t != 0 && t != 8 && t != 13 && t != 14 && t != 17 && t != 18 // not echo, timestamp, mask
}

// fragNeeded4 writes into out an Ethernet frame carrying ICMPv4 type 3
// code 4 for the IPv4 packet at b[l3:], and returns its length (0 if no
// error is due).
func fragNeeded4(out, b []byte, l3 int, r *Router, mtu int) int {
	ip := header.IPv4(b[l3:])
	if len(ip) < header.IPv4MinimumSize || ip[0]>>4 != 4 {
		return 0
	}
	ihl := int(ip.HeaderLength())
	if ihl < header.IPv4MinimumSize || len(ip) < ihl {
		return 0
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	if !src.IsGlobalUnicast() && !src.IsPrivate() || ip.FragmentOffset() != 0 {
		return 0 // no errors to broadcast/multicast/unspecified sources, nor about later fragments
	}
	if ip.Protocol() == 1 && len(ip) > ihl && isICMPError(false, ip[ihl]) {
		return 0
	}
	quote := min(len(ip), ihl+8)
	const icmpHdr = 8
	total := header.IPv4MinimumSize + icmpHdr + quote
	n := EthHeaderLen + total
	copy(out[0:6], b[6:12]) // back to the sender
	copy(out[6:12], r.MAC[:])
	binary.BigEndian.PutUint16(out[12:14], etherTypeIPv4)
	o := header.IPv4(out[EthHeaderLen:])
	o.Encode(&header.IPv4Fields{
		TOS: 0xc0, TotalLength: uint16(total), TTL: 64, Protocol: 1,
		SrcAddr: addr4(r.IPv4), DstAddr: addr4(src),
	})
	o.SetChecksum(^o.CalculateChecksum())
	icmp := out[EthHeaderLen+header.IPv4MinimumSize : n]
	icmp[0], icmp[1] = 3, 4 // destination unreachable, fragmentation needed
	icmp[2], icmp[3], icmp[4], icmp[5] = 0, 0, 0, 0
	binary.BigEndian.PutUint16(icmp[6:8], uint16(mtu))
	copy(icmp[icmpHdr:], ip[:quote])
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, 0))
	return n
}

// packetTooBig6 writes into out an Ethernet frame carrying ICMPv6 "packet
// too big" for the IPv6 packet at b[l3:], and returns its length (0 if no
// error is due).
func packetTooBig6(out, b []byte, l3 int, r *Router, mtu int) int {
	ip := header.IPv6(b[l3:])
	if len(ip) < header.IPv6MinimumSize || ip[0]>>4 != 6 {
		return 0
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	if src.IsMulticast() || src.IsUnspecified() {
		return 0
	}
	if ip.NextHeader() == 58 && len(ip) > header.IPv6MinimumSize && isICMPError(true, ip[header.IPv6MinimumSize]) {
		return 0
	}
	const icmpHdr = 8
	// The error, quote included, fits the IPv6 minimum MTU.
	quote := min(len(ip), header.IPv6MinimumMTU-header.IPv6MinimumSize-icmpHdr)
	plen := icmpHdr + quote
	n := EthHeaderLen + header.IPv6MinimumSize + plen
	copy(out[0:6], b[6:12])
	copy(out[6:12], r.MAC[:])
	binary.BigEndian.PutUint16(out[12:14], etherTypeIPv6)
	o := header.IPv6(out[EthHeaderLen:])
	o.Encode(&header.IPv6Fields{
		PayloadLength: uint16(plen), TransportProtocol: 58, HopLimit: 255,
		SrcAddr: addr16(r.IPv6), DstAddr: addr16(src),
	})
	icmp := out[EthHeaderLen+header.IPv6MinimumSize : n]
	icmp[0], icmp[1], icmp[2], icmp[3] = 2, 0, 0, 0 // packet too big
	binary.BigEndian.PutUint32(icmp[4:8], uint32(max(mtu, header.IPv6MinimumMTU)))
	copy(icmp[icmpHdr:], ip[:quote])
	sum := pseudoHeaderSum(out[EthHeaderLen:], etherTypeIPv6, 58, plen)
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, sum))
	return n
}

func addr4(a netip.Addr) tcpip.Address  { return tcpip.AddrFrom4(a.As4()) }
func addr16(a netip.Addr) tcpip.Address { return tcpip.AddrFrom16(a.As16()) }
