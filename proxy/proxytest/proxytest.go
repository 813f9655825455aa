// Package proxytest has test doubles for proxy.Dialer that need no root
// and no container: Loopback dials real servers on the host's loopback and
// records every dial (with the client address the proxy passed), and
// Blackhole never connects, for dial timeouts.
//
// The package does not import proxy, so that proxy's own tests can use
// it; proxy's tests check at compile time that both satisfy proxy.Dialer.
package proxytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Call records one dial.
type Call struct {
	Network string         // "tcp" or "udp"
	Src     netip.AddrPort // the client address the proxy passed
	Dst     netip.AddrPort // the target the proxy asked for, before Redirect
	Err     error          // the dial's error, if it failed
}

// Loopback dials dst, or Redirect(dst), on the host's loopback, ignoring
// src (as NetnsDialer does). It refuses any address that is not loopback,
// so a test cannot send traffic off the host by mistake. The zero value
// is ready to use and safe for concurrent use.
type Loopback struct {
	// Redirect maps the container address the proxy asks for (say
	// 10.99.0.2:81), on network "tcp" or "udp", to where a test server
	// listens (say 127.0.0.1:40123). If nil, dst is dialed as given.
	Redirect func(network string, dst netip.AddrPort) netip.AddrPort

	// Opaque hides the *net.TCPConn or *net.UDPConn behind a wrapper, so
	// that the proxy takes its generic path (buffered copy, a held reply
	// buffer) as it does with a netstack's conns. The wrapper keeps
	// CloseWrite, and Open counts wrapped conns not yet closed.
	Opaque bool

	// NoCloseWrite, with Opaque, also hides CloseWrite, for testing the
	// relay with conns that cannot be half-closed.
	NoCloseWrite bool

	// Push, with Opaque, makes UDP conns push their replies (they have
	// proxy.ReplyPusher's PushReplies): a goroutine of the double reads
	// each reply and hands it over, as the gateway's netstack does on the
	// goroutine that delivered it.
	Push bool

	pushMu sync.Mutex // held around every push of the double's
	mu     sync.Mutex
	calls  []Call
	open   int
}

// DialTCP connects to dst (after Redirect) over TCP.
func (d *Loopback) DialTCP(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error) {
	return d.dial(ctx, "tcp", src, dst)
}

// DialUDP returns a UDP socket connected to dst (after Redirect).
func (d *Loopback) DialUDP(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error) {
	return d.dial(ctx, "udp", src, dst)
}

func (d *Loopback) dial(ctx context.Context, network string, src, dst netip.AddrPort) (net.Conn, error) {
	to := dst
	if d.Redirect != nil {
		to = d.Redirect(network, dst)
	}
	var c net.Conn
	var err error
	if !to.Addr().IsLoopback() {
		err = fmt.Errorf("proxytest: refusing to dial %s %s: not a loopback address (set Redirect)", network, to)
	} else {
		var nd net.Dialer
		c, err = nd.DialContext(ctx, network, to.String())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, Call{Network: network, Src: src, Dst: dst, Err: err})
	if err != nil {
		return nil, err
	}
	if !d.Opaque {
		return c, nil
	}
	d.open++
	oc := &opaqueConn{Conn: c, d: d}
	if d.Push && network == "udp" {
		return &pushConn{opaqueConn: oc}, nil
	}
	if d.NoCloseWrite {
		return oc, nil
	}
	return &halfCloser{oc}, nil
}

// Calls returns every dial so far, in order.
func (d *Loopback) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// Open returns how many conns this dialer returned that have not been
// closed. It counts only Opaque conns; a raw kernel conn cannot be watched.
func (d *Loopback) Open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open
}

// opaqueConn is a net.Conn and nothing more (no CloseWrite, ReadFrom,
// WriteTo, SetLinger), which counts its Close.
type opaqueConn struct {
	net.Conn
	d    *Loopback
	once sync.Once
}

func (c *opaqueConn) Close() error {
	c.once.Do(func() {
		c.d.mu.Lock()
		c.d.open--
		c.d.mu.Unlock()
	})
	return c.Conn.Close()
}

// pushConn is an opaqueConn that pushes what it reads.
type pushConn struct {
	*opaqueConn
	done chan struct{} // closed when the pushing goroutine ends; nil if none
}

// PushReplies starts a goroutine that hands each datagram read, or read
// error, to push until the conn is closed.
func (c *pushConn) PushReplies(push func(p []byte, err error)) bool {
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		buf := make([]byte, 65535)
		for {
			n, err := c.Conn.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.d.pushMu.Lock()
			if err != nil {
				push(nil, err)
			} else {
				push(buf[:n], nil)
			}
			c.d.pushMu.Unlock()
		}
	}()
	return true
}

// Close closes the conn and returns when nothing more is pushed.
func (c *pushConn) Close() error {
	err := c.opaqueConn.Close()
	if c.done != nil {
		<-c.done
	}
	return err
}

// halfCloser adds CloseWrite back to an opaqueConn.
type halfCloser struct{ *opaqueConn }

func (c *halfCloser) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// PushLock is held around every push of the dialer's Push conns: a test
// that calls a flow's push function itself holds it too, so that calls
// come one at a time as proxy.ReplyPusher promises.
func (d *Loopback) PushLock() *sync.Mutex { return &d.pushMu }

// Blackhole never connects: each dial waits until ctx is done and fails
// with ctx's error, as a dial to an address that drops SYNs does.
type Blackhole struct{}

// DialTCP waits for ctx and fails.
func (Blackhole) DialTCP(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst), Err: ctx.Err()}
}

// DialUDP waits for ctx and fails.
func (Blackhole) DialUDP(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: "udp", Addr: net.UDPAddrFromAddrPort(dst), Err: ctx.Err()}
}
