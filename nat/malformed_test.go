package nat

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// validPackets returns one packet of each kind the table translates, with
// tb set up so that each of them would be translated.
func validPackets(t testing.TB, tb *Table) map[string][]byte {
	fromA, fromB := establish(t, tb, 64)
	left := udpDgram(ap(a4, 50000), ap(gw4, 5353), []byte("q"), false)
	tb.Process(left, 0)
	left6 := tcpSeg(ap(a6, 50000), ap(gw6, 8080), syn, 1, 0, nil)
	tb.Process(left6, 0)
	return map[string][]byte{
		"tcp from a":     fromA,
		"tcp from b":     fromB,
		"udp new":        udpDgram(ap(a4, 50001), ap(host4, 5353), []byte("q"), false),
		"icmp error":     icmpError(b4, gw4, 3, 3, 0, left, 1000),
		"icmpv6 error":   icmpError(b6, gw6, 2, 0, 1280, left6, 1000),
		"tcp6 syn":       tcpSeg(ap(a6, 50001), ap(host6, 8080), syn, 1, 0, nil),
		"tcp with flags": tcpSeg(ap(a4, 50002), ap(gw4, 8080), syn|fin, 1, 0, nil),
	}
}

// TestTruncated: every prefix of every translatable packet, with the IP
// length left as it was or fixed up to the prefix, is passed or dropped,
// never translated into something out of bounds, and never panics.
func TestTruncated(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	for name, pkt := range validPackets(t, tb) {
		for n := range len(pkt) {
			for _, fix := range []bool{false, true} {
				b := bytes.Clone(pkt[:n])
				if fix {
					setIPLength(b)
				}
				before := bytes.Clone(b)
				v := tb.Process(b, 1)
				if v == Translated && !fix {
					t.Errorf("%s cut to %d bytes (IP length not fixed): translated", name, n)
				}
				if v != Translated && !bytes.Equal(before, b) {
					t.Errorf("%s cut to %d: %v, but the packet changed", name, n, v)
				}
			}
		}
	}
}

// setIPLength makes b's IP length field say len(b), if b has one.
func setIPLength(b []byte) {
	switch {
	case len(b) >= header.IPv4MinimumSize && header.IPVersion(b) == 4:
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	case len(b) >= header.IPv6MinimumSize && header.IPVersion(b) == 6:
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)-header.IPv6MinimumSize))
	}
}

// TestMalformedFields: packets with one field wrong.
func TestMalformedFields(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	syn4 := func() []byte { return tcpSeg(ap(a4, 40000), ap(gw4, 8080), syn, 1, 0, nil) }
	udp4 := func() []byte { return udpDgram(ap(a4, 40000), ap(gw4, 5353), []byte("x"), false) }
	for _, tc := range []struct {
		name string
		pkt  []byte
		mod  func([]byte)
		want Verdict
	}{
		{"IHL 15", syn4(), func(b []byte) { b[0] = 0x4f }, Pass},
		{"IHL 4", syn4(), func(b []byte) { b[0] = 0x44 }, Pass},
		{"version 5", syn4(), func(b []byte) { b[0] = 0x55 }, Pass},
		{"total length too long", syn4(), func(b []byte) { binary.BigEndian.PutUint16(b[2:], 1000) }, Pass},
		{"total length below header", syn4(), func(b []byte) { binary.BigEndian.PutUint16(b[2:], 10) }, Pass},
		{"TCP data offset 4", syn4(), func(b []byte) { b[32] = 0x10 }, Pass},
		{"TCP data offset past the end", syn4(), func(b []byte) { b[32] = 0xf0 }, Pass},
		{"UDP length 4", udp4(), func(b []byte) { binary.BigEndian.PutUint16(b[24:], 4) }, Pass},
		{"UDP length past the end", udp4(), func(b []byte) { binary.BigEndian.PutUint16(b[24:], 500) }, Pass},
		{"fragment", udp4(), func(b []byte) { b[6] = 0x20 }, Pass},
		{"later fragment", udp4(), func(b []byte) { b[7] = 0x10 }, Pass},
		{"SYN+FIN", syn4(), func(b []byte) { b[33] |= byte(fin) }, Pass}, // no entry: not ours
		{"IPv6 payload length too long", tcpSeg(ap(a6, 1), ap(gw6, 8080), syn, 1, 0, nil), func(b []byte) { b[4] = 0xff }, Pass},
		{"IPv6 fragment header", tcpSeg(ap(a6, 1), ap(gw6, 8080), syn, 1, 0, nil), func(b []byte) { b[6] = 44 }, Pass},
		{"IPv6 hop-by-hop past the end", tcpSeg(ap(a6, 1), ap(gw6, 8080), syn, 1, 0, nil), func(b []byte) { b[6], b[41] = 0, 0xff }, Pass},
	} {
		tc.mod(tc.pkt)
		before := bytes.Clone(tc.pkt)
		if v := tb.Process(tc.pkt, 0); v != tc.want || !bytes.Equal(before, tc.pkt) {
			t.Errorf("%s: %v (changed: %v), want %v unchanged", tc.name, v, !bytes.Equal(before, tc.pkt), tc.want)
		}
	}
	if s := tb.Stats(); s.Fragments != 3 {
		t.Errorf("Fragments = %d, want 3", s.Fragments)
	}

	// On a tracked flow, a flag combination no stack sends is dropped
	// and counted.
	fromA, _ := establish(t, tb, 10)
	fromA[33] = byte(syn | fin)
	mustVerdict(t, tb, fromA, 0, Drop)
	if s := tb.Stats(); s.Invalid != 1 {
		t.Errorf("Invalid = %d, want 1", s.Invalid)
	}
}

// TestIPv6ExtensionHeaders: a destination-options header before TCP is
// walked over, and the translation reaches the TCP header behind it.
func TestIPv6ExtensionHeaders(t *testing.T) {
	tb := newTestTable(t, testConfig(), testMappings())
	plain := tcpSeg(ap(a6, 40000), ap(gw6, 8080), syn, 1, 0, []byte("data"))
	// Insert an 8-byte destination options header (PadN).
	b := make([]byte, 0, len(plain)+8)
	b = append(b, plain[:40]...)
	b = append(b, protoTCP, 0, 1, 4, 0, 0, 0, 0)
	b = append(b, plain[40:]...)
	b[6] = uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	// The TCP pseudo-header counts the TCP length, not the payload
	// length: the checksum stays valid.
	checksumsValid(t, b)

	if v := tb.Process(b, 0); v != Translated {
		t.Fatalf("Process = %v", v)
	}
	if err := l4ChecksumError(protoTCP, b[48:], tcpAddr(gw6), tcpAddr(b6)); err != "" {
		t.Fatal(err)
	}
	if src, dst := srcDst(b); src != gw6 || dst != b6 || header.TCP(b[48:]).DestinationPort() != 80 {
		t.Fatalf("left as %v → %v port %d", src, dst, header.TCP(b[48:]).DestinationPort())
	}
}
