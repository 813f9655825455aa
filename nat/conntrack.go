package nat

import (
	"net/netip"
	"time"
)

// tuple identifies one direction of a flow as its packets carry it: the
// conntrack key. For ICMP echo, sport is the identifier and dport the ICMP
// type, so that a request and a reply with one identifier do not meet.
type tuple struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

func (p *packet) tuple() tuple {
	return tuple{src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, proto: p.proto}
}

// invert returns the tuple of a packet travelling back: what a reply to a
// packet with tuple t carries.
func (t tuple) invert() tuple {
	if t.proto == protoICMPv4 || t.proto == protoICMPv6 {
		return tuple{src: t.dst, dst: t.src, sport: t.sport, dport: uint16(echoInverse(uint8(t.dport), t.proto == protoICMPv6)), proto: t.proto}
	}
	return tuple{src: t.dst, dst: t.src, sport: t.dport, dport: t.sport, proto: t.proto}
}

func (t tuple) isICMP() bool { return t.proto == protoICMPv4 || t.proto == protoICMPv6 }

// conn is one tracked, translated flow. orig is the tuple of the
// initiator's packets as they arrive (A:a → H:h), reply the tuple of the
// responder's packets as they arrive (B:b → G:m). A packet of one
// direction leaves carrying the inverse of the other direction's tuple.
type conn struct {
	orig, reply tuple
	mapping     PortMapping

	state     tcpState // TCP only
	finDir    uint8    // direction of the first FIN (TCP)
	assured   bool
	seenReply bool

	created  int64
	streamAt int64 // UDP: when both-way traffic makes the flow a stream
	expires  int64
	// checkAt is c's key in the expiry heap (checkAt <= expires) and
	// heapIdx its place there, -1 when out of it.
	checkAt int64
	heapIdx int

	packets, bytes [2]uint64

	// links chain c into the table's eviction candidates (see evictable,
	// linkEvict), and into a list of its pool (linkPool); listed says
	// whether c is on the first, pclass which of the second it is on.
	links  [numLinks]struct{ prev, next *conn }
	listed bool
	pool   *portPool // the pool c's masquerade port is from
	pclass connClass
}

// Which of a conn's links a connList uses.
const (
	linkEvict = iota
	linkPool
	numLinks
)

// connList is an intrusive doubly linked list of conns, oldest first,
// through their links[link].
type connList struct {
	head, tail *conn
	link       uint8
}

// push appends c, which is on no list of l's kind.
func (l *connList) push(c *conn) {
	lk := &c.links[l.link]
	lk.prev, lk.next = l.tail, nil
	if l.tail != nil {
		l.tail.links[l.link].next = c
	} else {
		l.head = c
	}
	l.tail = c
}

// unlink takes c, which is on l, off it.
func (l *connList) unlink(c *conn) {
	lk := &c.links[l.link]
	if lk.prev != nil {
		lk.prev.links[l.link].next = lk.next
	} else {
		l.head = lk.next
	}
	if lk.next != nil {
		lk.next.links[l.link].prev = lk.prev
	} else {
		l.tail = lk.prev
	}
	lk.prev, lk.next = nil, nil
}

// dirOf returns the direction of a packet whose tuple k found c.
func (c *conn) dirOf(k tuple) uint8 {
	if k == c.orig {
		return dirOrig
	}
	return dirReply
}

// evictable reports whether c may be dropped to make room: it has not
// proved itself (not assured), or its TCP connection is over.
func (c *conn) evictable() bool {
	return !c.assured || (c.orig.proto == protoTCP && c.state.closed())
}

// target returns what a packet of direction dir leaves as: the inverse of
// the other direction's tuple.
func (c *conn) target(dir uint8) tuple {
	if dir == dirOrig {
		return c.reply.invert()
	}
	return c.orig.invert()
}

// timeout returns how long c lives without another packet.
func (t *Table) timeout(c *conn, now int64) time.Duration {
	to := &t.cfg.Timeouts
	switch c.orig.proto {
	case protoTCP:
		return t.tcpTimeouts[c.state]
	case protoUDP:
		if c.seenReply && now >= c.streamAt {
			return to.UDPStream
		}
		return to.UDPUnreplied
	}
	return to.ICMP
}

// udpStreamAfter is how long a UDP flow must have lived, with traffic
// both ways, to count as a stream (Linux: two seconds).
const udpStreamAfter = 2 * time.Second

// trackLocked updates c for a packet p of direction dir and refreshes its
// timeout. It returns false if the packet must be dropped.
func (t *Table) trackLocked(c *conn, p *packet, dir uint8, now int64) bool {
	if dir == dirReply {
		c.seenReply = true
	}
	switch c.orig.proto {
	case protoTCP:
		seg := classify(p.flags)
		if seg == segInvalid {
			t.stats.invalid.Add(1)
			return false
		}
		if seg == segSYN && dir == dirOrig && c.state.closed() {
			// The initiator reuses its port: a new connection in the
			// old entry, with the same masquerade port.
			c.state, c.assured, c.seenReply, c.created = tcpSynSent, false, false, now
			t.unlistLocked(c)
		} else {
			next, unexpected := tcpNext(c.state, seg, dir, c.finDir)
			if unexpected {
				t.stats.invalid.Add(1)
			}
			if next == tcpFinWait && c.state != tcpFinWait {
				c.finDir = dir
			}
			if next == tcpEstablished {
				c.assured = true // only SYN_RECV leads here: the handshake is done
			}
			c.state = next
		}
	case protoUDP:
		if c.seenReply && now >= c.streamAt {
			c.assured = true
		}
	}
	c.packets[dir]++
	c.bytes[dir] += uint64(p.end)
	c.expires = now + int64(t.timeout(c, now))
	t.scheduleLocked(c)
	t.relistLocked(c)
	return true
}

// relistLocked puts c on the eviction list, at the end, when it becomes
// evictable, and takes it off when it stops being so; and moves it to the
// list of its pool that its state calls for.
func (t *Table) relistLocked(c *conn) {
	switch e := c.evictable(); {
	case e && !c.listed:
		t.evict.push(c)
		c.listed = true
	case !e && c.listed:
		t.unlistLocked(c)
	}
	c.pool.setClass(c, classOf(c))
}

func (t *Table) unlistLocked(c *conn) {
	if c.listed {
		t.evict.unlink(c)
		c.listed = false
	}
}

// insertLocked adds c under both its tuples.
func (t *Table) insertLocked(c *conn) {
	t.conns[c.orig] = c
	t.conns[c.reply] = c
	t.n++
	t.stats.inserted.Add(1)
	t.scheduleLocked(c)
	t.relistLocked(c)
}

// removeLocked deletes c and counts the removal in counter.
func (t *Table) removeLocked(c *conn, counter *counter) {
	delete(t.conns, c.orig)
	delete(t.conns, c.reply)
	t.unlistLocked(c)
	t.unscheduleLocked(c)
	t.freeLocked(c)
	t.n--
	counter.Add(1)
	t.recycleLocked(c)
}

// maxSpareConns bounds the removed entries kept for reuse: enough that a
// flood of new flows that evict each other allocates nothing, little
// enough (some 70 KiB) to keep after the flood.
const maxSpareConns = 256

// newConnLocked returns a zero conn, a removed one if there is one.
func (t *Table) newConnLocked() *conn {
	if n := len(t.spares); n > 0 {
		c := t.spares[n-1]
		t.spares = t.spares[:n-1]
		return c
	}
	return new(conn)
}

// recycleLocked keeps c, which is in no map, list or heap any more and
// which nothing refers to, for newConnLocked.
func (t *Table) recycleLocked(c *conn) {
	if len(t.spares) < maxSpareConns {
		*c = conn{}
		t.spares = append(t.spares, c)
	}
}

// lookupLocked returns the live entry for k, removing it if it has expired.
func (t *Table) lookupLocked(k tuple, now int64) *conn {
	c := t.conns[k]
	if c != nil && c.expires <= now {
		t.removeLocked(c, &t.stats.expired)
		return nil
	}
	return c
}

// makeRoomLocked makes room for one more entry: it evicts the oldest
// evictable entry if the table is full, and reports false if it is full of
// entries that may not be evicted.
func (t *Table) makeRoomLocked(now int64) bool {
	if t.n < t.cfg.MaxEntries {
		return true
	}
	c := t.evict.head
	if c == nil {
		return false
	}
	if c.expires <= now {
		t.removeLocked(c, &t.stats.expired)
	} else {
		t.removeLocked(c, &t.stats.evicted)
	}
	return true
}
