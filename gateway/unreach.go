package gateway

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/internal/icmperr"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// UnreachablesPerSecond bounds the ICMP errors the gateway sends containers
// about their egress (destination unreachable for refused and unroutable
// flows and pings, and the errors it passes on), as routers rate limit
// them: a container that floods an unroutable address must not turn the
// gateway into a flood of errors. Errors over the limit are counted
// (EgressStats.UnreachablesLimited) and not sent.
const UnreachablesPerSecond = 100

// icmpCounters is what the gateway did with containers' ICMP: the
// errors it sent them (rate limited), and the pings it dropped.
type icmpCounters struct {
	errLimiter
	// pingsDropped counts echo requests to the outside not allowed to
	// leave (interceptEcho).
	pingsDropped atomic.Int64
}

// errLimiter is a token bucket of UnreachablesPerSecond, refilled once a
// second.
type errLimiter struct {
	mu     sync.Mutex
	tokens int
	refill time.Time

	sent, limited atomic.Int64
}

func (l *errLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.refill) >= time.Second {
		l.tokens, l.refill = UnreachablesPerSecond, now
	}
	if l.tokens == 0 {
		return false
	}
	l.tokens--
	return true
}

// sendLimited sends frame b, an ICMP error for a container, to the switch
// if the rate limit allows, and counts it either way. b stays the
// caller's.
func (g *Gateway) sendLimited(b []byte) {
	if !g.icmp.allow(g.clock.Now()) {
		g.icmp.limited.Add(1)
		return
	}
	if g.port.Send(b) {
		g.icmp.sent.Add(1)
	}
}

// sendError answers packet ip (IPv4 or IPv6, as v6 says), which the
// container at mac sent, with a destination unreachable of code from src.
func (g *Gateway) sendError(mac vswitch.MAC, src netip.Addr, ip []byte, v6 bool, code uint8) {
	typ := uint8(icmperr.TypeDstUnreachable4)
	if v6 {
		typ = icmperr.TypeDstUnreachable6
	}
	g.sendErrorType(mac, src, ip, v6, typ, code, 0)
}

// sendErrorType answers packet ip, which the container at mac sent, with
// an ICMP error of type typ and code from src (param: the field after the
// checksum), as the rate limit allows. A source of the other family than
// ip is replaced by the gateway's own address of ip's family.
func (g *Gateway) sendErrorType(mac vswitch.MAC, src netip.Addr, ip []byte, v6 bool, typ, code uint8, param uint32) {
	if src.Is6() != v6 {
		if v6 {
			src = g.addrFor(netip.IPv6Unspecified())
		} else {
			src = g.addrFor(netip.IPv4Unspecified())
		}
		if src.Is6() != v6 {
			return
		}
	}
	out := make([]byte, icmperr.MaxLen)
	eth := icmperr.Eth{Dst: mac, Src: g.cfg.MAC}
	var n int
	if v6 {
		n = icmperr.Error6(out, eth, src, ip, typ, code, param)
	} else {
		n = icmperr.Error4(out, eth, src, ip, typ, code, param)
	}
	if n > 0 {
		g.sendLimited(out[:n])
	}
}
