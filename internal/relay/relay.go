// Package relay copies between two stream connections the way a proxy
// must: both directions at once, half-close propagated (when one side stops
// sending, the other side's write half is shut, and the reply still flows),
// both connections closed exactly once when both directions are done or
// either fails (a failure passed on as a reset), and no goroutine left
// behind. It is the one TCP relay of Switchyard: published ports (proxy)
// and egress flows (gateway) both run theirs here.
//
//	       copyAToB (Run's goroutine)
//	a ───────────────────────────────► b
//	a ◄─────────────────────────────── b
//	       copyBToA (a goroutine of its own)
//
// Each direction, at its source's end of stream, shuts its destination's
// write half (or, if that cannot be half-closed, closes it); a failure in
// either direction, or Abort, closes both with SO_LINGER 0 so each peer
// sees a reset.
//
// When both ends are kernel TCP sockets the raw *net.TCPConn is handed to
// io.Copy, which splices on Linux: no byte crosses userspace. Otherwise
// Copy moves the bytes through pooled buffers sized to the traffic.
package relay

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/switchyard-net/switchyard/internal/stackgrow"
)

// closeWriter is implemented by connections that can be half-closed
// (*net.TCPConn, gVisor's gonet.TCPConn, *net.UnixConn).
type closeWriter interface {
	CloseWrite() error
}

// lingerer is implemented by connections that can be reset on close
// (*net.TCPConn, the gateway's netstack connections).
type lingerer interface {
	SetLinger(sec int) error
}

// Config holds a relay's optional settings. The zero Config is valid.
type Config struct {
	// AToB and BToA, if not nil, are added to as bytes are copied each
	// way, so that a live relay's traffic can be read while it runs: after
	// every write on the buffered path, at least every MiB on the splice
	// path, and when the direction ends.
	AToB, BToA *atomic.Uint64
}

// Result is what a relay moved.
type Result struct {
	// AToB and BToA count the bytes copied each way.
	AToB, BToA int64
	// Err is the failure that ended the relay early (a reset, a broken
	// write); nil if both directions ended on their own or Abort ended it.
	Err error
}

// Relay is one relayed pair of connections, a and b. Make one with New,
// run it with Run, and end it early, from anywhere, with Abort.
type Relay struct {
	a, b net.Conn
	cfg  Config
	wg   sync.WaitGroup // Run's goroutine
	bToA int64          // what it copied, once wg is done

	mu     sync.Mutex
	ended  bool  // end has run: both connections are closed or closing
	aEarly bool  // a was closed alone: it could not be half-closed
	bEarly bool  // the same for b
	err    error // the failure that ended the relay
}

// New returns a relay between a and b. It owns both connections from now
// on: Run or Abort closes them.
func New(a, b net.Conn, cfg Config) *Relay {
	return &Relay{a: a, b: b, cfg: cfg}
}

// Stream relays between a and b until both directions have ended, then
// closes both; it is New(a, b, Config{}).Run().
func Stream(a, b net.Conn) Result {
	return New(a, b, Config{}).Run()
}

// Run relays until both directions have ended, then closes both
// connections, and returns what it moved. It blocks; run it on a goroutine
// of the connection's own, once. A failure in either direction (a reset, a
// broken write) ends the relay at once and is passed on as a reset: both
// connections are closed with SO_LINGER 0 where they allow it, as the
// kernel's NAT would pass an RST through.
func (r *Relay) Run() Result {
	r.wg.Add(1)
	go r.runBToA()
	aToB := r.copyAToB()
	r.wg.Wait()
	r.end(false, nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	return Result{AToB: aToB, BToA: r.bToA, Err: r.err}
}

// runBToA is Run's goroutine.
func (r *Relay) runBToA() {
	if _, kernel := r.a.(*net.TCPConn); !kernel {
		// Writing into a netstack (egress: the host's answer to the
		// container) runs deep at once, through gVisor and the switch
		// to a TAP: grow the stack to fit now, in one cheap step (see
		// stackgrow). A kernel socket's writes stay shallow.
		stackgrow.Grow()
	}
	defer r.wg.Done()
	r.bToA = r.copyBToA()
}

// Abort ends the relay at once and resets both connections, so that
// neither peer takes a stream cut short for a complete one. It may be
// called from any goroutine at any time: before Run (Run then returns at
// once), while it runs, or after it has returned (then it does nothing).
func (r *Relay) Abort() { r.end(true, nil) }

// copyAToB and copyBToA are the same; two names make stack dumps of a
// stuck relay say which direction is stuck.
func (r *Relay) copyAToB() int64 {
	return r.half(r.b, r.a, &r.bEarly, &r.aEarly, r.cfg.AToB)
}

func (r *Relay) copyBToA() int64 {
	return r.half(r.a, r.b, &r.aEarly, &r.bEarly, r.cfg.BToA)
}

// half copies src to dst until src ends, then shuts dst's write half. On
// an error it ends the relay with a reset, so the other direction ends
// too. dstEarly and srcEarly are the connections' closed-alone flags.
func (r *Relay) half(dst, src net.Conn, dstEarly, srcEarly *bool, n *atomic.Uint64) int64 {
	w, err := copyConn(dst, src, n)
	if err != nil && !r.isEarly(srcEarly) {
		r.end(true, err)
		return w
	}
	// At src's end of stream, or at an error because this relay closed
	// src after the other direction ended (src could not be half-closed:
	// its reply, if any, is lost), end dst's stream cleanly.
	r.closeWrite(dst, dstEarly)
	return w
}

// copyConn copies src to dst: spliced between two kernel TCP sockets,
// through Copy's buffers otherwise.
func copyConn(dst, src net.Conn, n *atomic.Uint64) (int64, error) {
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			return spliceCopy(d, s, n)
		}
	}
	return Copy(dst, src, n)
}

func (r *Relay) isEarly(early *bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *early
}

// closeWrite shuts dst's write half. A connection that cannot be
// half-closed is closed alone instead, unless the relay has ended.
func (r *Relay) closeWrite(dst net.Conn, early *bool) {
	if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
		return
	}
	r.mu.Lock()
	if r.ended || *early {
		r.mu.Unlock()
		return
	}
	*early = true
	r.mu.Unlock()
	dst.Close()
}

// end closes both connections, each once, whoever calls it first; those
// closed alone before are left alone. With reset they are closed with
// SO_LINGER 0, so each peer gets a RST. err is the failure that ended
// the relay, if any.
func (r *Relay) end(reset bool, err error) {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.ended = true
	r.err = err
	closeA, closeB := !r.aEarly, !r.bEarly
	r.mu.Unlock()
	if closeA {
		closeConn(r.a, reset)
	}
	if closeB {
		closeConn(r.b, reset)
	}
}

func closeConn(c net.Conn, reset bool) {
	if l, ok := c.(lingerer); ok && reset {
		l.SetLinger(0)
	}
	c.Close()
}
