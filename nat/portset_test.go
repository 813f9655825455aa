package nat

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// portModel is the reference a portSet is checked against: the set of
// taken ports, and a linear search for the next free one.
type portModel struct {
	lo, hi uint16
	used   map[uint16]bool
}

// next returns the first free port at or after offset off, wrapping.
func (m *portModel) next(off uint32) (uint16, bool) {
	n := uint32(m.hi-m.lo) + 1
	if off >= n {
		off = 0
	}
	for i := range n {
		p := m.lo + uint16((off+i)%n)
		if !m.used[p] {
			return p, true
		}
	}
	return 0, false
}

// FuzzPortSet runs a sequence of takes, searches and releases on a
// portSet and on portModel, and fails on the first difference. The range
// is lo..lo+span (short spans keep the set full often); each op is three
// bytes: what to do and a 16-bit argument.
func FuzzPortSet(f *testing.F) {
	fill := make([]byte, 0, 3*200)
	for range 200 {
		fill = append(fill, 1, 0, 0) // next from 0, past the end of a short range
	}
	f.Add(uint16(61000), uint16(4535), []byte{1, 0, 0, 0, 0x10, 0, 2, 0, 0, 1, 0xff, 0xff})
	f.Add(uint16(20000), uint16(129), fill)
	f.Add(uint16(1), uint16(65534), []byte{0, 0xff, 0xfe, 1, 0xff, 0xf0, 1, 0, 0, 2, 0, 1})
	f.Add(uint16(65500), uint16(35), append(fill[:3*36:3*36], 2, 0, 5, 1, 0, 7, 1, 0, 7))
	f.Fuzz(func(t *testing.T, lo, span uint16, ops []byte) {
		lo = max(lo, 1)
		hi := uint16(min(int(lo)+int(span), 65535))
		n := uint32(hi-lo) + 1
		s := newPortSet(lo, hi)
		m := portModel{lo: lo, hi: hi, used: map[uint16]bool{}}
		var held []uint16
		for i := 0; i+3 <= len(ops); i += 3 {
			arg := uint32(ops[i+1])<<8 | uint32(ops[i+2])
			switch ops[i] % 3 {
			case 0: // take a given port, if free
				p := lo + uint16(arg%n)
				if got := s.taken(p); got != m.used[p] {
					t.Fatalf("op %d: taken(%d) = %v, model %v", i/3, p, got, m.used[p])
				}
				if !m.used[p] {
					s.take(p)
					m.used[p], held = true, append(held, p)
				}
			case 1: // take the next free port
				want, wok := m.next(arg)
				got, ok := s.next(arg)
				if got != want || ok != wok {
					t.Fatalf("op %d: next(%d) in %d-%d = %d, %v; model %d, %v", i/3, arg, lo, hi, got, ok, want, wok)
				}
				if ok {
					m.used[got], held = true, append(held, got)
				}
			case 2: // release a taken port
				if len(held) == 0 {
					continue
				}
				k := int(arg) % len(held)
				p := held[k]
				held[k] = held[len(held)-1]
				held = held[:len(held)-1]
				s.release(p)
				delete(m.used, p)
			}
			if s.free != int(n)-len(m.used) {
				t.Fatalf("op %d: %d free, model %d", i/3, s.free, int(n)-len(m.used))
			}
		}
		for off := range n {
			if p := lo + uint16(off); s.taken(p) != m.used[p] {
				t.Fatalf("at the end: taken(%d) = %v, model %v", p, s.taken(p), m.used[p])
			}
		}
	})
}

// BenchmarkPortSet frees the port taken longest ago and takes the next free
// one, with the default range (4,536 ports) held to the percentage in the
// name: the allocator on its own. The cost should not grow with the fill,
// and nothing is allocated.
func BenchmarkPortSet(b *testing.B) {
	lo, hi := DefaultMasqPorts[0], DefaultMasqPorts[1]
	n := int(hi-lo) + 1
	for _, pct := range []float64{0, 50, 90, 99, 99.9} {
		b.Run(fmt.Sprintf("fill=%g%%", pct), func(b *testing.B) {
			s := newPortSet(lo, hi)
			held := make([]uint16, max(1, int(float64(n)*pct/100)))
			r := rand.New(rand.NewPCG(1, 2))
			for k := range held {
				for {
					if p := lo + uint16(r.IntN(n)); !s.taken(p) {
						s.take(p)
						held[k] = p
						break
					}
				}
			}
			var cursor uint32
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				s.release(held[i])
				p, ok := s.next(cursor)
				if !ok {
					b.Fatal("no free port")
				}
				cursor = uint32(p-lo) + 1
				held[i] = p
				if i++; i == len(held) {
					i = 0
				}
			}
		})
	}
}
