package vnettest

import (
	"container/heap"
	"context"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/switchyard-net/switchyard/switch/stackport"
)

// clock is the time a World runs on: the real one, or a virtual one that
// moves only when the test advances it.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) tcpip.Timer
	// until returns how long the clock has to run until deadline t
	// (see deadline.go for how a virtual clock reads t).
	until(t time.Time) time.Duration
}

// realClock is the machine's clock.
type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) until(t time.Time) time.Duration { return time.Until(t) }
func (realClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) Stop() bool            { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }

// virtualEpoch is where virtual time starts: a fixed instant, so that the
// timestamps of a run (in its pcaps too) do not depend on the day.
var virtualEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// vclock is a virtual clock: Now stands still until advance moves it, and
// a timer's function runs on the goroutine that advances the clock past
// the timer's time, timers in order of time and then of creation. It
// implements tcpip.Clock, so the hosts' netstacks run on it.
//
// Lock order: a timer's function runs with mu not held; it may take locks
// of its own (a wire direction's mu, the netstack's) and call AfterFunc,
// Stop and Reset. Callers of AfterFunc, Stop and Reset may hold their own
// locks: mu is taken last.
type vclock struct {
	// activity counts the calls of the clock's users: a netstack at work
	// reads the clock, so settle takes a count that moves as a sign of
	// work.
	activity *atomic.Uint64
	// realStart is the real time the clock was made: a deadline before
	// it is a time of this clock, one after it a time of the real one.
	realStart time.Time

	mu     sync.Mutex
	now    time.Duration // since virtualEpoch
	seq    uint64
	timers vtimerHeap
}

var _ tcpip.Clock = (*vclock)(nil)

func (c *vclock) Now() time.Time {
	c.activity.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return virtualEpoch.Add(c.now)
}

func (c *vclock) NowMonotonic() tcpip.MonotonicTime {
	c.activity.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return tcpip.MonotonicTime{}.Add(c.now)
}

func (c *vclock) elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *vclock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	c.activity.Add(1)
	t := &vtimer{c: c, f: f, index: -1}
	t.Reset(d)
	return t
}

// fire moves the clock to the earliest timer, if it is due by limit, and
// runs its function. It reports whether a timer fired.
func (c *vclock) fire(limit time.Duration) bool {
	c.mu.Lock()
	if len(c.timers) == 0 || c.timers[0].at > limit {
		c.mu.Unlock()
		return false
	}
	t := heap.Pop(&c.timers).(*vtimer)
	c.now = max(c.now, t.at)
	c.mu.Unlock()
	t.f()
	return true
}

// set moves the clock to to, if that is later.
func (c *vclock) set(to time.Duration) {
	c.mu.Lock()
	c.now = max(c.now, to)
	c.mu.Unlock()
}

type vtimer struct {
	c     *vclock
	f     func()
	at    time.Duration
	seq   uint64
	index int // in c.timers; -1 when not set
}

func (t *vtimer) Stop() bool {
	t.c.activity.Add(1)
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.c.timers, t.index)
	return true
}

func (t *vtimer) Reset(d time.Duration) {
	c := t.c
	c.activity.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index >= 0 {
		heap.Remove(&c.timers, t.index)
	}
	c.seq++
	t.at, t.seq = c.now+max(d, 0), c.seq
	heap.Push(&c.timers, t)
}

type vtimerHeap []*vtimer

func (h vtimerHeap) Len() int { return len(h) }
func (h vtimerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h vtimerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *vtimerHeap) Push(x any) {
	t := x.(*vtimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *vtimerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}

// VirtualTime makes the World run on a virtual clock instead of the real
// one: every host's and router's TCP/IP stack (its retransmission,
// keepalive, ARP and other timers), every stage's delay, jitter, reordering
// and rate limit, and the pcap timestamps. The clock starts at
// 2000-01-01 00:00 UTC and stands still until the test moves it with
// World.Advance or World.AdvanceUntil, which fire the timers due one at a
// time, in order, letting the world settle after each: thirty seconds of
// retransmissions take milliseconds, and a run with the same seed gives
// the same frames at the same (virtual) times.
//
// The parts that cannot take the clock are listed in the package
// documentation (see Time).
func VirtualTime() Option {
	return func(w *World) { w.vclock = &vclock{activity: &w.activity, realStart: time.Now()} }
}

// Now returns the World's time: the virtual time under VirtualTime, else
// the real time.
func (w *World) Now() time.Time { return w.clock().Now() }

// clock returns the clock the World's parts run on.
func (w *World) clock() clock {
	if w.vclock != nil {
		return w.vclock
	}
	return realClock{}
}

// tcpipClock is the clock for the World's netstacks; nil means their
// default, the real clock.
func (w *World) tcpipClock() tcpip.Clock {
	if w.vclock != nil {
		return w.vclock
	}
	return nil
}

// Advance moves the World's virtual clock forward by d: it lets the world
// settle (until no frame moves and no goroutine of the process is ready
// to run), then repeatedly moves the clock to the next timer due within d,
// fires it and lets the world settle again, and finally sets the clock to
// d after where it started. It fails the test if the World was made
// without VirtualTime or if d is negative.
func (w *World) Advance(d time.Duration) {
	w.t.Helper()
	w.AdvanceUntil(d, nil)
}

// AdvanceUntil is Advance that stops early, right after the timer (or the
// settling) after which done reports true; done is asked after each step
// and may be nil. It returns whether done reported true, and the virtual
// time that passed.
//
// Use it to wait for what the code under test does on its own goroutines:
//
//	go func() { _, err = cli.Dial("tcp", "server:80"); close(dialed) }()
//	ok, took := w.AdvanceUntil(time.Minute, func() bool { return isClosed(dialed) })
func (w *World) AdvanceUntil(d time.Duration, done func() bool) (bool, time.Duration) {
	w.t.Helper()
	c := w.vclock
	if c == nil {
		w.fail("Advance: the World runs on the real clock: make it with the VirtualTime option")
	}
	if d < 0 {
		w.fail("Advance(%v): want a duration of 0 or more", d)
	}
	start := c.elapsed()
	limit := start + d
	for {
		w.settle()
		if done != nil && done() {
			return true, c.elapsed() - start
		}
		if !c.fire(limit) {
			break
		}
	}
	c.set(limit)
	w.settle()
	return done != nil && done(), c.elapsed() - start
}

// WithTimeout returns a context that ends when the World's clock has
// moved on by d (virtual time under VirtualTime): a deadline for
// DialContext and the like that virtual time can reach.
func (w *World) WithTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := w.clock().AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return &causeCtx{ctx}, func() { t.Stop(); cancel(context.Canceled) }
}

// causeCtx reports its cause as its error, so that a virtual deadline
// reads as context.DeadlineExceeded, as a real one does.
type causeCtx struct{ context.Context }

func (c *causeCtx) Err() error {
	if c.Context.Err() == nil {
		return nil
	}
	return context.Cause(c.Context)
}

// Settling. The world has settled when the count of frames that moved and
// of calls to the virtual clock (World.activity) has not changed over
// settleIdlePolls polls in a row, and at each of them the Go scheduler
// reported no goroutine ready to run and no processor busy but the
// caller's. Between polls the caller yields its processor
// (runtime.Gosched), so that whatever the last timer woke runs first: a
// settled world is found in microseconds, with no sleep. If other
// goroutines of the process (a parallel test, a busy loop) keep the
// scheduler busy, the caller sleeps settlePoll between polls after
// settleSpin of them, and a count unchanged for settleMax is taken as
// settled: a netstack at work moves the count far more often than that,
// unless the machine starves its thread.
//
// Why the polls in a row: a processor that has just run out of work
// still counts as busy while its thread looks for more, and a goroutine
// woken on another processor is counted as ready only once it is queued
// there; one idle reading can fall between two such steps, several in a
// row, each after the caller yielded, do not.
const (
	settleIdlePolls = 4
	settleSpin      = 2000
	settlePoll      = 20 * time.Microsecond
	settleMax       = 100 * time.Millisecond
)

var schedSamples = []metrics.Sample{
	{Name: "/sched/goroutines/runnable:goroutines"},
	{Name: "/sched/goroutines/running:goroutines"},
}

var schedMu sync.Mutex

// schedIdle reports whether no goroutine but the caller runs or waits to.
func schedIdle() bool {
	schedMu.Lock()
	defer schedMu.Unlock()
	metrics.Read(schedSamples)
	for _, s := range schedSamples {
		if s.Value.Kind() != metrics.KindUint64 {
			return false // an older runtime: rely on the quiet time
		}
	}
	return schedSamples[0].Value.Uint64() == 0 && schedSamples[1].Value.Uint64() <= 1
}

func (w *World) settle() {
	last := w.activity.Load()
	since := time.Now()
	idle := 0
	for polls := 1; ; polls++ {
		runtime.Gosched()
		if polls > settleSpin {
			time.Sleep(settlePoll)
		}
		if a := w.activity.Load(); a != last {
			last, since, idle = a, time.Now(), 0
			continue
		}
		if !schedIdle() {
			idle = 0
		} else if idle++; idle >= settleIdlePolls {
			return
		}
		if polls > settleSpin && time.Since(since) >= settleMax {
			return
		}
	}
}

// rng returns a source of random bytes for the netstack of the part
// named name: seeded from the World's seed under VirtualTime, so that a
// run replays; nil (crypto/rand) otherwise.
func (w *World) rng(name string) *lockedReader {
	if w.vclock == nil {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	var key [32]byte
	for i := range 4 {
		v := uint64(w.seed) ^ h.Sum64()*uint64(2*i+1)
		for j := range 8 {
			key[8*i+j] = byte(v >> (8 * j))
		}
	}
	return &lockedReader{r: rand.NewChaCha8(key)}
}

type lockedReader struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedReader) Read(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(b)
}

// activityCounter counts frames moving through a World.
type activityCounter = atomic.Uint64

// newStack returns a netstack on the World's clock, with its randomness
// drawn from the World's seed under VirtualTime; name tells the parts
// apart.
func (w *World) newStack(name string) *stack.Stack {
	if r := w.rng(name); r != nil {
		return stackport.NewStackWith(w.tcpipClock(), r)
	}
	return stackport.NewStack()
}
