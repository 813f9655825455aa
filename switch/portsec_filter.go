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

// maxIPv6ExtHeaders bounds the extension-header walk in icmpv6Of.
const maxIPv6ExtHeaders = 8

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
	icmp := icmpv6Of(p)
	var typ header.ICMPv6Type
	if len(icmp) > 0 {
		typ = icmp.Type()
	}
	if srcIP.IsUnspecified() {
		// RFC 4862 (DAD) and RFC 3590 (MLD before an address is ready)
		// let a host send from :: before it owns an address.
		switch typ {
		case header.ICMPv6NeighborSolicit, header.ICMPv6MulticastListenerReport, header.ICMPv6MulticastListenerV2Report:
		default:
			return DropSpoofedIP, false
		}
	} else if !b.permits(srcIP) {
		return DropSpoofedIP, false
	}
	switch typ {
	case header.ICMPv6RouterAdvert:
		return DropRAGuard, false
	case header.ICMPv6NeighborSolicit:
		return b.checkNS(icmp.MessageBody(), srcIP, src)
	case header.ICMPv6NeighborAdvert:
		return b.checkNA(icmp.MessageBody(), src)
	}
	return 0, true
}

// icmpv6Of returns the ICMPv6 message of IPv6 packet p, past any
// hop-by-hop, routing and destination-options headers, or nil if p carries
// none (or only a later fragment of one). gVisor's extension-header
// iterator works on buffers and allocates; this walk reads in place.
func icmpv6Of(p []byte) header.ICMPv6 {
	next := header.IPv6(p).NextHeader()
	rest := p[header.IPv6MinimumSize:]
	for range maxIPv6ExtHeaders {
		switch header.IPv6ExtensionHeaderIdentifier(next) {
		case header.IPv6HopByHopOptionsExtHdrIdentifier, header.IPv6RoutingExtHdrIdentifier,
			header.IPv6DestinationOptionsExtHdrIdentifier:
			if len(rest) < 8 {
				return nil
			}
			n := (int(rest[1]) + 1) * 8
			if len(rest) < n {
				return nil
			}
			next, rest = rest[0], rest[n:]
		case header.IPv6FragmentExtHdrIdentifier:
			if len(rest) < 8 || header.IPv6Fragment(rest[:8]).FragmentOffset() != 0 {
				return nil
			}
			next, rest = rest[0], rest[8:]
		default:
			if next != uint8(header.ICMPv6ProtocolNumber) || len(rest) < header.ICMPv6MinimumSize {
				return nil
			}
			return header.ICMPv6(rest)
		}
	}
	return nil
}

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
	if !linkLayerOptionsAre(ns.Options(), ndpOptSourceLL, src) {
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
	if !linkLayerOptionsAre(na.Options(), ndpOptTargetLL, src) {
		return DropSpoofedND, false
	}
	return 0, true
}

// linkLayerOptionsAre reports whether every NDP option of type typ in opts
// carries mac, and the options are well formed (a zero length makes
// receivers discard the message, RFC 4861 section 4.6). gVisor's option
// iterator returns options as interfaces, which allocates.
func linkLayerOptionsAre(opts []byte, typ byte, mac MAC) bool {
	for len(opts) >= 2 {
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return false
		}
		if opts[0] == typ && (n < header.NDPLinkLayerAddressSize || MAC(opts[2:8]) != mac) {
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
