package ipam

import (
	"net/netip"
	"slices"
	"sort"
)

// span is a run of consecutive addresses, both ends included.
type span struct{ lo, hi netip.Addr }

// spanSet is a set of addresses of one family, kept as sorted, disjoint runs.
// Two runs never touch (a.hi.Next() != b.lo): adjacent runs are merged, so
// the run that contains an address ends just before the next address not in
// the set. Memory is proportional to the number of runs, not of addresses.
type spanSet struct{ runs []span }

// search returns the index of the first run that ends at or after a, and
// whether that run contains a.
func (s *spanSet) search(a netip.Addr) (int, bool) {
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].hi.Compare(a) >= 0 })
	return i, i < len(s.runs) && s.runs[i].lo.Compare(a) <= 0
}

// add puts a, which must not be in the set, into it.
func (s *spanSet) add(a netip.Addr) {
	i, _ := s.search(a)
	joinPrev := i > 0 && s.runs[i-1].hi.Next() == a
	// a.Next() is the zero Addr for the last address of the family, and a
	// run never starts at the zero Addr.
	joinNext := i < len(s.runs) && a.Next() == s.runs[i].lo
	switch {
	case joinPrev && joinNext:
		s.runs[i-1].hi = s.runs[i].hi
		s.runs = slices.Delete(s.runs, i, i+1)
	case joinPrev:
		s.runs[i-1].hi = a
	case joinNext:
		s.runs[i].lo = a
	default:
		s.runs = slices.Insert(s.runs, i, span{a, a})
	}
}

// remove takes a, which must be in the set, out of it.
func (s *spanSet) remove(a netip.Addr) {
	i, _ := s.search(a)
	r := s.runs[i]
	switch {
	case r.lo == a && r.hi == a:
		s.runs = slices.Delete(s.runs, i, i+1)
	case r.lo == a:
		s.runs[i].lo = a.Next()
	case r.hi == a:
		s.runs[i].hi = a.Prev()
	default:
		s.runs[i].hi = a.Prev()
		s.runs = slices.Insert(s.runs, i+1, span{a.Next(), r.hi})
	}
}

// firstFree returns the lowest address at or after from that is not in the
// set. It returns the zero Addr when every address from from to the end of
// the family is in the set.
func (s *spanSet) firstFree(from netip.Addr) netip.Addr {
	i, ok := s.search(from)
	if !ok {
		return from
	}
	return s.runs[i].hi.Next()
}
