package icmperr

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func udp4(src, dst string) []byte {
	b := make([]byte, 20+8+10)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: 17,
		SrcAddr: tcpip.AddrFrom4(netip.MustParseAddr(src).As4()), DstAddr: tcpip.AddrFrom4(netip.MustParseAddr(dst).As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.UDP(b[20:]).Encode(&header.UDPFields{SrcPort: 40000, DstPort: 53, Length: 18})
	return b
}

func TestPortUnreachable4(t *testing.T) {
	out := make([]byte, MaxLen)
	pkt := udp4("10.0.0.2", "192.0.2.9")
	eth := Eth{Dst: [6]byte{2, 0, 0, 0, 0, 2}, Src: [6]byte{2, 0, 0, 0, 0, 1}}
	n := Unreachable4(out, eth, netip.MustParseAddr("192.0.2.9"), pkt, CodePortUnreachable4, 0)
	if n != 14+20+8+28 {
		t.Fatalf("frame length %d, want %d", n, 14+20+8+28)
	}
	ip := header.IPv4(out[14:n])
	if !ip.IsChecksumValid() || ip.DestinationAddress().String() != "10.0.0.2" || ip.SourceAddress().String() != "192.0.2.9" {
		t.Fatalf("bad IP header: %s → %s", ip.SourceAddress(), ip.DestinationAddress())
	}
	icmp := header.ICMPv4(ip.Payload())
	if icmp.Type() != 3 || icmp.Code() != 3 || checksum.Checksum(icmp, 0) != 0xffff {
		t.Fatalf("ICMP type %d code %d, checksum ok=%v", icmp.Type(), icmp.Code(), checksum.Checksum(icmp, 0) == 0xffff)
	}
	// Never an error about an error.
	n2 := Unreachable4(make([]byte, MaxLen), eth, netip.MustParseAddr("10.0.0.1"), out[14:n], CodeHostUnreachable4, 0)
	if n2 != 0 {
		t.Fatal("built an ICMP error about an ICMP error")
	}
}

func FuzzBuilders(f *testing.F) {
	f.Add(udp4("10.0.0.2", "10.0.0.3"), uint8(3))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 17, 64}, uint8(4))
	f.Fuzz(func(t *testing.T, ip []byte, code uint8) {
		out := make([]byte, MaxLen)
		eth := Eth{}
		if n := Unreachable4(out, eth, netip.MustParseAddr("10.0.0.1"), ip, code, 1400); n > MaxLen {
			t.Fatalf("wrote %d bytes", n)
		}
		if n := Error6(out, eth, netip.MustParseAddr("fd00::1"), ip, TypeDstUnreachable6, code, 0); n > MaxLen {
			t.Fatalf("wrote %d bytes", n)
		}
	})
}
