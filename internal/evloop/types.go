package evloop

import (
	"errors"
	"time"
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
	// Spin is how long, at most, the loop goes on polling after the
	// last frame before it parks; the window adapts below it (see run).
	// Zero parks as soon as nothing is ready: one wake-up per burst, as
	// a reader goroutine per descriptor has.
	Spin time.Duration
	// BufLen is the size of the buffer handed to Readable.
	BufLen int
	// Contention is how long a sched_yield between polls may take
	// before the loop takes it that another thread wanted the CPU and
	// halves its window (see run). Zero means 50 µs; negative
	// never stops (tests that count wake-ups on a shared machine).
	Contention time.Duration
	// Yield, if set, is asked after each turn that handled frames
	// whether they woke goroutines that should run now; if so, the loop
	// yields its processor (runtime.Gosched) before it polls again.
	// A frame delivered to a netstack inline readies the netstack's
	// goroutines on the loop's processor, where a spinning loop would
	// keep them waiting until another processor steals them.
	Yield func() bool
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("evloop: loop closed")

// Stats are the loop's counters.
type Stats struct {
	// Wakeups counts the times the loop was woken from parking: what
	// spinning saves.
	Wakeups uint64
	// Holds counts the parkings that began with a wait in the kernel
	// (the window was open, see Loop.hold); the others went to Go's
	// netpoller at once.
	Holds uint64
	// Parked says whether the loop is parked now.
	Parked bool
	// Window is how long the loop spins after a frame now: Config.Spin
	// while spinning pays, less (down to 0) while it does not.
	Window time.Duration
	// Polls counts epoll_wait calls that found something ready.
	Polls uint64
	// Spins counts epoll_wait calls, while spinning, that found nothing.
	Spins uint64
	// Yields counts the turns after which the loop yielded (Config.Yield).
	Yields uint64
	// Contended counts polls after which the window was halved because
	// another thread wanted the CPU.
	Contended uint64
	// Crowded counts spins not started because GOMAXPROCS-1 loops of
	// the process were spinning already.
	Crowded uint64
	// Events counts readable descriptors handled; Frames what their
	// handlers reported.
	Events, Frames uint64
}
