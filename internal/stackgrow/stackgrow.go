// Package stackgrow grows a new goroutine's stack in one step, at its
// start, before it calls into deep code.
//
// Why it exists: a goroutine starts with a small stack (8 KiB; Go's
// adaptive start size follows the average of all stacks, which the many
// idle goroutines of a daemon keep small). A published port's connection
// goroutine dials the container through gVisor's netstack and the switch
// within its first microseconds, a call chain deep enough to outgrow that
// stack. Each growth copies the stack and adjusts every frame on it, and
// at the depth where it happens that was 6 % of the daemon's CPU while it
// accepted connections (a CPU profile of `rr crr` through a published
// port), and 4.7 % through egress. Growing once, while the goroutine is
// still a frame or two deep, copies almost nothing; the goroutine ends at
// the size it would have grown to anyway. Its callers: proxy's connection
// goroutine, gateway's egress handler, and the relay's second goroutine
// when it writes into a netstack. benchmarks/RESULTS.md ("A connection's
// cost on the port path", "Egress connections") has the measurements.
//
// The runtime has no call for this, so Grow declares a frame as large as
// the growth needed: the runtime's check at function entry grows the
// stack to fit it.
package stackgrow

// Frame is the stack Grow reserves: with the few frames above it, the
// stack grows from 8 to 16 KiB. A connection goroutine of a published
// port fits in 16 KiB: with Grow, a profile of `rr crr` shows no stack
// growth left.
const Frame = 12 << 10

// sink keeps the compiler from dropping Grow's frame.
var sink byte

// Grow grows the calling goroutine's stack to hold Frame bytes more than
// it uses now. Call it first thing in a goroutine that will soon call
// into deep code.
//
//go:noinline
func Grow() {
	var frame [Frame]byte
	sink = frame[int(sink)]
}
