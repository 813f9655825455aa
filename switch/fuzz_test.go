package vswitch_test

import (
	"slices"
	"testing"

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
// segment must fit the scratch buffer, and SegmentFrameInto must cut the
// same segments as SegmentFrame.
func FuzzSegment(f *testing.F) {
	for _, sf := range []vswitch.Frame{
		tcpSuperframe(false, 5000, 1448, header.TCPFlagAck),
		tcpSuperframe(true, 5000, 1200, header.TCPFlagAck|header.TCPFlagPsh),
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
		vswitch.CompleteChecksum(&c)
	})
}
