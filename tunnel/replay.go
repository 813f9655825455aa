package tunnel

import "sync"

// Replay window geometry. The window is a ring of 64-bit words, one bit per
// counter, in the style of RFC 6479: moving the window forward clears whole
// words instead of shifting bits. One word of the ring is always the
// partly filled word that holds the newest counter, so the window
// guaranteed to be remembered is one word short of the ring.
const (
	replayWords    = 64 // power of two
	replayWordBits = 64

	// ReplayWindowSize is how far behind the newest accepted counter a
	// counter may be and still be accepted once (if not seen before):
	// 4032 datagrams, enough for the reordering of multi-queue NICs and
	// several reader goroutines at 10 Gbit/s.
	ReplayWindowSize = (replayWords - 1) * replayWordBits
)

// ReplayWindow remembers which of the most recent ReplayWindowSize counters
// of one sender have been accepted. Its zero value is ready: no counter
// seen, newest counter 0. It is safe for concurrent use.
//
// Receivers call Check before the expensive authentication, to drop
// obvious replays cheaply, and Accept only after authentication succeeded,
// so that forged datagrams cannot move the window. Accept is the
// authoritative test: two goroutines that pass Check with the same counter
// race on Accept, and only one wins.
type ReplayWindow struct {
	mu     sync.Mutex
	newest uint64              // guarded by mu; highest accepted counter, 0 if none
	ring   [replayWords]uint64 // guarded by mu
}

// Check reports whether counter would be accepted now: it is newer than the
// newest accepted counter, or within ReplayWindowSize behind it and not yet
// accepted. It does not change the window.
func (w *ReplayWindow) Check(counter uint64) bool {
	w.mu.Lock()
	ok := w.checkLocked(counter)
	w.mu.Unlock()
	return ok
}

// Accept records counter as seen if Check would accept it, and reports
// whether it did. Call it only for authenticated datagrams.
func (w *ReplayWindow) Accept(counter uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.checkLocked(counter) {
		return false
	}
	if counter > w.newest {
		w.advanceLocked(counter)
	}
	w.ring[(counter/replayWordBits)%replayWords] |= 1 << (counter % replayWordBits)
	return true
}

func (w *ReplayWindow) checkLocked(counter uint64) bool {
	if counter > w.newest {
		return true
	}
	if w.newest-counter >= ReplayWindowSize {
		return false
	}
	return w.ring[(counter/replayWordBits)%replayWords]&(1<<(counter%replayWordBits)) == 0
}

// advanceLocked makes counter, greater than newest, the newest counter,
// clearing the ring words of the counters that the window skips over.
func (w *ReplayWindow) advanceLocked(counter uint64) {
	oldWord, newWord := w.newest/replayWordBits, counter/replayWordBits
	if newWord-oldWord >= replayWords {
		w.ring = [replayWords]uint64{}
	} else {
		for i := oldWord + 1; i <= newWord; i++ {
			w.ring[i%replayWords] = 0
		}
	}
	w.newest = counter
}
