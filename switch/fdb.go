package vswitch

import (
	"sync"
	"sync/atomic"
)

// fdb is the forwarding table: which port each learned MAC lives behind.
//
// Readers never lock in the steady state. The table is an immutable map,
// published through an atomic pointer, plus a small pending map of MACs
// learned since the last publication, which only writers and lookups of
// those new MACs touch, under mu. Pending entries are folded into a fresh
// snapshot once there are enough of them to pay for the copy (a fixed
// fraction of the table, so each learn costs O(1) amortised) or at the
// next sweep. Entries themselves are shared between the maps; their port
// and timestamp are atomics, so moves and refreshes need no copy at all.
//
// Time is the switch's coarse clock (nanoseconds, refreshed about once a
// second), so a busy entry's timestamp is written at most once a second.
type fdb struct {
	snap atomic.Pointer[map[MAC]*fdbEntry]

	mu      sync.Mutex
	pending map[MAC]*fdbEntry // guarded by mu
	// npending mirrors len(pending) so that lookups of MACs absent from
	// the snapshot skip mu when nothing is pending.
	npending atomic.Int64

	max   int   // size cap, fixed at construction
	aging int64 // nanoseconds
	moves atomic.Uint64
}

type fdbEntry struct {
	link atomic.Pointer[Link]
	seen atomic.Int64 // coarse time of the last frame from this MAC
}

func newFDB(max int, aging int64) *fdb {
	t := &fdb{pending: map[MAC]*fdbEntry{}, max: max, aging: aging}
	empty := map[MAC]*fdbEntry{}
	t.snap.Store(&empty)
	return t
}

// get returns the entry for mac, live or expired, or nil.
func (t *fdb) get(mac MAC) *fdbEntry {
	if e := (*t.snap.Load())[mac]; e != nil {
		return e
	}
	if t.npending.Load() == 0 {
		return nil
	}
	t.mu.Lock()
	e := t.pending[mac]
	t.mu.Unlock()
	return e
}

// lookup returns the live link behind mac, or nil if mac is unknown, aged
// out, or behind a detached link.
func (t *fdb) lookup(mac MAC, now int64) *Link {
	e := t.get(mac)
	if e == nil || now-e.seen.Load() > t.aging {
		return nil
	}
	l := e.link.Load()
	if l == nil || l.detached.Load() {
		return nil
	}
	return l
}

// learn records that mac was seen on l at now. It reports false if mac is
// new and the table is full, in which case nothing is recorded.
func (t *fdb) learn(mac MAC, l *Link, now int64) bool {
	if e := t.get(mac); e != nil {
		t.refresh(e, l, now)
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	snap := *t.snap.Load()
	if e := snap[mac]; e != nil { // published meanwhile
		t.refresh(e, l, now)
		return true
	}
	if e := t.pending[mac]; e != nil { // learned by another reader meanwhile
		t.refresh(e, l, now)
		return true
	}
	if len(snap)+len(t.pending) >= t.max {
		return false
	}
	e := new(fdbEntry)
	e.link.Store(l)
	e.seen.Store(now)
	t.pending[mac] = e
	t.npending.Store(int64(len(t.pending)))
	// Publish once pending outgrows an eighth of the snapshot: at once
	// while the table is small, and O(1) amortised per learn when large.
	if len(t.pending) > len(snap)/8 {
		t.publishLocked(nil)
	}
	return true
}

func (t *fdb) refresh(e *fdbEntry, l *Link, now int64) {
	if old := e.link.Load(); old != l {
		e.link.Store(l)
		if old != nil && !old.detached.Load() && now-e.seen.Load() <= t.aging {
			t.moves.Add(1)
		}
	}
	if e.seen.Load() != now {
		e.seen.Store(now)
	}
}

// publishLocked folds pending entries into a new snapshot, leaving out
// those for which drop returns true. t.mu must be held.
func (t *fdb) publishLocked(drop func(*fdbEntry) bool) int {
	old := *t.snap.Load()
	next := make(map[MAC]*fdbEntry, len(old)+len(t.pending))
	for _, m := range []map[MAC]*fdbEntry{old, t.pending} {
		for mac, e := range m {
			if drop == nil || !drop(e) {
				next[mac] = e
			}
		}
	}
	t.snap.Store(&next)
	clear(t.pending)
	t.npending.Store(0)
	return len(next)
}

// publishPending folds pending entries into the snapshot, so a new MAC is
// off the locked path within one janitor tick whatever the table's size.
func (t *fdb) publishPending() {
	if t.npending.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) > 0 {
		t.publishLocked(nil)
	}
}

// sweep removes entries that have aged out, and returns how many remain.
func (t *fdb) sweep(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.publishLocked(func(e *fdbEntry) bool { return now-e.seen.Load() > t.aging })
}

// flush removes every entry that points at l.
func (t *fdb) flush(l *Link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishLocked(func(e *fdbEntry) bool { return e.link.Load() == l })
}

func (t *fdb) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(*t.snap.Load()) + len(t.pending)
}

// FDBEntry is one row of the forwarding table, for display.
type FDBEntry struct {
	MAC  MAC
	Port string
	// AgeSeconds is how long ago the MAC was last seen.
	AgeSeconds int64
}

func (t *fdb) entries(now int64) []FDBEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []FDBEntry
	for _, m := range []map[MAC]*fdbEntry{*t.snap.Load(), t.pending} {
		for mac, e := range m {
			seen := e.seen.Load()
			l := e.link.Load()
			if now-seen > t.aging || l == nil || l.detached.Load() {
				continue
			}
			out = append(out, FDBEntry{MAC: mac, Port: l.info.Name, AgeSeconds: (now - seen) / 1e9})
		}
	}
	return out
}
