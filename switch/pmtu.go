package vswitch

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/internal/icmperr"
)

// Path MTU feedback. A port may carry less than the network's MTU (a
// tunnel adds its own headers). A unicast frame too big for its egress port
// is dropped; if the switch knows who routes for the network (Config.Router)
// it also answers the sender the way a router on the path would, with ICMP
// "fragmentation needed" (IPv4) or "packet too big" (IPv6) naming the
// port's MTU, so path MTU discovery works instead of black-holing the flow.
// The Linux vxlan device does the same for frames a bridge hands it.

// Router identifies the router of the switch's network, the source of the
// ICMP errors the switch generates.
type Router struct {
	MAC  MAC
	IPv4 netip.Addr // source of ICMPv4 errors; zero: none are sent
	IPv6 netip.Addr // source of ICMPv6 errors; zero: none are sent
}

// icmpPerSecond bounds the ICMP errors a switch sends, as routers rate
// limit them (a flood of big frames must not turn into a flood of errors).
const icmpPerSecond = 100

// icmpLimiter is a token bucket refilled from the coarse clock.
type icmpLimiter struct {
	mu     sync.Mutex
	tokens int
	last   int64
}

func (r *icmpLimiter) allow(now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now-r.last >= 1e9 {
		r.tokens, r.last = icmpPerSecond, now
	}
	if r.tokens == 0 {
		return false
	}
	r.tokens--
	return true
}

// pmtuState is the switch's part of path MTU feedback.
type pmtuState struct {
	router  atomic.Pointer[Router]
	limit   icmpLimiter
	sent    atomic.Uint64
	limited atomic.Uint64
}

// SetRouter sets (or, with nil, clears) who the switch answers for when a
// frame is too big for its egress port.
func (s *Switch) SetRouter(r *Router) { s.pmtu.router.Store(r) }

// tooBig answers the sender of f, which came in on in and was too big for
// a port of MTU mtu, with an ICMP error, if the switch has a router and
// the frame deserves one.
func (s *Switch) tooBig(in *Link, f Frame, mtu int) {
	r := s.pmtu.router.Load()
	if r == nil {
		return
	}
	l3, et, ok := l3Offset(f.Data)
	if !ok {
		return
	}
	buf := segPool.Get().(*[]byte)
	defer segPool.Put(buf)
	eth := icmperr.Eth{Dst: f.Src(), Src: r.MAC}
	var n int
	switch {
	case et == header.IPv4ProtocolNumber && r.IPv4.IsValid():
		n = icmperr.Unreachable4(*buf, eth, r.IPv4, f.Data[l3:], icmperr.CodeFragNeeded4, uint16(mtu))
	case et == header.IPv6ProtocolNumber && r.IPv6.IsValid():
		n = icmperr.Error6(*buf, eth, r.IPv6, f.Data[l3:], icmperr.TypePacketTooBig6, 0, uint32(max(mtu, 1280)))
	}
	if n == 0 {
		return
	}
	if !s.pmtu.limit.allow(s.now.Load()) {
		s.pmtu.limited.Add(1)
		return
	}
	s.pmtu.sent.Add(1)
	in.send(Frame{Data: (*buf)[:n]})
}
