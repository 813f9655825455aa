//go:build linux

package evloop

import (
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/threadwake"
)

// pipeSource is a socketpair of datagrams: the test writes frames into
// one end, the loop reads the other.
type pipeSource struct {
	t      *testing.T
	rd, wr int
	got    chan []byte
	frames atomic.Uint64
	gone   atomic.Bool // Readable reports the source gone at its next call
	calls  atomic.Uint64
}

func newPipeSource(t *testing.T) *pipeSource {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeSource{t: t, rd: fds[0], wr: fds[1], got: make(chan []byte, 1024)}
	t.Cleanup(func() { unix.Close(s.rd); unix.Close(s.wr) })
	return s
}

func (s *pipeSource) Readable(buf []byte) (int, bool) {
	s.calls.Add(1)
	if s.gone.Load() {
		return 0, true
	}
	n := 0
	for {
		k, err := unix.Read(s.rd, buf)
		if err != nil {
			return n, false
		}
		n++
		s.frames.Add(1)
		select {
		case s.got <- append([]byte(nil), buf[:k]...):
		default:
		}
	}
}

func (s *pipeSource) send(t *testing.T, b string) {
	t.Helper()
	if _, err := unix.Write(s.wr, []byte(b)); err != nil {
		t.Fatal(err)
	}
}

func (s *pipeSource) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case b := <-s.got:
		if string(b) != want {
			t.Fatalf("read %q, want %q", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no frame %q within 5 s", want)
	}
}

func newLoop(t *testing.T, spin time.Duration) *Loop {
	t.Helper()
	l, err := start(Config{Spin: spin, BufLen: 2048}, func() time.Duration { return 0 }) // a quiet machine, whatever runs beside the test
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDeliversFromEverySource(t *testing.T) {
	for _, spin := range []time.Duration{0, 200 * time.Microsecond} {
		l := newLoop(t, spin)
		srcs := []*pipeSource{newPipeSource(t), newPipeSource(t), newPipeSource(t)}
		for _, s := range srcs {
			if _, err := l.Add(s.rd, s); err != nil {
				t.Fatal(err)
			}
		}
		for round := 0; round < 3; round++ {
			for i, s := range srcs {
				msg := string(rune('a'+i)) + string(rune('0'+round))
				s.send(t, msg)
				s.expect(t, msg)
			}
			// Let the loop park between rounds, so that each round
			// starts with a wake-up from the netpoller.
			waitFor(t, "the loop to park", func() bool { return l.Stats().Parked })
		}
	}
}

// TestSpinStopsWhenTrafficStops: with a long spin the loop serves a burst
// without parking, and parks once the spin has run out; it then polls no
// more (no epoll_wait that finds nothing) until the next frame.
func TestSpinStopsWhenTrafficStops(t *testing.T) {
	l := newLoop(t, 20*time.Millisecond)
	s := newPipeSource(t)
	if _, err := l.Add(s.rd, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loop to park after Add", func() bool { return l.Stats().Parked })
	wakeups := l.Stats().Wakeups
	for i := 0; i < 50; i++ {
		s.send(t, "x")
		s.expect(t, "x")
	}
	st := l.Stats()
	if st.Wakeups-wakeups > 2 {
		// Fifty frames, each within 20 ms of the last: the first
		// wakes the loop, the rest find it spinning. (A descheduled
		// test goroutine can stretch one gap past 20 ms, hence one
		// more wake-up allowed.)
		t.Errorf("loop woken %d times by a burst of 50 frames 'within the spin', want at most 2", st.Wakeups-wakeups)
	}
	if st.Spins == 0 {
		t.Errorf("loop never spun: %+v", st)
	}
	waitFor(t, "the loop to park once the traffic stopped", func() bool { return l.Stats().Parked })
	parked := l.Stats()
	// Wake it with a request, which is not traffic: it serves it and
	// parks again at once, without spinning.
	other := newPipeSource(t)
	if _, err := l.Add(other.rd, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loop to park after the request", func() bool { return l.Stats().Parked })
	after := l.Stats()
	if after.Wakeups != parked.Wakeups+1 {
		t.Errorf("Add woke the loop %d times, want 1: %+v then %+v", after.Wakeups-parked.Wakeups, parked, after)
	}
	if after.Spins != parked.Spins {
		t.Errorf("loop spun %d times after a request, want 0", after.Spins-parked.Spins)
	}
}

// TestNoSpinParksAtOnce: with Spin zero the loop parks after every burst.
func TestNoSpinParksAtOnce(t *testing.T) {
	l := newLoop(t, 0)
	s := newPipeSource(t)
	if _, err := l.Add(s.rd, s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		waitFor(t, "the loop to park", func() bool { return l.Stats().Parked })
		w := l.Stats().Wakeups
		s.send(t, "x")
		s.expect(t, "x")
		if got := l.Stats().Wakeups; got != w+1 {
			t.Fatalf("frame %d: %d wake-ups, want 1", i, got-w)
		}
	}
	if st := l.Stats(); st.Spins != 0 {
		t.Errorf("Spin 0 spun %d times", st.Spins)
	}
}

// TestRemove: after Remove returns the handler is never called again,
// and the slot's next tenant is not removed by the old token.
func TestRemove(t *testing.T) {
	l := newLoop(t, time.Millisecond)
	a, b := newPipeSource(t), newPipeSource(t)
	ta, err := l.Add(a.rd, a)
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, "1")
	a.expect(t, "1")
	l.Remove(ta)
	calls := a.calls.Load()
	a.send(t, "2") // readable, but no longer in the set
	tb, err := l.Add(b.rd, b)
	if err != nil {
		t.Fatal(err)
	}
	if uint32(tb) != uint32(ta) {
		t.Fatalf("slot not reused: %x then %x", ta, tb)
	}
	l.Remove(ta) // stale: must leave b alone
	b.send(t, "3")
	b.expect(t, "3")
	if c := a.calls.Load(); c != calls {
		t.Errorf("removed handler called %d more times", c-calls)
	}
}

// TestGoneIsForgotten: a handler that reports its descriptor gone is not
// called again, and its token's Remove is a no-op.
func TestGoneIsForgotten(t *testing.T) {
	l := newLoop(t, 0)
	a, b := newPipeSource(t), newPipeSource(t)
	ta, _ := l.Add(a.rd, a)
	if _, err := l.Add(b.rd, b); err != nil {
		t.Fatal(err)
	}
	a.gone.Store(true)
	a.send(t, "x")
	waitFor(t, "the gone handler's call", func() bool { return a.calls.Load() == 1 })
	a.send(t, "y")
	b.send(t, "z") // b still served; a's data left unread
	b.expect(t, "z")
	if c := a.calls.Load(); c != 1 {
		t.Errorf("gone handler called %d times, want 1", c)
	}
	l.Remove(ta)
}

func TestAddBadDescriptorAndClosed(t *testing.T) {
	l := newLoop(t, 0)
	if _, err := l.Add(-1, newPipeSource(t)); err == nil {
		t.Error("Add(-1) succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(0, newPipeSource(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	l.Remove(1)   // no-op, does not hang
	_ = l.Close() // twice
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{BufLen: 0}, {BufLen: 10, Spin: -1}} {
		if l, err := New(cfg); err == nil {
			l.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// countingSource counts frames without copying them.
type countingSource struct {
	rd int
	n  atomic.Uint64
}

func (s *countingSource) Readable(buf []byte) (int, bool) {
	k := 0
	for {
		if _, err := unix.Read(s.rd, buf); err != nil {
			s.n.Add(uint64(k))
			return k, false
		}
		k++
	}
}

// TestLoopDoesNotAllocate: polling, dispatching and parking allocate
// nothing per frame.
func TestLoopDoesNotAllocate(t *testing.T) {
	l := newLoop(t, 50*time.Microsecond)
	ps := newPipeSource(t)
	s := &countingSource{rd: ps.rd}
	if _, err := l.Add(ps.rd, s); err != nil {
		t.Fatal(err)
	}
	msg := []byte("frame")
	send := func() {
		want := s.n.Load() + 1
		unix.Write(ps.wr, msg)
		for s.n.Load() < want {
			time.Sleep(10 * time.Microsecond)
		}
	}
	send() // warm up
	if avg := testing.AllocsPerRun(2000, send); avg > 0.01 {
		t.Errorf("%.3f allocations per frame through the loop, want 0", avg)
	}
}

// sparse sends n frames on s, each once the loop has parked and more
// than gap after the previous one.
func sparse(t *testing.T, l *Loop, s *pipeSource, n int, gap time.Duration) {
	t.Helper()
	for i := 0; i < n; i++ {
		sent := time.Now()
		s.send(t, "x")
		s.expect(t, "x")
		waitFor(t, "the loop to park", func() bool { return l.Stats().Parked })
		time.Sleep(time.Until(sent.Add(gap))) // shapes the traffic; no check waits on it
	}
}

// TestWindowAdapts: frames further apart than Spin close the spin window
// (spinning for them only burns a core), after which they cost no spin
// at all; frames closer than Spin open it again, wide enough to catch
// them without a wake-up.
func TestWindowAdapts(t *testing.T) {
	const spin = 20 * time.Millisecond
	l := newLoop(t, spin)
	s := newPipeSource(t)
	if _, err := l.Add(s.rd, s); err != nil {
		t.Fatal(err)
	}
	if w := l.Stats().Window; w != spin {
		t.Fatalf("window %v at start, want %v", w, spin)
	}
	sparse(t, l, s, 10, 3*spin/2)
	if w := l.Stats().Window; w != 0 {
		t.Fatalf("window %v after 10 frames %v apart, want closed", w, 3*spin/2)
	}
	spins := l.Stats().Spins
	sparse(t, l, s, 3, 3*spin/2)
	if d := l.Stats().Spins - spins; d != 0 {
		t.Errorf("closed window: %d spins for 3 sparse frames, want 0", d)
	}
	// A frame a millisecond: the first wakes the loop and reopens the
	// window; then the frames are caught while it spins.
	const gap = time.Millisecond
	for i := 0; i < 5; i++ {
		s.send(t, "x")
		s.expect(t, "x")
		time.Sleep(gap)
	}
	w0 := l.Stats().Wakeups
	for i := 0; i < 20; i++ {
		s.send(t, "x")
		s.expect(t, "x")
		time.Sleep(gap)
	}
	st := l.Stats()
	if st.Window < gap {
		t.Errorf("window %v with a frame every %v, want it open to at least the gap", st.Window, gap)
	}
	if d := st.Wakeups - w0; d > 10 {
		t.Errorf("%d wake-ups for 20 frames %v apart with the window open, want most caught spinning", d, gap)
	}
}

// TestContentionShrinksTheWindow: a yield that took long (another thread
// had the CPU) halves the window at each poll, so that on a busy machine
// the loop parks after a few; once the machine is quiet again, frames
// closer than Spin open it again.
func TestContentionShrinksTheWindow(t *testing.T) {
	var busy atomic.Bool
	l, err := start(Config{Spin: 20 * time.Millisecond, BufLen: 2048}, func() time.Duration {
		if busy.Load() {
			return time.Millisecond
		}
		return 0
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := newPipeSource(t)
	if _, err := l.Add(s.rd, s); err != nil {
		t.Fatal(err)
	}
	s.send(t, "x")
	s.expect(t, "x")
	if st := l.Stats(); st.Window != 20*time.Millisecond || st.Contended != 0 {
		t.Fatalf("quiet: %+v, want the full window and no contention", st)
	}
	busy.Store(true)
	s.send(t, "x")
	s.expect(t, "x")
	waitFor(t, "the loop to park", func() bool { return l.Stats().Parked })
	st := l.Stats()
	if st.Contended == 0 || st.Window != 0 {
		t.Fatalf("busy: %+v, want the window halved to nothing", st)
	}
	if st.Contended > 16 { // 7 halvings close a window (Spin/64); the rest is the spin that was running
		t.Errorf("%d contended polls before the window closed, want a few halvings", st.Contended)
	}
	busy.Store(false)
	for i := 0; i < 10 && l.Stats().Window < time.Millisecond; i++ {
		s.send(t, "x")
		s.expect(t, "x")
		time.Sleep(time.Millisecond)
	}
	if w := l.Stats().Window; w < time.Millisecond {
		t.Errorf("window %v with the machine quiet again and a frame every 1 ms, want it open", w)
	}
}

// TestAtMostGOMAXPROCSMinusOneSpin: with two processors, one loop of the
// process spins at a time; the other parks after each frame (Crowded),
// so that a processor stays free for the process's other goroutines.
func TestAtMostGOMAXPROCSMinusOneSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	a, b := newLoop(t, time.Hour), newLoop(t, time.Hour)
	sa, sb := newPipeSource(t), newPipeSource(t)
	a.Add(sa.rd, sa)
	b.Add(sb.rd, sb)
	sa.send(t, "x")
	sa.expect(t, "x")
	waitFor(t, "loop a to spin", func() bool { return a.Stats().Spins > 0 })
	sb.send(t, "y")
	sb.expect(t, "y")
	waitFor(t, "loop b to park, crowded out", func() bool { st := b.Stats(); return st.Parked && st.Crowded > 0 })
	if st := b.Stats(); st.Spins != 0 {
		t.Errorf("loop b spun %d times while loop a held the only spinner place", st.Spins)
	}
	a.Close() // gives its place back
	sb.send(t, "z")
	sb.expect(t, "z")
	waitFor(t, "loop b to spin once the place is free", func() bool { return b.Stats().Spins > 0 })
}

// TestSpinningWakesNoOtherThread: while the loop spins, a frame it is
// about to read itself wakes no other thread of the process. The first
// version parked in Go's netpoller, which watched the loop's epoll
// descriptor edge-triggered: every arrival woke the netpoller's thread
// (about one wake-up per round trip in this test), whether the loop was
// parked or not. The process has a goroutine waiting in the netpoller
// (an accept), as the daemon always has, so that an idle thread of the
// runtime waits there.
func TestSpinningWakesNoOtherThread(t *testing.T) {
	// A processor for the loop, one for the client and one left idle,
	// whose thread waits in the netpoller.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go ln.Accept()

	l, err := start(Config{Spin: time.Second, BufLen: 2048, Contention: -1}, func() time.Duration { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(fds[0], echo(fds[0])); err != nil {
		t.Fatal(err)
	}

	const rounds = 2000
	b := make([]byte, 1)
	round := func(k int) error {
		for range k {
			if _, err := unix.Write(fds[1], []byte{'x'}); err != nil {
				return err
			}
			if _, err := unix.Read(fds[1], b); err != nil {
				return err
			}
		}
		return nil
	}
	if err := round(100); err != nil { // the loop starts spinning
		t.Fatal(err)
	}
	// The client blocks in read on a thread of its own, left out of the
	// count.
	others, err := threadwake.During(func() error { return round(rounds) })
	if err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	t.Logf("%d round trips: %d voluntary context switches of the process's other threads; loop %+v", rounds, others, st)
	// The netpoller's thread, woken for every arrival, made it about one
	// a round trip. The allowance is for the runtime's monitor thread,
	// counted when it is caught awake (it wakes by itself 50 to 300 times
	// meanwhile).
	if others > rounds/4 {
		t.Errorf("the process's other threads slept and woke %d times in %d round trips caught by a spinning loop, want at most %d", others, rounds, rounds/4)
	}
}

// echo is a Handler that sends a datagram back where it came from, one
// a call, so that every datagram is an event of the loop's epoll set.
type echo int

func (e echo) Readable(buf []byte) (int, bool) {
	k, err := unix.Read(int(e), buf)
	if err != nil {
		return 0, false
	}
	unix.Write(int(e), buf[:k])
	return 1, false
}

// TestHoldsOnlyWhileTheWindowIsOpen: a loop whose window is open parks
// by waiting in the kernel first (Loop.hold); one that never spins goes
// to the netpoller at once, and both are woken by the next frame.
func TestHoldsOnlyWhileTheWindowIsOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spin  time.Duration
		holds bool
	}{
		{"no spin", 0, false},
		{"spin 20ms", 20 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoop(t, tc.spin)
			s := newPipeSource(t)
			if _, err := l.Add(s.rd, s); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				waitFor(t, "the loop to park", func() bool { return l.Stats().Parked })
				s.send(t, "x")
				s.expect(t, "x")
				if i == 0 && tc.holds {
					// The window is open (from the start, and
					// halved to 10 ms once a spin caught nothing):
					// the loop holds.
					waitFor(t, "a hold", func() bool { return l.Stats().Holds > 0 })
				}
			}
			st := l.Stats()
			if got := st.Holds > 0; got != tc.holds {
				t.Errorf("holds %d, want them %v: %+v", st.Holds, tc.holds, st)
			}
		})
	}
}
