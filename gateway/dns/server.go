package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Port is the port the server listens on, UDP and TCP.
const Port = 53

// Defaults for the zero fields of Config.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultWorkers        = 16
	DefaultMaxTCPConns    = 64
	DefaultTCPIdleTimeout = 10 * time.Second
)

// LocalTTL is the TTL, in seconds, of answers from the name table. Docker
// uses 600; a container that is recreated gets a new address, and a client
// that caches (nginx's resolver, a JVM, a local dnsmasq) would keep the old
// one for ten minutes. Local answers cost one map lookup, so a short TTL
// costs nothing worth saving: stale entries live at most 10 s.
const LocalTTL = 10

// ednsSize is the UDP payload size the server advertises in its own
// answers' OPT records (the DNS flag day 2020 value, which never needs IP
// fragments on an Ethernet network).
const ednsSize = 1232

// udpReceiveBuffer is the receive buffer of the UDP listener, so that a
// burst of queries waits for the reader instead of being dropped.
const udpReceiveBuffer = 1 << 20

// Config describes a Server.
type Config struct {
	// Stack is the gateway's netstack; the server listens on Addr:53, UDP
	// and TCP, on its NIC. The stack is not the server's: Close leaves it.
	Stack *stack.Stack
	NIC   tcpip.NICID
	Addr  netip.Addr
	// Domain, if set, is a suffix under which the table's names also
	// resolve (NAME.Domain); the daemon passes the network name. It is
	// never an authority of its own: an unknown NAME.Domain is forwarded
	// like any name, since a network may well be called "com" or "local".
	Domain string
	// Upstreams are the host's resolvers, tried in order (port 0 means
	// 53). With none, queries for names outside the table are answered
	// REFUSED: this server will not resolve them, and stub resolvers move
	// on to their next nameserver at once instead of retrying as they do
	// after SERVFAIL.
	Upstreams []netip.AddrPort
	// Dial opens the host sockets for upstream queries ("udp" or "tcp").
	// If nil, a net.Dialer is used.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds one attempt at one upstream (default 2 s); then the
	// next is tried. A truncated UDP answer retried over TCP gets a
	// Timeout of its own.
	Timeout time.Duration
	// Workers is the number of goroutines that forward queries (default
	// 16). QueueLen bounds the queries waiting for them (default 4 per
	// worker); a query that finds the queue full is answered SERVFAIL and
	// counted as Overflow.
	Workers  int
	QueueLen int
	// MaxTCPConns bounds concurrent client TCP connections (default 64);
	// one more is closed at once and counted. A connection with no query
	// for TCPIdleTimeout (default 10 s), and none being forwarded, is closed.
	MaxTCPConns    int
	TCPIdleTimeout time.Duration
	// Logger; nil means no logging.
	Logger *zap.Logger
}

// Stats counts what the server did. Every field only grows.
type Stats struct {
	// UDPQueries and TCPQueries count messages received, malformed ones
	// included.
	UDPQueries, TCPQueries uint64
	// Local counts queries answered from the name table.
	Local uint64
	// Forwarded counts queries handed to the workers for the upstreams.
	Forwarded uint64
	// UpstreamFailures counts failed upstream attempts: no answer within
	// Timeout, a network error, or an answer of SERVFAIL or REFUSED
	// (after which the next upstream is tried).
	UpstreamFailures uint64
	// ServFail counts forwarded queries answered SERVFAIL because every
	// upstream failed.
	ServFail uint64
	// TruncatedRetried counts upstream UDP answers with TC set whose query
	// was sent again over TCP.
	TruncatedRetried uint64
	// Overflow counts queries answered SERVFAIL at once because the
	// workers' queue was full.
	Overflow uint64
	// Malformed counts messages that did not parse, responses sent to the
	// server, and queries without exactly one question (answered FORMERR).
	Malformed uint64
	// Refused counts queries answered REFUSED (no upstreams) or NOTIMP
	// (an opcode other than QUERY).
	Refused uint64
	// NXDomain counts NXDOMAIN answers returned to clients (all from
	// upstreams: a name in the table always exists).
	NXDomain uint64
	// TCPRejected counts TCP connections closed at once because
	// MaxTCPConns were open.
	TCPRejected uint64
}

type counters struct {
	udpQueries, tcpQueries, local, forwarded, upstreamFailures, servFail atomic.Uint64
	truncRetried, overflow, malformed, refused, nxdomain, tcpRejected    atomic.Uint64
}

// Server is a network's DNS server. Create it with New; Close stops it.
type Server struct {
	cfg    Config
	log    *zap.Logger
	domain string // lower case, no dots at either end; "" for none
	names  atomic.Pointer[table]
	c      counters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	udp    *gonet.UDPConn
	tcp    *gonet.TCPListener
	jobs   chan *job
	tcpSem chan struct{}

	connMu sync.Mutex
	closed bool                    // guarded by connMu
	conns  map[*tcpClient]struct{} // guarded by connMu
}

// New starts a server: its listeners on Addr:53 on the netstack, the UDP
// reader, the TCP acceptor and the workers.
func New(cfg Config) (*Server, error) {
	if cfg.Stack == nil {
		return nil, errors.New("dns: no netstack to listen on")
	}
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	proto := ipv4.ProtocolNumber
	if s.cfg.Addr.Is6() {
		proto = ipv6.ProtocolNumber
	}
	local := tcpip.FullAddress{NIC: s.cfg.NIC, Addr: tcpip.AddrFromSlice(s.cfg.Addr.AsSlice()), Port: Port}
	if s.udp, err = listenUDP(s.cfg.Stack, local, proto); err != nil {
		s.cancel()
		return nil, fmt.Errorf("dns: listen udp %s: %w", netip.AddrPortFrom(s.cfg.Addr, Port), err)
	}
	if s.tcp, err = gonet.ListenTCP(s.cfg.Stack, local, proto); err != nil {
		s.udp.Close()
		s.cancel()
		return nil, fmt.Errorf("dns: listen tcp %s: %w", netip.AddrPortFrom(s.cfg.Addr, Port), err)
	}
	s.wg.Add(2 + s.cfg.Workers)
	go s.readUDP()
	go s.acceptTCP()
	for range s.cfg.Workers {
		go s.worker()
	}
	s.log.Info("dns up", zap.Stringer("addr", netip.AddrPortFrom(s.cfg.Addr, Port)), zap.String("domain", s.domain),
		zap.Stringers("upstreams", s.cfg.Upstreams), zap.Int("workers", s.cfg.Workers))
	return s, nil
}

// newServer checks cfg and fills in its defaults; it starts nothing (the
// fuzz tests and benchmarks drive the handler directly).
func newServer(cfg Config) (*Server, error) {
	if !cfg.Addr.IsValid() {
		return nil, errors.New("dns: no address to listen on")
	}
	cfg.Addr = cfg.Addr.Unmap()
	domain := strings.ToLower(strings.Trim(cfg.Domain, "."))
	if domain != "" {
		if _, ok := dns.IsDomainName(domain); !ok {
			return nil, fmt.Errorf("dns: domain %q is not a valid domain name", cfg.Domain)
		}
	}
	ups := make([]netip.AddrPort, 0, len(cfg.Upstreams))
	for _, u := range cfg.Upstreams {
		if !u.Addr().IsValid() {
			return nil, fmt.Errorf("dns: upstream %q is not an address", u)
		}
		if u.Port() == 0 {
			u = netip.AddrPortFrom(u.Addr(), Port)
		}
		ups = append(ups, netip.AddrPortFrom(u.Addr().Unmap(), u.Port()))
	}
	cfg.Upstreams = ups
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 4 * cfg.Workers
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger.Named("dns"),
		domain: domain,
		jobs:   make(chan *job, cfg.QueueLen),
		tcpSem: make(chan struct{}, cfg.MaxTCPConns),
		conns:  map[*tcpClient]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.names.Store(&table{})
	return s, nil
}

func listenUDP(st *stack.Stack, local tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (*gonet.UDPConn, error) {
	var wq waiter.Queue
	ep, terr := st.NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, errors.New(terr.String())
	}
	ep.SocketOptions().SetReceiveBufferSize(udpReceiveBuffer, true)
	if terr := ep.Bind(local); terr != nil {
		ep.Close()
		return nil, errors.New(terr.String())
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		UDPQueries: s.c.udpQueries.Load(), TCPQueries: s.c.tcpQueries.Load(),
		Local: s.c.local.Load(), Forwarded: s.c.forwarded.Load(),
		UpstreamFailures: s.c.upstreamFailures.Load(), ServFail: s.c.servFail.Load(),
		TruncatedRetried: s.c.truncRetried.Load(), Overflow: s.c.overflow.Load(),
		Malformed: s.c.malformed.Load(), Refused: s.c.refused.Load(),
		NXDomain: s.c.nxdomain.Load(), TCPRejected: s.c.tcpRejected.Load(),
	}
}

// Close stops the listeners, ends every client connection and abandons the
// queries being forwarded; it returns when every goroutine of the server
// has ended. Close it before the gateway's netstack. Calling it again does
// nothing.
func (s *Server) Close() error {
	s.connMu.Lock()
	if s.closed {
		s.connMu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.conn.Close()
	}
	s.connMu.Unlock()
	s.cancel()
	if s.udp != nil {
		s.udp.SetReadDeadline(time.Now())
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Shutdown()
		s.tcp.Close()
	}
	s.wg.Wait()
	s.log.Info("dns down")
	return nil
}

// readUDP is the one goroutine that reads UDP queries. Names of the table
// are answered here; the rest go to the workers.
func (s *Server) readUDP() {
	defer s.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("udp listener ended", zap.Error(err))
			}
			return
		}
		s.c.udpQueries.Add(1)
		v := s.handle(buf[:n], true)
		switch {
		case v.reply != nil:
			s.udp.WriteTo(v.reply, from)
		case v.fwd != nil:
			s.enqueue(&job{q: v.fwd, size: v.size, udpTo: from})
		}
	}
}

// acceptTCP is the one goroutine that accepts client connections.
func (s *Server) acceptTCP() {
	defer s.wg.Done()
	for {
		conn, err := s.tcp.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("tcp listener ended", zap.Error(err))
			}
			return
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			s.c.tcpRejected.Add(1)
			conn.Close()
			continue
		}
		c := &tcpClient{conn: conn, writeTimeout: s.cfg.Timeout}
		s.connMu.Lock()
		if s.closed {
			s.connMu.Unlock()
			conn.Close()
			<-s.tcpSem
			return
		}
		s.conns[c] = struct{}{}
		s.connMu.Unlock()
		s.wg.Add(1) // the acceptor's own count is held, so this cannot race Wait
		go s.serveTCP(c)
	}
}

// tcpClient is one client TCP connection. Answers may be written by its
// reader (local names) and by workers (forwarded queries) in any order, as
// RFC 7766 allows; mu keeps each length-prefixed message whole.
type tcpClient struct {
	conn         net.Conn
	writeTimeout time.Duration
	pending      atomic.Int32 // queries of this connection with the workers
	mu           sync.Mutex
}

// write sends one message. A client that does not read gets writeTimeout,
// so that it cannot hold a worker.
func (c *tcpClient) write(msg []byte) error {
	out := make([]byte, 2+len(msg))
	out[0], out[1] = byte(len(msg)>>8), byte(len(msg))
	copy(out[2:], msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	_, err := c.conn.Write(out)
	return err
}

// serveTCP reads the queries of one connection until the client closes
// it, sends something malformed, or is idle for TCPIdleTimeout.
func (s *Server) serveTCP(c *tcpClient) {
	defer s.wg.Done()
	defer func() {
		c.conn.Close()
		s.connMu.Lock()
		delete(s.conns, c)
		s.connMu.Unlock()
		<-s.tcpSem
	}()
	var hdr [2]byte
	buf := make([]byte, 512)
	for {
		c.conn.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		n, err := readFull(c.conn, hdr[:])
		if err != nil {
			if n == 0 && isTimeout(err) && c.pending.Load() > 0 {
				continue // idle, but answers are still on their way
			}
			return
		}
		size := int(hdr[0])<<8 | int(hdr[1])
		if size > cap(buf) {
			buf = make([]byte, size)
		}
		if _, err := readFull(c.conn, buf[:size]); err != nil {
			return
		}
		s.c.tcpQueries.Add(1)
		v := s.handle(buf[:size], false)
		switch {
		case v.reply != nil:
			if c.write(v.reply) != nil {
				return
			}
		case v.fwd != nil:
			c.pending.Add(1)
			s.enqueue(&job{q: v.fwd, size: v.size, tcp: c})
		default: // malformed: a stream out of step cannot be trusted
			return
		}
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
