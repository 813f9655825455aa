package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/icmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// ICMP echo egress. A ping from a container to an address outside its
// network is answered by the real destination, through the host: the
// request is sent from an ICMP socket of the daemon's process and the reply
// turned back into an echo reply frame for the container. gVisor would
// answer every echo request itself in promiscuous mode (claiming that any
// address is up), so requests are taken off the switch before the netstack.
//
// Two kinds of host socket, tried in order:
//   - an unprivileged "ping socket" (SOCK_DGRAM, IPPROTO_ICMP), allowed when
//     the daemon's group is in net.ipv4.ping_group_range; one per flow, the
//     kernel picks the echo identifier and routes replies back to it;
//   - a raw ICMP socket (needs CAP_NET_RAW), shared by all flows; each flow
//     gets an identifier of its own, mapped back on the reply.
//
// Only IPv4 is forwarded; IPv6 echo requests go to the netstack.

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
	key  echoKey
	mac  vswitch.MAC      // the container's
	conn *icmp.PacketConn // ping-socket mode only
	wire uint16           // raw mode: the identifier on the wire
	last atomic.Int64
}

type echoProxy struct {
	g    *Gateway
	log  *zap.Logger
	raw  *icmp.PacketConn // raw mode; nil in ping-socket mode
	mode string

	mu     sync.Mutex
	flows  map[echoKey]*echoFlow
	byWire map[uint16]*echoFlow // raw mode
	nextID uint16
	closed bool

	requests, replies, dropped atomic.Int64
}

// pingWarning makes the warning that pings cannot leave appear once per
// process: it is about the process's permissions, the same for every
// gateway.
var pingWarning sync.Once

// newEchoProxy picks the socket kind this process may use. It returns nil
// (and logs why) if neither is allowed: pings then get no answer.
func newEchoProxy(g *Gateway) *echoProxy {
	p := &echoProxy{g: g, log: g.log.Named("echo"), flows: map[echoKey]*echoFlow{}, byWire: map[uint16]*echoFlow{}}
	if c, err := icmp.ListenPacket("udp4", "0.0.0.0"); err == nil {
		c.Close()
		p.mode = "ping socket"
		return p
	}
	raw, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		// The same for every network of the process: warned once, then
		// said again at debug level per network.
		log := p.log.Debug
		pingWarning.Do(func() { log = p.log.Warn })
		log("containers' pings to the outside will go unanswered: no ICMP socket allowed (add the daemon's group to net.ipv4.ping_group_range, or give it CAP_NET_RAW)",
			zap.Error(err))
		return nil
	}
	p.raw = raw
	p.mode = "raw socket"
	go p.readRaw()
	return p
}

// intercept takes echo requests to foreign IPv4 addresses off the switch.
// It runs on the switch's goroutine and does not keep f.
func (p *echoProxy) intercept(f vswitch.Frame, ip header.IPv4) bool {
	if ip.Protocol() != 1 || ip.FragmentOffset() != 0 || ip.More() {
		return false
	}
	ihl := int(ip.HeaderLength())
	msg := header.ICMPv4(ip[ihl:])
	if len(msg) < header.ICMPv4MinimumSize || msg.Type() != header.ICMPv4Echo {
		return false
	}
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	target, ok := p.g.egressTarget(netip.AddrPortFrom(dst, 0))
	if !ok {
		return false // to the gateway itself: the netstack answers
	}
	key := echoKey{container: netip.AddrFrom4([4]byte(ip[12:16])), dst: dst, id: msg.Ident()}
	flow, err := p.flow(key, f.Src())
	if err != nil {
		p.dropped.Add(1)
		return true
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
	if p.raw != nil {
		binary.BigEndian.PutUint16(req[4:6], flow.wire)
		binary.BigEndian.PutUint16(req[2:4], ^checksum.Checksum(req, 0))
		_, werr = p.raw.WriteTo(req, &net.IPAddr{IP: target.Addr().AsSlice()})
	} else {
		_, werr = flow.conn.WriteTo(req, &net.UDPAddr{IP: target.Addr().AsSlice()})
	}
	if werr != nil {
		p.requests.Add(-1)
		p.dropped.Add(1)
	}
	return true
}

// flow returns the flow for key, opening it (and its socket) if new.
func (p *echoProxy) flow(key echoKey, mac vswitch.MAC) (*echoFlow, error) {
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
	fl := &echoFlow{key: key, mac: mac}
	if p.raw != nil {
		for i := 0; i < 65536; i++ {
			p.nextID++
			if p.byWire[p.nextID] == nil {
				break
			}
		}
		fl.wire = p.nextID
		p.byWire[fl.wire] = fl
	} else {
		c, err := icmp.ListenPacket("udp4", "0.0.0.0")
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

// readRaw reads every echo reply the host receives (raw mode) and hands
// ours to their flows.
func (p *echoProxy) readRaw() {
	buf := make([]byte, 65535)
	for {
		n, from, err := p.raw.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		msg := header.ICMPv4(buf[:n])
		if n < header.ICMPv4MinimumSize || msg.Type() != header.ICMPv4EchoReply {
			continue
		}
		p.mu.Lock()
		fl := p.byWire[msg.Ident()]
		p.mu.Unlock()
		if _, ok := from.(*net.IPAddr); fl == nil || !ok {
			continue
		}
		p.reply(fl, msg)
	}
}

// reply sends the container an echo reply from the address it pinged (the
// host-loopback address, not 127.0.0.1, when that is what it pinged),
// carrying its own identifier and the reply's sequence and payload.
func (p *echoProxy) reply(fl *echoFlow, msg []byte) {
	if len(msg) < header.ICMPv4MinimumSize || header.ICMPv4(msg).Type() != header.ICMPv4EchoReply {
		return
	}
	n := 14 + header.IPv4MinimumSize + len(msg)
	if n > 14+65535 {
		return
	}
	out := make([]byte, n)
	copy(out[0:6], fl.mac[:])
	copy(out[6:12], p.g.cfg.MAC[:])
	out[12], out[13] = 0x08, 0x00
	ip := header.IPv4(out[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(n - 14), TTL: 63, Protocol: 1,
		SrcAddr: tcpip.AddrFrom4(fl.key.dst.As4()), DstAddr: tcpip.AddrFrom4(fl.key.container.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmpOut := header.ICMPv4(out[14+header.IPv4MinimumSize:])
	copy(icmpOut, msg)
	icmpOut.SetIdent(fl.key.id)
	icmpOut.SetChecksum(0)
	icmpOut.SetChecksum(^checksum.Checksum(icmpOut, 0))
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
	if p.raw != nil {
		p.raw.Close()
	}
}
