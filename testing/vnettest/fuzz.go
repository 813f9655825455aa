package vnettest

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// MaxFrame is the longest frame SplitFrames makes: a 1500-byte packet
// behind an Ethernet header.
const MaxFrame = 1514

// SplitFrames cuts fuzz input into frames. Each frame is a two-byte
// big-endian length, taken modulo MaxFrame+1, followed by that many bytes
// (fewer if data ends first). Every input splits without error, so the
// fuzzer explores frame contents and frame counts alike.
func SplitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data)) % (MaxFrame + 1)
		data = data[2:]
		n = min(n, len(data))
		frames = append(frames, data[:n:n])
		data = data[n:]
	}
	return frames
}

// Inject hands frame b to the network as if h's netstack had sent it: it
// crosses h's Up stages to the switch. b stays the caller's. Inject fails
// for hosts made with the low-level NewHost.
func (h *Host) Inject(b []byte) error {
	if h.wire == nil {
		return fmt.Errorf("vnettest: host %s: Inject needs a host of a World", h.cfg.Name)
	}
	h.wire.upCaptureAndSend(b)
	return nil
}

func (w *Wire) upCaptureAndSend(b []byte) {
	if w.upCapture != nil {
		w.upCapture(b)
	}
	w.up.send(b)
}

// probeEtherType marks FuzzFrames' liveness probe: IEEE 802 local
// experimental EtherType 1, which no host stack answers.
const probeEtherType = 0x88b5

// FuzzFrames is the body of a fuzz target: it splits data into frames
// (SplitFrames), injects them from h, and checks that the network took
// them without harm, reporting to t:
//
//   - nothing panicked (a panicking stage fails t through the World; a
//     panic in Switchyard's own code ends the fuzz run with its stack, as
//     a fuzz crasher should);
//   - no flow is stuck: a broadcast probe from h still reaches the wire
//     of every other host of h's network within two seconds;
//   - every wire of the network drains, and its counters then add up (In
//   - Added = Out + Dropped in both directions).
//
// While it runs, a stage's panic fails t, not the test the World was made
// with; so FuzzFrames must not run concurrently on one World. Build the
// World once, outside f.Fuzz, so each input costs only its frames:
//
//	func FuzzMyFilter(f *testing.F) {
//		w := vnettest.New(f)
//		lan := w.NewNetwork("lan", "10.0.0.0/24")
//		a, _ := lan.NewHost("a"), lan.NewHost("b")
//		a.Wire().SetStages(vnettest.Up, myFilter)
//		f.Add(seedFrame)
//		f.Fuzz(func(t *testing.T, data []byte) { vnettest.FuzzFrames(t, a, data) })
//	}
func FuzzFrames(t testing.TB, h *Host, data []byte) {
	t.Helper()
	if h.wire == nil || h.network == nil {
		t.Fatalf("vnettest: FuzzFrames: host %s is not a host of a World", h.cfg.Name)
	}
	w := h.world
	w.input.Store(&t)
	defer w.input.Store(nil)
	for _, f := range SplitFrames(data) {
		h.wire.upCaptureAndSend(f)
	}
	checkNetwork(t, h)
}

// checkNetwork sends the liveness probe from h and checks every wire of
// h's network.
func checkNetwork(t testing.TB, h *Host) {
	t.Helper()
	n := h.network
	var others []*Host
	n.w.mu.Lock()
	for _, o := range n.w.hosts {
		if o.network == n && o != h {
			others = append(others, o)
		}
	}
	n.w.mu.Unlock()
	before := make([]uint64, len(others))
	for i, o := range others {
		before[i] = o.wire.Stats(Down).In
	}
	probe := make([]byte, 60)
	copy(probe, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(probe[6:], h.cfg.MAC[:])
	binary.BigEndian.PutUint16(probe[12:], probeEtherType)
	h.wire.upCaptureAndSend(probe)
	deadline := time.Now().Add(2 * time.Second)
	for i, o := range others {
		for o.wire.Stats(Down).In == before[i] {
			if time.Now().After(deadline) {
				t.Fatalf("vnettest: a broadcast from %s no longer reaches %s: the network is stuck (seed %d)", h.cfg.Name, o.cfg.Name, n.w.seed)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	for _, o := range append(others, h) {
		for _, dir := range []Direction{Up, Down} {
			for {
				s := o.wire.Stats(dir)
				if s.Waiting == 0 && s.In+s.Added == s.Out+s.Dropped {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("vnettest: wire %s %s: counters do not add up after draining: %+v (seed %d)", o.cfg.Name, dir, s, n.w.seed)
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}
