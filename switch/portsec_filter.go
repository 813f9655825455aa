package vswitch

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The port-security checks on the forwarding path. Each returns the reason
// to drop the frame, or ok = true. None allocates: headers are gVisor views
// over the frame's bytes, addresses netip values.

// NDP option types for link-layer addresses (RFC 4861 section 4.6.1);
// gVisor's header package keeps its own unexported.
const (
	ndpOptSourceLL = 1
	ndpOptTargetLL = 2
)

// check applies b to frame d, at least EthHeaderLen long, whose source MAC
// is src.
func (b *binding) check(d []byte, src MAC) (DropReason, bool) {
	if !b.macSpoofing && src != b.mac {
		return DropSpoofed, false
	}
	p := d[EthHeaderLen:]
	switch header.Ethernet(d).Type() {
	case header.IPv4ProtocolNumber:
		return b.checkIPv4(p)
	case header.IPv6ProtocolNumber:
		return b.checkIPv6(p, src)
	case header.ARPProtocolNumber:
		return b.checkARP(p, src)
	}
	return DropEtherType, false
}

func (b *binding) checkIPv4(p []byte) (DropReason, bool) {
	if len(p) < header.IPv4MinimumSize || header.IPVersion(p) != header.IPv4Version {
		return DropMalformed, false
	}
	ip := header.IPv4(p)
	srcIP := netip.AddrFrom4(ip.SourceAddress().As4())
	if srcIP.IsUnspecified() {
		if isDHCPClientToServer(ip) {
			return 0, true
		}
		return DropSpoofedIP, false
	}
	if !b.permits(srcIP) {
		return DropSpoofedIP, false
	}
	return 0, true
}

// isDHCPClientToServer reports whether ip is UDP from port 68 to port 67:
// a DHCP client's DISCOVER or REQUEST, sent before it has an address.
func isDHCPClientToServer(ip header.IPv4) bool {
	hl := int(ip.HeaderLength())
	if ip.Protocol() != uint8(header.UDPProtocolNumber) || ip.FragmentOffset() != 0 ||
		hl < header.IPv4MinimumSize || len(ip) < hl+header.UDPMinimumSize {
		return false
	}
	udp := header.UDP(ip[hl:])
	return udp.SourcePort() == 68 && udp.DestinationPort() == 67
}

func (b *binding) checkIPv6(p []byte, src MAC) (DropReason, bool) {
	if len(p) < header.IPv6MinimumSize || header.IPVersion(p) != header.IPv6Version {
		return DropMalformed, false
	}
	ip := header.IPv6(p)
	srcIP := netip.AddrFrom16(ip.SourceAddress().As16())
	icmp, chain := icmpv6Of(p)
	switch chain {
	case chainTruncated:
		return DropMalformed, false
	case chainFirstFragmentCut:
		// RFC 7113 section 3 rule 4: a first fragment must carry the
		// whole header chain, or an RA could hide in the second one.
		return DropRAGuard, false
	}
	var typ header.ICMPv6Type
	if len(icmp) > 0 {
		typ = icmp.Type()
	}
	if srcIP.IsUnspecified() {
		// RFC 4862 (DAD), RFC 3590 (MLD before an address is ready) and
		// RFC 4861 section 6.3.7 (router solicitations) let a host send
		// from :: before it owns an address.
		switch typ {
		case header.ICMPv6NeighborSolicit, header.ICMPv6MulticastListenerReport, header.ICMPv6MulticastListenerV2Report,
			header.ICMPv6RouterSolicit:
		default:
			return DropSpoofedIP, false
		}
	} else if !b.permits(srcIP) {
		return DropSpoofedIP, false
	}
	switch typ {
	case header.ICMPv6RouterAdvert, header.ICMPv6RedirectMsg:
		// Only routers send these, and an endpoint is never the
		// network's router: the gateway is.
		return DropRAGuard, false
	case header.ICMPv6NeighborSolicit:
		return b.checkNS(icmp.MessageBody(), srcIP, src)
	case header.ICMPv6NeighborAdvert:
		return b.checkNA(icmp.MessageBody(), src)
	case header.ICMPv6RouterSolicit:
		// A router caches the solicitation's source link-layer option
		// for its source address (RFC 4861 section 6.2.6).
		if body := icmp.MessageBody(); len(body) < header.NDPRSMinimumSize || !linkLayerOptionsAre(body[header.NDPRSMinimumSize:], src) {
			return DropSpoofedND, false
		}
	}
	return 0, true
}

// chainResult is what the walk of an IPv6 header chain found.
type chainResult uint8

const (
	// chainComplete: the walk reached the upper-layer header.
	chainComplete chainResult = iota
	// chainLaterFragment: a fragment past the first; its headers were
	// checked in the first fragment, without which it cannot be
	// reassembled.
	chainLaterFragment
	// chainFirstFragmentCut: a first fragment that ends inside the
	// header chain (RFC 7113's evasion; RFC 8200 section 4.5 forbids it).
	chainFirstFragmentCut
	// chainTruncated: an unfragmented packet that ends inside its header
	// chain.
	chainTruncated
)

// icmpv6Of walks the header chain of IPv6 packet p, past every extension
// header, however many (RFC 7113 rule 3: no limit on their number), and
// returns the ICMPv6 message it ends in, or nil if it ends in another
// upper layer. The walk is bounded by the packet's length: each extension
// header is at least 8 bytes. gVisor's extension-header iterator works on
// buffers and allocates; this walk reads in place.
func icmpv6Of(p []byte) (header.ICMPv6, chainResult) {
	ip := header.IPv6(p)
	next := ip.NextHeader()
	rest := p[header.IPv6MinimumSize:]
	// The receiver trims the packet to its payload length; trailing bytes
	// must not hide or supply headers. Zero is a jumbogram's (RFC 2675).
	if n := int(ip.PayloadLength()); n != 0 && n < len(rest) {
		rest = rest[:n]
	}
	cut := chainTruncated
	for {
		var n int
		switch next {
		case uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), uint8(header.IPv6RoutingExtHdrIdentifier),
			uint8(header.IPv6DestinationOptionsExtHdrIdentifier),
			ipProtoMobility, ipProtoHIP, ipProtoShim6, ipProtoExperiment1, ipProtoExperiment2:
			if len(rest) < 2 {
				return nil, cut
			}
			n = (int(rest[1]) + 1) * 8
		case ipProtoAH:
			// RFC 4302: the length is in 4-byte units, minus 2.
			if len(rest) < 2 {
				return nil, cut
			}
			n = (int(rest[1]) + 2) * 4
		case uint8(header.IPv6FragmentExtHdrIdentifier):
			if len(rest) < header.IPv6FragmentHeaderSize {
				return nil, cut
			}
			if header.IPv6Fragment(rest[:header.IPv6FragmentHeaderSize]).FragmentOffset() != 0 {
				return nil, chainLaterFragment
			}
			cut = chainFirstFragmentCut
			n = header.IPv6FragmentHeaderSize
		case uint8(header.ICMPv6ProtocolNumber):
			if len(rest) < header.ICMPv6MinimumSize {
				return nil, cut
			}
			return header.ICMPv6(rest), chainComplete
		default:
			// Any other upper layer (TCP, UDP, ESP, no next header, …).
			return nil, chainComplete
		}
		if len(rest) < n {
			return nil, cut
		}
		next, rest = rest[0], rest[n:]
	}
}

// IPv6 extension headers gVisor's header package does not name (IANA's
// "IPv6 Extension Header Types"); each but AH has the generic layout of
// RFC 8200 section 4.
const (
	ipProtoAH          = 51
	ipProtoMobility    = 135
	ipProtoHIP         = 139
	ipProtoShim6       = 140
	ipProtoExperiment1 = 253
	ipProtoExperiment2 = 254
)

// checkNS: a solicitation's source link-layer option must be the frame's
// source MAC; one from :: (duplicate address detection) may only probe for
// an address the endpoint owns.
func (b *binding) checkNS(body []byte, srcIP netip.Addr, src MAC) (DropReason, bool) {
	if len(body) < header.NDPNSMinimumSize {
		return DropSpoofedND, false
	}
	ns := header.NDPNeighborSolicit(body)
	if srcIP.IsUnspecified() && !b.permits(netip.AddrFrom16(ns.TargetAddress().As16())) {
		return DropSpoofedND, false
	}
	if !linkLayerOptionsAre(ns.Options(), src) {
		return DropSpoofedND, false
	}
	return 0, true
}

// checkNA: an advertisement may only speak for an address the endpoint
// owns, with the frame's source MAC as its target link-layer option.
func (b *binding) checkNA(body []byte, src MAC) (DropReason, bool) {
	if len(body) < header.NDPNAMinimumSize {
		return DropSpoofedND, false
	}
	na := header.NDPNeighborAdvert(body)
	if !b.permits(netip.AddrFrom16(na.TargetAddress().As16())) {
		return DropSpoofedND, false
	}
	if !linkLayerOptionsAre(na.Options(), src) {
		return DropSpoofedND, false
	}
	return 0, true
}

// linkLayerOptionsAre reports whether every link-layer address option in
// opts carries mac, and the options are well formed (a zero length makes
// receivers discard the message, RFC 4861 section 4.6). Both kinds are
// checked in every message, not only the one it is defined with (source in
// a solicitation, target in an advertisement): a receiver that parses
// every option, as Linux's ndisc_parse_options does, would believe either.
// gVisor's option iterator returns options as interfaces, which allocates.
func linkLayerOptionsAre(opts []byte, mac MAC) bool {
	for len(opts) >= 2 {
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return false
		}
		if (opts[0] == ndpOptSourceLL || opts[0] == ndpOptTargetLL) &&
			(n < header.NDPLinkLayerAddressSize || MAC(opts[2:8]) != mac) {
			return false
		}
		opts = opts[n:]
	}
	return true
}

// checkARP: the sender hardware address must be the frame's source MAC and
// the sender address one the endpoint owns (0.0.0.0 for an RFC 5227 probe).
func (b *binding) checkARP(p []byte, src MAC) (DropReason, bool) {
	arp := header.ARP(p)
	if !arp.IsValid() || MAC(arp.HardwareAddressSender()) != src {
		return DropSpoofedARP, false
	}
	spa := netip.AddrFrom4([4]byte(arp.ProtocolAddressSender()))
	if spa.IsUnspecified() && arp.Op() == header.ARPRequest {
		return 0, true
	}
	if !b.permits(spa) {
		return DropSpoofedARP, false
	}
	return 0, true
}
