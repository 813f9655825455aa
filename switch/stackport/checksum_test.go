package stackport

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func udpFrame(v6 bool) []byte {
	payload := []byte("switchyard checksum test")
	var b []byte
	var src, dst tcpip.Address
	if v6 {
		b = make([]byte, 14+40+8+len(payload))
		b[12], b[13] = 0x86, 0xdd
		src, dst = tcpip.AddrFrom16([16]byte{0xfd, 15: 1}), tcpip.AddrFrom16([16]byte{0xfd, 15: 2})
		header.IPv6(b[14:]).Encode(&header.IPv6Fields{PayloadLength: uint16(8 + len(payload)), TransportProtocol: 17, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	} else {
		b = make([]byte, 14+20+8+len(payload))
		b[12], b[13] = 0x08, 0x00
		src, dst = tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
		ip := header.IPv4(b[14:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(20 + 8 + len(payload)), TTL: 64, Protocol: 17, SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	l4 := b[len(b)-8-len(payload):]
	u := header.UDP(l4)
	u.Encode(&header.UDPFields{SrcPort: 1000, DstPort: 53, Length: uint16(len(l4))})
	copy(l4[8:], payload)
	sum := header.PseudoHeaderChecksum(17, src, dst, uint16(len(l4)))
	u.SetChecksum(^checksum.Checksum(l4, sum))
	return b
}

func TestChecksumsValid(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		b := udpFrame(v6)
		if !checksumsValid(b) {
			t.Fatalf("v6=%v: a correct frame was rejected", v6)
		}
		b[len(b)-1] ^= 0x40
		if checksumsValid(b) {
			t.Fatalf("v6=%v: a corrupted payload was accepted", v6)
		}
	}
	b := udpFrame(false)
	b[14+8] ^= 1 // TTL: the IPv4 header checksum no longer matches
	if checksumsValid(b) {
		t.Fatal("a corrupted IPv4 header was accepted")
	}
}

// FuzzChecksumsValid compares checksumsValid with a reference written
// with gVisor's header views and its pseudo-header and checksum code. With
// fix, the frame's checksums are first made right (by the reference), so
// that the fuzzer reaches frames that must be accepted, not only ones
// that must be refused.
func FuzzChecksumsValid(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		f.Add(udpFrame(v6), false)
		// The same bytes as TCP and as ICMP, checksums made right.
		for _, proto := range []byte{6, map[bool]byte{false: 1, true: 58}[v6]} {
			b := udpFrame(v6)
			if v6 {
				b[14+6] = proto
			} else {
				b[14+9] = proto
			}
			f.Add(b, true)
		}
		zero := udpFrame(v6)
		zero[len(zero)-len("switchyard checksum test")-2] = 0
		zero[len(zero)-len("switchyard checksum test")-1] = 0
		f.Add(zero, false)
	}
	frag := udpFrame(false)
	frag[14+6] |= 0x20 // more fragments
	f.Add(frag, true)
	f.Add([]byte{1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			refFix(b)
		}
		if got, want := checksumsValid(b), refChecksumsValid(b); got != want {
			t.Fatalf("checksumsValid = %v, reference %v, for % x", got, want, b)
		}
	})
}

// refParse finds what checksumsValid checks in frame b: the IPv4 header
// (nil for IPv6), the transport bytes the IP header says it carries, the
// addresses and the protocol. ok is false where nothing is checked (but
// the IPv4 header checksum, for a fragment).
func refParse(b []byte) (ip4 header.IPv4, l4 []byte, src, dst tcpip.Address, proto tcpip.TransportProtocolNumber, ok bool) {
	if len(b) < header.EthernetMinimumSize {
		return nil, nil, src, dst, 0, false
	}
	ip := b[header.EthernetMinimumSize:]
	switch header.Ethernet(b).Type() {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(ip)
		if !h.IsValid(len(ip)) {
			return nil, nil, src, dst, 0, false
		}
		frag := h.FragmentOffset() != 0 || h.More()
		return h, h.Payload(), h.SourceAddress(), h.DestinationAddress(), tcpip.TransportProtocolNumber(h.Protocol()), !frag
	case header.IPv6ProtocolNumber:
		h := header.IPv6(ip)
		if !h.IsValid(len(ip)) {
			return nil, nil, src, dst, 0, false
		}
		return nil, h.Payload(), h.SourceAddress(), h.DestinationAddress(), tcpip.TransportProtocolNumber(h.NextHeader()), true
	}
	return nil, nil, src, dst, 0, false
}

// refChecksumsValid is the reference for checksumsValid.
func refChecksumsValid(b []byte) bool {
	ip4, l4, src, dst, proto, ok := refParse(b)
	if ip4 != nil && !ip4.IsChecksumValid() {
		return false
	}
	if !ok {
		return true
	}
	pseudo := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	switch proto {
	case header.TCPProtocolNumber, header.ICMPv6ProtocolNumber:
		return checksum.Checksum(l4, pseudo) == 0xffff
	case header.UDPProtocolNumber:
		if len(l4) < header.UDPMinimumSize {
			return false
		}
		return ip4 != nil && header.UDP(l4).Checksum() == 0 || checksum.Checksum(l4, pseudo) == 0xffff
	case header.ICMPv4ProtocolNumber:
		return checksum.Checksum(l4, 0) == 0xffff
	}
	return true
}

// refFix writes right checksums into b where the reference finds fields
// to write them in.
func refFix(b []byte) {
	ip4, l4, src, dst, proto, ok := refParse(b)
	if ip4 != nil {
		ip4.SetChecksum(0)
		ip4.SetChecksum(^ip4.CalculateChecksum())
	}
	if !ok {
		return
	}
	var field int
	sum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	switch proto {
	case header.TCPProtocolNumber:
		field = header.TCPChecksumOffset
	case header.UDPProtocolNumber:
		field = 6 // gVisor exports no UDP checksum offset
	case header.ICMPv6ProtocolNumber:
		field = header.ICMPv6ChecksumOffset
	case header.ICMPv4ProtocolNumber:
		field, sum = header.ICMPv6ChecksumOffset, 0 // the same offset in ICMPv4
	default:
		return
	}
	if len(l4) < field+2 {
		return
	}
	l4[field], l4[field+1] = 0, 0
	binary.BigEndian.PutUint16(l4[field:], ^checksum.Checksum(l4, sum))
}
