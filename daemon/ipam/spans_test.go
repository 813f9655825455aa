package ipam

import (
	"net/netip"
	"testing"
)

// TestSpanSet checks the run list against a map after every add and remove,
// at the top of the IPv4 space, where Next of the last address is the zero
// Addr.
func TestSpanSet(t *testing.T) {
	base := netip.MustParseAddr("255.255.255.240")
	at := func(i int) netip.Addr {
		b := base.As4()
		b[3] += byte(i)
		return netip.AddrFrom4(b)
	}
	// Offsets in an order that merges left, right, both ways and not at all.
	steps := []struct {
		i   int
		add bool
	}{
		{5, true}, {7, true}, {6, true}, {4, true}, {15, true}, {14, true}, {0, true},
		{6, false}, {4, false}, {7, false}, {15, false}, {5, false}, {1, true}, {15, true}, {14, false},
	}
	var s spanSet
	ref := map[netip.Addr]bool{}
	for n, st := range steps {
		a := at(st.i)
		if st.add {
			s.add(a)
		} else {
			s.remove(a)
		}
		ref[a] = st.add
		for i := range 16 {
			_, got := s.search(at(i))
			if got != ref[at(i)] {
				t.Fatalf("step %d: has(%s) = %v, want %v; runs %v", n, at(i), got, ref[at(i)], s.runs)
			}
		}
		for k := 1; k < len(s.runs); k++ {
			if s.runs[k-1].hi.Next().Compare(s.runs[k].lo) >= 0 {
				t.Fatalf("step %d: runs %v touch or overlap", n, s.runs)
			}
		}
		for i := range 16 {
			want := netip.Addr{}
			for j := i; j < 16; j++ {
				if !ref[at(j)] {
					want = at(j)
					break
				}
			}
			if got := s.firstFree(at(i)); got != want {
				t.Fatalf("step %d: firstFree(%s) = %v, want %v; runs %v", n, at(i), got, want, s.runs)
			}
		}
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{
		"10.240.0.0/24":   "10.240.0.255",
		"10.240.0.5/30":   "10.240.0.7",
		"0.0.0.0/0":       "255.255.255.255",
		"10.0.0.1/32":     "10.0.0.1",
		"fd00:1::/64":     "fd00:1::ffff:ffff:ffff:ffff",
		"fd00:1::/127":    "fd00:1::1",
		"::/0":            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"2001:db8::/33":   "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff",
		"192.168.16.0/20": "192.168.31.255",
	} {
		if got := lastAddr(netip.MustParsePrefix(p)); got != netip.MustParseAddr(want) {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}
