package nat

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// ICMP errors RELATED to a tracked flow.
//
// An ICMP error quotes the packet it is about, as that packet arrived at
// the host that complains: after translation. Take the flow A:a → H:h,
// translated to G:m → B:b. If B answers a packet of it with "port
// unreachable", the error travels B → G and quotes (G:m → B:b). Inverting
// the quoted tuple gives (B:b → G:m), the flow's reply tuple: the error
// goes back the way replies do. It is rewritten so that A receives what it
// would have received had it talked to H:h directly: outer destination A,
// outer source H if B itself sent it, and the quote restored to
// (A:a → H:h) as A sent it, with the quoted IPv4 header checksum and the
// quoted transport checksum (when the quote reaches it) updated, and the
// ICMP checksum updated for all of that. An error from A about a reply is
// handled the same way in the other direction.
//
// The connection's state and timeout are not touched by an error.

// related handles ICMP error p, addressed to a local address. It returns
// Pass if the quote matches no tracked flow.
func (t *Table) related(b []byte, p *packet, partial bool, now int64) Verdict {
	quoteOff := p.l4 + header.ICMPv4MinimumSize // the same 8 bytes for ICMPv6
	var q packet
	if !parseQuoted(b[quoteOff:p.end], p.v6, &q) || q.src != p.dst {
		// The quote is unreadable, or the error is not addressed to
		// the sender of the quoted packet: not a genuine error.
		return Pass
	}
	k := q.tuple().invert()
	t.mu.Lock()
	c := t.lookupLocked(k, now)
	if c == nil {
		t.mu.Unlock()
		return Pass
	}
	// The quoted packet went out in direction qdir; the error travels
	// back against it. quoteTo is the quoted packet as its sender sent it.
	qdir := dirReply
	if k == c.reply {
		qdir = dirOrig
	}
	quoteTo, errDir := c.orig, uint8(dirReply)
	if qdir == dirReply {
		quoteTo, errDir = c.reply, dirOrig
	}
	// The error leaves toward the quoted packet's sender. Its source is
	// rewritten only if it is the peer itself (a router's address, which
	// cannot occur on one L2 network, would be kept).
	outer := tuple{src: p.src, dst: quoteTo.src}
	peer := c.orig.src
	if errDir == dirReply {
		peer = c.reply.src
	}
	if p.src == peer {
		outer.src = quoteTo.dst
	}
	t.stats.related.Add(1)
	t.mu.Unlock()

	l3 := rewriteAddrs(b, p.v6, &outer)
	msg := b[p.l4:p.end]
	dm := rewriteQuote(msg[header.ICMPv4MinimumSize:], &q, &quoteTo)
	switch {
	case partial && p.v6:
		setICMPChecksum(msg, l3.partial(icmpChecksum(msg)))
	case partial:
	case p.v6:
		setICMPChecksum(msg, l3.plus(dm).full(icmpChecksum(msg)))
	default:
		setICMPChecksum(msg, dm.full(icmpChecksum(msg)))
	}
	t.stats.translated[errDir].Add(1)
	return Translated
}

// rewriteQuote rewrites the quoted packet b (parsed into q) to carry the
// addresses and ports of to, with its IPv4 header checksum and, where the
// quote reaches it, its transport checksum updated. It returns the change
// of every byte it wrote, for the checksum of the ICMP message around it.
func rewriteQuote(b []byte, q *packet, to *tuple) delta {
	var dm delta // everything written inside the ICMP message
	var l3 delta // the quoted pseudo-header
	addr := func(off, n int, a tuple, src bool) {
		v := a.dst
		if src {
			v = a.src
		}
		o, w := putAddr(b[off:off+n], v)
		l3.add(o, w)
		dm.add(o, w)
	}
	if q.v6 {
		addr(ipv6SrcOff, 16, *to, true)
		addr(ipv6DstOff, 16, *to, false)
	} else {
		addr(ipv4SrcOff, 4, *to, true)
		addr(ipv4DstOff, 4, *to, false)
		ip := header.IPv4(b)
		setField(b[ipv4CsumOff:], l3.full(ip.Checksum()), &dm)
	}

	t := b[q.l4:]
	var l4 delta
	port := func(off int, v uint16) {
		o, w := put16(t[off:], v)
		l4.add(o, w)
		dm.add(o, w)
	}
	switch q.proto {
	case protoTCP:
		port(header.TCPSrcPortOffset, to.sport)
		port(header.TCPDstPortOffset, to.dport)
		if len(t) >= header.TCPChecksumOffset+2 {
			setField(t[header.TCPChecksumOffset:], l3.plus(l4).full(header.TCP(t).Checksum()), &dm)
		}
	case protoUDP:
		port(0, to.sport)
		port(2, to.dport)
		if cs := header.UDP(t).Checksum(); cs != 0 || q.v6 {
			setField(t[udpCsumOff:], nonZero(l3.plus(l4).full(cs)), &dm)
		}
	case protoICMPv4:
		port(icmpIDOff, to.sport)
		setField(t[icmpCsumOff:], l4.full(icmpChecksum(t)), &dm)
	case protoICMPv6:
		port(icmpIDOff, to.sport)
		setField(t[icmpCsumOff:], l3.plus(l4).full(icmpChecksum(t)), &dm)
	}
	return dm
}
