package tunnel_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

const W = tunnel.ReplayWindowSize

// windowModel is the reference the window is checked against: a set of
// every counter ever accepted, and the rule "newer than the newest, or less
// than W behind it and never accepted".
type windowModel struct {
	seen   map[uint64]bool
	newest uint64
}

func newModel() *windowModel { return &windowModel{seen: map[uint64]bool{}} }

func (m *windowModel) check(c uint64) bool {
	if c > m.newest {
		return true
	}
	return m.newest-c < W && !m.seen[c]
}

func (m *windowModel) accept(c uint64) bool {
	if !m.check(c) {
		return false
	}
	m.seen[c] = true
	m.newest = max(m.newest, c)
	return true
}

// expect accepts c in w and fails unless Check and Accept both say want.
func expect(t *testing.T, w *tunnel.ReplayWindow, c uint64, want bool) {
	t.Helper()
	if got := w.Check(c); got != want {
		t.Fatalf("Check(%d) = %v, want %v", c, got, want)
	}
	if got := w.Accept(c); got != want {
		t.Fatalf("Accept(%d) = %v, want %v", c, got, want)
	}
}

func TestReplayWindowSize(t *testing.T) {
	if W < 2048 {
		t.Fatalf("ReplayWindowSize %d, want at least 2048", W)
	}
}

func TestReplayInOrderAndDuplicates(t *testing.T) {
	var w tunnel.ReplayWindow
	for c := uint64(0); c < 3*W; c++ {
		expect(t, &w, c, true)
		expect(t, &w, c, false)
	}
}

func TestReplayCounterZero(t *testing.T) {
	var w tunnel.ReplayWindow
	expect(t, &w, 0, true)
	expect(t, &w, 0, false)
	// Zero also works when it arrives after later counters.
	var w2 tunnel.ReplayWindow
	expect(t, &w2, 5, true)
	expect(t, &w2, 0, true)
	expect(t, &w2, 0, false)
}

func TestReplayOutOfOrderWithinWindow(t *testing.T) {
	var w tunnel.ReplayWindow
	base := uint64(1_000_000)
	expect(t, &w, base+W-1, true)
	// Every counter from base to base+W-2 is within the window: accept each
	// once, in reverse and interleaved order.
	for c := base + W - 2; c >= base && c < base+W; c -= 2 {
		expect(t, &w, c, true)
	}
	for c := base + W - 3; c >= base && c < base+W; c -= 2 {
		expect(t, &w, c, true)
	}
	for c := base; c < base+W; c++ {
		expect(t, &w, c, false)
	}
}

func TestReplayTooOld(t *testing.T) {
	var w tunnel.ReplayWindow
	expect(t, &w, 10_000, true)
	expect(t, &w, 10_000-W, false) // exactly W behind: out
	expect(t, &w, 10_000-W+1, true)
	expect(t, &w, 0, false)
}

// A jump far ahead forgets everything: counters behind the new window are
// refused, and counters inside it were never seen, whatever the ring held.
func TestReplayBigJumpClears(t *testing.T) {
	for _, jump := range []uint64{W, W + 1, 64 * 64, 64*64 + 63, 1 << 40, math.MaxUint64 - 300} {
		var w tunnel.ReplayWindow
		for c := uint64(0); c < 200; c++ {
			expect(t, &w, c, true)
		}
		top := 199 + jump
		expect(t, &w, top, true)
		// Every counter in the new window but top is new.
		for c := top - W + 1; c < top; c++ {
			if !w.Check(c) {
				t.Fatalf("jump %d: counter %d (never sent) refused", jump, c)
			}
		}
		if top-199 < W {
			t.Fatalf("jump %d too small for this test", jump)
		}
		expect(t, &w, 199, false)
	}
}

// Moving forward by less than the ring must clear exactly the words it
// passes: bits left from a lap earlier must not reject new counters, and
// bits of counters still in the window must survive.
func TestReplayRingWrapAround(t *testing.T) {
	var w tunnel.ReplayWindow
	m := newModel()
	r := rand.New(rand.NewPCG(7, 8))
	c := uint64(0)
	for range 200_000 {
		// Step forward by 1 to 200 counters, sometimes a whole ring's
		// worth, and accept a few counters behind the newest.
		switch r.IntN(10) {
		case 0:
			c += uint64(64*64 - 64 + r.IntN(128))
		default:
			c += uint64(1 + r.IntN(200))
		}
		if got, want := w.Accept(c), m.accept(c); got != want {
			t.Fatalf("Accept(%d) = %v, model says %v", c, got, want)
		}
		back := c - uint64(r.IntN(W+64))
		if back > c {
			back = 0
		}
		if got, want := w.Check(back), m.check(back); got != want {
			t.Fatalf("after newest %d: Check(%d) = %v, model says %v", c, back, got, want)
		}
		if got, want := w.Accept(back), m.accept(back); got != want {
			t.Fatalf("after newest %d: Accept(%d) = %v, model says %v", c, back, got, want)
		}
	}
}

func TestReplayTopOfRange(t *testing.T) {
	var w tunnel.ReplayWindow
	expect(t, &w, math.MaxUint64, true)
	expect(t, &w, math.MaxUint64, false)
	expect(t, &w, math.MaxUint64-1, true)
	expect(t, &w, math.MaxUint64-W, false)
}

// Several goroutines offering the same counters: each counter is accepted
// exactly once.
func TestReplayConcurrent(t *testing.T) {
	var w tunnel.ReplayWindow
	const n, readers = 20000, 4
	var accepted [n]atomic.Int32
	var wg sync.WaitGroup
	for g := range readers {
		wg.Go(func() {
			for i := range n {
				c := uint64(i)
				if g%2 == 1 {
					c = uint64(n - 1 - i) // some readers see a different order
				}
				if w.Check(c) && w.Accept(c) {
					accepted[c].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for c := range accepted {
		// Counters that fell behind the window while a reader was late are
		// refused by everyone; none may be accepted twice.
		if got := accepted[c].Load(); got > 1 {
			t.Fatalf("counter %d accepted %d times", c, got)
		}
	}
	for c := n - W; c < n; c++ {
		if accepted[c].Load() != 1 {
			t.Fatalf("counter %d, inside the final window, accepted %d times, want 1", c, accepted[c].Load())
		}
	}
}
