package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// A UDP binding keeps one flow per client address (address and port): a
// datagram connection to the container made by Dialer.DialUDP on behalf of
// that client. Its goroutines: one reader for the host socket, which
// forwards each client datagram on its flow (creating the flow first if
// needed), and one per flow (unless its connection pushes, below), which
// sends the container's datagrams back to the client. Idle flows are closed by the Manager's janitor; a full table
// evicts its least recently active flow.
//
//	client ──► host socket ──► readLoop ──► flow.conn ──► container
//	client ◄── host socket ◄── flow.relayReplies ◄──────── container
//	client ◄── host socket ◄── flow.pushed ◄─────────────── container (a ReplyPusher conn)
//
// A flow whose connection is a ReplyPusher (the gateway's netstack) has no
// goroutine: the connection calls flow.pushed on the goroutine that
// delivered the reply (a TAP's reader, which delivers inline into the
// netstack), and pushed sends it from the host socket without waiting
// (MSG_DONTWAIT): a full socket buffer drops the reply and counts it, so
// the network's goroutine never blocks on a client. That saves the wake-up
// of a reply reader per round trip (benchmarks/RESULTS.md, "Pushed
// replies"). pushed never closes its flow, because it may run with the
// netstack's locks held and closing the connection takes them: a failed
// connection is marked dead, and the client's next datagram or the
// janitor ends it.

// maxDatagram is the largest UDP payload (IPv4, IPv6 without jumbograms).
const maxDatagram = 65535

// newDatagramBuf makes a buffer for the pool of the flows' reply path
// (Manager.datagrams). A flow whose connection is a kernel socket takes
// one only while a datagram is in hand, so an idle flow holds no buffer; a
// flow with another kind of connection (a netstack) holds one while it
// waits.
func newDatagramBuf() any {
	b := make([]byte, maxDatagram)
	return &b
}

// maxConsecutiveRefusals ends a flow whose connection keeps returning
// ECONNREFUSED (the container port is closed: ICMP port unreachable)
// without a datagram in between; the client's next datagram dials again.
const maxConsecutiveRefusals = 64

// udpBinding is one UDP host socket and its flow table.
type udpBinding struct {
	bindingBase
	conn     *net.UDPConn
	pktinfo  bool // a wildcard socket: datagrams carry their destination
	timeout  time.Duration
	maxFlows int
	bufs     *sync.Pool // the Manager's datagram buffers, *[]byte of maxDatagram
	c        udpCounters

	// raw is conn's, for pushed replies (nil: no flow pushes); family is
	// its socket's address family (AF_INET or AF_INET6).
	raw    syscall.RawConn
	family int

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
	wg     sync.WaitGroup // the reader and each flow's relayReplies
}

func newUDPBinding(base bindingBase, conn *net.UDPConn, timeout time.Duration, maxFlows int, bufs *sync.Pool) *udpBinding {
	raw, family := socketFamily(conn)
	return &udpBinding{
		bindingBase: base,
		bufs:        bufs,
		conn:        conn,
		pktinfo:     base.pub.HostIP.IsUnspecified(),
		timeout:     timeout,
		maxFlows:    maxFlows,
		flows:       make(map[netip.AddrPort]*udpFlow),
		raw:         raw,
		family:      family,
	}
}

// socketFamily returns c's raw connection and address family, or a nil
// raw connection if either cannot be had.
func socketFamily(c *net.UDPConn) (syscall.RawConn, int) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, 0
	}
	family, serr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || serr != nil {
		return nil, 0
	}
	return raw, family
}

func (b *udpBinding) start() {
	b.wg.Add(1)
	go b.readLoop()
}

// stop closes the host socket and every flow, and cancels a dial in
// progress.
func (b *udpBinding) stop() {
	b.cancel()
	b.conn.Close()
	b.mu.Lock()
	b.closed = true
	flows := make([]*udpFlow, 0, len(b.flows))
	for _, f := range b.flows {
		flows = append(flows, f)
	}
	clear(b.flows)
	b.mu.Unlock()
	for _, f := range flows {
		f.close()
	}
}

func (b *udpBinding) wait() { b.wg.Wait() }

func (b *udpBinding) stats() BindingStats {
	b.mu.Lock()
	n := len(b.flows)
	b.mu.Unlock()
	return BindingStats{Published: b.pub, UDP: b.c.snapshot(n)}
}

// readLoop is the binding's one reader: every client datagram goes through
// it to its flow. It owns buf and oob.
func (b *udpBinding) readLoop() {
	defer b.wg.Done()
	buf := make([]byte, maxDatagram)
	var oob []byte
	if b.pktinfo {
		oob = make([]byte, pktinfoSpace)
	}
	failures := 0
	var batch *udpBatchState
	seen := 0
	for {
		if batch == nil && seen >= batchAfter {
			batch, buf = b.newBatch(), nil
		}
		var (
			n, oobn, flags int
			client         netip.AddrPort
			err            error
		)
		if batch != nil {
			err = b.readBatch(batch)
		} else {
			n, oobn, flags, client, err = b.conn.ReadMsgUDPAddrPort(buf, oob)
			seen++
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Rare on an unconnected socket (no memory); do not spin.
			b.c.dropped.Add(1)
			if failures++; failures == 1 {
				b.log.Warn("read failed; retrying", zap.Error(err))
			}
			if !b.pause(time.Duration(min(failures, 100)) * time.Millisecond) {
				return
			}
			continue
		}
		failures = 0
		if batch != nil {
			continue // forwarded by readBatch
		}
		if flags&unix.MSG_TRUNC != 0 {
			b.c.dropped.Add(1)
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		f := b.flowFor(client, oob[:oobn])
		if f == nil {
			b.c.dropped.Add(1)
			continue
		}
		f.touch()
		if _, err := f.conn.Write(buf[:n]); err != nil {
			b.c.dropped.Add(1)
			continue
		}
		b.c.pktIn.Add(1)
		b.c.bytesIn.Add(uint64(n))
	}
}

// flowFor returns client's flow, creating it if there is none or its
// connection has failed. It returns nil if the flow cannot be dialed or
// the binding has stopped.
func (b *udpBinding) flowFor(client netip.AddrPort, oob []byte) *udpFlow {
	b.mu.Lock()
	f := b.flows[client]
	b.mu.Unlock()
	if f != nil {
		if !f.dead.Load() {
			return f
		}
		f.end()
	}
	return b.newFlow(client, oob)
}

// newFlow dials the container for client and starts the flow's goroutine.
// Only readLoop calls it, so no other flow for client can appear meanwhile.
// The dial runs on the reader: a UDP dial is a socket and a connect (or a
// netstack endpoint), which do not wait for the network.
func (b *udpBinding) newFlow(client netip.AddrPort, oob []byte) *udpFlow {
	if admit(nil, b.global) != scopeNone {
		b.warnOverLimit(scopeGlobal, b.c.overLimit.Add(1))
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.dialTimeout)
	conn, err := b.dialer.DialUDP(ctx, client, b.dst)
	cancel()
	if err != nil {
		b.global.release()
		b.c.refused.Add(1)
		b.log.Debug("dial failed; dropping the datagram", zap.Stringer("client", client), zap.Error(err))
		return nil
	}
	f := &udpFlow{b: b, client: client, conn: conn}
	if b.pktinfo {
		f.oob = replyControl(oob)
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		if rc, err := uc.SyscallConn(); err == nil {
			f.raw = rc
			f.readFn = f.readDatagram
		}
		f.wb = newBatchWriter(uc)
	}
	// Every flow of a pushing binding pushes: a reader's blocking write
	// would hold the host socket's write lock while it waits, and a push
	// would wait for it.
	if rp, ok := conn.(ReplyPusher); ok && b.raw != nil {
		f.to = sockaddr(client, b.family)
		f.writeFn = f.writeReply
		f.pushing = rp.PushReplies(f.pushed)
	}
	f.touch()

	var victim *udpFlow
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		f.close()
		return nil
	}
	if len(b.flows) >= b.maxFlows {
		victim = b.leastRecentLocked()
		delete(b.flows, victim.client)
	}
	b.flows[client] = f
	if !f.pushing {
		b.wg.Add(1)
	}
	b.mu.Unlock()

	b.c.total.Add(1)
	if victim != nil {
		b.c.evicted.Add(1)
		victim.close()
	}
	if !f.pushing {
		go f.relayReplies()
	}
	return f
}

// leastRecentLocked returns the flow with the oldest activity. The table
// is scanned only when it is full and a new client arrives.
func (b *udpBinding) leastRecentLocked() *udpFlow {
	var lru *udpFlow
	var oldest int64
	for _, f := range b.flows {
		if t := f.last.Load(); lru == nil || t < oldest {
			lru, oldest = f, t
		}
	}
	return lru
}

// expire closes the flows idle for at least the binding's timeout at now
// (the Manager's clock), and the dead ones (pushed). The janitor calls it.
func (b *udpBinding) expire(now int64) {
	limit := int64(b.timeout)
	var idle []*udpFlow
	expired := 0
	b.mu.Lock()
	for k, f := range b.flows {
		if dead := f.dead.Load(); dead || now-f.last.Load() >= limit {
			delete(b.flows, k)
			idle = append(idle, f)
			if !dead {
				expired++
			}
		}
	}
	b.mu.Unlock()
	b.c.expired.Add(uint64(expired))
	for _, f := range idle {
		f.close()
	}
}

// udpFlow is one client's datagram connection to the container.
type udpFlow struct {
	b      *udpBinding
	client netip.AddrPort
	conn   net.Conn
	oob    []byte       // makes replies leave from the address the client sent to; nil if not needed
	last   atomic.Int64 // binding clock of the last datagram either way
	once   sync.Once

	// The kernel-socket reply path, used on the flow's goroutine only.
	raw    syscall.RawConn
	readFn func(fd uintptr) bool // f.readDatagram, bound once
	buf    *[]byte               // from b.bufs, holding the datagram read
	n      int
	rerr   error

	// wb sends runs of client datagrams in one sendmmsg (kernel sockets).
	wb batchWriter

	// The pushed reply path (a ReplyPusher connection). pushing is set
	// before the flow is shared; dead is set by pushed when the
	// connection has failed. The rest is used by pushed only, which the
	// connection calls one at a time.
	pushing  bool
	dead     atomic.Bool
	to       unix.Sockaddr         // the client, in the host socket's family
	writeFn  func(fd uintptr) bool // f.writeReply, bound once
	out      []byte                // the reply writeReply sends
	werr     error
	refusals int
}

func (f *udpFlow) touch() { f.last.Store(f.b.now()) }

// close closes the flow's connection and gives its slot of the Manager's
// limit back, once; its goroutine (if started) then ends.
func (f *udpFlow) close() { f.once.Do(f.closeConn) }

func (f *udpFlow) closeConn() {
	f.conn.Close()
	f.b.global.release()
}

// end removes the flow from the table if it is still there, and closes it.
func (f *udpFlow) end() {
	b := f.b
	b.mu.Lock()
	if b.flows[f.client] == f {
		delete(b.flows, f.client)
	}
	b.mu.Unlock()
	f.close()
}

// relayReplies is the flow's goroutine: it sends the container's datagrams
// back to the client until the flow is closed.
func (f *udpFlow) relayReplies() {
	defer f.b.wg.Done()
	defer f.end()
	if f.raw != nil {
		f.relayKernelReplies()
	} else {
		f.relayBufferedReplies()
	}
}

// relayKernelReplies reads a kernel socket through its RawConn: the
// datagram is read inside the poller callback into a pooled buffer, so the
// flow holds no buffer while it waits.
func (f *udpFlow) relayKernelReplies() {
	refusals := 0
	for {
		if err := f.raw.Read(f.readFn); err != nil {
			return // closed
		}
		if f.rerr != nil {
			if f.rerr == unix.ECONNREFUSED && refusals < maxConsecutiveRefusals {
				refusals++
				continue
			}
			return
		}
		refusals = 0
		f.reply((*f.buf)[:f.n])
		f.b.bufs.Put(f.buf)
		f.buf = nil
	}
}

// readDatagram is the RawConn read callback: it reports false (wait for
// readability) only when the socket has nothing to read.
func (f *udpFlow) readDatagram(fd uintptr) bool {
	bp := f.b.bufs.Get().(*[]byte)
	for {
		n, err := unix.Read(int(fd), *bp)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			f.b.bufs.Put(bp)
			return false
		case nil:
			f.buf, f.n, f.rerr = bp, n, nil
		default:
			f.b.bufs.Put(bp)
			f.rerr = err
		}
		return true
	}
}

// relayBufferedReplies reads any other net.Conn into a buffer it holds.
func (f *udpFlow) relayBufferedReplies() {
	bp := f.b.bufs.Get().(*[]byte)
	defer f.b.bufs.Put(bp)
	refusals := 0
	for {
		n, err := f.conn.Read(*bp)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) && refusals < maxConsecutiveRefusals {
				refusals++
				continue
			}
			return
		}
		refusals = 0
		f.reply((*bp)[:n])
	}
}

// reply sends p to the client from the host socket.
func (f *udpFlow) reply(p []byte) {
	f.touch()
	b := f.b
	if _, _, err := b.conn.WriteMsgUDPAddrPort(p, f.oob, f.client); err != nil {
		b.c.dropped.Add(1)
		return
	}
	b.c.pktOut.Add(1)
	b.c.bytesOut.Add(uint64(len(p)))
}

// pushed is the flow's ReplyPusher callback, called on the goroutine that
// delivered the container's datagram p (see the file comment). It sends p
// to the client without waiting; a failed or refused send (a full socket
// buffer) drops p and counts it. A failed connection is only marked dead:
// pushed must not close it.
func (f *udpFlow) pushed(p []byte, err error) {
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) && f.refusals < maxConsecutiveRefusals {
			f.refusals++
			return
		}
		f.dead.Store(true)
		return
	}
	f.refusals = 0
	f.touch()
	b := f.b
	f.out = p
	err = b.raw.Write(f.writeFn)
	f.out = nil
	if err == nil {
		err = f.werr
	}
	if err != nil {
		b.c.dropped.Add(1)
		return
	}
	b.c.pktOut.Add(1)
	b.c.bytesOut.Add(uint64(len(p)))
}

// writeReply is the host socket's RawConn write callback for pushed: one
// sendmsg that never waits for room (MSG_DONTWAIT), so it reports true
// whatever the outcome.
func (f *udpFlow) writeReply(fd uintptr) bool {
	for {
		_, err := unix.SendmsgN(int(fd), f.out, f.oob, f.to, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		f.werr = err
		return true
	}
}

// sockaddr returns ap as a socket address of family (AF_INET6 takes an
// IPv4 address as IPv4-mapped). A zone (a link-local client's interface,
// by name or number) becomes its index; one that names no interface
// becomes 0, and the kernel refuses the send (counted as dropped).
func sockaddr(ap netip.AddrPort, family int) unix.Sockaddr {
	if family == unix.AF_INET6 {
		sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		if zone := ap.Addr().Zone(); zone != "" {
			if ifi, err := net.InterfaceByName(zone); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			} else if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
				sa.ZoneId = uint32(n)
			}
		}
		return sa
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}
