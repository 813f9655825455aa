package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/internal/icmperr"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// ICMP echo egress, for both families. A ping from a container to an
// address outside its network is answered by the real destination, through
// the host: the request is sent from an ICMP socket of the daemon's process
// and the reply turned back into an echo reply frame for the container.
// gVisor would answer every ICMPv6 echo request itself in promiscuous mode
// (claiming that any address is up), so requests are taken off the switch
// before the netstack (Gateway.intercept), whether or not they may leave.
//
//	container ─echo request─► intercept: to the gateway itself? → netstack answers
//	                            may not leave (internal, refused)? → dropped, counted
//	                            host socket WriteTo ─ no route ─► ICMP unreachable, at once
//	                                            └ ok ─► reply or ICMP error ─► the container
//
// Two kinds of host socket, tried in order for each family:
//   - an unprivileged "ping socket" (SOCK_DGRAM, IPPROTO_ICMP or
//     IPPROTO_ICMPV6), allowed when the daemon's group is in
//     net.ipv4.ping_group_range (which governs both families); one per
//     flow, the kernel picks the echo identifier and routes replies back
//     to it;
//   - a raw ICMP socket (needs CAP_NET_RAW), one per family, shared by all
//     flows; each flow gets an identifier of its own, mapped back on the
//     reply. A raw socket also sees the ICMP errors routers send about
//     the requests (destination unreachable, time exceeded, packet too
//     big), which are passed on to the container as its own.
//
// A request the host cannot send at all (no route: ENETUNREACH,
// EHOSTUNREACH; refused by the host's firewall: EACCES, EPERM) is answered
// with a destination unreachable from the gateway at once, so a host
// without IPv6 connectivity fails a ping -6 quickly instead of timing out.

// echoTimeout forgets a flow with no request for this long.
const echoTimeout = 30 * time.Second

// maxEchoFlows bounds concurrent ping flows.
const maxEchoFlows = 1024

type echoKey struct {
	container netip.Addr
	dst       netip.Addr
	id        uint16
}

type echoFlow struct {
	key    echoKey
	target netip.Addr     // where the host sends it (dst, or the host's loopback)
	mac    vswitch.MAC    // the container's
	conn   net.PacketConn // ping-socket mode only
	wire   uint16         // raw mode: the identifier on the wire
	last   atomic.Int64
}

// echoFamily is the host side of one address family.
type echoFamily struct {
	ping bool           // ping sockets, one per flow
	raw  net.PacketConn // else the family's raw socket
}

func (f *echoFamily) ok() bool { return f.ping || f.raw != nil }

type echoProxy struct {
	g      *Gateway
	log    *zap.Logger
	listen func(network, address string) (net.PacketConn, error)
	v4, v6 echoFamily
	mode   string

	mu     sync.Mutex
	flows  map[echoKey]*echoFlow
	byWire map[uint16]*echoFlow // raw mode, both families
	nextID uint16
	closed bool

	requests, replies, dropped, errs atomic.Int64
}

// pingWarning makes the warning that pings cannot leave appear once per
// process: it is about the process's permissions, the same for every
// gateway.
var pingWarning sync.Once

// listenICMP is EgressConfig.ListenICMP's default: ping sockets with
// their error queue on (pingsock.go), raw sockets from
// golang.org/x/net/icmp.
func listenICMP(network, address string) (net.PacketConn, error) {
	if network == "udp4" || network == "udp6" {
		return listenPing(network)
	}
	c, err := icmp.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newEchoProxy picks the socket kind this process may use for each family
// the gateway serves. It returns nil (and logs why) if no family may
// send: pings to the outside then get no answer.
func newEchoProxy(g *Gateway) *echoProxy {
	p := &echoProxy{g: g, log: g.log.Named("echo"), listen: g.cfg.Egress.ListenICMP,
		flows: map[echoKey]*echoFlow{}, byWire: map[uint16]*echoFlow{}}
	if p.listen == nil {
		p.listen = listenICMP
	}
	var errs []error
	var modes []string
	if g.cfg.Addr.Is4() {
		if err := p.open(&p.v4, "udp4", "ip4:icmp", "0.0.0.0"); err != nil {
			errs = append(errs, err)
		} else {
			modes = append(modes, p.v4.modeName("IPv4"))
		}
	}
	if g.cfg.Addr.Is6() || g.cfg.Addr6.IsValid() {
		if err := p.open(&p.v6, "udp6", "ip6:ipv6-icmp", "::"); err != nil {
			errs = append(errs, err)
		} else {
			modes = append(modes, p.v6.modeName("IPv6"))
		}
	}
	if len(errs) > 0 {
		// The same for every network of the process: warned once, then
		// said again at debug level per network.
		log := p.log.Debug
		pingWarning.Do(func() { log = p.log.Warn })
		log("some containers' pings to the outside will go unanswered: no ICMP socket allowed (add the daemon's group to net.ipv4.ping_group_range, or give it CAP_NET_RAW)",
			zap.Error(errors.Join(errs...)))
	}
	if len(modes) == 0 {
		return nil
	}
	for i, m := range modes {
		if i > 0 {
			p.mode += ", "
		}
		p.mode += m
	}
	if p.v4.raw != nil {
		go p.readRaw(p.v4.raw, false)
	}
	if p.v6.raw != nil {
		go p.readRaw(p.v6.raw, true)
	}
	return p
}

func (f *echoFamily) modeName(fam string) string {
	if f.ping {
		return "ping socket (" + fam + ")"
	}
	return "raw socket (" + fam + ")"
}

// open sets f up with a ping socket if allowed, else a raw socket.
func (p *echoProxy) open(f *echoFamily, pingNet, rawNet, any string) error {
	if c, err := p.listen(pingNet, any); err == nil {
		c.Close()
		f.ping = true
		return nil
	}
	raw, err := p.listen(rawNet, any)
	if err != nil {
		return fmt.Errorf("%s: %w", rawNet, err)
	}
	if c, ok := raw.(*icmp.PacketConn); ok && rawNet == "ip6:ipv6-icmp" {
		// A raw ICMPv6 socket sees every ICMPv6 message of the host
		// (neighbour discovery included): keep what concerns pings.
		var filt ipv6.ICMPFilter
		filt.SetAll(true)
		for _, t := range []ipv6.ICMPType{ipv6.ICMPTypeEchoReply, ipv6.ICMPTypeDestinationUnreachable,
			ipv6.ICMPTypePacketTooBig, ipv6.ICMPTypeTimeExceeded, ipv6.ICMPTypeParameterProblem} {
			filt.Accept(t)
		}
		if pc := c.IPv6PacketConn(); pc != nil {
			pc.SetICMPFilter(&filt) // an optimisation only: readRaw checks every message
		}
	}
	f.raw = raw
	return nil
}

// family returns the host side for a's family.
func (p *echoProxy) family(a netip.Addr) *echoFamily {
	if a.Is4() {
		return &p.v4
	}
	return &p.v6
}

// echoRequest reports whether ip (an IPv4 or IPv6 packet, version checked,
// at least its fixed header long) is an ICMP echo request, and returns its
// ICMP message. whole is false for the first fragment of a fragmented
// IPv6 echo request: msg is then only its start.
func echoRequest(ip []byte, v6 bool) (msg []byte, ok, whole bool) {
	if !v6 {
		h := header.IPv4(ip)
		ihl := int(h.HeaderLength())
		if ihl < header.IPv4MinimumSize || ihl > len(ip) || h.Protocol() != 1 || h.FragmentOffset() != 0 || h.More() {
			return nil, false, false
		}
		msg := ip[ihl:]
		return msg, len(msg) >= header.ICMPv4MinimumSize && msg[0] == byte(header.ICMPv4Echo), true
	}
	off, next, frag, ok := skipExt6(ip)
	if !ok || next != 58 {
		return nil, false, false
	}
	end := min(len(ip), header.IPv6MinimumSize+int(header.IPv6(ip).PayloadLength()))
	if off > end {
		return nil, false, false
	}
	msg = ip[off:end]
	return msg, len(msg) >= header.ICMPv6EchoMinimumSize && msg[0] == byte(header.ICMPv6EchoRequest), !frag
}

// skipExt6 walks the hop-by-hop, routing, destination options and
// fragment headers of IPv6 packet ip and returns the offset and number of
// the header after them, and whether ip is the first fragment of a
// packet; a later fragment, which holds no upper-layer header, is not ok.
func skipExt6(ip []byte) (off int, next uint8, frag, ok bool) {
	off, next = header.IPv6MinimumSize, ip[6]
	for range 8 {
		switch next {
		case 0, 43, 60:
			if off+2 > len(ip) {
				return 0, 0, false, false
			}
			next, off = ip[off], off+(int(ip[off+1])+1)*8
		case 44:
			if off+8 > len(ip) || binary.BigEndian.Uint16(ip[off+2:])&^7 != 0 {
				return 0, 0, false, false // short, or a later fragment
			}
			next, off, frag = ip[off], off+8, true
		default:
			return off, next, frag, true
		}
	}
	return 0, 0, false, false
}

// interceptEcho takes echo requests to addresses other than the gateway's
// off the switch: they leave through the host (p may be nil: then, as
// when the destination may not be reached, they are dropped and counted).
// It reports whether it consumed f, which it does not keep. It runs on the
// switch's goroutine.
func (g *Gateway) interceptEcho(f vswitch.Frame, ip []byte, v6 bool) bool {
	msg, ok, whole := echoRequest(ip, v6)
	if !ok {
		return false
	}
	var dst netip.Addr
	if v6 {
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
	} else {
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
	}
	if g.own(dst) {
		return false // the netstack answers
	}
	target, ok := g.egressTarget(netip.AddrPortFrom(dst, 0))
	p := g.echo
	// A fragmented echo request cannot be sent on whole without
	// reassembling it here; its first fragment is dropped, so that the
	// netstack never reassembles it and answers in the destination's
	// name (its later fragments expire in the netstack's reassembly).
	if !ok || !whole || p == nil || !p.family(dst).ok() {
		if !v6 {
			return false // gVisor answers only its own IPv4 addresses
		}
		g.icmp.pingsDropped.Add(1)
		return true
	}
	p.send(f, ip, msg, dst, target.Addr())
	return true
}

// send sends the echo request msg (in packet ip, from frame f) to target,
// the host's address for dst.
func (p *echoProxy) send(f vswitch.Frame, ip, msg []byte, dst, target netip.Addr) {
	v6 := dst.Is6()
	var src netip.Addr
	if v6 {
		src = netip.AddrFrom16([16]byte(ip[8:24]))
	} else {
		src = netip.AddrFrom4([4]byte(ip[12:16]))
	}
	key := echoKey{container: src, dst: dst, id: binary.BigEndian.Uint16(msg[4:6])}
	flow, err := p.flow(key, target, f.Src())
	if err != nil {
		p.dropped.Add(1)
		return
	}
	flow.last.Store(p.g.clock.Now().UnixNano())
	req := append([]byte(nil), msg...) // sockets compute the checksum; keep id and seq
	req[2], req[3] = 0, 0
	// Count the request before it leaves: the reply can come back through
	// loopback and be counted by the reader goroutine before WriteTo
	// returns here, and a reader of Stats must never see more replies than
	// requests.
	p.requests.Add(1)
	var werr error
	if flow.conn == nil {
		binary.BigEndian.PutUint16(req[4:6], flow.wire)
		if !v6 { // the kernel sums ICMPv6 on raw sockets itself
			binary.BigEndian.PutUint16(req[2:4], ^checksum.Checksum(req, 0))
		}
		_, werr = p.family(dst).raw.WriteTo(req, &net.IPAddr{IP: target.AsSlice()})
	} else {
		_, werr = flow.conn.WriteTo(req, &net.UDPAddr{IP: target.AsSlice()})
	}
	if werr != nil {
		p.requests.Add(-1)
		p.dropped.Add(1)
		if code, ok := unreachableCode(werr, v6); ok {
			p.g.sendError(f.Src(), p.g.addrFor(dst), ip, v6, code)
		}
	}
}

// unreachableCode maps the error of a send the host refused to the code of
// the destination unreachable a router would send: no route, address (or
// host) unreachable, administratively prohibited.
func unreachableCode(err error, v6 bool) (uint8, bool) {
	switch {
	case errors.Is(err, syscall.ENETUNREACH):
		if v6 {
			return icmperr.CodeNoRoute6, true
		}
		return icmperr.CodeNetUnreachable4, true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		if v6 {
			return icmperr.CodeAddrUnreachable6, true
		}
		return icmperr.CodeHostUnreachable4, true
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		if v6 {
			return icmperr.CodeProhibited6, true
		}
		return icmperr.CodeProhibited4, true
	}
	return 0, false
}

// flow returns the flow for key, opening it (and its socket) if new.
func (p *echoProxy) flow(key echoKey, target netip.Addr, mac vswitch.MAC) (*echoFlow, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("closed")
	}
	if fl := p.flows[key]; fl != nil {
		fl.mac = mac
		return fl, nil
	}
	p.expireLocked()
	if len(p.flows) >= maxEchoFlows {
		return nil, fmt.Errorf("%d ping flows open", len(p.flows))
	}
	fl := &echoFlow{key: key, target: target, mac: mac}
	if fam := p.family(key.dst); !fam.ping {
		for i := 0; i < 65536; i++ {
			p.nextID++
			if p.byWire[p.nextID] == nil {
				break
			}
		}
		fl.wire = p.nextID
		p.byWire[fl.wire] = fl
	} else {
		network, any := "udp4", "0.0.0.0"
		if key.dst.Is6() {
			network, any = "udp6", "::"
		}
		c, err := p.listen(network, any)
		if err != nil {
			return nil, err
		}
		fl.conn = c
		go p.readFlow(fl)
	}
	p.flows[key] = fl
	return fl, nil
}

// expireLocked forgets flows idle for echoTimeout. p.mu must be held.
func (p *echoProxy) expireLocked() {
	cutoff := p.g.clock.Now().Add(-echoTimeout).UnixNano()
	for k, fl := range p.flows {
		if fl.last.Load() < cutoff {
			p.dropFlowLocked(k, fl)
		}
	}
}

func (p *echoProxy) dropFlowLocked(k echoKey, fl *echoFlow) {
	delete(p.flows, k)
	if fl.conn != nil {
		fl.conn.Close() // ends readFlow
	} else {
		delete(p.byWire, fl.wire)
	}
}

// readFlow reads the replies of one ping-socket flow until it is closed or
// idle.
func (p *echoProxy) readFlow(fl *echoFlow) {
	buf := make([]byte, 65535)
	for {
		fl.conn.SetReadDeadline(time.Now().Add(echoTimeout))
		n, from, err := fl.conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && p.g.clock.Now().Sub(time.Unix(0, fl.last.Load())) < echoTimeout {
				continue
			}
			if icmpErrno(err) {
				// An ICMP error about a request (the error queue is on):
				// pass it on and go on reading.
				for _, qe := range drainErrors(fl.conn) {
					p.passQueued(fl, qe)
				}
				continue
			}
			p.mu.Lock()
			if p.flows[fl.key] == fl {
				p.dropFlowLocked(fl.key, fl)
			}
			p.mu.Unlock()
			return
		}
		if _, ok := from.(*net.UDPAddr); !ok {
			continue
		}
		p.reply(fl, buf[:n])
	}
}

// readRaw reads every ICMP message of a family the host receives (raw
// mode) and hands ours to their flows: echo replies by identifier, errors
// by the identifier of the request they quote.
func (p *echoProxy) readRaw(c net.PacketConn, v6 bool) {
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		ipFrom, ok := from.(*net.IPAddr)
		if !ok || n < 8 {
			continue
		}
		msg := buf[:n]
		wire, isErr, qdst, qmsg, ok := rawMessage(msg, v6)
		if !ok {
			continue
		}
		p.mu.Lock()
		fl := p.byWire[wire]
		p.mu.Unlock()
		if fl == nil || fl.key.dst.Is6() != v6 {
			continue
		}
		if !isErr {
			p.reply(fl, msg)
			continue
		}
		if qdst != fl.target {
			continue
		}
		reporter, _ := netip.AddrFromSlice(ipFrom.IP)
		p.passError(fl, reporter.Unmap(), msg, qmsg)
	}
}

// rawMessage classifies an ICMP message (ICMPv6 if v6) a raw socket
// read: an echo reply, with its identifier, or an error quoting an echo
// request, with the request's identifier, destination and ICMP message
// (at least its 8-byte header). ok is false for anything else.
func rawMessage(msg []byte, v6 bool) (wire uint16, isErr bool, qdst netip.Addr, qmsg []byte, ok bool) {
	if len(msg) < 8 {
		return 0, false, netip.Addr{}, nil, false
	}
	replyType, reqType := byte(header.ICMPv4EchoReply), byte(header.ICMPv4Echo)
	if v6 {
		replyType, reqType = byte(header.ICMPv6EchoReply), byte(header.ICMPv6EchoRequest)
	}
	if msg[0] == replyType {
		return binary.BigEndian.Uint16(msg[4:6]), false, netip.Addr{}, nil, true
	}
	if !icmperr.IsError(v6, msg[0]) {
		return 0, false, netip.Addr{}, nil, false
	}
	// An error quotes our request: its IP header (to the flow's target)
	// and at least the echo header (our identifier).
	q := msg[8:]
	if v6 {
		if len(q) < header.IPv6MinimumSize+8 || q[0]>>4 != 6 || q[6] != 58 {
			return 0, false, netip.Addr{}, nil, false
		}
		qdst, qmsg = netip.AddrFrom16([16]byte(q[24:40])), q[header.IPv6MinimumSize:]
	} else {
		if len(q) < header.IPv4MinimumSize {
			return 0, false, netip.Addr{}, nil, false
		}
		ihl := int(q[0]&0xf) * 4
		if q[0]>>4 != 4 || ihl < header.IPv4MinimumSize || len(q) < ihl+8 || q[9] != 1 {
			return 0, false, netip.Addr{}, nil, false
		}
		qdst, qmsg = netip.AddrFrom4([4]byte(q[16:20])), q[ihl:]
	}
	if qmsg[0] != reqType {
		return 0, false, netip.Addr{}, nil, false
	}
	return binary.BigEndian.Uint16(qmsg[4:6]), true, qdst, qmsg, true
}

// passError gives the container the ICMP error msg that reporter sent
// about the flow's request (quoted in qmsg), as if about its own: the
// quote names the container's address, the destination it pinged and its
// identifier. An error the host reports about the host's loopback, or
// that the destination reports itself, comes from the address the
// container pinged.
func (p *echoProxy) passError(fl *echoFlow, reporter netip.Addr, msg, qmsg []byte) {
	if !reporter.IsValid() || reporter.IsLoopback() || reporter == fl.target {
		reporter = fl.key.dst
	}
	var quote [header.IPv6MinimumSize + 8]byte
	v6 := fl.key.dst.Is6()
	var ip []byte
	if v6 {
		h := header.IPv6(quote[:])
		h.Encode(&header.IPv6Fields{PayloadLength: 8, TransportProtocol: 58, HopLimit: 64,
			SrcAddr: tcpip.AddrFrom16(fl.key.container.As16()), DstAddr: tcpip.AddrFrom16(fl.key.dst.As16())})
		ip = quote[:header.IPv6MinimumSize+8]
	} else {
		h := header.IPv4(quote[:])
		h.Encode(&header.IPv4Fields{TotalLength: header.IPv4MinimumSize + 8, TTL: 64, Protocol: 1,
			SrcAddr: tcpip.AddrFrom4(fl.key.container.As4()), DstAddr: tcpip.AddrFrom4(fl.key.dst.As4())})
		h.SetChecksum(^h.CalculateChecksum())
		ip = quote[:header.IPv4MinimumSize+8]
	}
	echo := ip[len(ip)-8:]
	copy(echo, qmsg[:8])
	binary.BigEndian.PutUint16(echo[4:6], fl.key.id)
	p.errs.Add(1)
	p.g.sendErrorType(fl.mac, reporter, ip, v6, msg[0], msg[1], binary.BigEndian.Uint32(msg[4:8]))
}

// icmpErrno reports whether err, from a ping socket's read, is the errno
// an ICMP error on its error queue set (unreachable, time exceeded,
// packet too big, parameter problem, refused, prohibited).
func icmpErrno(err error) bool {
	for _, e := range []syscall.Errno{syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ECONNREFUSED, syscall.EMSGSIZE,
		syscall.EACCES, syscall.EPROTO, syscall.EREMOTEIO, syscall.EHOSTDOWN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// passQueued passes on an error from a ping socket's error queue, if it
// is about an echo request (the kernel quotes the request as the socket
// sent it: the echo header first).
func (p *echoProxy) passQueued(fl *echoFlow, qe queuedError) {
	reqType := byte(header.ICMPv4Echo)
	if fl.key.dst.Is6() {
		reqType = byte(header.ICMPv6EchoRequest)
	}
	if len(qe.request) < 8 || qe.request[0] != reqType || !icmperr.IsError(fl.key.dst.Is6(), qe.hdr[0]) {
		return
	}
	p.passError(fl, qe.reporter, qe.hdr[:], qe.request)
}

// reply sends the container an echo reply from the address it pinged (the
// host-loopback address, not 127.0.0.1, when that is what it pinged),
// carrying its own identifier and the reply's sequence and payload.
func (p *echoProxy) reply(fl *echoFlow, msg []byte) {
	v6 := fl.key.dst.Is6()
	replyType, ipLen, et := byte(header.ICMPv4EchoReply), header.IPv4MinimumSize, uint16(0x0800)
	if v6 {
		replyType, ipLen, et = byte(header.ICMPv6EchoReply), header.IPv6MinimumSize, 0x86dd
	}
	if len(msg) < 8 || msg[0] != replyType {
		return
	}
	n := 14 + ipLen + len(msg)
	if n > 14+65535 {
		return
	}
	out := make([]byte, n)
	copy(out[0:6], fl.mac[:])
	copy(out[6:12], p.g.cfg.MAC[:])
	binary.BigEndian.PutUint16(out[12:14], et)
	icmpOut := out[14+ipLen:]
	copy(icmpOut, msg)
	binary.BigEndian.PutUint16(icmpOut[4:6], fl.key.id)
	icmpOut[2], icmpOut[3] = 0, 0
	if v6 {
		src, dst := tcpip.AddrFrom16(fl.key.dst.As16()), tcpip.AddrFrom16(fl.key.container.As16())
		header.IPv6(out[14:]).Encode(&header.IPv6Fields{PayloadLength: uint16(len(msg)), TransportProtocol: 58, HopLimit: 63,
			SrcAddr: src, DstAddr: dst})
		sum := header.PseudoHeaderChecksum(58, src, dst, uint16(len(msg)))
		binary.BigEndian.PutUint16(icmpOut[2:4], ^checksum.Checksum(icmpOut, sum))
	} else {
		ip := header.IPv4(out[14:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(n - 14), TTL: 63, Protocol: 1,
			SrcAddr: tcpip.AddrFrom4(fl.key.dst.As4()), DstAddr: tcpip.AddrFrom4(fl.key.container.As4())})
		ip.SetChecksum(^ip.CalculateChecksum())
		binary.BigEndian.PutUint16(icmpOut[2:4], ^checksum.Checksum(icmpOut, 0))
	}
	// Counted before Send for the same reason as requests: the switch
	// delivers in line, so the container can see the reply before Send
	// returns.
	p.replies.Add(1)
	if !p.g.port.Send(out) {
		p.replies.Add(-1)
	}
}

func (p *echoProxy) close() {
	p.mu.Lock()
	p.closed = true
	for k, fl := range p.flows {
		p.dropFlowLocked(k, fl)
	}
	p.mu.Unlock()
	for _, raw := range []net.PacketConn{p.v4.raw, p.v6.raw} {
		if raw != nil {
			raw.Close()
		}
	}
}
