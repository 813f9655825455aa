package vswitch_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
)

var (
	srcIP4 = tcpip.AddrFrom4([4]byte{10, 240, 0, 2})
	dstIP4 = tcpip.AddrFrom4([4]byte{10, 240, 0, 3})
	srcIP6 = tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	dstIP6 = tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3})
)

// tcpSuperframe builds what a Linux TAP with TSO hands userspace: one
// Ethernet+IP+TCP header over payloadLen bytes, with a partial checksum
// (pseudo-header sum only) and the virtio-net header describing it.
func tcpSuperframe(v6 bool, payloadLen, mss int, flags header.TCPFlags) vswitch.Frame {
	ipLen := header.IPv4MinimumSize
	et := uint16(0x0800)
	gso := vswitch.GSOTCPv4
	if v6 {
		ipLen, et, gso = header.IPv6MinimumSize, 0x86dd, vswitch.GSOTCPv6
	}
	l4 := 14 + ipLen
	hdrLen := l4 + header.TCPMinimumSize
	b := make([]byte, hdrLen+payloadLen)
	copy(b[0:6], []byte{2, 0x42, 0, 0, 0, 3})
	copy(b[6:12], []byte{2, 0x42, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(b[12:], et)
	l4Len := header.TCPMinimumSize + payloadLen
	var src, dst tcpip.Address
	if v6 {
		src, dst = srcIP6, dstIP6
		header.IPv6(b[14:]).Encode(&header.IPv6Fields{PayloadLength: uint16(l4Len), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	} else {
		src, dst = srcIP4, dstIP4
		ip := header.IPv4(b[14:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(ipLen + l4Len), ID: 100, TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	header.TCP(b[l4:]).Encode(&header.TCPFields{SrcPort: 40000, DstPort: 5201, SeqNum: 1000, AckNum: 7, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 512})
	for i := hdrLen; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	// Partial checksum: pseudo-header sum, not complemented.
	binary.BigEndian.PutUint16(b[l4+16:], header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(l4Len)))
	return vswitch.Frame{Data: b, Offload: vswitch.Offload{
		Flags: vswitch.OffloadNeedsCsum, GSOType: gso, HdrLen: uint16(hdrLen), GSOSize: uint16(mss),
		CsumStart: uint16(l4), CsumOffset: 16,
	}}
}

// checkTCPSegment validates one segment as a receiver would and returns
// its sequence number, flags and payload.
func checkTCPSegment(t *testing.T, seg []byte, v6 bool) (uint32, header.TCPFlags, []byte) {
	t.Helper()
	var tcp header.TCP
	var src, dst tcpip.Address
	if v6 {
		ip := header.IPv6(seg[14:])
		if !ip.IsValid(len(seg) - 14) {
			t.Fatal("invalid IPv6 header")
		}
		if int(ip.PayloadLength()) != len(seg)-14-header.IPv6MinimumSize {
			t.Fatalf("IPv6 payload length %d, segment carries %d", ip.PayloadLength(), len(seg)-14-header.IPv6MinimumSize)
		}
		tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv4(seg[14:])
		if !ip.IsValid(len(seg)-14) || !ip.IsChecksumValid() {
			t.Fatal("invalid IPv4 header or header checksum")
		}
		if int(ip.TotalLength()) != len(seg)-14 {
			t.Fatalf("IPv4 total length %d, segment is %d", ip.TotalLength(), len(seg)-14)
		}
		tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
	}
	payload := tcp.Payload()
	if !tcp.IsChecksumValid(src, dst, checksum.Checksum(payload, 0), uint16(len(payload))) {
		t.Fatal("TCP checksum invalid")
	}
	return tcp.SequenceNumber(), tcp.Flags(), payload
}

func TestSegmentTCP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		sf := tcpSuperframe(v6, 10000, 1448, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr)
		hdrLen := int(sf.Offload.HdrLen)
		wantPayload := append([]byte(nil), sf.Data[hdrLen:]...)

		scratch := make([]byte, len(sf.Data))
		var segs [][]byte
		ok := vswitch.Segment(sf, scratch, func(b []byte) { segs = append(segs, append([]byte(nil), b...)) })
		if !ok {
			t.Fatalf("v6=%v: segment refused a valid superframe", v6)
		}
		if len(segs) != 7 { // ceil(10000/1448)
			t.Fatalf("v6=%v: %d segments, want 7", v6, len(segs))
		}
		var got []byte
		for i, s := range segs {
			seq, fl, p := checkTCPSegment(t, s, v6)
			if want := uint32(1000 + len(got)); seq != want {
				t.Errorf("segment %d seq %d, want %d", i, seq, want)
			}
			last := i == len(segs)-1
			if fl.Contains(header.TCPFlagFin) != last || fl.Contains(header.TCPFlagPsh) != last {
				t.Errorf("segment %d flags %v: FIN/PSH must be on the last segment only", i, fl)
			}
			if fl.Contains(header.TCPFlagCwr) != (i == 0) {
				t.Errorf("segment %d flags %v: CWR must be on the first segment only", i, fl)
			}
			if !last && len(p) != 1448 {
				t.Errorf("segment %d carries %d bytes, want 1448", i, len(p))
			}
			if !v6 {
				if id := header.IPv4(s[14:]).ID(); id != uint16(100+i) {
					t.Errorf("segment %d IP ID %d, want %d", i, id, 100+i)
				}
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, wantPayload) {
			t.Errorf("v6=%v: reassembled payload differs from the superframe's", v6)
		}
	}
}

func TestSegmentRefusesGarbage(t *testing.T) {
	sf := tcpSuperframe(false, 3000, 1448, header.TCPFlagAck)
	bad := sf
	bad.Data = append([]byte(nil), sf.Data...)
	bad.Data[14+9] = 17 // IP protocol UDP under a TCP GSO type
	if vswitch.Segment(bad, make([]byte, len(bad.Data)), func([]byte) { t.Fatal("emitted a segment of a bad superframe") }) {
		t.Error("segment accepted a TCP superframe whose IP protocol is UDP")
	}
	zero := sf
	zero.Offload.GSOSize = 0
	if vswitch.Segment(zero, make([]byte, len(sf.Data)), func([]byte) {}) {
		t.Error("segment accepted gso_size 0")
	}
}

func TestCompleteChecksum(t *testing.T) {
	sf := tcpSuperframe(false, 500, 1448, header.TCPFlagAck|header.TCPFlagPsh)
	sf.Offload.GSOType, sf.Offload.GSOSize = vswitch.GSONone, 0
	if !vswitch.CompleteChecksum(&sf) {
		t.Fatal("CompleteChecksum refused a valid partial checksum")
	}
	if sf.Offload != (vswitch.Offload{}) {
		t.Errorf("offload metadata not cleared: %+v", sf.Offload)
	}
	checkTCPSegment(t, sf.Data, false)

	bad := tcpSuperframe(false, 10, 1448, header.TCPFlagAck)
	bad.Offload.CsumStart = 60000
	if vswitch.CompleteChecksum(&bad) {
		t.Error("CompleteChecksum accepted an offset past the frame")
	}
}

// A superframe from an offload-capable port reaches an offload-capable port
// whole and a plain port as checksummed MTU-sized segments.
func TestSwitchSegmentsForPlainPorts(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	all := vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6
	src := porttest.New("tap-src", 1500).WithOffloads(all)
	fast := porttest.New("tap-fast", 1500).WithOffloads(all)
	plain := porttest.New("gateway", 1500)
	for _, p := range []*porttest.Port{src, fast, plain} {
		if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sf := tcpSuperframe(false, 20000, 1448, header.TCPFlagAck)
	want := append([]byte(nil), sf.Data...)
	src.InjectFrame(sf) // unknown destination: flooded to both

	f := fast.Take()
	if len(f) != 1 || !bytes.Equal(f[0].Data, want) || f[0].Offload != sf.Offload {
		t.Fatalf("offload port got %d frames; want the superframe unchanged", len(f))
	}
	p := plain.Take()
	if len(p) != 14 {
		t.Fatalf("plain port got %d frames, want 14 segments", len(p))
	}
	for _, s := range p {
		if s.Offload != (vswitch.Offload{}) || len(s.Data) > 1514 {
			t.Fatalf("segment of %d bytes with offload %+v: want ≤1514 plain", len(s.Data), s.Offload)
		}
		checkTCPSegment(t, s.Data, false)
	}
	if st := sw.Stats(); st.Segmented != 1 {
		t.Errorf("Segmented = %d, want 1", st.Segmented)
	}
}

// A superframe whose virtio-net hdr_len covers payload too, as a TAP
// reports a packet the kernel forwarded after GRO (skb_headlen, a hint),
// fits a 1500-byte port by its real headers: forwarded whole, not
// dropped as oversize.
func TestSuperframeHdrLenIsAHint(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	all := vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6
	src := porttest.New("host-if", 1500).WithOffloads(all)
	dst := porttest.New("tap-dst", 1500).WithOffloads(all)
	for _, p := range []*porttest.Port{src, dst} {
		if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v6 := range []bool{false, true} {
		mss := 1448 // 1500 − 20 − 20 (v6: − 40 − 20)
		if v6 {
			mss = 1428
		}
		sf := tcpSuperframe(v6, 20000, mss, header.TCPFlagAck)
		sf.Offload.HdrLen = 256 // linear part: headers and some payload
		src.InjectFrame(sf)
		if got := dst.Take(); len(got) != 1 || len(got[0].Data) != len(sf.Data) {
			t.Errorf("v6=%v: the port got %d frames, want the superframe whole; stats %+v", v6, len(got), sw.Stats())
		}
	}
	// A superframe whose segments really are too big is still refused.
	sf := tcpSuperframe(false, 20000, 1480, header.TCPFlagAck)
	src.InjectFrame(sf)
	if got := dst.Take(); len(got) != 0 {
		t.Errorf("a superframe of 1534-byte segments reached a 1500-byte port: %d frames", len(got))
	}
}

// A partial-checksum frame flooded to a mix of ports must arrive valid
// everywhere: completed for the plain port, and not left marked partial for
// the offload port after being completed.
func TestFloodPartialChecksumMixedPorts(t *testing.T) {
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	src := porttest.New("src", 1500).WithOffloads(vswitch.OffloadCsum)
	fast := porttest.New("fast", 1500).WithOffloads(vswitch.OffloadCsum)
	plain := porttest.New("plain", 1500)
	for _, p := range []*porttest.Port{src, fast, plain} {
		sw.Attach(p, vswitch.AttachOptions{})
	}
	fr := tcpSuperframe(false, 300, 1448, header.TCPFlagAck)
	fr.Offload.GSOType, fr.Offload.GSOSize = vswitch.GSONone, 0
	src.InjectFrame(fr)
	for _, p := range []*porttest.Port{fast, plain} {
		got := p.Take()
		if len(got) != 1 {
			t.Fatalf("%s got %d frames, want 1", p.Info().Name, len(got))
		}
		if got[0].Offload.NeedsCsum() {
			t.Fatalf("%s got a completed checksum still marked partial", p.Info().Name)
		}
		checkTCPSegment(t, got[0].Data, false)
	}
}

// Frame.Direct reaches Write as the ingress port set it, on a superframe
// passed whole and on each segment cut from one.
func TestDirectCarriedToWrite(t *testing.T) {
	for _, direct := range []bool{true, false} {
		sw := vswitch.New(vswitch.Config{})
		all := vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6
		src := porttest.New("tap-src", 1500).WithOffloads(all)
		fast := porttest.New("tap-fast", 1500).WithOffloads(all)
		plain := porttest.New("gateway", 1500)
		for _, p := range []*porttest.Port{src, fast, plain} {
			if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		sf := tcpSuperframe(false, 20000, 1448, header.TCPFlagAck)
		sf.Direct = direct
		src.InjectFrame(sf)
		got := append(fast.Take(), plain.Take()...)
		if len(got) != 15 {
			t.Fatalf("Direct=%v: %d frames written, want the superframe and 14 segments", direct, len(got))
		}
		for i, f := range got {
			if f.Direct != direct {
				t.Errorf("Direct=%v: frame %d written with Direct=%v", direct, i, f.Direct)
			}
		}
		sw.Close()
	}
}
