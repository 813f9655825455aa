package relay

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// scriptedConn returns reads of the given sizes (0 means: fill the
// caller's buffer), then EOF, and records the buffer size of each Read.
type scriptedConn struct {
	net.Conn
	sizes   []int
	bufLens []int
	next    byte
	sent    bytes.Buffer
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	c.bufLens = append(c.bufLens, len(p))
	if len(c.sizes) == 0 {
		return 0, io.EOF
	}
	k := c.sizes[0]
	c.sizes = c.sizes[1:]
	if k == 0 || k > len(p) {
		k = len(p)
	}
	for i := range p[:k] {
		p[i] = c.next
		c.next++
	}
	c.sent.Write(p[:k])
	return k, nil
}

type recordingConn struct {
	net.Conn
	got bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) { return c.got.Write(p) }

// A read that fills the small buffer moves the copy to the bulk buffer; a
// read shorter than the small buffer moves it back; every byte arrives.
func TestCopyGrowsAndShrinks(t *testing.T) {
	src := &scriptedConn{sizes: []int{100, 0, 0, 600, 5, 0, 40 << 10}}
	dst := &recordingConn{}
	var n atomic.Uint64
	total, err := Copy(dst, src, &n)
	if err != nil {
		t.Fatalf("Copy: %v, want nil at EOF", err)
	}
	s, b := smallBuf, bulkBuf
	want := []int{s, s, b, b, s, s, b, b}
	if len(src.bufLens) != len(want) {
		t.Fatalf("reads with buffers %v, want %v", src.bufLens, want)
	}
	for i := range want {
		if src.bufLens[i] != want[i] {
			t.Fatalf("reads with buffers %v, want %v", src.bufLens, want)
		}
	}
	if !bytes.Equal(dst.got.Bytes(), src.sent.Bytes()) {
		t.Fatalf("wrote %d bytes that differ from the %d read", dst.got.Len(), src.sent.Len())
	}
	if n.Load() != uint64(src.sent.Len()) || total != int64(src.sent.Len()) {
		t.Errorf("counted %d bytes and returned %d, want %d", n.Load(), total, src.sent.Len())
	}
}
