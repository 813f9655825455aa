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
// parks in Go's netpoller (on its epoll descriptor, which is readable when
// one of its descriptors is), so an idle network costs nothing.
//
// Go's runtime offers no way to poll a set of descriptors without
// parking, and its netpoller wakes a parked goroutine per descriptor, so
// the set is an epoll instance of the loop's own: the descriptors given
// to Add must not be registered with Go's netpoller as well (an arrival
// would wake an idle runtime thread for nothing).
//
// Everything that changes the set runs on the loop's goroutine: Add and
// Remove queue a request, wake the loop through an eventfd and wait for
// it. A Handler therefore never runs after Remove returns, and Remove must
// not be called from a Handler.
package evloop

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Handler reads a descriptor the loop found readable.
type Handler interface {
	// Readable is called on the loop's goroutine when the descriptor has
	// data. It reads what it can without blocking (the descriptor is
	// non-blocking), up to a budget of its own so that other descriptors
	// get their turn, using buf, the loop's buffer, which is valid only
	// until Readable returns. It returns the number of frames it handled
	// and whether the descriptor is gone for good (the loop then forgets
	// it, as Remove would).
	Readable(buf []byte) (frames int, gone bool)
}

// Config configures a Loop.
type Config struct {
	// Spin is how long the loop goes on polling after the last frame
	// before it parks. Zero parks as soon as nothing is ready: one
	// wake-up per burst, as a reader goroutine per descriptor has.
	Spin time.Duration
	// Yield makes each empty poll while spinning also give the CPU to
	// any other runnable thread of the machine (sched_yield), so that the
	// spin takes only idle CPU. Without it, a spinning loop holds its
	// core against the processes whose answer it waits for: on a small
	// machine running two forwarders that spin (benchmarks/tunnelbench's
	// two hosts on one VM), the answer waits for a spin to end.
	Yield bool
	// BufLen is the size of the buffer handed to Readable.
	BufLen int
}

// Loop is one polling goroutine and its set of descriptors.
type Loop struct {
	cfg  Config
	epfd int
	efd  int      // eventfd: Add, Remove and Close wake the loop with it
	ep   *os.File // epfd, registered with Go's netpoller for parking
	rc   syscall.RawConn

	mu      sync.Mutex
	reqs    []request
	closing bool

	done chan struct{}

	// Loop-owned.
	regs []registration // by slot; h is nil where free
	free []uint32
	evs  [64]unix.EpollEvent
	buf  []byte

	parkFn func(fd uintptr) bool
	parkN  int
	parked atomic.Bool

	stats struct {
		wakeups, polls, spins, events, frames atomic.Uint64
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

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("evloop: loop closed")

// New starts a loop.
func New(cfg Config) (*Loop, error) {
	if cfg.BufLen <= 0 {
		return nil, fmt.Errorf("evloop: buffer length %d: want a positive size", cfg.BufLen)
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
	// A non-blocking epoll descriptor given to os.NewFile is registered
	// with Go's netpoller: parking on it is parking until one of the
	// set's descriptors is readable.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: %w", err)
	}
	l := &Loop{cfg: cfg, epfd: epfd, efd: efd, ep: os.NewFile(uintptr(epfd), "evloop"), done: make(chan struct{}), buf: make([]byte, cfg.BufLen)}
	l.parkFn = l.park
	l.rc, err = l.ep.SyscallConn()
	if err != nil {
		l.ep.Close()
		unix.Close(efd)
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
	return l.ep.Close()
}

// Stats are the loop's counters.
type Stats struct {
	// Wakeups counts the times the loop was woken from parking: what
	// spinning saves.
	Wakeups uint64
	// Parked says whether the loop is parked now.
	Parked bool
	// Polls counts epoll_wait calls that found something ready.
	Polls uint64
	// Spins counts epoll_wait calls, while spinning, that found nothing.
	Spins uint64
	// Events counts readable descriptors handled; Frames what their
	// handlers reported.
	Events, Frames uint64
}

// Stats returns the loop's counters.
func (l *Loop) Stats() Stats {
	return Stats{
		Wakeups: l.stats.wakeups.Load(), Parked: l.parked.Load(), Polls: l.stats.polls.Load(), Spins: l.stats.spins.Load(),
		Events: l.stats.events.Load(), Frames: l.stats.frames.Load(),
	}
}

// run is the loop's goroutine: poll, dispatch; spin while the last frame
// is younger than cfg.Spin; park when it is older. Serving Add, Remove
// or Close is not traffic: it does not start a spin.
func (l *Loop) run() {
	defer close(l.done)
	last := time.Now()
	for {
		n, err := unix.EpollWait(l.epfd, l.evs[:], 0)
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("evloop: epoll_wait: %v", err)) // only EBADF/EFAULT/EINVAL: a bug
		}
		if n <= 0 {
			if l.cfg.Spin > 0 && time.Since(last) < l.cfg.Spin {
				// No runtime.Gosched here: it wakes an idle P each
				// time (wakep), a thread wake-up per spin, and lets
				// that P steal the loop. A goroutine the loop readies
				// is stolen by the other P, as always; the loop is
				// preempted like any goroutine that runs long.
				l.stats.spins.Add(1)
				if l.cfg.Yield {
					unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
				}
				continue
			}
			l.parked.Store(true)
			perr := l.rc.Read(l.parkFn)
			l.parked.Store(false)
			l.stats.wakeups.Add(1)
			if perr != nil {
				panic(fmt.Sprintf("evloop: park: %v", perr)) // the loop closes ep only after run returns
			}
			if n = l.parkN; n <= 0 {
				continue
			}
		}
		l.stats.polls.Add(1)
		frames, more := l.dispatch(n)
		if !more {
			return
		}
		if frames > 0 {
			last = time.Now()
		}
	}
}

// park is the callback of the loop's parking read (bound once, in New,
// so that parking allocates nothing): it polls the set and asks Go's
// netpoller to wait until the epoll descriptor is readable if nothing is
// ready.
func (l *Loop) park(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), l.evs[:], 0)
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
