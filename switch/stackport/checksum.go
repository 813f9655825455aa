package stackport

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// checksumsValid reports whether the Ethernet frame b's IPv4 header
// checksum and TCP, UDP or ICMP checksum are right. Frames it cannot parse
// (other EtherTypes, IPv6 extension headers, fragments) are left to the
// netstack, which drops what it cannot use: it reports true for them.
func checksumsValid(b []byte) bool {
	if len(b) < header.EthernetMinimumSize {
		return true
	}
	et := binary.BigEndian.Uint16(b[12:14])
	ip := b[header.EthernetMinimumSize:]
	var l4 []byte
	var proto uint8
	var pseudo uint16
	switch et {
	case 0x0800:
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
		l4 = ip[h.HeaderLength():h.TotalLength()]
		proto = h.Protocol()
		pseudo = checksum.Checksum(ip[12:20], 0)
	case 0x86dd:
		h := header.IPv6(ip)
		if !h.IsValid(len(ip)) {
			return true
		}
		l4 = ip[header.IPv6MinimumSize : header.IPv6MinimumSize+int(h.PayloadLength())]
		proto = h.NextHeader()
		pseudo = checksum.Checksum(ip[8:40], 0)
	default:
		return true
	}
	var tail [4]byte
	binary.BigEndian.PutUint16(tail[0:], uint16(proto))
	binary.BigEndian.PutUint16(tail[2:], uint16(len(l4)))
	switch proto {
	case 6, 58: // TCP, ICMPv6: always checksummed over the pseudo-header
		return checksum.Checksum(l4, checksum.Checksum(tail[:], pseudo)) == 0xffff
	case 17:
		if len(l4) < header.UDPMinimumSize {
			return false
		}
		if et == 0x0800 && header.UDP(l4).Checksum() == 0 {
			return true // no checksum (IPv4 only)
		}
		return checksum.Checksum(l4, checksum.Checksum(tail[:], pseudo)) == 0xffff
	case 1: // ICMPv4: no pseudo-header
		return checksum.Checksum(l4, 0) == 0xffff
	}
	return true
}
