package nat

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// packet is what Process reads from an IP packet: offsets into it and the
// fields conntrack keys on. It lives on the caller's stack.
type packet struct {
	v6    bool
	end   int // the IP packet's length (bytes after it are padding)
	l4    int // offset of the transport header
	proto uint8
	kind  kind
	src   netip.Addr
	dst   netip.Addr
	// sport and dport are the ports; for ICMP echo, the identifier and the
	// ICMP type (which tells a request from a reply in the tuple).
	sport, dport uint16
	flags        header.TCPFlags
}

// kind classifies a packet for Process.
type kind uint8

const (
	kindOther     kind = iota // not translatable: other protocols, fragments, truncated headers
	kindFragment              // a fragment: passed, counted
	kindFlow                  // TCP, UDP or ICMP echo with a complete header
	kindICMPError             // ICMP error: may be RELATED to a flow
)

// ICMP types this package reads.
const (
	icmp4EchoReply   = uint8(header.ICMPv4EchoReply)
	icmp4Echo        = uint8(header.ICMPv4Echo)
	icmp6EchoRequest = uint8(header.ICMPv6EchoRequest)
	icmp6EchoReply   = uint8(header.ICMPv6EchoReply)
)

// maxExtHeaders bounds the IPv6 extension headers walked before giving up.
const maxExtHeaders = 8

// parse reads the IP and transport headers of b into p. It reports false
// if b is not an IPv4 or IPv6 packet whose header fits in b; the transport
// part is then classified in p.kind.
func parse(b []byte, p *packet) bool {
	switch header.IPVersion(b) {
	case header.IPv4Version:
		ip := header.IPv4(b)
		if len(b) < header.IPv4MinimumSize {
			return false
		}
		hl, tl := int(ip.HeaderLength()), int(ip.TotalLength())
		if hl < header.IPv4MinimumSize || tl < hl || tl > len(b) {
			return false
		}
		p.v6, p.end, p.l4, p.proto = false, tl, hl, ip.Protocol()
		p.src = netip.AddrFrom4([4]byte(ip.SourceAddressSlice()))
		p.dst = netip.AddrFrom4([4]byte(ip.DestinationAddressSlice()))
		if ip.More() || ip.FragmentOffset() != 0 {
			p.kind = kindFragment
			return true
		}
	case header.IPv6Version:
		ip := header.IPv6(b)
		if len(b) < header.IPv6MinimumSize {
			return false
		}
		end := header.IPv6MinimumSize + int(ip.PayloadLength())
		if end > len(b) {
			return false
		}
		p.v6, p.end = true, end
		p.src = netip.AddrFrom16([16]byte(ip.SourceAddressSlice()))
		p.dst = netip.AddrFrom16([16]byte(ip.DestinationAddressSlice()))
		var k kind
		if p.l4, p.proto, k = skipExtHeaders(b[:end], ip.NextHeader()); k != kindFlow {
			p.kind = k
			return true
		}
	default:
		return false
	}
	p.kind = parseL4(b[:p.end], p, true)
	return true
}

// skipExtHeaders walks the IPv6 extension headers of packet b, whose fixed
// header names next as the first. It returns the offset and protocol of
// the header after them, and kindFlow if that is where the transport
// header is. It returns kindFragment for a fragment header, and kindOther
// for a routing header (the destination in the pseudo-header would be
// the last segment's) or a chain that is truncated or too long.
func skipExtHeaders(b []byte, next uint8) (off int, proto uint8, k kind) {
	off = header.IPv6MinimumSize
	for range maxExtHeaders {
		switch header.IPv6ExtensionHeaderIdentifier(next) {
		case header.IPv6HopByHopOptionsExtHdrIdentifier, header.IPv6DestinationOptionsExtHdrIdentifier:
			if off+8 > len(b) {
				return off, next, kindOther
			}
			next, off = b[off], off+(int(b[off+1])+1)*8
			if off > len(b) {
				return off, next, kindOther
			}
		case header.IPv6FragmentExtHdrIdentifier:
			return off, next, kindFragment
		case header.IPv6RoutingExtHdrIdentifier:
			return off, next, kindOther
		default:
			return off, next, kindFlow
		}
	}
	return off, next, kindOther
}

// parseL4 reads the transport header at p.l4 of b (which ends where the
// IP packet or the quote ends). whole says that b holds the whole segment,
// so that lengths can be checked; a header quoted in an ICMP error is cut
// short and only its first eight bytes are needed.
func parseL4(b []byte, p *packet, whole bool) kind {
	t := b[p.l4:]
	switch p.proto {
	case protoTCP:
		if whole {
			if len(t) < header.TCPMinimumSize {
				return kindOther
			}
			if do := int(header.TCP(t).DataOffset()); do < header.TCPMinimumSize || do > len(t) {
				return kindOther
			}
			p.flags = header.TCP(t).Flags()
		} else if len(t) < 8 {
			return kindOther
		}
		p.sport, p.dport = header.TCP(t).SourcePort(), header.TCP(t).DestinationPort()
		return kindFlow
	case protoUDP:
		if len(t) < header.UDPMinimumSize {
			return kindOther
		}
		if l := int(header.UDP(t).Length()); whole && (l < header.UDPMinimumSize || l > len(t)) {
			return kindOther
		}
		p.sport, p.dport = header.UDP(t).SourcePort(), header.UDP(t).DestinationPort()
		return kindFlow
	case protoICMPv4, protoICMPv6:
		if p.proto != icmpProto(p.v6) || len(t) < header.ICMPv4MinimumSize {
			return kindOther
		}
		typ := t[0]
		switch {
		case isEcho(typ, p.v6):
			// The identifier sits where it does in ICMPv4 in ICMPv6 too.
			p.sport, p.dport = header.ICMPv4(t).Ident(), uint16(typ)
			return kindFlow
		case whole && isError(typ, p.v6):
			return kindICMPError
		}
	}
	return kindOther
}

func icmpProto(v6 bool) uint8 {
	if v6 {
		return protoICMPv6
	}
	return protoICMPv4
}

// isEcho reports whether typ is an echo request or reply.
func isEcho(typ uint8, v6 bool) bool {
	if v6 {
		return typ == icmp6EchoRequest || typ == icmp6EchoReply
	}
	return typ == icmp4Echo || typ == icmp4EchoReply
}

// isRequest reports whether typ is an echo request.
func isRequest(typ uint8, v6 bool) bool {
	if v6 {
		return typ == icmp6EchoRequest
	}
	return typ == icmp4Echo
}

// echoInverse returns the echo type that answers typ (request ↔ reply).
func echoInverse(typ uint8, v6 bool) uint8 {
	switch {
	case v6 && typ == icmp6EchoRequest:
		return icmp6EchoReply
	case v6:
		return icmp6EchoRequest
	case typ == icmp4Echo:
		return icmp4EchoReply
	}
	return icmp4Echo
}

// isError reports whether typ is an ICMP error that quotes the packet it
// is about and is RELATED to that packet's flow: destination unreachable
// (fragmentation needed and packet too big included), time exceeded and
// parameter problem. Redirects and source quench are not translated.
func isError(typ uint8, v6 bool) bool {
	if v6 {
		switch header.ICMPv6Type(typ) {
		case header.ICMPv6DstUnreachable, header.ICMPv6PacketTooBig, header.ICMPv6TimeExceeded, header.ICMPv6ParamProblem:
			return true
		}
		return false
	}
	switch header.ICMPv4Type(typ) {
	case header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
		return true
	}
	return false
}

// parseQuoted reads the packet quoted in an ICMP error: b starts at its IP
// header and is cut short. It must be of family v6 (as the error), carry a
// complete IP header and at least the first eight bytes of a TCP, UDP or
// ICMP echo header, and not be a later fragment.
func parseQuoted(b []byte, v6 bool, p *packet) bool {
	if v6 {
		if header.IPVersion(b) != header.IPv6Version || len(b) < header.IPv6MinimumSize {
			return false
		}
		ip := header.IPv6(b)
		var k kind
		if p.l4, p.proto, k = skipExtHeaders(b, ip.NextHeader()); k != kindFlow {
			return false
		}
		p.src = netip.AddrFrom16([16]byte(ip.SourceAddressSlice()))
		p.dst = netip.AddrFrom16([16]byte(ip.DestinationAddressSlice()))
	} else {
		if header.IPVersion(b) != header.IPv4Version || len(b) < header.IPv4MinimumSize {
			return false
		}
		ip := header.IPv4(b)
		hl := int(ip.HeaderLength())
		if hl < header.IPv4MinimumSize || hl > len(b) || ip.FragmentOffset() != 0 {
			return false
		}
		p.l4, p.proto = hl, ip.Protocol()
		p.src = netip.AddrFrom4([4]byte(ip.SourceAddressSlice()))
		p.dst = netip.AddrFrom4([4]byte(ip.DestinationAddressSlice()))
	}
	p.v6, p.end = v6, len(b)
	return parseL4(b, p, false) == kindFlow
}
