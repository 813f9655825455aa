package stackport

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/internal/csum"
)

// checksumsValid reports whether the Ethernet frame b's IPv4 header
// checksum and TCP, UDP or ICMP checksum are right. Frames it cannot parse
// (other EtherTypes, IPv6 extension headers, fragments) are left to the
// netstack, which drops what it cannot use: it reports true for them.
func checksumsValid(b []byte) bool {
	if len(b) < header.EthernetMinimumSize {
		return true
	}
	ip := b[header.EthernetMinimumSize:]
	var l4 []byte
	var proto uint8
	var v6 bool
	switch header.Ethernet(b).Type() {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(ip)
		if !h.IsValid(len(ip)) {
			return true
		}
		if !h.IsChecksumValid() {
			return false
		}
		if h.FragmentOffset() != 0 || h.More() {
			return true
		}
		l4, proto = ip[h.HeaderLength():h.TotalLength()], h.Protocol()
	case header.IPv6ProtocolNumber:
		h := header.IPv6(ip)
		if !h.IsValid(len(ip)) {
			return true
		}
		l4, proto, v6 = ip[header.IPv6MinimumSize:header.IPv6MinimumSize+int(h.PayloadLength())], h.NextHeader(), true
	default:
		return true
	}
	tp := tcpip.TransportProtocolNumber(proto)
	switch tp {
	case header.TCPProtocolNumber, header.ICMPv6ProtocolNumber:
	case header.UDPProtocolNumber:
		if len(l4) < header.UDPMinimumSize {
			return false
		}
		if !v6 && header.UDP(l4).Checksum() == 0 {
			return true // no checksum (IPv4 only)
		}
	case header.ICMPv4ProtocolNumber: // no pseudo-header
		return checksum.Checksum(l4, 0) == 0xffff
	default:
		return true
	}
	return checksum.Checksum(l4, csum.Pseudo(ip, v6, tp, len(l4))) == 0xffff
}
