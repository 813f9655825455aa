package vswitch_test

import (
	"encoding/binary"
	"slices"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

// FuzzSwitchReceive feeds arbitrary frames, with arbitrary offload
// metadata, into any port of a switch that has learned a few MACs. The
// switch must not panic, must never send a frame back out of the port it
// came in on (but for ICMP errors from the router), and must never emit a
// frame larger than the egress port's MTU or an offloaded frame to a port
// that cannot take it.
func FuzzSwitchReceive(f *testing.F) {
	f.Add(byte(0), frame(mac(2), mac(1), 60), []byte{})
	f.Add(byte(1), frame(vswitch.Broadcast, mac(2), 60), []byte{})
	f.Add(byte(2), []byte{1, 2, 3}, []byte{})
	sf := tcpSuperframe(false, 4000, 1448, header.TCPFlagAck)
	enc := make([]byte, vswitch.VnetHdrLen)
	sf.Offload.Encode(enc)
	f.Add(byte(0), sf.Data, enc)
	sf6 := tcpSuperframe(true, 3000, 1000, header.TCPFlagAck|header.TCPFlagFin)
	sf6.Offload.Encode(enc)
	f.Add(byte(3), sf6.Data, append([]byte(nil), enc...))

	f.Fuzz(func(t *testing.T, in byte, data []byte, vnet []byte) {
		sw := vswitch.New(vswitch.Config{MaxMACs: 8, Router: router})
		defer sw.Close()
		all := vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6 | vswitch.OffloadUSO
		ports := []*porttest.Port{
			porttest.New("p0", 1500).WithOffloads(all),
			porttest.New("p1", 1500),
			porttest.New("p2", 9000),
			porttest.New("p3", 1500).WithOffloads(vswitch.OffloadCsum),
		}
		iso := []bool{true, true, false, false}
		for i, p := range ports {
			if _, err := sw.Attach(p, vswitch.AttachOptions{Isolated: iso[i]}); err != nil {
				t.Fatal(err)
			}
		}
		for i, p := range ports {
			p.Inject(frame(vswitch.Broadcast, mac(byte(i+1)), 60))
		}
		for _, p := range ports {
			p.Take()
		}
		var off vswitch.Offload
		if len(vnet) >= vswitch.VnetHdrLen {
			off = vswitch.DecodeOffload(vnet)
		}
		src := ports[int(in)%len(ports)]
		src.InjectFrame(vswitch.Frame{Data: data, Offload: off})

		// Only ICMP errors from the router may go back to the sender.
		for _, fr := range src.Take() {
			if len(fr.Data) < 14 || vswitch.MAC(fr.Data[6:12]) != router.MAC {
				t.Fatalf("a frame went back out of ingress port %s", src.Info().Name)
			}
			if len(fr.Data) > 14+1280 {
				t.Fatalf("ICMP error of %d bytes", len(fr.Data))
			}
		}
		for _, p := range ports {
			info := p.Info()
			for _, fr := range p.Take() {
				if !fr.Offload.IsGSO() && len(fr.Data) > info.MTU+18 {
					t.Fatalf("%s got a %d-byte frame over its MTU %d", info.Name, len(fr.Data), info.MTU)
				}
				if fr.Offload.IsGSO() && info.Offloads&vswitch.OffloadTSO4 == 0 {
					t.Fatalf("%s got a superframe it cannot take", info.Name)
				}
				if fr.Offload.NeedsCsum() && info.Offloads&vswitch.OffloadCsum == 0 {
					t.Fatalf("%s got a partial checksum it cannot take", info.Name)
				}
			}
		}
	})
}

// FuzzSegment cuts arbitrary "superframes". It must never panic, every
// segment must fit the scratch buffer, SegmentFrameInto must cut the same
// segments as SegmentFrame, and every segment must carry the lengths and
// checksums gVisor's parsers expect (checkSegment).
func FuzzSegment(f *testing.F) {
	tagged := tcpSuperframe(false, 3000, 1000, header.TCPFlagAck|header.TCPFlagFin)
	tagged.Data = slices.Insert(tagged.Data, 12, 0x81, 0x00, 0x00, 0x2a)
	tagged.Offload.HdrLen += 4
	tagged.Offload.CsumStart += 4
	for _, sf := range []vswitch.Frame{
		tcpSuperframe(false, 5000, 1448, header.TCPFlagAck),
		tcpSuperframe(true, 5000, 1200, header.TCPFlagAck|header.TCPFlagPsh),
		tagged,
		udpSuperframe(false, 4000, 1472),
		udpSuperframe(true, 2999, 1000),
	} {
		enc := make([]byte, vswitch.VnetHdrLen)
		sf.Offload.Encode(enc)
		f.Add(sf.Data, enc)
	}
	f.Fuzz(func(t *testing.T, data []byte, vnet []byte) {
		if len(vnet) < vswitch.VnetHdrLen {
			return
		}
		off := vswitch.DecodeOffload(vnet)
		scratch := make([]byte, len(data))
		var viaScratch []string
		okScratch := vswitch.Segment(vswitch.Frame{Data: data, Offload: off}, scratch, func(seg []byte) {
			checkSegment(t, seg)
			viaScratch = append(viaScratch, string(seg))
			if len(seg) > len(data) {
				t.Fatalf("segment of %d bytes from a %d-byte superframe", len(seg), len(data))
			}
			if len(viaScratch) > len(data) {
				t.Fatal("more segments than payload bytes")
			}
		})
		// SegmentFrameInto must cut the same segments, each in the buffer
		// next gave for it.
		var given []byte
		var viaInto []string
		okInto := vswitch.SegmentFrameInto(vswitch.Frame{Data: data, Offload: off},
			func(n int) []byte {
				if len(viaInto) > len(data) {
					t.Fatal("more segments than payload bytes")
				}
				given = make([]byte, n+7) // longer than asked: only n may be used
				return given
			},
			func(seg []byte) {
				if len(seg) == 0 || &seg[0] != &given[0] {
					t.Fatal("a segment was not built where next said")
				}
				viaInto = append(viaInto, string(seg))
			})
		if okInto != okScratch || !slices.Equal(viaInto, viaScratch) {
			t.Fatalf("SegmentFrameInto (%v, %d segments) and SegmentFrame (%v, %d) disagree",
				okInto, len(viaInto), okScratch, len(viaScratch))
		}
		c := vswitch.Frame{Data: append([]byte(nil), data...), Offload: off}
		if vswitch.CompleteChecksum(&c) && c.Offload != (vswitch.Offload{}) {
			t.Fatal("a completed checksum left its offload metadata")
		}
	})
}

// checkSegment checks a segment cut from a superframe as a receiver
// would, with gVisor's header views and checksum code as the reference:
// the IP lengths match the segment, the IPv4 header checksum is valid, and
// so is the TCP or UDP checksum over the pseudo-header.
func checkSegment(t *testing.T, seg []byte) {
	t.Helper()
	l3, et := header.EthernetMinimumSize, header.Ethernet(seg).Type()
	if et == 0x8100 {
		l3, et = l3+4, tcpip.NetworkProtocolNumber(binary.BigEndian.Uint16(seg[16:18]))
	}
	var src, dst tcpip.Address
	var l4 []byte
	var proto uint8
	switch et {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(seg[l3:])
		if int(ip.TotalLength()) != len(ip) || !ip.IsChecksumValid() {
			t.Fatalf("IPv4 segment: total length %d of %d, header checksum valid %v", ip.TotalLength(), len(ip), ip.IsChecksumValid())
		}
		src, dst, proto, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Protocol(), ip[ip.HeaderLength():]
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(seg[l3:])
		if int(ip.PayloadLength()) != len(ip)-header.IPv6MinimumSize {
			t.Fatalf("IPv6 segment: payload length %d of %d", ip.PayloadLength(), len(ip)-header.IPv6MinimumSize)
		}
		src, dst, proto, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.NextHeader(), ip[header.IPv6MinimumSize:]
	default:
		t.Fatalf("a segment of EtherType %#04x", et)
	}
	switch proto {
	case uint8(header.TCPProtocolNumber):
		tcp := header.TCP(l4)
		payload := tcp.Payload()
		if !tcp.IsChecksumValid(src, dst, checksum.Checksum(payload, 0), uint16(len(payload))) {
			t.Fatal("TCP segment with a bad checksum")
		}
	case uint8(header.UDPProtocolNumber):
		udp := header.UDP(l4)
		if int(udp.Length()) != len(l4) || !udp.IsChecksumValid(src, dst, checksum.Checksum(udp.Payload(), 0)) {
			t.Fatalf("UDP segment: length %d of %d, checksum valid %v", udp.Length(), len(l4), udp.IsChecksumValid(src, dst, checksum.Checksum(udp.Payload(), 0)))
		}
	default:
		t.Fatalf("a segment of protocol %d", proto)
	}
}

// udpSuperframe builds a UDP GSO superframe as a TAP hands it over:
// complete headers, a partial checksum.
func udpSuperframe(v6 bool, payloadLen, mss int) vswitch.Frame {
	ipLen, et, src, dst := header.IPv4MinimumSize, header.IPv4ProtocolNumber, srcIP4, dstIP4
	if v6 {
		ipLen, et, src, dst = header.IPv6MinimumSize, header.IPv6ProtocolNumber, srcIP6, dstIP6
	}
	l4 := header.EthernetMinimumSize + ipLen
	b := make([]byte, l4+header.UDPMinimumSize+payloadLen)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: "\x02\x42\x00\x00\x00\x02", DstAddr: "\x02\x42\x00\x00\x00\x03", Type: et})
	l4Len := uint16(header.UDPMinimumSize + payloadLen)
	if v6 {
		header.IPv6(b[14:]).Encode(&header.IPv6Fields{PayloadLength: l4Len, TransportProtocol: header.UDPProtocolNumber, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	} else {
		ip := header.IPv4(b[14:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(ipLen) + l4Len, ID: 9, TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	header.UDP(b[l4:]).Encode(&header.UDPFields{SrcPort: 5353, DstPort: 4789, Length: l4Len,
		Checksum: header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, l4Len)})
	for i := l4 + header.UDPMinimumSize; i < len(b); i++ {
		b[i] = byte(i * 13)
	}
	return vswitch.Frame{Data: b, Offload: vswitch.Offload{
		Flags: vswitch.OffloadNeedsCsum, GSOType: vswitch.GSOUDPL4, HdrLen: uint16(l4 + header.UDPMinimumSize), GSOSize: uint16(mss),
		CsumStart: uint16(l4), CsumOffset: 6,
	}}
}
