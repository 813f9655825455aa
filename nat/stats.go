package nat

import (
	"sync/atomic"
)

type counter = atomic.Uint64

// stats are the table's counters; each is updated atomically, so that
// Stats needs no lock.
type stats struct {
	inserted, deleted, expired, evicted         counter
	refusedFull, portsExhausted, invalid        counter
	portsOverShare                              counter
	filtered, egressRefused, fragments, related counter
	translated                                  [2]counter
}

// Stats are a table's counters since NewTable.
type Stats struct {
	// Entries is the number of connections in the table now.
	Entries int
	// Inserted counts entries created.
	Inserted uint64
	// Deleted counts entries flushed because their mapping was removed.
	Deleted uint64
	// Expired counts entries removed after their timeout.
	Expired uint64
	// Evicted counts entries removed early to make room: the table was
	// full, or every masquerade port toward a responder was taken and a
	// closed TCP connection gave its port up.
	Evicted uint64
	// RefusedFull counts new flows dropped because the table was full of
	// entries that may not be evicted.
	RefusedFull uint64
	// PortsExhausted counts new flows dropped because no masquerade port
	// was free toward their responder.
	PortsExhausted uint64
	// PortsOverShare counts new flows dropped because the open flows of
	// their source address already held Config.MasqPortsPerSource ports
	// toward their responder.
	PortsOverShare uint64
	// Invalid counts packets of tracked flows that made no sense: TCP
	// flag combinations no stack sends (dropped), and segments unexpected
	// in the connection's state (forwarded).
	Invalid uint64
	// Filtered counts hairpin flows dropped by the icc=false rule.
	Filtered uint64
	// EgressRefused counts AllowEgress answers of false (--internal).
	EgressRefused uint64
	// Fragments counts fragments addressed to a local address, passed
	// untranslated.
	Fragments uint64
	// Related counts ICMP errors translated for a tracked flow. They are
	// also counted in TranslatedOrig or TranslatedReply.
	Related uint64
	// TranslatedOrig and TranslatedReply count packets translated in each
	// direction: from the initiator (DNAT and MASQUERADE applied) and
	// from the responder (both undone).
	TranslatedOrig  uint64
	TranslatedReply uint64
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	n := t.n
	t.mu.Unlock()
	s := &t.stats
	return Stats{
		Entries:         n,
		Inserted:        s.inserted.Load(),
		Deleted:         s.deleted.Load(),
		Expired:         s.expired.Load(),
		Evicted:         s.evicted.Load(),
		RefusedFull:     s.refusedFull.Load(),
		PortsExhausted:  s.portsExhausted.Load(),
		PortsOverShare:  s.portsOverShare.Load(),
		Invalid:         s.invalid.Load(),
		Filtered:        s.filtered.Load(),
		EgressRefused:   s.egressRefused.Load(),
		Fragments:       s.fragments.Load(),
		Related:         s.related.Load(),
		TranslatedOrig:  s.translated[dirOrig].Load(),
		TranslatedReply: s.translated[dirReply].Load(),
	}
}

// Dropped returns the packets the table dropped, all reasons together:
// Filtered, RefusedFull, PortsExhausted and PortsOverShare, and Invalid
// (which also counts the unexpected segments that were forwarded).
func (s Stats) Dropped() uint64 {
	return s.Filtered + s.Invalid + s.RefusedFull + s.PortsExhausted + s.PortsOverShare
}
