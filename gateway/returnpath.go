package gateway

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// The return path: replies to senders that reached the network through
// its host interface from outside the routed subnets.
//
// The host kernel forwards into the network whatever its routing table
// sends to the subnet: packets from the other host's own address, from a
// VPC client, from a host process bound to an address other than the host
// interface's. The endpoint's reply goes to its default route, the
// gateway; its destination is in no routed subnet, so without more it
// would take the masqueraded egress, which terminates the flow in the
// netstack and breaks it. So the gateway remembers the source addresses
// of the packets the host interface brings in (only those: the table is
// fed by the host interface's port alone, HostInterfacePort, so no
// endpoint can add an address to it), and forwards packets to them back to
// the host interface as it forwards routed subnets: unmodified but for the
// TTL.
//
//	host kernel ─► host interface port ─► seen: source not ours, not routed → table (refresh)
//	                                   └─► switch ─► endpoint
//	endpoint ─► switch ─► gateway intercept: dst routed, or in the table and not a flow
//	                      the netstack holds (a published port's connection from the
//	                      client's own address) ─► TTL−1 ─► host interface
//
// The table is bounded (ReturnConfig.MaxSenders); a full table evicts the
// least recently seen of a few entries it samples, counted. An entry that
// no packet from its address has refreshed for ReturnConfig.Idle expires.
// Packets the endpoints send never refresh an entry: only the sender keeps
// itself in the table.

// Defaults of ReturnConfig. An entry is an address, not a flow, and costs
// a few dozen bytes, so it is kept long: a connection that stays quiet
// longer and is then spoken on first by the endpoint finds its sender
// forgotten, and the endpoint's packet takes the egress, which knows no
// such flow.
const (
	DefaultReturnSenders = 4096
	DefaultReturnIdle    = 30 * time.Minute
)

// returnEvictSample is how many entries a full table looks at to choose
// the one it evicts.
const returnEvictSample = 8

// ReturnConfig bounds the return path's table of senders.
type ReturnConfig struct {
	// MaxSenders caps the addresses remembered; 0 means
	// DefaultReturnSenders.
	MaxSenders int
	// Idle is how long an address is remembered after the last packet
	// from it; 0 means DefaultReturnIdle.
	Idle time.Duration
}

// ReturnStats count the return path.
type ReturnStats struct {
	// Senders is how many addresses the table holds now.
	Senders int
	// Learned counts addresses added to the table.
	Learned uint64
	// Evicted counts live addresses dropped because the table was full;
	// Expired, those dropped after ReturnConfig.Idle without a packet.
	Evicted, Expired uint64
	// Forwarded counts packets sent back to the host interface.
	Forwarded uint64
}

// returnTable maps a sender's address to when a packet from it last came
// in through the host interface (Unix nanoseconds). Readers take mu
// shared; a refresh is an atomic store; only a new address takes mu
// exclusively.
type returnTable struct {
	max  int
	idle int64

	mu sync.RWMutex
	m  map[netip.Addr]*atomic.Int64

	learned, evicted, expired, forwarded atomic.Uint64
}

func newReturnTable(cfg ReturnConfig) *returnTable {
	if cfg.MaxSenders <= 0 {
		cfg.MaxSenders = DefaultReturnSenders
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultReturnIdle
	}
	return &returnTable{max: cfg.MaxSenders, idle: int64(cfg.Idle), m: map[netip.Addr]*atomic.Int64{}}
}

// refreshGrain is how stale an entry's time may get before a packet
// rewrites it: most packets of a busy sender only read it.
const refreshGrain = int64(time.Second)

// seen records a packet from a at now.
func (t *returnTable) seen(a netip.Addr, now int64) {
	t.mu.RLock()
	e := t.m[a]
	t.mu.RUnlock()
	if e != nil {
		if now-e.Load() >= refreshGrain {
			e.Store(now)
		}
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e = t.m[a]; e != nil {
		e.Store(now)
		return
	}
	if len(t.m) >= t.max {
		t.evictLocked(now)
	}
	e = new(atomic.Int64)
	e.Store(now)
	t.m[a] = e
	t.learned.Add(1)
}

// evictLocked removes one entry: the least recently seen of a few the
// map's random iteration order offers. mu is held.
func (t *returnTable) evictLocked(now int64) {
	var (
		victim netip.Addr
		oldest int64
		n      int
	)
	for a, e := range t.m {
		if at := e.Load(); n == 0 || at < oldest {
			victim, oldest = a, at
		}
		if n++; n == returnEvictSample {
			break
		}
	}
	delete(t.m, victim)
	if now-oldest >= t.idle {
		t.expired.Add(1)
	} else {
		t.evicted.Add(1)
	}
}

// has reports whether a packet from a came in within the idle time
// before now.
func (t *returnTable) has(a netip.Addr, now int64) bool {
	t.mu.RLock()
	e := t.m[a]
	t.mu.RUnlock()
	return e != nil && now-e.Load() < t.idle
}

// sweep removes the entries expired at now.
func (t *returnTable) sweep(now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, e := range t.m {
		if now-e.Load() >= t.idle {
			delete(t.m, a)
			t.expired.Add(1)
		}
	}
}

func (t *returnTable) stats() ReturnStats {
	t.mu.RLock()
	n := len(t.m)
	t.mu.RUnlock()
	return ReturnStats{Senders: n, Learned: t.learned.Load(), Evicted: t.evicted.Load(), Expired: t.expired.Load(), Forwarded: t.forwarded.Load()}
}

// janitor sweeps the table until the gateway closes.
func (r *router) janitor() {
	defer r.g.wg.Done()
	every := time.Duration(r.ret.idle) / 4
	every = min(max(every, 100*time.Millisecond), 30*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-r.g.ctx.Done():
			return
		case now := <-tick.C:
			r.ret.sweep(now.UnixNano())
		}
	}
}

// fromHost looks at frame f the host interface brought in and remembers
// the source of the IP packet it carries, unless that address is the
// network's own, routed, or not a unicast address a reply could go to.
func (r *router) fromHost(f vswitch.Frame) {
	b := f.Data
	if len(b) < vswitch.EthHeaderLen || f.Src() != r.hopMAC {
		return
	}
	ip := b[vswitch.EthHeaderLen:]
	var src netip.Addr
	switch {
	case b[12] == 0x08 && b[13] == 0x00 && len(ip) >= header.IPv4MinimumSize && ip[0]>>4 == 4:
		src = netip.AddrFrom4([4]byte(ip[12:16]))
	case b[12] == 0x86 && b[13] == 0xdd && len(ip) >= header.IPv6MinimumSize && ip[0]>>4 == 6:
		src = netip.AddrFrom16([16]byte(ip[8:24]))
	default:
		return
	}
	if !src.IsGlobalUnicast() || src.Is4In6() || r.g.inSubnet(src) || r.g.own(src) || r.routed(src) || src == r.g.cfg.HostLoopback {
		return
	}
	r.ret.seen(src, time.Now().UnixNano())
}

// returns reports whether a packet to dst (the IP packet ip, from an
// endpoint) goes back to the host interface: dst sent to the network
// through it lately, and the packet belongs to no flow the netstack holds.
func (r *router) returns(dst netip.Addr, ip []byte, v6 bool) bool {
	if r.ret == nil || !r.ret.has(dst, time.Now().UnixNano()) {
		return false
	}
	return !r.stackFlow(ip, v6)
}

// stackFlow reports whether the TCP or UDP packet ip belongs to a
// connection of the gateway's netstack: a published port's connection
// opened from the client's own address (Dialer with KeepSource), or an
// egress flow the netstack terminated before its peer was in the table.
// Those stay the netstack's.
func (r *router) stackFlow(ip []byte, v6 bool) bool {
	var (
		proto    uint8
		l4       []byte
		src, dst tcpip.Address
		netProto tcpip.NetworkProtocolNumber
	)
	if v6 {
		h := header.IPv6(ip)
		proto, l4 = ip[6], ip[header.IPv6MinimumSize:]
		src, dst, netProto = h.SourceAddress(), h.DestinationAddress(), header.IPv6ProtocolNumber
	} else {
		h := header.IPv4(ip)
		ihl := int(ip[0]&0xf) * 4
		if ihl < header.IPv4MinimumSize || ihl > len(ip) || h.FragmentOffset() != 0 {
			return false
		}
		proto, l4 = ip[9], ip[ihl:]
		src, dst, netProto = h.SourceAddress(), h.DestinationAddress(), header.IPv4ProtocolNumber
	}
	if (proto != uint8(header.TCPProtocolNumber) && proto != uint8(header.UDPProtocolNumber)) || len(l4) < 4 {
		return false
	}
	id := stack.TransportEndpointID{
		LocalPort: binary.BigEndian.Uint16(l4[2:4]), LocalAddress: dst,
		RemotePort: binary.BigEndian.Uint16(l4[0:2]), RemoteAddress: src,
	}
	return r.g.stack.FindTransportEndpoint(netProto, tcpip.TransportProtocolNumber(proto), id, NICID) != nil
}

// ReturnStats returns the counters of the return path (zero on a gateway
// without a host interface).
func (g *Gateway) ReturnStats() ReturnStats {
	if g.router == nil {
		return ReturnStats{}
	}
	return g.router.ret.stats()
}

// HostInterfacePort wraps p, the network's host interface (Config.NextHop),
// for attaching to the switch: the gateway sees each frame p receives
// before the switch does and remembers its source for the return path.
// Frames of any other port never feed the table. On a gateway without a
// next hop it returns p itself.
func (g *Gateway) HostInterfacePort(p vswitch.Port) vswitch.Port {
	if g.router == nil {
		return p
	}
	return &hostPort{Port: p, r: g.router}
}

// hostPort is the host interface as attached to the switch.
type hostPort struct {
	vswitch.Port
	r *router
}

func (p *hostPort) Start(in vswitch.Ingress) error {
	return p.Port.Start(&hostIngress{in: in, r: p.r})
}

// hostIngress shows the router each frame from the host interface, then
// hands it to the switch. f.Data stays the port's.
type hostIngress struct {
	in vswitch.Ingress
	r  *router
}

func (h *hostIngress) Receive(f vswitch.Frame) {
	h.r.fromHost(f)
	h.in.Receive(f)
}
