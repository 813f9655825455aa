package vswitch

import (
	"sync"
	"sync/atomic"
)

// fdb is the forwarding table: which port each learned MAC lives behind.
//
// Lookups and refreshes of known MACs take mu for reading only and write
// the entry's atomics; only learning a new MAC or removing entries takes mu
// for writing. Time is the switch's coarse clock (nanoseconds, refreshed
// about once a second), so a busy entry's timestamp is written at most once
// a second.
type fdb struct {
	mu sync.RWMutex
	// m holds entries, expired ones included until the next sweep.
	m map[MAC]*fdbEntry

	max   int   // size cap, fixed at construction
	aging int64 // nanoseconds
	moves atomic.Uint64
}

type fdbEntry struct {
	link atomic.Pointer[Link]
	seen atomic.Int64 // coarse time of the last frame from this MAC
}

func newFDB(max int, aging int64) *fdb {
	return &fdb{m: make(map[MAC]*fdbEntry), max: max, aging: aging}
}

// lookup returns the live link behind mac, or nil if mac is unknown, aged
// out, or behind a detached link.
func (t *fdb) lookup(mac MAC, now int64) *Link {
	t.mu.RLock()
	e := t.m[mac]
	t.mu.RUnlock()
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
	t.mu.RLock()
	e := t.m[mac]
	t.mu.RUnlock()
	if e != nil {
		t.refresh(e, l, now)
		return true
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if e = t.m[mac]; e != nil { // learned by another reader meanwhile
		t.refresh(e, l, now)
		return true
	}
	if len(t.m) >= t.max {
		return false
	}
	e = new(fdbEntry)
	e.link.Store(l)
	e.seen.Store(now)
	t.m[mac] = e
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

// sweep removes entries that have aged out, and returns how many remain.
func (t *fdb) sweep(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for mac, e := range t.m {
		if now-e.seen.Load() > t.aging {
			delete(t.m, mac)
		}
	}
	return len(t.m)
}

// flush removes every entry that points at l.
func (t *fdb) flush(l *Link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for mac, e := range t.m {
		if e.link.Load() == l {
			delete(t.m, mac)
		}
	}
}

func (t *fdb) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// FDBEntry is one row of the forwarding table, for display.
type FDBEntry struct {
	MAC  MAC
	Port string
	// AgeSeconds is how long ago the MAC was last seen.
	AgeSeconds int64
}

func (t *fdb) entries(now int64) []FDBEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]FDBEntry, 0, len(t.m))
	for mac, e := range t.m {
		seen := e.seen.Load()
		l := e.link.Load()
		if now-seen > t.aging || l == nil || l.detached.Load() {
			continue
		}
		out = append(out, FDBEntry{MAC: mac, Port: l.info.Name, AgeSeconds: (now - seen) / 1e9})
	}
	return out
}
