package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/internal/relay"
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
		c.finish(true)
	}
}

func (b *tcpBinding) wait() { b.wg.Wait() }

func (b *tcpBinding) stats() BindingStats {
	b.mu.Lock()
	n := len(b.conns)
	b.mu.Unlock()
	return BindingStats{Published: b.pub, TCP: b.c.snapshot(n)}
}

func (b *tcpBinding) forget(c *tcpConn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// acceptLoop is the binding's one accept goroutine. An accept error other
// than the listener's closing (out of file descriptors, usually) is
// retried with a backoff of up to a second; the kernel keeps waiting
// connections in the backlog meanwhile.
func (b *tcpBinding) acceptLoop() {
	defer b.wg.Done()
	var backoff time.Duration
	for {
		client, err := b.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				b.log.Warn("accept failed; retrying", zap.Error(err))
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-b.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0

		c := &tcpConn{b: b, client: client}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			client.SetLinger(0)
			client.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		b.c.total.Add(1)
		go c.serve()
	}
}

// tcpConn is one accepted connection and, once dialed, its container side.
type tcpConn struct {
	b      *tcpBinding
	client *net.TCPConn

	mu              sync.Mutex
	container       net.Conn // nil until dialed
	containerClosed bool     // closed after the client's EOF (no CloseWrite)
	closed          bool     // finish has run
}

// lingerer is implemented by connections that can be reset on close.
type lingerer interface {
	SetLinger(sec int) error
}

// serve dials the container for the client, then relays. The dial comes
// first: if it fails the client is reset, so that it sees the failure as
// it would without a proxy, rather than a connection that opens and then
// closes cleanly or hangs.
func (c *tcpConn) serve() {
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
		c.finish(true)
		return
	}
	if !c.attach(container) {
		return
	}
	c.relay()
}

// attach records the dialed container connection, unless the connection
// was finished (its binding stopped) during the dial.
func (c *tcpConn) attach(container net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		container.Close()
		return false
	}
	c.container = container
	return true
}

// relay runs one direction on its own goroutine and the other on this
// one. Each direction, on its source's EOF, shuts down the write side of
// its destination and ends; the other keeps going, so a client that has
// finished sending still receives the whole reply. Any error aborts both.
func (c *tcpConn) relay() {
	done := make(chan struct{})
	go c.copyClientToContainer(done)
	c.copyContainerToClient()
	<-done
	c.finish(false)
}

// copyClientToContainer relays the client's bytes to the container. On the
// client's EOF it shuts down the container's write side, or closes the
// container connection if it cannot be half-closed (the Dialer contract).
func (c *tcpConn) copyClientToContainer(done chan<- struct{}) {
	defer close(done)
	if err := relayCopy(c.container, c.client, &c.b.c.bytesIn); err != nil {
		c.finish(true)
		return
	}
	if cw, ok := c.container.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.mu.Lock()
	if !c.closed && !c.containerClosed {
		c.containerClosed = true
		c.container.Close()
	}
	c.mu.Unlock()
}

// copyContainerToClient relays the container's bytes to the client. On the
// container's EOF it shuts down the client's write side.
func (c *tcpConn) copyContainerToClient() {
	err := relayCopy(c.client, c.container, &c.b.c.bytesOut)
	if err != nil {
		c.mu.Lock()
		early := c.containerClosed
		c.mu.Unlock()
		if !early {
			c.finish(true)
			return
		}
		// We closed the container after the client's EOF: its reply, if
		// any, is lost; end the client's stream cleanly.
	}
	c.client.CloseWrite()
}

// finish closes both connections, once, whoever calls it first. With
// reset, both are closed with SO_LINGER 0, so each peer gets a RST: a
// reset or failure on one side is passed on to the other as a reset.
func (c *tcpConn) finish(reset bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	container := c.container
	if c.containerClosed {
		container = nil
	}
	c.mu.Unlock()

	if reset {
		c.client.SetLinger(0)
		if l, ok := container.(lingerer); ok {
			l.SetLinger(0)
		}
	}
	c.client.Close()
	if container != nil {
		container.Close()
	}
}

// spliceChunk is how much spliceCopy moves between updates of the byte
// counters.
const spliceChunk = 1 << 20

// relayCopy copies src to dst until src's EOF (then it returns nil) or an
// error, adding what it copies to n. Between two kernel TCP sockets it
// splices; otherwise it copies through a pooled buffer.
func relayCopy(dst, src net.Conn, n *atomic.Uint64) error {
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			return spliceCopy(d, s, n)
		}
	}
	return bufferedCopy(dst, src, n)
}

// spliceCopy hands the raw *net.TCPConn to ReadFrom, which on Linux moves
// the bytes with splice(2) through a pipe, never through user space. The
// LimitedReader keeps it splicing (the net package looks through it) while
// letting the counter advance every spliceChunk bytes.
func spliceCopy(dst, src *net.TCPConn, n *atomic.Uint64) error {
	lr := &io.LimitedReader{R: src}
	for {
		lr.N = spliceChunk
		w, err := dst.ReadFrom(lr)
		n.Add(uint64(w))
		if err != nil || lr.N > 0 {
			return err // an error, or EOF before the limit
		}
	}
}

// bufferedCopy copies through internal/relay's pooled buffers, which
// grow for bulk transfers and shrink back for interactive ones.
func bufferedCopy(dst, src net.Conn, n *atomic.Uint64) error {
	_, err := relay.Copy(dst, src, n)
	return err
}
