package vnettest

import (
	"bytes"
	"sync"
	"time"

	"github.com/switchyard-net/switchyard/internal/pcap"
)

// captureLimit bounds the bytes kept per wire; frames beyond it are
// counted, not kept.
const captureLimit = 32 << 20

// capture keeps the frames a host sent and received, in pcap form, in
// memory until the test ends.
type capture struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	w    *pcap.Writer
	lost int
	now  func() time.Time
}

func newCapture(now func() time.Time) *capture {
	c := &capture{now: now}
	c.w, _ = pcap.NewWriter(&c.buf) // a bytes.Buffer does not fail
	return c
}

// record keeps a copy of frame b. It does not retain b.
func (c *capture) record(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf.Len()+16+len(b) > captureLimit {
		c.lost++
		return
	}
	_ = c.w.WriteFrame(c.now(), b)
}

// bytes returns the capture file and the number of frames not kept.
func (c *capture) bytes() ([]byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes()), c.lost
}
