package nat

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Verdict is what the gateway does with a packet after Process.
type Verdict uint8

const (
	// Pass: not nat's packet (no rule and no flow matched it); the packet
	// is unchanged and goes on to the gateway's netstack.
	Pass Verdict = iota
	// Translated: the packet was rewritten in place; the gateway emits it
	// onto the switch toward its new destination's MAC.
	Translated
	// Drop: the gateway discards the packet. The reason is counted in
	// Stats; the packet is unchanged.
	Drop
)

// String returns "pass", "translated" or "drop".
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Translated:
		return "translated"
	case Drop:
		return "drop"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Table is one network's NAT and filter rules and its connection table.
// Create it with NewTable. Its methods are safe for concurrent use.
type Table struct {
	cfg         Config // normalized; never modified after NewTable
	tcpTimeouts [numTCPStates]time.Duration

	// rules is replaced, with mu held, by SetMappings and SetHostAddrs;
	// Process reads it without mu to let foreign packets pass.
	rules atomic.Pointer[ruleset]

	mu     sync.Mutex
	conns  map[tuple]*conn       // guarded by mu; each conn under both its tuples
	n      int                   // guarded by mu; number of conns
	evict  connList              // guarded by mu; the eviction candidates, oldest first
	expiry expiryHeap            // guarded by mu
	pools  map[poolKey]*portPool // guarded by mu; masquerade ports per responder
	cursor uint32                // guarded by mu; where the next port search starts
	spares []*conn               // guarded by mu; removed entries for reuse

	stats stats
}

// NewTable returns the table of a network. It fails, wrapping
// ErrInvalidConfig, if cfg has no gateway address or an invalid range.
func NewTable(cfg Config) (*Table, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	t := &Table{cfg: cfg, conns: make(map[tuple]*conn)}
	to := cfg.Timeouts
	t.tcpTimeouts = [numTCPStates]time.Duration{
		tcpNone: to.TCPClose, tcpSynSent: to.TCPSynSent, tcpSynRecv: to.TCPSynRecv,
		tcpEstablished: to.TCPEstablished, tcpFinWait: to.TCPFinWait,
		tcpCloseWait: to.TCPCloseWait, tcpLastAck: to.TCPLastAck,
		tcpTimeWait: to.TCPTimeWait, tcpClose: to.TCPClose,
	}
	t.rules.Store(newRuleset(&t.cfg, cfg.HostAddrs, nil))
	return t, nil
}

// SetMappings replaces the published ports as a whole. Entries created by a
// mapping that is not in ms any more are flushed, as are entries whose
// masquerade port has become a published port. On error (wrapping
// ErrInvalidConfig: a bad protocol, port or address, or two mappings for
// one host address and port) nothing changes. On an internal network the
// mappings are kept but never applied, as Docker publishes nothing there.
func (t *Table) SetMappings(ms []PortMapping) error {
	ms, err := checkMappings(t.cfg.Network, ms)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := newRuleset(&t.cfg, t.rules.Load().hostAddrs, ms)
	t.rules.Store(rs)
	for k, c := range t.conns {
		if k != c.orig {
			continue
		}
		if !rs.has(c.mapping) || rs.published(c.mapping.Proto, masqPort(c)) {
			t.removeLocked(c, &t.stats.deleted)
		}
	}
	t.reservePortsLocked(rs)
	return nil
}

// SetHostAddrs replaces the host's local addresses (Config.HostAddrs).
// Invalid, unspecified and repeated addresses are ignored. Existing
// entries are kept: they expire when their flows stop.
func (t *Table) SetHostAddrs(addrs []netip.Addr) {
	addrs = normalizeAddrs(addrs)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rules.Store(newRuleset(&t.cfg, addrs, t.rules.Load().mappings))
}

// Process applies the table to pkt, one IP packet starting at its IP
// header, whose checksums are complete. It returns Translated after
// rewriting pkt in place; for Pass and Drop, pkt is unchanged. now is the
// caller's clock in nanoseconds. pkt is owned by the caller and not kept.
func (t *Table) Process(pkt []byte, now int64) Verdict {
	return t.process(pkt, false, now)
}

// ProcessPartial is Process for a packet whose transport checksum is
// partial: the field holds the pseudo-header sum and the rest is left to
// whoever completes it (virtio-net NEEDS_CSUM; the offsets in the frame's
// offload header stay valid, as no header changes length). The packet may
// be a segmentation-offload superframe.
func (t *Table) ProcessPartial(pkt []byte, now int64) Verdict {
	return t.process(pkt, true, now)
}

// Candidate reports whether Process might do anything but Pass with pkt:
// whether it is addressed to the gateway or to one of the host's
// addresses. It reads pkt without changing it, takes no lock, and lets a
// caller copy only the packets it may have to hand Process, which
// rewrites in place.
func (t *Table) Candidate(pkt []byte) bool {
	if t.cfg.Internal {
		return false
	}
	var p packet
	return parse(pkt, &p) && t.rules.Load().isLocal(p.dst)
}

func (t *Table) process(pkt []byte, partial bool, now int64) Verdict {
	if t.cfg.Internal {
		return Pass
	}
	var p packet
	if !parse(pkt, &p) || !t.rules.Load().isLocal(p.dst) {
		return Pass
	}
	switch p.kind {
	case kindFlow:
	case kindICMPError:
		return t.related(pkt, &p, partial, now)
	case kindFragment:
		t.stats.fragments.Add(1)
		return Pass
	default:
		return Pass
	}

	k := p.tuple()
	t.mu.Lock()
	c := t.lookupLocked(k, now)
	var dir uint8
	if c != nil {
		dir = c.dirOf(k)
		if !t.trackLocked(c, &p, dir, now) {
			t.mu.Unlock()
			return Drop
		}
	} else {
		var v Verdict
		if c, v = t.newFlowLocked(&p, now); c == nil {
			t.mu.Unlock()
			return v
		}
	}
	to := c.target(dir)
	t.mu.Unlock()

	rewrite(pkt, &p, &to, partial)
	t.stats.translated[dir].Add(1)
	return Translated
}

// newFlowLocked runs a packet that no entry matched through the DOCKER
// chain and the FORWARD filter, and creates its entry. It returns nil and
// the verdict if the packet is not to be translated.
func (t *Table) newFlowLocked(p *packet, now int64) (*conn, Verdict) {
	proto := Proto(p.proto)
	port := p.dport
	if p.proto == protoICMPv6 || p.proto == protoICMPv4 {
		if !isRequest(uint8(p.dport), p.v6) {
			return nil, Pass
		}
		proto, port = ICMP, 0
	}
	// Read under mu: SetMappings flushes against the rule set it stores
	// with mu held, so no entry of a removed mapping can slip in.
	m, ok := t.rules.Load().match(proto, p.dst, port)
	if !ok {
		return nil, Pass
	}
	if t.cfg.Isolated {
		t.stats.filtered.Add(1)
		return nil, Drop
	}
	if proto == TCP && classify(p.flags) != segSYN {
		// Not the start of a connection (its entry is gone): the
		// netstack answers with a reset, which tells the sender.
		return nil, Pass
	}
	gw := t.cfg.Gateway
	if p.v6 {
		gw = t.cfg.Gateway6
	}
	if !gw.IsValid() {
		return nil, Pass
	}
	c := t.newConnLocked()
	*c = conn{orig: p.tuple(), mapping: m, created: now, streamAt: now + int64(udpStreamAfter), heapIdx: -1}
	// The port first: taking one over frees an entry, and a flow refused
	// for want of ports should not have evicted anything.
	if r := t.allocLocked(c, gw, now); r != allocOK {
		t.recycleLocked(c)
		if r == allocOverShare {
			t.stats.portsOverShare.Add(1)
		} else {
			t.stats.portsExhausted.Add(1)
		}
		return nil, Drop
	}
	if !t.makeRoomLocked(now) {
		t.freeLocked(c)
		t.recycleLocked(c)
		t.stats.refusedFull.Add(1)
		return nil, Drop
	}
	if proto == TCP {
		c.state = tcpSynSent
	}
	c.packets[dirOrig], c.bytes[dirOrig] = 1, uint64(p.end)
	c.expires = now + int64(t.timeout(c, now))
	t.insertLocked(c)
	return c, Translated
}

// AllowEgress reports whether the gateway may carry pkt, an IP packet the
// netstack is about to terminate, out of the network (re-originate its
// flow on a host socket). It is Docker's FORWARD rule for traffic leaving
// the bridge: true, except on an internal network, where only destinations
// inside the network's subnets (or the gateway addresses) are allowed.
// Refusals are counted. pkt is read, not kept.
func (t *Table) AllowEgress(pkt []byte) bool {
	if !t.cfg.Internal {
		return true
	}
	var p packet
	if parse(pkt, &p) && t.insideNetwork(p.dst) {
		return true
	}
	t.stats.egressRefused.Add(1)
	return false
}

// insideNetwork reports whether a is in the network: its subnets, or its
// gateway addresses if the subnets are not known.
func (t *Table) insideNetwork(a netip.Addr) bool {
	return a == t.cfg.Gateway || a == t.cfg.Gateway6 ||
		(t.cfg.Subnet.IsValid() && t.cfg.Subnet.Contains(a)) ||
		(t.cfg.Subnet6.IsValid() && t.cfg.Subnet6.Contains(a))
}
