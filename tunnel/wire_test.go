package tunnel_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

// The header the Linux kernel sends for VNI 42 (as seen with tcpdump -X on
// a vxlan device "id 42").
func TestEncodeVXLANKnownBytes(t *testing.T) {
	for _, tc := range []struct {
		vni  uint32
		want []byte
	}{
		{42, []byte{0x08, 0, 0, 0, 0x00, 0x00, 0x2a, 0}},
		{0, []byte{0x08, 0, 0, 0, 0, 0, 0, 0}},
		{0x123456, []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}},
		{tunnel.MaxVNI, []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
	} {
		got := bytes.Repeat([]byte{0xee}, 10)
		if err := tunnel.EncodeVXLAN(got, tc.vni); err != nil {
			t.Fatalf("EncodeVXLAN(vni %d): %v", tc.vni, err)
		}
		if !bytes.Equal(got[:8], tc.want) {
			t.Errorf("EncodeVXLAN(vni %d) = % x, want % x", tc.vni, got[:8], tc.want)
		}
		if got[8] != 0xee || got[9] != 0xee {
			t.Errorf("EncodeVXLAN(vni %d) wrote past the 8-byte header: % x", tc.vni, got)
		}
	}
}

func TestVXLANRoundTrip(t *testing.T) {
	frame := baseFlow().frame()
	for _, vni := range []uint32{0, 1, 42, 4096, 0xabcdef, tunnel.MaxVNI} {
		buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
		copy(buf[tunnel.VXLANHeaderLen:], frame)
		if err := tunnel.EncodeVXLAN(buf, vni); err != nil {
			t.Fatal(err)
		}
		gotVNI, inner, err := tunnel.DecodeVXLAN(buf)
		if err != nil {
			t.Fatalf("DecodeVXLAN of encoded vni %d: %v", vni, err)
		}
		if gotVNI != vni || !bytes.Equal(inner, frame) {
			t.Fatalf("round trip of vni %d: got vni %d, frame equal %v", vni, gotVNI, bytes.Equal(inner, frame))
		}
		if &inner[0] != &buf[tunnel.VXLANHeaderLen] {
			t.Fatal("DecodeVXLAN copied the inner frame instead of returning a view")
		}
	}
}

func TestVXLANView(t *testing.T) {
	b := make([]byte, 30)
	if tunnel.VXLAN(b).IsValid() {
		t.Fatal("IsValid with the I flag clear")
	}
	if tunnel.VXLAN(b[:7]).IsValid() {
		t.Fatal("IsValid on 7 bytes")
	}
	b[0] = 0x08
	v := tunnel.VXLAN(b)
	if !v.IsValid() {
		t.Fatal("!IsValid with the I flag set")
	}
	v.SetVNI(0x0a0b0c)
	if v.VNI() != 0x0a0b0c || b[4] != 0x0a || b[5] != 0x0b || b[6] != 0x0c {
		t.Fatalf("SetVNI(0x0a0b0c): VNI() = %#x, bytes % x", v.VNI(), b[:8])
	}
	if b[0] != 0x08 || b[3] != 0 || b[7] != 0 {
		t.Fatalf("SetVNI touched flags or reserved bytes: % x", b[:8])
	}
	if len(v.Payload()) != 22 || &v.Payload()[0] != &b[8] {
		t.Fatal("Payload is not the view after the header")
	}
}

func TestDecodeVXLANRejects(t *testing.T) {
	good := make([]byte, tunnel.VXLANHeaderLen+tunnel.EthHeaderLen)
	if err := tunnel.EncodeVXLAN(good, 7); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tunnel.DecodeVXLAN(good); err != nil {
		t.Fatalf("header + bare Ethernet header: %v", err)
	}
	for n := range len(good) {
		if _, _, err := tunnel.DecodeVXLAN(good[:n]); err != tunnel.ErrTruncated {
			t.Errorf("DecodeVXLAN of %d bytes: err %v, want ErrTruncated", n, err)
		}
	}
	noI := bytes.Clone(good)
	noI[0] = 0
	if _, _, err := tunnel.DecodeVXLAN(noI); err != tunnel.ErrVNIFlag {
		t.Errorf("I flag clear: err %v, want ErrVNIFlag", err)
	}
	noI[0] = 0xf7 // every flag except I
	if _, _, err := tunnel.DecodeVXLAN(noI); err != tunnel.ErrVNIFlag {
		t.Errorf("all flags but I: err %v, want ErrVNIFlag", err)
	}
}

// RFC 7348: reserved fields "MUST be ignored on receipt".
func TestDecodeVXLANIgnoresReserved(t *testing.T) {
	b := make([]byte, tunnel.VXLANHeaderLen+tunnel.EthHeaderLen)
	b[0] = 0xff
	b[1], b[2], b[3] = 0xff, 0xff, 0xff
	b[4], b[5], b[6] = 0x00, 0x01, 0x02
	b[7] = 0xff
	vni, inner, err := tunnel.DecodeVXLAN(b)
	if err != nil || vni != 0x000102 || len(inner) != tunnel.EthHeaderLen {
		t.Fatalf("reserved bits set: vni %#x, %d inner bytes, err %v; want 0x102, 14, nil", vni, len(inner), err)
	}
}

func TestEncodeVXLANErrors(t *testing.T) {
	err := tunnel.EncodeVXLAN(make([]byte, 8), tunnel.MaxVNI+1)
	if !errors.Is(err, tunnel.ErrVNIRange) || !bytes.Contains([]byte(err.Error()), []byte("16777216")) {
		t.Errorf("VNI 2^24: err %v, want ErrVNIRange naming the VNI", err)
	}
	err = tunnel.EncodeVXLAN(make([]byte, 7), 1)
	if !errors.Is(err, tunnel.ErrShortBuffer) || !bytes.Contains([]byte(err.Error()), []byte("7-byte")) {
		t.Errorf("7-byte buffer: err %v, want ErrShortBuffer naming the length", err)
	}
}

func TestMTUFor(t *testing.T) {
	for _, tc := range []struct{ link, want int }{{1500, 1450}, {9000, 8950}, {1280, 1230}, {50, 0}, {20, 0}} {
		if got := tunnel.MTUFor(tc.link); got != tc.want {
			t.Errorf("MTUFor(%d) = %d, want %d", tc.link, got, tc.want)
		}
	}
	if tunnel.Overhead != 20+8+8+14 {
		t.Errorf("Overhead = %d", tunnel.Overhead)
	}
	if got := tunnel.SecureMTUFor(1500); got != 1418 {
		t.Errorf("SecureMTUFor(1500) = %d, want 1418", got)
	}
}

func TestWireDoesNotAllocate(t *testing.T) {
	frame := baseFlow().frame()
	buf := make([]byte, tunnel.VXLANHeaderLen+len(frame))
	copy(buf[tunnel.VXLANHeaderLen:], frame)
	var sink uint32
	allocs := testing.AllocsPerRun(1000, func() {
		if err := tunnel.EncodeVXLAN(buf, 42); err != nil {
			t.Fatal(err)
		}
		vni, inner, err := tunnel.DecodeVXLAN(buf)
		if err != nil {
			t.Fatal(err)
		}
		sink += vni + uint32(len(inner))
		if _, _, err := tunnel.DecodeVXLAN(buf[:5]); err == nil {
			t.Fatal("short datagram accepted")
		}
	})
	if allocs != 0 {
		t.Fatalf("EncodeVXLAN+DecodeVXLAN allocate %.1f times per frame, want 0", allocs)
	}
	_ = sink
}
