package pcap

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

func TestWriterLayout(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00}
	at := time.Unix(1700000000, 123456000)
	if err := w.WriteFrame(at, frame); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b) != 24+16+len(frame) {
		t.Fatalf("file is %d bytes, want %d", len(b), 24+16+len(frame))
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0xa1b2c3d4 || le.Uint16(b[4:]) != 2 || le.Uint16(b[6:]) != 4 || le.Uint32(b[20:]) != 1 {
		t.Errorf("bad file header % x", b[:24])
	}
	r := b[24:]
	if le.Uint32(r[0:]) != 1700000000 || le.Uint32(r[4:]) != 123456 || le.Uint32(r[8:]) != 14 || le.Uint32(r[12:]) != 14 {
		t.Errorf("bad record header % x", r[:16])
	}
	if !bytes.Equal(r[16:], frame) {
		t.Error("frame bytes differ")
	}
}
