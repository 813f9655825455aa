package nat

import "net/netip"

// Masquerade port allocation. The reply tuple of a hairpinned flow is
// (B:b → G:m): the responder B:b answers the gateway G at the masquerade
// port m. m must make that tuple unique in the table, so ports are unique
// per (protocol, gateway address, responder address and port), and any
// number of responders can share one m. For ICMP echo, m is the echo
// identifier the responder sees.

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

// allocLocked picks the masquerade port of new entry c and sets c.reply.
// It keeps the initiator's own port when that is in the range and free
// (as Linux does), and otherwise searches the range from where the last
// search ended. Published ports of the protocol are skipped, so that a
// reply tuple never equals a DNAT match. If every port toward the
// responder is taken, the entry holding one that is the best to lose
// gives it up: a closed TCP connection before an unassured flow, the
// oldest first (early_drop, per responder). If every holder is assured
// and open, allocLocked reports false.
func (t *Table) allocLocked(c *conn, gw netip.Addr, now int64) bool {
	lo, hi := t.cfg.MasqPorts[0], t.cfg.MasqPorts[1]
	n := uint32(hi-lo) + 1
	rs := t.rules.Load()
	var spare *conn

	free := func(m uint16) bool {
		if rs.published(c.mapping.Proto, m) {
			return false
		}
		k := replyTuple(c, gw, m)
		o := t.conns[k]
		switch {
		case o == nil:
		case o.expires <= now:
			t.removeLocked(o, &t.stats.expired)
		default:
			if o.evictable() && (spare == nil || betterToLose(o, spare)) {
				spare = o
			}
			return false
		}
		c.reply = k
		return true
	}

	if own := c.orig.sport; own >= lo && own <= hi && free(own) {
		return true
	}
	for i := range n {
		off := (t.cursor + i) % n
		if free(lo + uint16(off)) {
			t.cursor = off + 1
			return true
		}
	}
	if spare == nil {
		return false
	}
	m := masqPort(spare)
	t.removeLocked(spare, &t.stats.evicted)
	c.reply = replyTuple(c, gw, m)
	return true
}

// betterToLose reports whether evictable entry a should give its port up
// before evictable entry b: a connection that is over before one that is
// still starting, then the older.
func betterToLose(a, b *conn) bool {
	ac, bc := a.orig.proto == protoTCP && a.state.closed(), b.orig.proto == protoTCP && b.state.closed()
	if ac != bc {
		return ac
	}
	return a.created < b.created
}
