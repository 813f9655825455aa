package proxy

import (
	"sync"
	"testing"
	"time"
)

func TestDefaultConnLimits(t *testing.T) {
	for _, tt := range []struct {
		nofile          uint64
		global, perPort int
	}{
		{1024, 149, 74},                 // reserve 128
		{1 << 20, 174080, 87040},        // reserve 4096 (the cap)
		{200, 22, 11},                   // reserve 64 (the floor)
		{20000, 2916, 1458},             // reserve 2500
		{64, 1, 1},                      // nothing beyond the reserve: one each
		{0, 1, 1},                       // unknown
		{1 << 62, 1<<31 - 1, 1<<30 - 1}, // capped to an int32
	} {
		g, p := DefaultConnLimits(tt.nofile)
		if g != tt.global || p != tt.perPort {
			t.Errorf("DefaultConnLimits(%d) = %d, %d; want %d, %d", tt.nofile, g, p, tt.global, tt.perPort)
		}
	}
}

func TestConnLimitsFromConfig(t *testing.T) {
	defGlobal, defPort := DefaultConnLimits(noFile())
	for _, tt := range []struct {
		global, perPort, wantGlobal, wantPort int
	}{
		{0, 0, defGlobal, defPort},
		{10, 0, 10, 5},
		{1, 0, 1, 1},
		{0, 3, defGlobal, 3},
		{-1, 0, -1, defPort},
		{-1, -1, -1, -1},
		{7, 9, 7, 9},
	} {
		g, p := connLimits(tt.global, tt.perPort)
		if g != tt.wantGlobal || p != tt.wantPort {
			t.Errorf("connLimits(%d, %d) = %d, %d; want %d, %d", tt.global, tt.perPort, g, p, tt.wantGlobal, tt.wantPort)
		}
	}
}

// Concurrent acquires never take more than the limit; releases make the
// slots free again; a limit that is not positive is none.
func TestConnLimit(t *testing.T) {
	l := &connLimit{max: 5}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.acquire() {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 5 || l.n.Load() != 5 {
		t.Fatalf("%d acquires succeeded (count %d), want 5", got, l.n.Load())
	}
	l.release()
	if !l.acquire() || l.acquire() {
		t.Error("after one release, want exactly one more acquire")
	}

	none := &connLimit{}
	for i := range 1000 {
		if !none.acquire() {
			t.Fatalf("acquire %d refused with no limit", i)
		}
	}

	// admit takes both or neither.
	port, global := &connLimit{max: 2}, &connLimit{max: 1}
	if s := admit(port, global); s != scopeNone {
		t.Fatalf("first admit refused by %q", s)
	}
	if s := admit(port, global); s != scopeGlobal || port.n.Load() != 1 {
		t.Errorf("second admit: %q, port count %d; want global, 1 (the port's slot given back)", s, port.n.Load())
	}
	full := &connLimit{max: 1}
	full.acquire()
	if s := admit(full, global); s != scopePort || global.n.Load() != 1 {
		t.Errorf("admit on a full port: %q, global count %d; want port, 1", s, global.n.Load())
	}
}

// One warning per interval, carrying the events since the last one.
func TestWarnGate(t *testing.T) {
	const every = 10 * time.Second
	var g warnGate
	steps := []struct {
		now   time.Duration
		total uint64
		n     uint64
		ok    bool
	}{
		{1 * time.Millisecond, 1, 1, true}, // the first event warns at once
		{2 * time.Second, 2, 0, false},
		{9 * time.Second, 40, 0, false},
		{10*time.Second + time.Millisecond, 41, 40, true}, // the 40 since the first line
		{15 * time.Second, 42, 0, false},
		{time.Hour, 43, 2, true},
		{time.Hour + time.Second, 44, 0, false},
	}
	for i, s := range steps {
		n, ok := g.due(int64(s.now), every, s.total)
		if n != s.n || ok != s.ok {
			t.Errorf("step %d (at %v, total %d): due = %d, %v; want %d, %v", i, s.now, s.total, n, ok, s.n, s.ok)
		}
	}
}
