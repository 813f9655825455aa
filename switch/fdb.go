package vswitch

import (
	"errors"
	"fmt"
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
// Static entries (an endpoint's own MAC) never age, never move to another
// port and do not count against the cap. A port may have a limited number
// of learned entries (Link.maxMACs; Link.learned counts them, under mu);
// a table at its cap still forwards frames from new MACs, unlearned, so a
// flood of random MACs cannot blackhole newcomers.
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

	max     int // cap on learned entries, fixed at construction
	nstatic int // static entries, not counted against max; guarded by mu
	aging   int64
	moves   atomic.Uint64
	full    atomic.Uint64 // new MACs not learned because the table was full
}

// ErrMACBound is returned when a port is bound to a MAC that another port
// is already bound to.
var ErrMACBound = errors.New("MAC is already bound")

type fdbEntry struct {
	link atomic.Pointer[Link]
	seen atomic.Int64 // coarse time of the last frame from this MAC
	// static entries are an endpoint's own MAC (Link.SetBinding): set
	// before the entry is published and never changed; pin and unpin
	// replace the entry instead.
	static bool
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
// out, or behind a detached link. Static entries do not age.
func (t *fdb) lookup(mac MAC, now int64) *Link {
	e := t.get(mac)
	if e == nil || (!e.static && now-e.seen.Load() > t.aging) {
		return nil
	}
	l := e.link.Load()
	if l == nil || l.detached.Load() {
		return nil
	}
	return l
}

// learnResult says what learn made of a source MAC.
type learnResult uint8

const (
	learnOK     learnResult = iota // known or learned: forward the frame
	learnFull                      // table full, not learned: forward the frame
	learnLimit                     // the port has all the MACs it may: drop
	learnPinned                    // mac is static on another port: drop
)

// learn records that mac was seen on l at now. In the steady state (mac
// known on l) it takes no lock and writes at most one timestamp.
func (t *fdb) learn(mac MAC, l *Link, now int64) learnResult {
	if e := t.get(mac); e != nil {
		if e.link.Load() == l {
			if e.seen.Load() != now {
				e.seen.Store(now)
			}
			return learnOK
		}
		if e.static {
			return learnPinned
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.learnLocked(mac, l, now)
}

// learnLocked is learn's slow path: a new MAC, or one that moves to l.
// t.mu must be held.
func (t *fdb) learnLocked(mac MAC, l *Link, now int64) learnResult {
	snap := *t.snap.Load()
	e := t.pending[mac]
	if e == nil {
		e = snap[mac]
	}
	if e != nil {
		old := e.link.Load()
		switch {
		case old == l:
		case e.static:
			return learnPinned
		case !l.mayLearn():
			return learnLimit
		default:
			e.link.Store(l)
			if old != nil {
				old.learned.Add(-1)
				if !old.detached.Load() && now-e.seen.Load() <= t.aging {
					t.moves.Add(1)
				}
			}
			l.learned.Add(1)
		}
		e.seen.Store(now)
		return learnOK
	}
	if !l.mayLearn() {
		return learnLimit
	}
	if len(snap)+len(t.pending)-t.nstatic >= t.max {
		t.full.Add(1)
		return learnFull
	}
	e = new(fdbEntry)
	e.link.Store(l)
	e.seen.Store(now)
	l.learned.Add(1)
	t.pending[mac] = e
	t.npending.Store(int64(len(t.pending)))
	// Publish once pending outgrows an eighth of the snapshot: at once
	// while the table is small, and O(1) amortised per learn when large.
	if len(t.pending) > len(snap)/8 {
		t.publishLocked(nil)
	}
	return learnOK
}

// pin makes mac a static entry on l: never aged out, never moved by
// learning, and not counted against the table's cap or l's learning limit.
// A learned entry for mac, on any port, is replaced. Pinning a MAC that is
// static on another live port is refused.
func (t *fdb) pin(mac MAC, l *Link, now int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.pending[mac]
	if e == nil {
		e = (*t.snap.Load())[mac]
	}
	if e != nil {
		old := e.link.Load()
		if e.static {
			if old == l {
				return nil
			}
			if old != nil && !old.detached.Load() {
				return fmt.Errorf("MAC %s: %w to port %s", mac, ErrMACBound, old.info.Name)
			}
			t.nstatic--
		} else if old != nil {
			old.learned.Add(-1)
		}
	}
	p := &fdbEntry{static: true}
	p.link.Store(l)
	p.seen.Store(now)
	t.nstatic++
	// Publish at once: the pinned entry must replace the learned one in
	// the snapshot readers see, not wait in pending behind it.
	t.pending[mac] = p
	t.publishLocked(nil)
	return nil
}

// unpin removes mac's static entry if it is l's.
func (t *fdb) unpin(mac MAC, l *Link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishLocked(func(m MAC, e *fdbEntry) bool { return m == mac && e.static && e.link.Load() == l })
}

// publishLocked folds pending entries into a new snapshot, leaving out
// those for which drop returns true (and keeping the static and per-port
// counts right). A pending entry replaces a snapshot entry for the same
// MAC. t.mu must be held.
func (t *fdb) publishLocked(drop func(MAC, *fdbEntry) bool) int {
	old := *t.snap.Load()
	next := make(map[MAC]*fdbEntry, len(old)+len(t.pending))
	for _, m := range []map[MAC]*fdbEntry{old, t.pending} {
		for mac, e := range m {
			if drop == nil || !drop(mac, e) {
				next[mac] = e
				continue
			}
			if e.static {
				t.nstatic--
			} else if l := e.link.Load(); l != nil {
				l.learned.Add(-1)
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

// sweep removes learned entries that have aged out, and returns how many
// entries remain.
func (t *fdb) sweep(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.publishLocked(func(_ MAC, e *fdbEntry) bool { return !e.static && now-e.seen.Load() > t.aging })
}

// flush removes every entry, static ones included, that points at l.
func (t *fdb) flush(l *Link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishLocked(func(_ MAC, e *fdbEntry) bool { return e.link.Load() == l })
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
	// Static is set for an endpoint's own, bound MAC (Link.SetBinding).
	Static bool
}

func (t *fdb) entries(now int64) []FDBEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []FDBEntry
	for _, m := range []map[MAC]*fdbEntry{*t.snap.Load(), t.pending} {
		for mac, e := range m {
			seen := e.seen.Load()
			l := e.link.Load()
			if (!e.static && now-seen > t.aging) || l == nil || l.detached.Load() {
				continue
			}
			out = append(out, FDBEntry{MAC: mac, Port: l.info.Name, AgeSeconds: (now - seen) / 1e9, Static: e.static})
		}
	}
	return out
}

// LinkOf returns the link the forwarding table has mac behind, or nil if
// mac is unknown or aged out: for the control plane, which learns there
// which port a DHCP client's MAC is on.
func (s *Switch) LinkOf(mac MAC) *Link { return s.fdb.lookup(mac, s.now.Load()) }
