//go:build linux

// Package evloop runs one goroutine that reads many descriptors (the TAPs
// of a network) and, after each frame, keeps polling them for a short
// while before it parks.
//
// Why it exists: on the VMs Switchyard runs on, each wake-up of a parked
// reader costs tens of microseconds (benchmarks/RESULTS.md, "Wake-ups per
// round trip"). With one reader goroutine per TAP, a request from
// container A to B wakes the reader of A's TAP and the answer wakes the
// reader of B's: two wake-ups per round trip, whatever the switch does. A
// reader that spins on its own descriptor does not help, because the
// answer arrives on the other one (measured: it lost). One loop that polls
// every TAP of the network with one epoll_wait(0) catches the answer on
// the goroutine that forwarded the request, still running: no wake-up at
// all while traffic flows. When nothing arrives for Config.Spin the loop
// parks in Go's netpoller, so an idle network costs nothing.
//
// Go's runtime offers no way to poll a set of descriptors without
// parking, and its netpoller wakes a parked goroutine per descriptor, so
// the set is an epoll instance of the loop's own: the descriptors given
// to Add must not be registered with Go's netpoller as well (an arrival
// would wake an idle runtime thread for nothing).
//
// Parking uses a second epoll instance, the door, which is what Go's
// netpoller watches: the set is put in the door when the loop parks and
// taken out before it spins, so while the loop spins the door is empty.
// The first version let the netpoller watch the set itself; the
// netpoller watches edge-triggered, an epoll instance signals an edge
// for every arrival on any of its descriptors, and so every frame, even
// one the spinning loop was about to read itself, woke the runtime
// thread waiting in the netpoller (about one wake-up per round trip,
// TestSpinningWakesNoOtherThread). While frames come densely the loop
// first waits in a blocking epoll_wait, for a millisecond at most, before
// it parks in the netpoller (see hold).
//
// Everything that changes the set runs on the loop's goroutine: Add and
// Remove queue a request, wake the loop through an eventfd and wait for
// it. A Handler therefore never runs after Remove returns, and Remove must
// not be called from a Handler.
package evloop

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Loop is one polling goroutine and its set of descriptors.
type Loop struct {
	cfg  Config
	epfd int             // the set
	efd  int             // eventfd: Add, Remove and Close wake the loop with it
	door *os.File        // an epoll instance Go's netpoller watches; it holds epfd while the loop parks
	rc   syscall.RawConn // door's
	// doorFd is door's descriptor, kept because os.File.Fd would make
	// it blocking.
	doorFd int
	inDoor bool // the set is in the door (loop-owned)

	mu      sync.Mutex
	reqs    []request
	closing bool

	done chan struct{}

	// Loop-owned.
	regs []registration // by slot; h is nil where free
	free []uint32
	evs  [64]unix.EpollEvent
	buf  []byte

	pause func() time.Duration // schedYield; tests fake it
	// maxSpinners is GOMAXPROCS-1 when the loop starts (see spinners).
	maxSpinners int32
	parkFn      func(fd uintptr) bool
	parkN       int
	parked      atomic.Bool
	window      atomic.Int64 // the spin window now, for Stats

	stats struct {
		wakeups, holds, polls, spins, yields, contended, crowded, events, frames atomic.Uint64
	}
}

// request is one change of the set, made on the loop's goroutine.
type request struct {
	add    bool
	fd     int
	h      Handler
	token  uint64
	result chan requestResult
}

type requestResult struct {
	token uint64
	err   error
}

// kickToken marks the eventfd's events.
const kickToken = ^uint64(0)

// New starts a loop.
func New(cfg Config) (*Loop, error) { return start(cfg, schedYield) }

// start is New with the pause between polls given (tests fake
// contention with it).
func start(cfg Config, pause func() time.Duration) (*Loop, error) {
	if cfg.BufLen <= 0 {
		return nil, fmt.Errorf("evloop: buffer length %d: want a positive size", cfg.BufLen)
	}
	if cfg.Contention == 0 {
		cfg.Contention = defaultContention
	}
	if cfg.Spin < 0 {
		return nil, fmt.Errorf("evloop: spin %v: want zero or more", cfg.Spin)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("evloop: epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, kickToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: epoll_ctl add eventfd: %w", err)
	}
	// A non-blocking descriptor given to os.NewFile is registered with
	// Go's netpoller: parking on the door is parking until it holds
	// something readable.
	door, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		if err = unix.SetNonblock(door, true); err != nil {
			unix.Close(door)
		}
	}
	if err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: epoll door: %w", err)
	}
	l := &Loop{cfg: cfg, epfd: epfd, efd: efd, door: os.NewFile(uintptr(door), "evloop"), done: make(chan struct{}), buf: make([]byte, cfg.BufLen)}
	l.parkFn, l.pause, l.doorFd = l.poll, pause, door
	l.maxSpinners = int32(runtime.GOMAXPROCS(0) - 1)
	l.rc, err = l.door.SyscallConn()
	if err != nil {
		l.door.Close()
		unix.Close(efd)
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: %w", err)
	}
	go l.run()
	return l, nil
}

// Add puts fd, a non-blocking descriptor not known to Go's netpoller, in
// the set: from now on h.Readable is called on the loop whenever fd is
// readable. It returns the token that Remove takes.
func (l *Loop) Add(fd int, h Handler) (uint64, error) {
	r := l.do(request{add: true, fd: fd, h: h})
	return r.token, r.err
}

// Remove takes the descriptor of token out of the set. When it returns,
// its Handler is not running and will not run again, so the descriptor may
// be closed. Removing a token the loop already forgot (its Handler
// reported it gone) is a no-op. Remove must not be called from a Handler.
func (l *Loop) Remove(token uint64) {
	l.do(request{token: token})
}

func (l *Loop) do(r request) requestResult {
	r.result = make(chan requestResult, 1)
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return requestResult{err: ErrClosed}
	}
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
	l.kick()
	select {
	case res := <-r.result:
		return res
	case <-l.done:
		return requestResult{err: ErrClosed}
	}
}

func (l *Loop) kick() {
	one := [8]byte{1}
	unix.Write(l.efd, one[:]) // EAGAIN: the counter is full, a kick is pending anyway
}

// Close stops the loop. The descriptors in the set are not closed: they
// are their owners'.
func (l *Loop) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closing = true
	l.mu.Unlock()
	l.kick()
	<-l.done
	unix.Close(l.efd)
	unix.Close(l.epfd)
	return l.door.Close()
}

// Stats returns the loop's counters.
func (l *Loop) Stats() Stats {
	return Stats{
		Wakeups: l.stats.wakeups.Load(), Holds: l.stats.holds.Load(), Parked: l.parked.Load(), Window: time.Duration(l.window.Load()), Polls: l.stats.polls.Load(), Spins: l.stats.spins.Load(), Yields: l.stats.yields.Load(), Contended: l.stats.contended.Load(), Crowded: l.stats.crowded.Load(),
		Events: l.stats.events.Load(), Frames: l.stats.frames.Load(),
	}
}

// run is the loop's goroutine: poll, dispatch; spin while the last frame
// is younger than the spin window; park when it is older. Serving Add,
// Remove or Close is not traffic: it does not start a spin.
//
// The window adapts between 0 and cfg.Spin, so that spinning costs a
// core only where it saves wake-ups: a window that runs out with nothing
// caught is halved (below cfg.Spin/64 it closes), and a wake-up for a
// frame that a full window would have caught (it came less than cfg.Spin
// after the last one) widens it again, to twice that gap at least.
// Traffic whose gaps are longer than cfg.Spin (a health check a second, a
// trickle) thus closes the window after a few frames and is served
// with one wake-up a frame, as by a reader that never spins; request
// and response traffic keeps it open. Between polls the loop yields the
// CPU (sched_yield); a yield that took long means another thread wanted
// it, and halves the window too, so that on a busy machine the loop
// soon stops spinning. (Measured: spinning regardless on a loaded 2-CPU
// machine made round trips slower, not faster; closing the window for
// 100 ms after one long yield lost most of the gain on a quiet one,
// where the answering process itself is often the thread that waited.)
func (l *Loop) run() {
	defer close(l.done)
	st := spinState{window: l.cfg.Spin}
	l.window.Store(int64(st.window))
	defer st.release()
	for {
		n, err := unix.EpollWait(l.epfd, l.evs[:], 0)
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("evloop: epoll_wait: %v", err)) // only EBADF/EFAULT/EINVAL: a bug
		}
		if n <= 0 {
			if l.spin(&st) {
				continue
			}
			if n = l.sleep(&st); n <= 0 {
				continue
			}
		}
		l.stats.polls.Add(1)
		frames, more := l.dispatch(n)
		if !more {
			return
		}
		if frames > 0 {
			st.last, st.spun = time.Now(), false
			if l.cfg.Yield != nil && l.cfg.Yield() {
				l.stats.yields.Add(1)
				runtime.Gosched()
			}
		}
	}
}

// spinState is run's: the window and where the loop stands in it.
type spinState struct {
	last    time.Time     // of the last frame: none yet, so no spin
	window  time.Duration // the spin window now
	spun    bool          // spinning since the last frame
	holding bool          // one of the process's spinner places
}

// release gives back the spinner place, if held.
func (st *spinState) release() {
	if st.holding {
		spinners.Add(-1)
		st.holding = false
	}
}

// spin takes one turn of spinning after an empty poll, if the window is
// open and a spinner place is free; it reports whether it did.
//
// Between polls it calls sched_yield, which lets any thread waiting for
// this CPU run first (on a loaded machine, the very process that is to
// send the next frame); on an idle one it returns at once. Not
// runtime.Gosched: that wakes an idle P each time (wakep), a thread
// wake-up per spin, and lets that P steal the loop. A goroutine the loop
// readies is stolen by the other P, as always.
func (l *Loop) spin(st *spinState) bool {
	if st.window <= 0 || time.Since(st.last) >= st.window || !(st.holding || l.takeSpinner()) {
		return false
	}
	st.holding, st.spun = true, true
	l.leaveDoor()
	l.stats.spins.Add(1)
	if d := l.pause(); l.cfg.Contention >= 0 && d > l.cfg.Contention {
		// Another thread had this CPU: the machine is busy, and
		// spinning takes a CPU from the very processes that are to
		// send the next frame. Halve the window, as for a spin that
		// caught nothing: a busy machine closes it in a few turns,
		// one thread woken beside the loop now and then does not.
		l.stats.contended.Add(1)
		st.window = l.shrink(st.window)
	}
	return true
}

// sleep parks the loop until its set has something ready and returns
// how many events l.evs holds. A window that ran out with nothing caught
// is halved first; a wake-up that a full window would have saved widens
// it.
func (l *Loop) sleep(st *spinState) int {
	if st.spun {
		st.window = l.shrink(st.window)
		st.spun = false
	}
	st.release()
	l.parked.Store(true)
	n := 0
	if st.window > 0 {
		n = l.hold()
	}
	if n <= 0 {
		n = l.park()
	}
	l.parked.Store(false)
	l.stats.wakeups.Add(1)
	if gap := time.Since(st.last); n > 0 && l.cfg.Spin > 0 && st.window < l.cfg.Spin && gap < l.cfg.Spin {
		st.window = l.grow(st.window, gap) // a miss: a full window would have caught it
	}
	return n
}

const (
	// defaultContention is Config.Contention's default: an uncontended
	// sched_yield returns in about a microsecond.
	defaultContention = 50 * time.Microsecond
)

// spinners counts the loops of the process that are spinning. At most
// GOMAXPROCS-1 may: a spinning loop holds a processor of the Go runtime,
// and with every processor held the process's other goroutines (the
// gateway's netstack, the relays) would wait for the runtime to preempt
// a loop, 10 ms. With one processor no loop spins.
var spinners atomic.Int32

// takeSpinner takes a spinner place if one is free.
func (l *Loop) takeSpinner() bool {
	for {
		n := spinners.Load()
		if n >= l.maxSpinners {
			l.stats.crowded.Add(1)
			return false
		}
		if spinners.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Dup returns a duplicate (close-on-exec) of rc's descriptor, for a
// loop to poll: a descriptor Go's netpoller has never seen. The caller
// closes it.
func Dup(rc syscall.RawConn) (int, error) {
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	return nfd, nil
}

// schedYield gives the CPU to any other thread waiting for it and
// returns how long that took.
func schedYield() time.Duration {
	t := time.Now()
	unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	return time.Since(t)
}

// shrink halves a window that ran out with nothing caught.
func (l *Loop) shrink(w time.Duration) time.Duration {
	if w /= 2; w < l.cfg.Spin/64 {
		w = 0
	}
	l.window.Store(int64(w))
	return w
}

// grow widens the window after a wake-up it would have saved, for a
// frame that came gap after the last: to twice the gap, or twice what it
// was, whichever is wider, and at least cfg.Spin/8.
func (l *Loop) grow(w, gap time.Duration) time.Duration {
	if w = max(2*w, 2*gap, l.cfg.Spin/8); w > l.cfg.Spin {
		w = l.cfg.Spin
	}
	l.window.Store(int64(w))
	return w
}

// holdFor is how long hold waits in the kernel before the loop parks
// in the netpoller: a few round trips of the slowest traffic spinning
// still pays for.
const holdFor = 1 // ms, epoll_wait's unit

// hold waits for the set in a blocking epoll_wait, for up to holdFor,
// and returns how many events l.evs holds (0 if none came, or a signal
// cut the wait short). It is how the loop parks while its window is
// open, that is while frames come densely enough for spinning to pay:
// the kernel then wakes the loop's own thread, one thread wake-up where
// the netpoller costs two (its thread's, then one to run the loop), and
// the runtime hands the loop's processor to others meanwhile, as for any
// blocking system call. Not always: the runtime's monitor thread wakes
// several times for each return from a blocking call on an otherwise
// idle process, which more than doubled the wake-ups of an idle daemon,
// so a loop whose window has closed parks in the netpoller at once
// (benchmarks/RESULTS.md has the three ways measured).
func (l *Loop) hold() int {
	l.leaveDoor()
	l.stats.holds.Add(1)
	n, err := unix.EpollWait(l.epfd, l.evs[:], holdFor)
	if err != nil {
		return 0 // EINTR; anything else the netpoller's park reports
	}
	return n
}

// park puts the set in the door, if it is not there yet, waits in Go's
// netpoller until the set has something ready and returns how many
// events l.evs holds. A frame that arrived before the set went in is
// found by poll's first look; one after, by the door.
//
// The set stays in the door until the loop spins or holds again
// (leaveDoor): a loop whose window has closed parks after every frame,
// and needs no epoll_ctl calls for it.
func (l *Loop) park() int {
	if !l.inDoor {
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		if err := unix.EpollCtl(l.doorFd, unix.EPOLL_CTL_ADD, l.epfd, &ev); err != nil {
			panic(fmt.Sprintf("evloop: park: epoll_ctl add: %v", err)) // only on a bug: both are the loop's, open until run returns
		}
		l.inDoor = true
	}
	if err := l.rc.Read(l.parkFn); err != nil {
		panic(fmt.Sprintf("evloop: park: %v", err)) // the loop closes the door only after run returns
	}
	return l.parkN
}

// leaveDoor takes the set out of the door, if it is there, before the
// loop polls it itself.
func (l *Loop) leaveDoor() {
	if l.inDoor {
		unix.EpollCtl(l.doorFd, unix.EPOLL_CTL_DEL, l.epfd, nil)
		l.inDoor = false
	}
}

// poll is the callback of park's read (bound once, in New, so that
// parking allocates nothing): it polls the set and asks Go's netpoller to
// wait for the door if nothing is ready.
func (l *Loop) poll(uintptr) bool {
	n, err := unix.EpollWait(l.epfd, l.evs[:], 0)
	l.parkN = n
	return n != 0 || (err != nil && err != unix.EINTR)
}

// dispatch hands the n ready descriptors of l.evs to their handlers and
// serves the queued requests if the eventfd was among them. It returns
// the number of frames the handlers reported, and false when the loop is
// to stop.
func (l *Loop) dispatch(n int) (frames int, more bool) {
	kicked := false
	for i := 0; i < n; i++ {
		tok := token(&l.evs[i])
		if tok == kickToken {
			kicked = true
			continue
		}
		r := l.lookup(tok)
		if r == nil {
			continue // removed by an earlier event of this batch
		}
		l.stats.events.Add(1)
		k, gone := r.h.Readable(l.buf)
		frames += k
		if gone {
			l.forget(tok)
		}
	}
	l.stats.frames.Add(uint64(frames))
	if kicked {
		var b [8]byte
		unix.Read(l.efd, b[:])
		return frames, l.serve()
	}
	return frames, true
}

// serve runs the queued requests; it reports false once Close was asked.
func (l *Loop) serve() bool {
	l.mu.Lock()
	reqs, closing := l.reqs, l.closing
	l.reqs = nil
	l.mu.Unlock()
	for _, r := range reqs {
		if r.add {
			r.result <- l.add(r.fd, r.h)
		} else {
			l.forget(r.token)
			r.result <- requestResult{}
		}
	}
	return !closing
}

// A token is a slot of l.regs in its low 32 bits and the slot's
// generation in the high ones, so that a token the loop forgot (its
// handler reported the descriptor gone) never names the slot's next
// tenant.
func (l *Loop) add(fd int, h Handler) requestResult {
	var slot uint32
	if k := len(l.free); k > 0 {
		slot, l.free = l.free[k-1], l.free[:k-1]
	} else {
		slot = uint32(len(l.regs))
		l.regs = append(l.regs, registration{})
	}
	r := &l.regs[slot]
	r.gen++
	tok := uint64(r.gen)<<32 | uint64(slot)
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, tok)
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.free = append(l.free, slot)
		return requestResult{err: fmt.Errorf("evloop: add descriptor %d: %w", fd, err)}
	}
	r.h, r.fd = h, fd
	return requestResult{token: tok}
}

// lookup returns the live registration of tok, or nil.
func (l *Loop) lookup(tok uint64) *registration {
	slot := uint32(tok)
	if uint64(slot) >= uint64(len(l.regs)) {
		return nil
	}
	r := &l.regs[slot]
	if r.h == nil || r.gen != uint32(tok>>32) {
		return nil
	}
	return r
}

// forget takes tok out of the epoll set and the table.
func (l *Loop) forget(tok uint64) {
	r := l.lookup(tok)
	if r == nil {
		return
	}
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, r.fd, nil) // ENOENT/EBADF: the owner closed it already
	r.h, r.fd = nil, -1
	l.free = append(l.free, uint32(tok))
}

// registration is a Handler with the descriptor it reads.
type registration struct {
	h   Handler
	fd  int
	gen uint32
}

// token and setToken keep a uint64 in the 8 bytes of an epoll_event's
// data (unix.EpollEvent spells them Fd and Pad).
func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd, ev.Pad = int32(uint32(t)), int32(uint32(t>>32))
}
