package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/switchyard-net/switchyard/internal/icmperr"
	"github.com/switchyard-net/switchyard/internal/relay"
	"github.com/switchyard-net/switchyard/internal/stackgrow"
)

// Egress: a container reaches what its host reaches, as if it were the host
// (Docker's MASQUERADE). The gateway's netstack runs in promiscuous mode, so
// a TCP SYN or UDP datagram to any address outside the network lands on a
// forwarder here; the flow is re-originated from an ordinary socket of the
// daemon's process and the two are relayed. The world sees the host.
//
//	container ──SYN 93.184.216.34:443──► gateway netstack ─► tcp forwarder
//	                                            handler: net.Dial("tcp", 93.184.216.34:443)
//	                                              ok      → accept, relay (half-close)
//	                                              refused → RST
//	                                              other   → ICMP host unreachable
//
// Bounds: at most MaxTCPInFlight handshakes wait on a host dial at once
// (further SYNs are ignored and retransmitted by the container), each dial
// gives up after DialTimeout, and at most MaxConns TCP connections and
// MaxUDPFlows UDP flows are relayed. A blackholed destination holds one
// in-flight slot for DialTimeout and nothing else.

// EgressConfig bounds and times the egress forwarders. Zero fields take the
// defaults.
type EgressConfig struct {
	// DialTimeout bounds a host connection attempt (default 10 s).
	DialTimeout time.Duration
	// MaxTCPInFlight bounds concurrent TCP handshakes (default 256).
	MaxTCPInFlight int
	// MaxConns bounds relayed TCP connections (default 16384).
	MaxConns int
	// MaxUDPFlows bounds relayed UDP flows (default 4096).
	MaxUDPFlows int
	// UDPTimeout closes an idle UDP flow (default 60 s).
	UDPTimeout time.Duration
	// Dial opens host sockets. nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Admit, if set, is asked before each new flow takes a host socket,
	// and Release told when it gives it back: the daemon shares its
	// descriptor budget (the published ports' connection limit) with
	// egress through them, so that no container can spend the
	// descriptors the API needs. A flow Admit refuses is refused as one
	// over MaxConns or MaxUDPFlows. Both must be safe for concurrent use.
	Admit   func() bool
	Release func()
	// ListenICMP opens the host's ICMP sockets for ping egress: network
	// is "udp4" or "udp6" for an unprivileged ping socket, "ip4:icmp" or
	// "ip6:ipv6-icmp" for a raw one, address the wildcard of its family.
	// Ping sockets read and write ICMP messages from and to *net.UDPAddr
	// addresses, raw ones from and to *net.IPAddr. nil means
	// golang.org/x/net/icmp's ListenPacket; tests give an in-memory
	// double.
	ListenICMP func(network, address string) (net.PacketConn, error)
	// NoPing keeps echo requests to outside addresses from leaving: no
	// host ICMP socket is opened, and they go unanswered. In-process
	// networks (testing/vnettest) whose Dial never reaches the machine's
	// network set it, so that no ping leaves the process either.
	NoPing bool
}

func (c *EgressConfig) defaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.MaxTCPInFlight <= 0 {
		c.MaxTCPInFlight = 256
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 16384
	}
	if c.MaxUDPFlows <= 0 {
		c.MaxUDPFlows = 4096
	}
	if c.UDPTimeout <= 0 {
		c.UDPTimeout = 60 * time.Second
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
}

// EgressStats counts egress flows.
type EgressStats struct {
	TCPActive, TCPTotal      int64
	TCPRefused, TCPFailed    int64 // answered with RST / ICMP unreachable
	TCPOverLimit             int64 // refused because MaxConns were open
	UDPActive, UDPTotal      int64
	UDPOverLimit, UDPRefused int64
	ICMPEchoes, ICMPReplies  int64
	// ICMPDropped counts echo requests to the outside that got no answer
	// from the gateway: not allowed to leave (an internal network, a
	// refused destination), no ICMP socket for their family, too many
	// flows, or a send the host refused.
	ICMPDropped int64
	// ICMPErrors counts ICMP errors about echo requests that routers
	// sent the host and the gateway passed on to the container.
	ICMPErrors int64
	// Unreachables counts the ICMP errors the gateway built for
	// containers about their egress (pings the host could not send, TCP
	// destinations it could not reach, UDP flows the destination
	// refused, and routers' errors passed on); UnreachablesLimited those
	// the rate limit (UnreachablesPerSecond) held back. The port
	// unreachables the netstack itself sends for UDP flows refused at
	// their first datagram are limited by gVisor and not counted here.
	Unreachables, UnreachablesLimited int64
}

type egress struct {
	g   *Gateway
	cfg EgressConfig
	log *zap.Logger
	ctx context.Context

	tcpActive, tcpTotal, tcpRefused, tcpFailed, tcpOver atomic.Int64
	udpActive, udpTotal, udpOver, udpRefused            atomic.Int64

	// synSeq remembers the sequence number of each SYN handed to the
	// forwarder, which gVisor does not expose, so that an ICMP error
	// about the connection can quote it (Linux ignores ICMP errors whose
	// quoted sequence number is outside the connection's window).
	synMu  sync.Mutex
	synSeq map[stack.TransportEndpointID]synRecord

	// Life cycle: every goroutine that handles or relays a flow is counted
	// in flows, and every flow's host socket is in hosts, so that shut
	// can end them all and wait can see them gone (Gateway.Close).
	flowMu sync.Mutex
	closed bool
	hosts  map[net.Conn]struct{}
	flows  sync.WaitGroup

	// udpReady queues UDP flows whose container side has datagrams, for
	// udpPump; it holds every flow once (MaxUDPFlows).
	udpReady chan *udpFlow
}

type synRecord struct {
	seq uint32
	at  time.Time
}

// maxSynRecords bounds synSeq; beyond it failures are answered with RST.
const maxSynRecords = 4096

func newEgress(ctx context.Context, g *Gateway, cfg EgressConfig) *egress {
	cfg.defaults()
	e := &egress{g: g, cfg: cfg, log: g.log.Named("egress"), ctx: ctx,
		synSeq: map[stack.TransportEndpointID]synRecord{}, hosts: map[net.Conn]struct{}{},
		udpReady: make(chan *udpFlow, cfg.MaxUDPFlows)}
	e.flows.Add(1)
	go e.udpPump()
	fwd := tcp.NewForwarder(g.stack, 0, cfg.MaxTCPInFlight, e.handleTCP)
	g.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		e.rememberSYN(id, pkt)
		return fwd.HandlePacket(id, pkt)
	})
	ufwd := udp.NewForwarder(g.stack, e.handleUDP)
	g.stack.SetTransportProtocolHandler(udp.ProtocolNumber, ufwd.HandlePacket)
	return e
}

func (e *egress) rememberSYN(id stack.TransportEndpointID, pkt *stack.PacketBuffer) {
	h := header.TCP(pkt.TransportHeader().Slice())
	if len(h) < header.TCPMinimumSize || h.Flags() != header.TCPFlagSyn {
		return
	}
	e.synMu.Lock()
	defer e.synMu.Unlock()
	if len(e.synSeq) >= maxSynRecords {
		now := e.g.clock.Now()
		for k, r := range e.synSeq { // drop records whose handshake is long over
			if now.Sub(r.at) > 2*e.cfg.DialTimeout {
				delete(e.synSeq, k)
			}
		}
		if len(e.synSeq) >= maxSynRecords {
			return
		}
	}
	e.synSeq[id] = synRecord{seq: h.SequenceNumber(), at: e.g.clock.Now()}
}

func (e *egress) takeSYN(id stack.TransportEndpointID) (uint32, bool) {
	e.synMu.Lock()
	defer e.synMu.Unlock()
	r, ok := e.synSeq[id]
	delete(e.synSeq, id)
	return r.seq, ok
}

// enter counts a goroutine that handles a flow; it reports false, and
// counts nothing, once the gateway is closing.
func (e *egress) enter() bool {
	e.flowMu.Lock()
	defer e.flowMu.Unlock()
	if e.closed {
		return false
	}
	e.flows.Add(1)
	return true
}

// track records a flow's host socket, for shut to close; it reports false
// once the gateway is closing (the caller closes the socket).
func (e *egress) track(host net.Conn) bool {
	e.flowMu.Lock()
	defer e.flowMu.Unlock()
	if e.closed {
		return false
	}
	e.hosts[host] = struct{}{}
	return true
}

// untrack forgets a host socket whose flow has ended.
func (e *egress) untrack(host net.Conn) {
	e.flowMu.Lock()
	delete(e.hosts, host)
	e.flowMu.Unlock()
}

// shut refuses new flows and closes every flow's host socket, which ends
// the relays reading from them. Relays blocked on the netstack side end
// when the netstack closes its endpoints; wait waits for all of them.
func (e *egress) shut() {
	e.flowMu.Lock()
	e.closed = true
	hosts := e.hosts
	e.hosts = nil
	e.flowMu.Unlock()
	for c := range hosts {
		c.Close()
	}
}

// admit asks EgressConfig.Admit for a flow's host socket.
func (e *egress) admit() bool { return e.cfg.Admit == nil || e.cfg.Admit() }

// release gives back what admit took.
func (e *egress) release() {
	if e.cfg.Release != nil {
		e.cfg.Release()
	}
}

// wait waits until no goroutine handles or relays a flow; call shut first.
func (e *egress) wait() { e.flows.Wait() }

// handleTCP runs on its own goroutine (the forwarder starts one per SYN)
// and, once the connection is accepted, relays it until it ends.
func (e *egress) handleTCP(r *tcp.ForwarderRequest) {
	// The dial and the handshake below run deep at once: grow the stack
	// to fit them now, in one cheap step (see stackgrow).
	stackgrow.Grow()
	if !e.enter() {
		r.Complete(true)
		return
	}
	defer e.flows.Done()
	id := r.ID()
	seq, haveSeq := e.takeSYN(id)
	dst, ok := e.g.egressTarget(netip.AddrPortFrom(addrFrom(id.LocalAddress), id.LocalPort))
	if !ok {
		r.Complete(true)
		return
	}
	if e.tcpActive.Load() >= int64(e.cfg.MaxConns) || !e.admit() {
		e.tcpOver.Add(1)
		r.Complete(true)
		return
	}
	defer e.release()
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.DialTimeout)
	host, err := e.cfg.Dial(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || !haveSeq {
			e.tcpRefused.Add(1)
			r.Complete(true) // RST, as the destination did
			return
		}
		e.tcpFailed.Add(1)
		r.Complete(false)
		e.g.unreachableTCP(id, seq)
		return
	}
	if !e.track(host) {
		r.Complete(true)
		host.Close()
		return
	}
	defer e.untrack(host)
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		host.Close()
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	e.tcpActive.Add(1)
	e.tcpTotal.Add(1)
	defer e.tcpActive.Add(-1)
	relay.Stream(newTCPConn(&wq, ep), host)
}

// handleUDP runs inline in the netstack for the first datagram of a flow:
// it must not block. It returns false to have the netstack answer with ICMP
// port unreachable.
func (e *egress) handleUDP(r *udp.ForwarderRequest) bool {
	id := r.ID()
	dst, ok := e.g.egressTarget(netip.AddrPortFrom(addrFrom(id.LocalAddress), id.LocalPort))
	if !ok {
		return false
	}
	if e.udpActive.Load() >= int64(e.cfg.MaxUDPFlows) || !e.admit() {
		e.udpOver.Add(1)
		return true // dropped silently, as a full conntrack table would
	}
	host, err := e.cfg.Dial(e.ctx, "udp", dst.String()) // no handshake: does not block
	if err != nil {
		e.release()
		e.udpRefused.Add(1)
		return false
	}
	if !e.enter() {
		e.release()
		host.Close()
		return true
	}
	if !e.track(host) {
		e.release()
		e.flows.Done()
		host.Close()
		return true
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		e.release()
		e.untrack(host)
		e.flows.Done()
		host.Close()
		return true
	}
	e.udpActive.Add(1)
	e.udpTotal.Add(1)
	f := newUDPFlow(e, &wq, ep, host, id)
	go f.run()
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (e *egress) stats() EgressStats {
	return EgressStats{
		TCPActive: e.tcpActive.Load(), TCPTotal: e.tcpTotal.Load(), TCPRefused: e.tcpRefused.Load(),
		TCPFailed: e.tcpFailed.Load(), TCPOverLimit: e.tcpOver.Load(),
		UDPActive: e.udpActive.Load(), UDPTotal: e.udpTotal.Load(), UDPOverLimit: e.udpOver.Load(),
		UDPRefused: e.udpRefused.Load(),
	}
}

// unreachableTCP tells the container its connection attempt id failed:
// ICMP host unreachable quoting the SYN (IPv4; IPv6: address unreachable).
func (g *Gateway) unreachableTCP(id stack.TransportEndpointID, seq uint32) {
	var l4 [8]byte
	header.TCP(l4[:]).SetSourcePort(id.RemotePort)
	header.TCP(l4[:]).SetDestinationPort(id.LocalPort)
	header.TCP(l4[:]).SetSequenceNumber(seq)
	g.sendUnreachable(id, 6, l4[:], false)
}

// unreachableUDP tells the container its datagrams to id's destination are
// refused: ICMP port unreachable quoting the UDP header of the last one
// (payload length n; the quoted checksum is zero, "none", which the
// receiver does not check).
func (g *Gateway) unreachableUDP(id stack.TransportEndpointID, n int) {
	var l4 [8]byte
	header.UDP(l4[:]).Encode(&header.UDPFields{SrcPort: id.RemotePort, DstPort: id.LocalPort, Length: uint16(header.UDPMinimumSize + n)})
	g.sendUnreachable(id, 17, l4[:], true)
}

// sendUnreachable builds the packet the container sent (IP header plus the
// first 8 bytes of l4), and answers it with ICMP destination unreachable
// from the address it was sent to.
func (g *Gateway) sendUnreachable(id stack.TransportEndpointID, proto uint8, l4 []byte, port bool) {
	src, dst := addrFrom(id.RemoteAddress), addrFrom(id.LocalAddress) // container, destination
	mac, ok := g.neighbor(src)
	if !ok {
		return
	}
	var quote [header.IPv6MinimumSize + 8]byte
	out := make([]byte, icmperr.MaxLen)
	eth := icmperr.Eth{Dst: mac, Src: g.cfg.MAC}
	var n int
	if src.Is4() {
		ip := header.IPv4(quote[:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + len(l4)), TTL: 64, Protocol: proto,
			SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
		copy(quote[header.IPv4MinimumSize:], l4)
		code := uint8(icmperr.CodeHostUnreachable4)
		if port {
			code = icmperr.CodePortUnreachable4
		}
		n = icmperr.Unreachable4(out, eth, dst, quote[:header.IPv4MinimumSize+len(l4)], code, 0)
	} else {
		ip := header.IPv6(quote[:])
		ip.Encode(&header.IPv6Fields{PayloadLength: uint16(len(l4)), TransportProtocol: tcpip.TransportProtocolNumber(proto), HopLimit: 64,
			SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
		copy(quote[header.IPv6MinimumSize:], l4)
		code := uint8(icmperr.CodeAddrUnreachable6)
		if port {
			code = icmperr.CodePortUnreachable6
		}
		n = icmperr.Error6(out, eth, dst, quote[:header.IPv6MinimumSize+len(l4)], icmperr.TypeDstUnreachable6, code, 0)
	}
	if n > 0 {
		g.sendLimited(out[:n])
	}
}
