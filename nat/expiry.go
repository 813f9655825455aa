package nat

import "container/heap"

// Expiry. Every entry sits in a min-heap keyed by checkAt, a time at or
// before which it cannot expire. A packet that pushes an entry's expiry
// later does not touch the heap (the hot path stays a field store); one
// that brings it earlier (a state with a shorter timeout) moves it up.
// Sweep pops only the entries whose checkAt has come: those that have
// really expired are removed, the others go back in keyed by their
// current expiry. An idle table sweeps in O(1); an entry refreshed by
// steady traffic is looked at once per timeout.

// expiryHeap implements heap.Interface over conns by checkAt. It is
// guarded by Table.mu.
type expiryHeap []*conn

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].checkAt < h[j].checkAt }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *expiryHeap) Push(x any) {
	c := x.(*conn)
	c.heapIdx = len(*h)
	*h = append(*h, c)
}
func (h *expiryHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.heapIdx = -1
	return c
}

// scheduleLocked keeps c's place in the heap right after its expiry
// changed. A new entry (heapIdx < 0) is pushed.
func (t *Table) scheduleLocked(c *conn) {
	switch {
	case c.heapIdx < 0:
		c.checkAt = c.expires
		heap.Push(&t.expiry, c)
	case c.expires < c.checkAt:
		c.checkAt = c.expires
		heap.Fix(&t.expiry, c.heapIdx)
	}
}

// unscheduleLocked takes c out of the heap.
func (t *Table) unscheduleLocked(c *conn) {
	if c.heapIdx >= 0 {
		heap.Remove(&t.expiry, c.heapIdx)
	}
}

// Sweep removes the entries that have expired at now and returns how many
// it removed. The gateway's janitor calls it every few seconds; an expired
// entry is also removed when a packet finds it. Its cost is that of the
// entries whose time has come, not of the table.
func (t *Table) Sweep(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sweepLocked(now, -1)
}

// sweepLocked is Sweep, looking at no more than limit entries of the heap
// if limit is not negative.
func (t *Table) sweepLocked(now int64, limit int) int {
	n := 0
	for ; len(t.expiry) > 0 && t.expiry[0].checkAt <= now && limit != 0; limit-- {
		c := t.expiry[0]
		if c.expires <= now {
			t.removeLocked(c, &t.stats.expired)
			n++
			continue
		}
		c.checkAt = c.expires
		heap.Fix(&t.expiry, 0)
	}
	return n
}
