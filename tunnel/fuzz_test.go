package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

// FuzzDecodeVXLAN checks DecodeVXLAN against a reading of RFC 7348 written
// out here, and that encoding what it decoded gives back the datagram, up
// to the reserved bits.
func FuzzDecodeVXLAN(f *testing.F) {
	good := make([]byte, tunnel.VXLANHeaderLen, 64)
	_ = tunnel.EncodeVXLAN(good, 42)
	good = append(good, baseFlow().frame()...)
	f.Add(good)
	f.Add(good[:tunnel.VXLANHeaderLen+tunnel.EthHeaderLen])
	f.Add(good[:tunnel.VXLANHeaderLen+tunnel.EthHeaderLen-1])
	f.Add([]byte{})
	f.Add([]byte{0x08, 0, 0, 0, 0, 0, 1, 0})
	noI := bytes.Clone(good)
	noI[0] = 0xf7
	f.Add(noI)
	reserved := bytes.Clone(good)
	reserved[1], reserved[7] = 0xff, 0xff
	f.Add(reserved)

	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		vni, inner, err := tunnel.DecodeVXLAN(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("DecodeVXLAN modified its input")
		}
		switch {
		case len(b) < 22:
			if err != tunnel.ErrTruncated {
				t.Fatalf("%d bytes: err %v, want ErrTruncated", len(b), err)
			}
			return
		case b[0]&0x08 == 0:
			if err != tunnel.ErrVNIFlag {
				t.Fatalf("flags %#02x: err %v, want ErrVNIFlag", b[0], err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid datagram refused: %v", err)
		}
		if want := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]); vni != want {
			t.Fatalf("VNI %#x, want %#x", vni, want)
		}
		if len(inner) != len(b)-8 || &inner[0] != &b[8] {
			t.Fatal("inner frame is not the view after the 8-byte header")
		}
		re := make([]byte, len(b))
		copy(re[8:], inner)
		if err := tunnel.EncodeVXLAN(re, vni); err != nil {
			t.Fatal(err)
		}
		canon := bytes.Clone(b)
		canon[0], canon[1], canon[2], canon[3], canon[7] = 0x08, 0, 0, 0, 0
		if !bytes.Equal(re, canon) {
			t.Fatalf("re-encoding gives % x, want % x", re[:8], canon[:8])
		}
	})
}

// fuzzSealed is what FuzzOpen's seeds are built from: every datagram Seal
// produced with the key the Opener holds, and the plaintext Open must
// return for it.
type fuzzSealed struct {
	inner  []byte
	sender uint32
}

// FuzzOpen feeds arbitrary UDP payloads to an Opener. It must never panic
// and must refuse everything but the datagrams Seal produced with a key
// the Opener holds (the seeds), for which it must return exactly what was
// sealed; and a datagram opened once must be refused the second time.
func FuzzOpen(f *testing.F) {
	key, otherKey := testKey(40), testKey(41)
	const keyID, otherKeyID, self = 7, 8, 0xfffffff0
	valid := map[string]fuzzSealed{}
	add := func(s *tunnel.Sealer, vni uint32, frame []byte, authentic bool) {
		d := seal(f, s, vni, frame)
		if authentic {
			valid[string(d)] = fuzzSealed{wantInner(vni, frame), s.Sender()}
		}
		f.Add(d)
	}
	s := mustSealer(f, key, keyID, 1, 0)
	add(s, 42, baseFlow().frame(), true)
	add(s, 0, make([]byte, tunnel.EthHeaderLen), true)
	big := baseFlow()
	big.payload = 1400
	add(s, tunnel.MaxVNI, big.frame(), true)
	add(mustSealer(f, key, keyID, 2, 1<<60), 1, baseFlow().frame(), true)
	// Refused: our own sender ID, the other key under its ID, the wrong
	// key under ours, an unknown key ID.
	add(mustSealer(f, key, keyID, self, 0), 1, baseFlow().frame(), false)
	add(mustSealer(f, otherKey, keyID, 3, 0), 1, baseFlow().frame(), false)
	add(mustSealer(f, key, otherKeyID, 3, 0), 1, baseFlow().frame(), false)
	add(mustSealer(f, key, 9, 3, 0), 1, baseFlow().frame(), false)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(make([]byte, 70))
	vx := make([]byte, 8, 100)
	_ = tunnel.EncodeVXLAN(vx, 1)
	f.Add(append(vx, baseFlow().frame()...))

	sentinels := []error{tunnel.ErrTruncated, tunnel.ErrVersion, tunnel.ErrType, tunnel.ErrUnknownKey,
		tunnel.ErrReplay, tunnel.ErrAuth, tunnel.ErrReflected}
	f.Fuzz(func(t *testing.T, b []byte) {
		o := mustOpener(t, self, map[uint16]tunnel.Key{keyID: key, otherKeyID: otherKey})
		inner, sender, err := o.Open(bytes.Clone(b))
		want, ok := valid[string(b)]
		if err != nil {
			if ok {
				t.Fatalf("authentic datagram refused: %v", err)
			}
			known := false
			for _, s := range sentinels {
				known = known || err == s
			}
			if !known || inner != nil {
				t.Fatalf("error %v (inner %d bytes): not one of the data-path sentinels", err, len(inner))
			}
			return
		}
		if !ok {
			t.Fatalf("opened a datagram that Seal never produced: % x", b)
		}
		if !bytes.Equal(inner, want.inner) || sender != want.sender {
			t.Fatalf("opened to sender %d, %d bytes; want sender %d, %d bytes", sender, len(inner), want.sender, len(want.inner))
		}
		if _, _, err := o.Open(bytes.Clone(b)); err != tunnel.ErrReplay {
			t.Fatalf("second Open of the same datagram: %v, want ErrReplay", err)
		}
	})
}

// FuzzReplayWindow runs counter sequences through a ReplayWindow and the
// reference model of replay_test.go: every Check and Accept must agree.
// Each 3-byte step is an op byte and a signed 16-bit offset from a cursor;
// op bit 0 moves the cursor to the counter, bit 7 makes the offset a jump
// of whole windows.
func FuzzReplayWindow(f *testing.F) {
	f.Add(uint64(0), []byte{1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1})
	f.Add(uint64(1000), []byte{0x81, 0, 2, 0, 0xf0, 0x40, 0, 0xf0, 0x41, 1, 0, 1, 0, 0xf0, 0x40})
	f.Add(uint64(math.MaxUint64-5000), []byte{0x81, 0, 1, 1, 0x10, 0, 0, 0xe0, 0})
	f.Add(uint64(1<<40), []byte{1, 0x0f, 0xc0, 0, 0, 0, 0, 0, 0, 1, 0x10, 0, 0, 0xf0, 0x40, 0, 0xf0, 0x3f})
	f.Fuzz(func(t *testing.T, start uint64, ops []byte) {
		var w tunnel.ReplayWindow
		m := newModel()
		cursor := start
		for i := 0; i+3 <= len(ops); i += 3 {
			off := int64(int16(binary.BigEndian.Uint16(ops[i+1:])))
			if ops[i]&0x80 != 0 {
				off *= tunnel.ReplayWindowSize
			}
			c := cursor + uint64(off)
			if ops[i]&1 != 0 {
				cursor = c
			}
			if got, want := w.Check(c), m.check(c); got != want {
				t.Fatalf("step %d: Check(%d) = %v, model says %v (newest %d)", i/3, c, got, want, m.newest)
			}
			if got, want := w.Accept(c), m.accept(c); got != want {
				t.Fatalf("step %d: Accept(%d) = %v, model says %v", i/3, c, got, want)
			}
		}
	})
}

// FuzzParseKey: never panic; whatever is accepted is 64 hex digits or 44
// base64 characters, and encodes back to the same key.
func FuzzParseKey(f *testing.F) {
	k := testKey(42)
	f.Add(k.Base64())
	f.Add(k.Base64()[:43] + "A")
	f.Add("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g")
	f.Add(" 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := tunnel.ParseKey(s)
		if err != nil {
			return
		}
		if got == (tunnel.Key{}) {
			t.Fatal("accepted the zero key")
		}
		back, err := tunnel.ParseKey(got.Base64())
		if err != nil || back != got {
			t.Fatalf("ParseKey(Base64()) of an accepted key: %v", err)
		}
	})
}
