package vnettest

import (
	"context"
	"net"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// Deadlines on the World's clock.
//
// gVisor's gonet adapter arms a conn's deadlines with time.AfterFunc, on
// the real clock. Under VirtualTime the conns hosts hand out are wrapped:
// the wrapper keeps the gonet conn's own deadline cleared and arms a
// timer of the virtual clock instead, which, when it fires, sets the gonet
// deadline to a time long past, so that a blocked Read or Write returns
// its timeout error at once. Listeners are the package's own (gonet's has
// no Accept deadline), on the World's clock, virtual or real.
//
// A deadline is read as code that knows nothing of the World writes it:
// a time on the real clock (time.Now().Add(d)), whose distance from the
// real now, rounded up to the millisecond, runs on the virtual clock; or,
// if it is earlier than the moment the World was made (virtual times
// start in the year 2000), as a time of the World's clock
// (World.Now().Add(d)), exactly.

// farPast is a deadline that has passed: it makes gonet time out at once.
var farPast = time.Unix(1, 0)

// realRound is how finely a deadline given on the real clock is taken:
// the few microseconds between time.Now() and SetDeadline are rounded
// away, so time.Now().Add(30*time.Second) is 30 virtual seconds exactly.
const realRound = time.Millisecond

// until returns how long the virtual clock has to run until deadline t.
func (c *vclock) until(t time.Time) time.Duration {
	if t.Before(c.realStart) {
		return t.Sub(c.Now())
	}
	d := time.Until(t)
	if r := d % realRound; r > 0 {
		d += realRound - r
	}
	return d
}

// deadline is one deadline (read, write or accept) on a World's clock.
type deadline struct {
	clk clock
	// expire is called with mu held: with true when the deadline has
	// come, with false when it is cleared or moved later.
	expire func(due bool)

	mu    sync.Mutex
	timer tcpip.Timer
	gen   uint64 // counts set calls; a timer of an older one does nothing
}

// set moves the deadline to t; zero clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if t.IsZero() {
		d.expire(false)
		return
	}
	wait := d.clk.until(t)
	if wait <= 0 {
		d.expire(true)
		return
	}
	d.expire(false)
	gen := d.gen
	d.timer = d.clk.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			d.expire(true)
		}
	})
}

// stop stops the deadline's timer.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// deadliner is the part of a gonet conn the deadlines act on.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// vdeadlines are a conn's read and write deadlines on a virtual clock.
type vdeadlines struct {
	read, write deadline
}

func (v *vdeadlines) init(c *vclock, inner deadliner) {
	v.read = deadline{clk: c, expire: func(due bool) { inner.SetReadDeadline(pastIf(due)) }}
	v.write = deadline{clk: c, expire: func(due bool) { inner.SetWriteDeadline(pastIf(due)) }}
}

func pastIf(due bool) time.Time {
	if due {
		return farPast
	}
	return time.Time{}
}

// SetDeadline implements net.Conn: t is taken on the World's clock.
func (v *vdeadlines) SetDeadline(t time.Time) error {
	v.read.set(t)
	v.write.set(t)
	return nil
}

// SetReadDeadline implements net.Conn: t is taken on the World's clock.
func (v *vdeadlines) SetReadDeadline(t time.Time) error { v.read.set(t); return nil }

// SetWriteDeadline implements net.Conn: t is taken on the World's clock.
func (v *vdeadlines) SetWriteDeadline(t time.Time) error { v.write.set(t); return nil }

func (v *vdeadlines) stop() { v.read.stop(); v.write.stop() }

// vTCPConn is a host's TCP conn with deadlines on the virtual clock. It
// keeps gonet's CloseRead and CloseWrite (half-close).
type vTCPConn struct {
	*gonet.TCPConn
	vdeadlines
}

func (c *vTCPConn) Close() error {
	c.stop()
	return c.TCPConn.Close()
}

// vUDPConn is a host's UDP socket (a net.Conn and a net.PacketConn) with
// deadlines on the virtual clock.
type vUDPConn struct {
	*gonet.UDPConn
	vdeadlines
}

func (c *vUDPConn) Close() error {
	c.stop()
	return c.UDPConn.Close()
}

// The wrappers' own deadline methods are shallower than the gonet conns'
// and so win.
var (
	_ net.Conn                        = (*vTCPConn)(nil)
	_ net.Conn                        = (*vUDPConn)(nil)
	_ net.PacketConn                  = (*vUDPConn)(nil)
	_ interface{ CloseWrite() error } = (*vTCPConn)(nil)
	_ interface{ CloseRead() error }  = (*vTCPConn)(nil)
)

// wrapTCP puts c's deadlines on the World's clock, if it is virtual.
func (h *Host) wrapTCP(c *gonet.TCPConn) net.Conn {
	if h.world == nil || h.world.vclock == nil {
		return c
	}
	v := &vTCPConn{TCPConn: c}
	v.init(h.world.vclock, c)
	return v
}

// wrapUDP puts c's deadlines on the World's clock, if it is virtual.
func (h *Host) wrapUDP(c *gonet.UDPConn) udpConn {
	if h.world == nil || h.world.vclock == nil {
		return c
	}
	v := &vUDPConn{UDPConn: c}
	v.init(h.world.vclock, c)
	return v
}

// vConn is any conn of the World's (the gateway's flows for PublishUDP)
// with deadlines on the virtual clock.
type vConn struct {
	net.Conn
	d vdeadlines
}

func (c *vConn) SetDeadline(t time.Time) error      { return c.d.SetDeadline(t) }
func (c *vConn) SetReadDeadline(t time.Time) error  { return c.d.SetReadDeadline(t) }
func (c *vConn) SetWriteDeadline(t time.Time) error { return c.d.SetWriteDeadline(t) }

func (c *vConn) Close() error {
	c.d.stop()
	return c.Conn.Close()
}

// onWorldClock puts c's deadlines on the World's clock, if it is virtual.
func (w *World) onWorldClock(c net.Conn) net.Conn {
	if w.vclock == nil {
		return c
	}
	v := &vConn{Conn: c}
	v.d.init(w.vclock, c)
	return v
}

// udpConn is what a host's UDP socket is: both kinds of conn.
type udpConn interface {
	net.Conn
	net.PacketConn
}

// dialContext returns ctx with its deadline, if it has one, run on the
// World's virtual clock: context.WithTimeout arms a real timer, which
// virtual time would never reach.
func (h *Host) dialContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.world == nil || h.world.vclock == nil {
		return ctx, func() {}
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	return h.world.WithTimeout(ctx, h.world.vclock.until(dl))
}
