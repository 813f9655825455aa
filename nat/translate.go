package nat

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Offsets of the fields rewritten, from the start of their header.
const (
	ipv4SrcOff  = 12
	ipv4DstOff  = 16
	ipv4CsumOff = 10
	ipv6SrcOff  = 8
	ipv6DstOff  = 24
	udpCsumOff  = 6
	icmpCsumOff = 2
	icmpIDOff   = 4
)

// rewrite rewrites the packet p was parsed from so that it carries the
// addresses and ports of to, updating every checksum incrementally. For
// ICMP echo only the identifier (to.sport) changes; the type stays.
func rewrite(b []byte, p *packet, to *tuple, partial bool) {
	l3 := rewriteAddrs(b, p.v6, to)
	rewriteL4(b[p.l4:p.end], p.proto, p.v6, to, l3, partial)
}

// rewriteAddrs sets the source and destination addresses of the IP header
// at b[0:] to those of to, updates the IPv4 header checksum, and returns
// the change for the transport pseudo-header.
func rewriteAddrs(b []byte, v6 bool, to *tuple) delta {
	var d delta
	if v6 {
		d.add(putAddr(b[ipv6SrcOff:ipv6SrcOff+16], to.src))
		d.add(putAddr(b[ipv6DstOff:ipv6DstOff+16], to.dst))
		return d
	}
	d.add(putAddr(b[ipv4SrcOff:ipv4SrcOff+4], to.src))
	d.add(putAddr(b[ipv4DstOff:ipv4DstOff+4], to.dst))
	ip := header.IPv4(b)
	ip.SetChecksum(d.full(ip.Checksum()))
	return d
}

// rewriteL4 sets the ports (or echo identifier) of transport header t to
// those of to and updates its checksum for them and for l3, the change of
// the pseudo-header addresses. A partial checksum covers only the
// pseudo-header, so only l3 is folded into it. A zero UDP checksum over
// IPv4 means "none" and stays zero.
func rewriteL4(t []byte, proto uint8, v6 bool, to *tuple, l3 delta, partial bool) {
	var l4 delta
	switch proto {
	case protoTCP:
		l4.add(put16(t[header.TCPSrcPortOffset:], to.sport))
		l4.add(put16(t[header.TCPDstPortOffset:], to.dport))
		tcp := header.TCP(t)
		if partial {
			tcp.SetChecksum(l3.partial(tcp.Checksum()))
		} else {
			tcp.SetChecksum(l3.plus(l4).full(tcp.Checksum()))
		}
	case protoUDP:
		l4.add(put16(t[0:], to.sport))
		l4.add(put16(t[2:], to.dport))
		udp := header.UDP(t)
		switch cs := udp.Checksum(); {
		case partial:
			udp.SetChecksum(l3.partial(cs))
		case cs == 0 && !v6:
		default:
			udp.SetChecksum(nonZero(l3.plus(l4).full(cs)))
		}
	case protoICMPv4:
		l4.add(put16(t[icmpIDOff:], to.sport))
		if !partial {
			setICMPChecksum(t, l4.full(icmpChecksum(t)))
		}
	case protoICMPv6:
		l4.add(put16(t[icmpIDOff:], to.sport))
		if partial {
			setICMPChecksum(t, l3.partial(icmpChecksum(t)))
		} else {
			setICMPChecksum(t, l3.plus(l4).full(icmpChecksum(t)))
		}
	}
}

// nonZero returns a UDP checksum as sent: a computed 0 goes out as 0xffff
// (RFC 768), since 0 means "no checksum".
func nonZero(cs uint16) uint16 {
	if cs == 0 {
		return 0xffff
	}
	return cs
}

func icmpChecksum(t []byte) uint16 { return binary.BigEndian.Uint16(t[icmpCsumOff:]) }

func setICMPChecksum(t []byte, cs uint16) { binary.BigEndian.PutUint16(t[icmpCsumOff:], cs) }
