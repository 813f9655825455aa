package vswitch

import (
	"testing"
	"time"
)

func mac(b byte) MAC { return MAC{0x02, 0, 0, 0, 0, b} }

func TestFDBLearnLookup(t *testing.T) {
	tb := newFDB(10, int64(time.Minute))
	a, b := &Link{}, &Link{}
	if got := tb.lookup(mac(1), 0); got != nil {
		t.Fatalf("lookup of unknown MAC = %p, want nil", got)
	}
	if tb.learn(mac(1), a, 0) != learnOK || tb.learn(mac(2), b, 0) != learnOK {
		t.Fatal("learn failed with room in the table")
	}
	if got := tb.lookup(mac(1), 0); got != a {
		t.Errorf("lookup(1) = %p, want link a %p", got, a)
	}
	if got := tb.lookup(mac(2), 0); got != b {
		t.Errorf("lookup(2) = %p, want link b %p", got, b)
	}
}

func TestFDBMove(t *testing.T) {
	tb := newFDB(10, int64(time.Minute))
	a, b := &Link{}, &Link{}
	tb.learn(mac(1), a, 0)
	tb.learn(mac(1), b, 1)
	if got := tb.lookup(mac(1), 1); got != b {
		t.Fatalf("after move, lookup = %p, want b %p", got, b)
	}
	if tb.moves.Load() != 1 {
		t.Errorf("moves = %d, want 1", tb.moves.Load())
	}
	if tb.len() != 1 {
		t.Errorf("len = %d, want 1 (a move is not a new entry)", tb.len())
	}
}

func TestFDBAging(t *testing.T) {
	aging := int64(300 * time.Second)
	tb := newFDB(10, aging)
	a := &Link{}
	tb.learn(mac(1), a, 0)
	if tb.lookup(mac(1), aging) != a {
		t.Fatal("entry gone at exactly the aging time; it should live until it is older")
	}
	if tb.lookup(mac(1), aging+1) != nil {
		t.Fatal("entry still found after aging out")
	}
	// Traffic from the MAC refreshes it.
	tb.learn(mac(1), a, aging)
	if tb.lookup(mac(1), 2*aging) != a {
		t.Fatal("refreshed entry aged out too early")
	}
	if n := tb.sweep(2*aging + 1); n != 0 {
		t.Fatalf("sweep left %d entries, want 0", n)
	}
}

func TestFDBCap(t *testing.T) {
	tb := newFDB(3, int64(time.Minute))
	a := &Link{}
	for i := byte(1); i <= 3; i++ {
		if tb.learn(mac(i), a, 0) != learnOK {
			t.Fatalf("learn %d failed below the cap", i)
		}
	}
	if r := tb.learn(mac(4), a, 0); r != learnFull {
		t.Fatalf("learn of a fourth MAC in a table capped at 3 = %d, want learnFull", r)
	}
	if tb.len() != 3 {
		t.Fatalf("len = %d after refused learn, want 3", tb.len())
	}
	// Known MACs still refresh when the table is full.
	if tb.learn(mac(2), a, 1) != learnOK {
		t.Fatal("refresh of a known MAC refused when the table is full")
	}
	// Once entries age out and are swept, there is room again.
	tb.sweep(int64(time.Minute) + 2)
	if tb.learn(mac(4), a, int64(time.Minute)+2) != learnOK {
		t.Fatal("learn refused after sweep freed the table")
	}
}

func TestFDBFlushAndDetached(t *testing.T) {
	tb := newFDB(10, int64(time.Minute))
	a, b := &Link{}, &Link{}
	tb.learn(mac(1), a, 0)
	tb.learn(mac(2), b, 0)
	b.detached.Store(true)
	if tb.lookup(mac(2), 0) != nil {
		t.Error("lookup returned a detached link")
	}
	tb.flush(a)
	if tb.lookup(mac(1), 0) != nil || tb.len() != 1 {
		t.Errorf("flush(a) left a's entry or removed others: len=%d", tb.len())
	}
}

// Many MACs learned in sequence end up in published snapshots, and every
// one of them is found whether it is still pending or published.
func TestFDBPublishesPending(t *testing.T) {
	tb := newFDB(10000, int64(time.Minute))
	a := &Link{}
	for i := 0; i < 5000; i++ {
		m := MAC{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
		if tb.learn(m, a, 0) != learnOK {
			t.Fatalf("learn %d refused", i)
		}
		if tb.lookup(m, 0) != a {
			t.Fatalf("MAC %d not found right after learning it", i)
		}
	}
	if n := len(*tb.snap.Load()); n < 4000 {
		t.Errorf("only %d of 5000 entries published; pending should be folded in as it grows", n)
	}
	if tb.len() != 5000 {
		t.Errorf("len = %d, want 5000", tb.len())
	}
	for i := 0; i < 5000; i++ {
		if tb.lookup(MAC{0x02, 0, 0, 0, byte(i >> 8), byte(i)}, 0) != a {
			t.Fatalf("MAC %d lost", i)
		}
	}
}
