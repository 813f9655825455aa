package nat

import "math/bits"

// portSet is a set of free and taken ports in an inclusive range, kept as
// a two-level bitmap: a bit per port, and a bit per 64-port word that says
// the word is full. Taking the next free port after a given one looks at one
// word, then at most len(full)+1 summary words (17 for all 65,535 ports),
// then one word: its cost does not depend on how many ports are taken.
// Taking or freeing a given port is a bit operation. The memory is a bit
// per port (8 KiB for the whole port space).
//
// Written here rather than taken from a bitset library: the ones in use
// (bits-and-blooms/bitset and the like) find the next clear bit by a scan
// over the words, which is the cost this type is meant to remove, and the
// summary level is a dozen lines.
type portSet struct {
	lo   uint16
	n    uint32   // ports in the range
	used []uint64 // bit i of word w: port lo+64w+i is taken; bits past n are set
	full []uint64 // bit w: used[w] has no clear bit; bits past len(used) are set
	free int      // clear bits in used
}

func newPortSet(lo, hi uint16) portSet {
	n := uint32(hi-lo) + 1
	words := (n + 63) / 64
	s := portSet{lo: lo, n: n, used: make([]uint64, words), full: make([]uint64, (words+63)/64), free: int(n)}
	if r := n % 64; r != 0 {
		s.used[words-1] = ^uint64(0) << r
	}
	if r := words % 64; r != 0 {
		s.full[len(s.full)-1] = ^uint64(0) << r
	}
	return s
}

// contains reports whether p is in the range.
func (s *portSet) contains(p uint16) bool { return p >= s.lo && uint32(p-s.lo) < s.n }

// taken reports whether p, which is in the range, is taken.
func (s *portSet) taken(p uint16) bool {
	off := uint32(p - s.lo)
	return s.used[off/64]&(1<<(off%64)) != 0
}

// take marks p, which is in the range and free, as taken.
func (s *portSet) take(p uint16) {
	off := uint32(p - s.lo)
	w := off / 64
	s.used[w] |= 1 << (off % 64)
	if s.used[w] == ^uint64(0) {
		s.full[w/64] |= 1 << (w % 64)
	}
	s.free--
}

// release marks p, which is in the range and taken, as free.
func (s *portSet) release(p uint16) {
	off := uint32(p - s.lo)
	w := off / 64
	s.used[w] &^= 1 << (off % 64)
	s.full[w/64] &^= 1 << (w % 64)
	s.free++
}

// next takes the first free port at or after offset off from the start of
// the range, wrapping around. It reports false if every port is taken.
func (s *portSet) next(off uint32) (uint16, bool) {
	if s.free == 0 {
		return 0, false
	}
	if off >= s.n {
		off = 0
	}
	w := off / 64
	var bit uint32
	if z := ^s.used[w] &^ (1<<(off%64) - 1); z != 0 {
		bit = w*64 + uint32(bits.TrailingZeros64(z))
	} else {
		w = s.freeWord(w + 1)
		bit = w*64 + uint32(bits.TrailingZeros64(^s.used[w]))
	}
	p := s.lo + uint16(bit)
	s.take(p)
	return p, true
}

// freeWord returns the index of the first word at or after w, wrapping
// around, that has a free port. There must be one.
func (s *portSet) freeWord(w uint32) uint32 {
	nw := uint32(len(s.used))
	for range len(s.full) + 1 {
		if w >= nw {
			w = 0
		}
		j := w / 64
		if z := ^s.full[j] &^ (1<<(w%64) - 1); z != 0 {
			return j*64 + uint32(bits.TrailingZeros64(z))
		}
		w = (j + 1) * 64
	}
	panic("nat: port set with free ports and no free word")
}
