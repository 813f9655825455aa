package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/internal/relay"
	"github.com/switchyard-net/switchyard/internal/stackgrow"
)

// tcpBinding is one TCP host listener and the connections it relays. Its
// goroutines: one accept loop, and two per connection (one per direction).
type tcpBinding struct {
	bindingBase
	ln *net.TCPListener
	c  tcpCounters

	mu     sync.Mutex
	conns  map[*tcpConn]struct{} // accepted and not yet finished
	closed bool
	wg     sync.WaitGroup // the accept loop and each connection's serve
}

func newTCPBinding(base bindingBase, ln *net.TCPListener) *tcpBinding {
	return &tcpBinding{bindingBase: base, ln: ln, conns: make(map[*tcpConn]struct{})}
}

func (b *tcpBinding) start() {
	b.wg.Add(1)
	go b.acceptLoop()
}

// stop closes the listener, cancels dials in progress and resets every
// live connection: a connection cut short must not look, to either side,
// like a complete one.
func (b *tcpBinding) stop() {
	b.cancel()
	b.ln.Close()
	b.mu.Lock()
	b.closed = true
	conns := make([]*tcpConn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
}

func (b *tcpBinding) wait() { b.wg.Wait() }

func (b *tcpBinding) stats() BindingStats {
	b.mu.Lock()
	n := len(b.conns)
	b.mu.Unlock()
	return BindingStats{Published: b.pub, TCP: b.c.snapshot(n)}
}

// forget frees a finished connection's slots and drops it from the set
// (in that order: once it no longer counts as active, its slots are free).
func (b *tcpBinding) forget(c *tcpConn) {
	b.release()
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// acceptLoop is the binding's one accept goroutine. A connection over the
// port's or the Manager's limit is reset at once. An accept error other
// than the listener's closing (out of file descriptors, usually) is
// counted and retried after a pause that doubles up to a second; the
// kernel keeps waiting connections in the backlog meanwhile.
func (b *tcpBinding) acceptLoop() {
	defer b.wg.Done()
	var backoff time.Duration
	for {
		client, err := b.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			b.warnAcceptFailed(err, b.c.acceptErrors.Add(1), backoff)
			if !b.pause(backoff) {
				return
			}
			continue
		}
		backoff = 0
		if scope := admit(b.port, b.global); scope != scopeNone {
			// Counted and logged before the reset, so that whoever
			// saw the reset finds it counted and, if a warning was
			// due, warned of.
			b.warnOverLimit(scope, b.c.overLimit.Add(1))
			reset(client)
			continue
		}

		c := &tcpConn{b: b, client: client}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			b.release()
			reset(client)
			return
		}
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		b.c.total.Add(1)
		go c.serve()
	}
}

// release gives a connection's slots of the port's and the Manager's
// limits back.
func (b *tcpBinding) release() {
	b.port.release()
	b.global.release()
}

// reset closes c with SO_LINGER 0: its peer gets a reset, not an end of
// stream.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// tcpConn is one accepted connection and, once dialed, the relay between
// it and its container side.
type tcpConn struct {
	b      *tcpBinding
	client *net.TCPConn

	mu     sync.Mutex
	relay  *relay.Relay // nil until dialed
	closed bool         // abort has run, or the dial failed
}

// serve dials the container for the client, then relays. The dial comes
// first: if it fails the client is reset, so that it sees the failure as
// it would without a proxy, rather than a connection that opens and then
// closes cleanly or hangs.
func (c *tcpConn) serve() {
	// The dial below runs through gVisor and the switch at once: grow
	// the stack to fit it now, in one cheap step (see stackgrow).
	stackgrow.Grow()
	defer c.b.wg.Done()
	defer c.b.forget(c)

	var src netip.AddrPort
	if a, ok := c.client.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		src = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ctx, cancel := context.WithTimeout(c.b.ctx, c.b.dialTimeout)
	container, err := c.b.dialer.DialTCP(ctx, src, c.b.dst)
	cancel()
	if err != nil {
		c.b.c.refused.Add(1)
		c.b.log.Debug("dial failed; resetting the client", zap.Stringer("client", src), zap.Error(err))
		c.abort()
		return
	}
	// a is the client and b the container, so a stack dump's copyAToB
	// is the client-to-container direction.
	r := relay.New(c.client, container, relay.Config{AToB: &c.b.c.bytesIn, BToA: &c.b.c.bytesOut})
	if !c.attach(r, container) {
		return
	}
	r.Run()
}

// attach records the relay, unless the connection was aborted (its
// binding stopped) during the dial: then the client is already reset and
// the container connection is closed here.
func (c *tcpConn) attach(r *relay.Relay, container net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		container.Close()
		return false
	}
	c.relay = r
	return true
}

// abort resets the connection, once, whoever calls it first: the client
// alone while the dial runs, both sides through the relay after. A
// connection cut short must not look, to either side, like a complete one.
func (c *tcpConn) abort() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	r := c.relay
	c.mu.Unlock()
	if r != nil {
		r.Abort()
		return
	}
	reset(c.client)
}
