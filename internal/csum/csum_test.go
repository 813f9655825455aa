package csum

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// refSum is RFC 1071 written out from scratch, the reference the fuzzers
// hold the gVisor-based code to: the one's-complement sum of the 16-bit
// big-endian words of b, an odd last byte padded with zero.
func refSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refPseudo builds the pseudo-header of RFC 768/793 (IPv4) or RFC 8200
// section 8.1 (IPv6) byte by byte and sums it.
func refPseudo(ip []byte, v6 bool, proto uint8, n int) uint16 {
	var ph []byte
	if v6 {
		ph = append(ph, ip[8:40]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(uint16(n)))
		ph = append(ph, 0, 0, 0, proto)
	} else {
		ph = append(ph, ip[12:20]...)
		ph = append(ph, 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(n))
	}
	return refSum(ph)
}

func ipv4Header() []byte {
	return []byte{0x45, 0, 0, 48, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
}

func ipv6Header() []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, 17, 64
	copy(h[8:], []byte{0xfd, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
	copy(h[24:], []byte{0xfd, 0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6, 0xf5, 0xf4, 0xf3, 0xf2})
	return h
}

func TestPseudoKnownValue(t *testing.T) {
	// 10.0.0.1 → 10.0.0.2, TCP, 28 bytes: 0x0a00+0x0001+0x0a00+0x0002+6+28.
	if got, want := Pseudo(ipv4Header(), false, 6, 28), uint16(0x0a00+1+0x0a00+2+6+28); got != want {
		t.Fatalf("Pseudo = %#04x, want %#04x", got, want)
	}
}

func FuzzPseudo(f *testing.F) {
	f.Add(ipv4Header(), false, uint8(6), uint16(28))
	f.Add(ipv6Header(), true, uint8(17), uint16(1480))
	f.Add(bytes.Repeat([]byte{0xff}, 40), true, uint8(58), uint16(65535))
	f.Add(bytes.Repeat([]byte{0xff}, 20), false, uint8(255), uint16(0))
	f.Fuzz(func(t *testing.T, ip []byte, v6 bool, proto uint8, n uint16) {
		if v6 && len(ip) < 40 || len(ip) < 20 {
			return
		}
		got := Pseudo(ip, v6, tcpip.TransportProtocolNumber(proto), int(n))
		if want := refPseudo(ip, v6, proto, int(n)); got != want {
			t.Fatalf("Pseudo(v6=%v, proto %d, %d bytes) = %#04x, reference %#04x", v6, proto, n, got, want)
		}
		if want := gvisorPseudo(ip, v6, tcpip.TransportProtocolNumber(proto), int(n)); got != want {
			t.Fatalf("Pseudo(v6=%v, proto %d, %d bytes) = %#04x, gVisor's %#04x", v6, proto, n, got, want)
		}
	})
}

// gvisorPseudo is the pseudo-header sum as gVisor computes it, from
// addresses taken out of its header views.
func gvisorPseudo(ip []byte, v6 bool, proto tcpip.TransportProtocolNumber, n int) uint16 {
	if v6 {
		h := header.IPv6(ip)
		return header.PseudoHeaderChecksum(proto, h.SourceAddress(), h.DestinationAddress(), uint16(n))
	}
	h := header.IPv4(ip)
	return header.PseudoHeaderChecksum(proto, h.SourceAddress(), h.DestinationAddress(), uint16(n))
}

var sink uint16

// BenchmarkPseudo compares Pseudo with gVisor's PseudoHeaderChecksum fed
// from header views, the cost that made Pseudo sum the bytes in place.
func BenchmarkPseudo(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		ip := ipv4Header()
		if v6 {
			ip = ipv6Header()
		}
		for name, f := range map[string]func([]byte, bool, tcpip.TransportProtocolNumber, int) uint16{"csum": Pseudo, "gvisor": gvisorPseudo} {
			b.Run(fmt.Sprintf("v6=%v/%s", v6, name), func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					sink += f(ip, v6, 6, i)
				}
			})
		}
	}
}

func TestField(t *testing.T) {
	for _, tc := range []struct {
		sum  uint16
		udp  bool
		want uint16
	}{{0x1234, false, 0xedcb}, {0x1234, true, 0xedcb}, {0xffff, false, 0}, {0xffff, true, 0xffff}, {0, true, 0xffff}} {
		if got := Field(tc.sum, tc.udp); got != tc.want {
			t.Errorf("Field(%#04x, udp=%v) = %#04x, want %#04x", tc.sum, tc.udp, got, tc.want)
		}
	}
}

// FuzzComplete completes arbitrary "partial checksums" and compares the
// field written with the reference; everything else must stay as it was,
// and a refused frame must not change at all.
func FuzzComplete(f *testing.F) {
	seg := append(make([]byte, 14), ipv4Header()...)
	seg = append(seg, []byte{0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 1, 0, 0x14, 0x1c, 0, 0, 'h', 'i', '!'}...)
	f.Add(seg, uint16(34), uint16(16))
	f.Add(seg, uint16(34), uint16(22))
	f.Add(seg, uint16(13), uint16(16))
	f.Add([]byte{}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, start, off uint16) {
		const floor = 14
		in := bytes.Clone(b)
		s, field := int(start), int(start)+int(off)
		ok := Complete(b, s, field, floor)
		if wantOK := s >= floor && field+2 <= len(b); ok != wantOK {
			t.Fatalf("Complete(%d bytes, start %d, field %d) = %v, want %v", len(b), s, field, ok, wantOK)
		}
		if !ok {
			if !bytes.Equal(b, in) {
				t.Fatal("a refused frame was changed")
			}
			return
		}
		want := ^refSum(in[s:])
		if want == 0 {
			want = 0xffff
		}
		if got := binary.BigEndian.Uint16(b[field:]); got != want {
			t.Fatalf("field %#04x, reference %#04x", got, want)
		}
		if !bytes.Equal(b[:field], in[:field]) || !bytes.Equal(b[field+2:], in[field+2:]) {
			t.Fatal("bytes outside the checksum field changed")
		}
		// What a receiver checks: the pseudo-header sum (which the field
		// held) plus the covered bytes as they are now sum to all ones.
		// That holds for a field at an even offset from start, as every
		// TCP and UDP checksum field is.
		if off%2 == 0 {
			if got := onesAdd(binary.BigEndian.Uint16(in[field:]), refSum(b[s:])); got != 0xffff {
				t.Fatalf("a receiver would sum the completed segment to %#04x, not 0xffff", got)
			}
		}
	})
}

// onesAdd is one's-complement addition.
func onesAdd(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s>>16 + s&0xffff)
}
