package nat

import "net/netip"

// Masquerade port allocation. The reply tuple of a hairpinned flow is
// (B:b → G:m): the responder B:b answers the gateway G at the masquerade
// port m. m must make that tuple unique in the table, so ports are unique
// per (protocol, responder address and port) — the gateway address
// follows from the responder's family — and any number of responders can
// share one m. For ICMP echo, m is the echo identifier the responder sees.
//
// Each responder has a portPool: a portSet of the range (Config.MasqPorts)
// in which published ports of the protocol are held as reserved, so that
// a reply tuple never equals a DNAT match; the entries holding its ports,
// sorted into lists by how readily they give them up; and the number of
// ports each initiator address holds with open flows, capped by
// Config.MasqPortsPerSource. Allocating and freeing a port cost the same
// whether the pool is empty or full.

// poolKey names a responder: the published port's protocol and target.
type poolKey struct {
	proto  Proto
	target netip.AddrPort
}

// connClass sorts a pool's entries by how readily they give their port up.
type connClass uint8

const (
	classNone   connClass = iota // not in a pool (not yet inserted, or removed)
	classHeld                    // assured and open: keeps its port
	classFresh                   // not yet assured: may lose its port when the pool is full
	classClosed                  // TCP connection over: loses its port first
	numClasses
)

// counted reports whether an entry of class k counts against its source's
// share. A closed TCP connection does not, so that a client that opens and
// closes connections quickly is not held back by their TIME_WAIT entries.
func (k connClass) counted() bool { return k == classHeld || k == classFresh }

func classOf(c *conn) connClass {
	switch {
	case c.orig.proto == protoTCP && c.state.closed():
		return classClosed
	case !c.assured:
		return classFresh
	}
	return classHeld
}

// portPool is the masquerade ports toward one responder. It is guarded by
// Table.mu.
type portPool struct {
	ports    portSet
	reserved []uint16 // published ports in the range, taken in ports for no entry
	share    int32    // most ports the open flows of one source may hold
	bySrc    map[netip.Addr]int32
	// lists[classFresh] and lists[classClosed] are the entries that may
	// lose their port, each in the order they entered the class.
	lists [numClasses]connList
}

func newPortPool(cfg *Config, rs *ruleset, proto Proto) *portPool {
	p := &portPool{
		ports: newPortSet(cfg.MasqPorts[0], cfg.MasqPorts[1]),
		share: int32(cfg.MasqPortsPerSource),
		bySrc: make(map[netip.Addr]int32),
	}
	for k := range p.lists {
		p.lists[k].link = linkPool
	}
	p.reserve(rs, proto)
	return p
}

// reserve takes the ports of rs published for proto, and frees those it
// had taken for a previous rule set. No entry may hold a newly published
// port (SetMappings flushes them first).
func (p *portPool) reserve(rs *ruleset, proto Proto) {
	for _, m := range p.reserved {
		p.ports.release(m)
	}
	p.reserved = p.reserved[:0]
	for k := range rs.byPort {
		if k.proto == proto && p.ports.contains(k.port) {
			p.ports.take(k.port)
			p.reserved = append(p.reserved, k.port)
		}
	}
}

// setClass moves c, an entry of p, to class k: onto the list of k, and
// into or out of its source's count.
func (p *portPool) setClass(c *conn, k connClass) {
	old := c.pclass
	if old == k {
		return
	}
	c.pclass = k
	if old == classFresh || old == classClosed {
		p.lists[old].unlink(c)
	}
	if k == classFresh || k == classClosed {
		p.lists[k].push(c)
	}
	switch src := c.orig.src; {
	case k.counted() && !old.counted():
		p.bySrc[src]++
	case old.counted() && !k.counted():
		if n := p.bySrc[src] - 1; n > 0 {
			p.bySrc[src] = n
		} else {
			delete(p.bySrc, src)
		}
	}
}

// spare returns the entry that gives its port up when the pool is full: a
// closed connection before a flow not yet assured, the longest in its
// class first (Linux's early_drop, per responder); nil if every holder is
// assured and open.
func (p *portPool) spare() *conn {
	if c := p.lists[classClosed].head; c != nil {
		return c
	}
	return p.lists[classFresh].head
}

// allocResult is why allocLocked gave no port.
type allocResult uint8

const (
	allocOK allocResult = iota
	allocExhausted
	allocOverShare
)

// sweepOnAlloc bounds the expired entries one allocation may remove when
// its pool or its source's share is full: the cost of a packet stays
// bounded, and the janitor's Sweep removes the rest.
const sweepOnAlloc = 64

// poolLocked returns the pool of c's responder, made on first use.
func (t *Table) poolLocked(c *conn) *portPool {
	k := poolKey{c.mapping.Proto, c.mapping.Target}
	p := t.pools[k]
	if p == nil {
		if t.pools == nil {
			t.pools = make(map[poolKey]*portPool)
		}
		p = newPortPool(&t.cfg, t.rules.Load(), k.proto)
		t.pools[k] = p
	}
	return p
}

// allocLocked picks the masquerade port of new entry c and sets c.reply
// and c.pool. It keeps the initiator's own port when that is in the range
// and free (as Linux does), and otherwise takes the next free port after
// the last one taken toward any responder. A source whose open flows hold
// their share of the responder's ports is refused. If every port is
// taken, expired entries are removed first, then the entry that is the
// best to lose gives its port up (portPool.spare); if there is none, c is
// refused. Nothing is evicted for a refused flow.
func (t *Table) allocLocked(c *conn, gw netip.Addr, now int64) allocResult {
	p := t.poolLocked(c)
	src := c.orig.src
	if p.bySrc[src] >= p.share {
		t.sweepLocked(now, sweepOnAlloc) // one of src's flows may have expired
		if p.bySrc[src] >= p.share {
			return allocOverShare
		}
	}
	if p.ports.free == 0 {
		t.sweepLocked(now, sweepOnAlloc)
	}
	if p.ports.free == 0 {
		o := p.spare()
		if o == nil {
			return allocExhausted
		}
		t.removeLocked(o, &t.stats.evicted)
	}
	m := c.orig.sport
	if p.ports.contains(m) && !p.ports.taken(m) {
		p.ports.take(m)
	} else {
		m, _ = p.ports.next(t.cursor)
		t.cursor = uint32(m-p.ports.lo) + 1
	}
	c.pool, c.reply = p, replyTuple(c, gw, m)
	return allocOK
}

// freeLocked gives c's masquerade port back and takes c out of its pool's
// lists and counts. It is called once, when c leaves the table or is
// refused after allocLocked.
func (t *Table) freeLocked(c *conn) {
	c.pool.setClass(c, classNone)
	c.pool.ports.release(masqPort(c))
	c.pool = nil
}

// reservePortsLocked brings the pools up to date with rule set rs: pools
// of responders no mapping leads to any more are dropped (they are empty:
// their entries were flushed with their mappings), the others reserve the
// newly published ports.
func (t *Table) reservePortsLocked(rs *ruleset) {
	targets := make(map[poolKey]bool, len(rs.mappings))
	for _, m := range rs.mappings {
		targets[poolKey{m.Proto, m.Target}] = true
	}
	for k, p := range t.pools {
		if !targets[k] {
			delete(t.pools, k)
			continue
		}
		p.reserve(rs, k.proto)
	}
}

// MasqPorts returns the table's range of masquerade ports, inclusive
// (Config.MasqPorts, or its default). The gateway keeps its netstack's own
// ephemeral ports out of it.
func (t *Table) MasqPorts() [2]uint16 { return t.cfg.MasqPorts }

// masqPort returns the masquerade port (or echo identifier) of c.
func masqPort(c *conn) uint16 {
	if c.orig.isICMP() {
		return c.reply.sport
	}
	return c.reply.dport
}

// replyTuple returns the reply tuple of c if its masquerade port were m.
func replyTuple(c *conn, gw netip.Addr, m uint16) tuple {
	t := c.mapping.Target
	if c.orig.isICMP() {
		return tuple{src: t.Addr(), dst: gw, sport: m, dport: uint16(echoInverse(uint8(c.orig.dport), gw.Is6())), proto: c.orig.proto}
	}
	return tuple{src: t.Addr(), dst: gw, sport: t.Port(), dport: m, proto: c.orig.proto}
}
