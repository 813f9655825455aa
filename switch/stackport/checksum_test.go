package stackport

import (
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

func FuzzChecksumsValid(f *testing.F) {
	f.Add(udpFrame(false))
	f.Add(udpFrame(true))
	f.Fuzz(func(t *testing.T, b []byte) { checksumsValid(b) })
}
