package daemon

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/internal/pcap"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// captureQueue bounds the frames waiting to be written to a capture's
// reader. A slow reader loses frames (counted), it never slows the switch.
const captureQueue = 4096

type capturedFrame struct {
	at   time.Time
	data []byte
}

// Capture writes a pcap of the frames endpoint network/name sends and
// receives to w, until count frames (0: no limit), the endpoint goes away
// or ctx ends. flush, if set, is called whenever written data should reach
// the reader. It returns how many frames were written and how many were
// lost because the reader was too slow.
func (d *Daemon) Capture(ctx context.Context, network, name string, count int, w io.Writer, flush func()) (written int, lost uint64, err error) {
	d.mu.Lock()
	_, e, err := d.findEndpointLocked(network, name)
	if err == nil && e.capturing {
		err = conflict("a capture of %s/%s is already running", network, name)
	}
	if err != nil {
		d.mu.Unlock()
		return 0, 0, err
	}
	e.capturing = true
	link := e.link
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		e.capturing = false
		d.mu.Unlock()
	}()

	frames := make(chan capturedFrame, captureQueue)
	var dropped atomic.Uint64
	link.SetCapture(func(_ vswitch.Direction, f vswitch.Frame) {
		select {
		case frames <- capturedFrame{at: time.Now(), data: append([]byte(nil), f.Data...)}:
		default:
			dropped.Add(1)
		}
	})
	defer func() { link.SetCapture(nil) }()

	if flush == nil {
		flush = func() {}
	}
	pw, err := pcap.NewWriter(w)
	if err != nil {
		return 0, 0, err
	}
	flush()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	log := d.log.With(zap.String("endpoint", network+"/"+name))
	log.Info("capture started", zap.Int("count", count))
	defer func() { log.Info("capture ended", zap.Int("frames", written), zap.Uint64("lost", dropped.Load())) }()
	for {
		select {
		case <-ctx.Done():
			return written, dropped.Load(), nil
		case f := <-frames:
			if err := pw.WriteFrame(f.at, f.data); err != nil {
				return written, dropped.Load(), err
			}
			written++
			if count > 0 && written >= count {
				flush()
				return written, dropped.Load(), nil
			}
		case <-tick.C:
			flush()
			if link.Detached() {
				return written, dropped.Load(), nil
			}
		}
	}
}
