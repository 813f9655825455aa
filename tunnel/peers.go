package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	vswitch "github.com/switchyard-net/switchyard/switch"
)

// peer is one remote tunnel endpoint: where its datagrams go, and its
// counters. A peer is never modified after it is published, except for
// its atomic counters.
type peer struct {
	addr netip.AddrPort
	sa   sockaddr // addr in the socket's address family, for sendmmsg
	na   net.Addr // addr for a Config.PacketConn's WriteTo

	rxFrames atomic.Uint64
	rxBytes  atomic.Uint64
	lastSeen atomic.Int64 // coarse clock, UnixNano; 0: never
	_        [64]byte
	txFrames atomic.Uint64
	txBytes  atomic.Uint64
	macs     atomic.Int64
}

func (p *peer) stats() PeerStats {
	s := PeerStats{
		Addr:     p.addr,
		RXFrames: p.rxFrames.Load(), RXBytes: p.rxBytes.Load(),
		TXFrames: p.txFrames.Load(), TXBytes: p.txBytes.Load(),
		MACs: int(p.macs.Load()),
	}
	if ns := p.lastSeen.Load(); ns != 0 {
		s.LastSeen = time.Unix(0, ns)
	}
	return s
}

// peerSet is an immutable snapshot of the peers, replaced as a whole by
// AddPeer and RemovePeer and read without locks by the data path.
type peerSet struct {
	list []*peer
	// exact finds the peer a datagram comes from by address and port;
	// byAddr by address alone, for senders that vary their source port
	// (the Linux vxlan device hashes flows onto source ports). byAddr
	// holds the first peer added with each address.
	exact  map[netip.AddrPort]*peer
	byAddr map[netip.Addr]*peer
}

func newPeerSet(list []*peer) *peerSet {
	s := &peerSet{list: list, exact: make(map[netip.AddrPort]*peer, len(list)), byAddr: make(map[netip.Addr]*peer, len(list))}
	for _, p := range list {
		k := peerKey(p.addr)
		s.exact[k] = p
		if _, ok := s.byAddr[k.Addr()]; !ok {
			s.byAddr[k.Addr()] = p
		}
	}
	return s
}

// peerKey is ap without its zone. A received datagram's source carries
// no zone (naming the interface would cost an allocation per datagram),
// so a link-local peer like fe80::2%eth0 is keyed as fe80::2: one
// address, one peer, whatever the interface.
func peerKey(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port())
}

// lookup returns the peer that src, which has no zone, belongs to, or
// nil.
func (s *peerSet) lookup(src netip.AddrPort) *peer {
	if p := s.exact[src]; p != nil {
		return p
	}
	return s.byAddr[src.Addr()]
}

// normalizePeer fills in the default port and refuses addresses that
// cannot be a unicast tunnel endpoint.
func (p *Port) normalizePeer(ap netip.AddrPort) (netip.AddrPort, error) {
	a := ap.Addr().Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("tunnel peer %s: want a unicast IPv4 or IPv6 address and a port, like 10.0.0.2:%d or [fd00::2]:%d", ap, p.mode.DefaultPort(), p.mode.DefaultPort())
	}
	if needsZone(a) {
		return netip.AddrPort{}, fmt.Errorf("tunnel peer %s: %w: want the underlay interface too, like [%s%%eth0]:%d", ap, ErrZone, a, p.mode.DefaultPort())
	}
	port := ap.Port()
	if port == 0 {
		port = p.mode.DefaultPort()
	}
	return netip.AddrPortFrom(a.WithZone(ap.Addr().Zone()), port), nil
}

// AddPeer adds a remote endpoint. A port of 0 means the mode's default
// (VXLANPort, SecurePort). Adding a peer that is already there changes
// nothing.
func (p *Port) AddPeer(ap netip.AddrPort) error {
	ap, err := p.normalizePeer(ap)
	if err != nil {
		return err
	}
	sa, err := p.sock.sockaddr(ap)
	if err != nil {
		return fmt.Errorf("tunnel peer %s: %w", ap, err)
	}
	p.peersMu.Lock()
	defer p.peersMu.Unlock()
	old := p.peers.Load()
	if old.exact[peerKey(ap)] != nil {
		return nil
	}
	next := append(slices.Clip(old.list), &peer{addr: ap, sa: sa, na: net.UDPAddrFromAddrPort(ap)})
	p.peers.Store(newPeerSet(next))
	p.log.Info("peer added", zap.Stringer("peer", ap))
	return nil
}

// RemovePeer removes a remote endpoint and forgets the MAC addresses
// learned behind it; frames to them are flooded to the remaining peers
// until they are learned again. It reports whether the peer was there.
// Datagrams from the peer are dropped from then on (DropUnknownPeer).
func (p *Port) RemovePeer(ap netip.AddrPort) bool {
	ap, err := p.normalizePeer(ap)
	if err != nil {
		return false
	}
	p.peersMu.Lock()
	old := p.peers.Load()
	gone := old.exact[peerKey(ap)]
	if gone == nil {
		p.peersMu.Unlock()
		return false
	}
	next := make([]*peer, 0, len(old.list)-1)
	for _, q := range old.list {
		if q != gone {
			next = append(next, q)
		}
	}
	p.peers.Store(newPeerSet(next))
	p.peersMu.Unlock()
	n := p.macs.forget(gone)
	p.log.Info("peer removed", zap.Stringer("peer", ap), zap.Int("macs_forgotten", n))
	return true
}

// Peers returns the peers and their counters, in the order they were
// added.
func (p *Port) Peers() []PeerStats {
	list := p.peers.Load().list
	out := make([]PeerStats, len(list))
	for i, q := range list {
		out[i] = q.stats()
	}
	return out
}

// macTable maps the inner source MACs seen in received frames to the peer
// they came from, with aging and a size cap, so that unicast frames go to
// one peer instead of all. Lookups and refreshes take the read lock;
// inserts, moves and sweeps the write lock.
type macTable struct {
	mu    sync.RWMutex
	m     map[vswitch.MAC]*macEntry // guarded by mu
	max   int
	aging int64 // nanoseconds
	moves *atomic.Uint64
}

type macEntry struct {
	peer *peer        // guarded by macTable.mu
	seen atomic.Int64 // coarse clock of the last frame from the MAC
}

func newMACTable(max int, aging time.Duration, moves *atomic.Uint64) *macTable {
	return &macTable{m: make(map[vswitch.MAC]*macEntry), max: max, aging: int64(aging), moves: moves}
}

// learn records that mac lives behind p. It reports false if the MAC is
// new and the table is full; the frame is still delivered, and frames to
// the MAC are flooded.
func (t *macTable) learn(mac vswitch.MAC, p *peer, now int64) bool {
	t.mu.RLock()
	e := t.m[mac]
	same := e != nil && e.peer == p
	if same && e.seen.Load() != now {
		e.seen.Store(now)
	}
	t.mu.RUnlock()
	if same {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e = t.m[mac]
	switch {
	case e == nil:
		if len(t.m) >= t.max {
			return false
		}
		e = &macEntry{peer: p}
		t.m[mac] = e
		p.macs.Add(1)
	case e.peer != p:
		e.peer.macs.Add(-1)
		e.peer = p
		p.macs.Add(1)
		t.moves.Add(1)
	}
	e.seen.Store(now)
	return true
}

// lookup returns the peer mac was last seen behind, or nil if it is
// unknown or aged out.
func (t *macTable) lookup(mac vswitch.MAC, now int64) *peer {
	t.mu.RLock()
	var p *peer
	if e := t.m[mac]; e != nil && now-e.seen.Load() < t.aging {
		p = e.peer
	}
	t.mu.RUnlock()
	return p
}

// sweep removes the entries not refreshed within the aging time and
// returns how many.
func (t *macTable) sweep(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for mac, e := range t.m {
		if now-e.seen.Load() >= t.aging {
			e.peer.macs.Add(-1)
			delete(t.m, mac)
			n++
		}
	}
	return n
}

// forget removes every entry behind p and returns how many.
func (t *macTable) forget(p *peer) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for mac, e := range t.m {
		if e.peer == p {
			delete(t.m, mac)
			n++
		}
	}
	p.macs.Add(-int64(n))
	return n
}

func (t *macTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// entries returns the live entries, sorted by MAC.
func (t *macTable) entries(now int64) []MACEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]MACEntry, 0, len(t.m))
	for mac, e := range t.m {
		if now-e.seen.Load() >= t.aging {
			continue
		}
		out = append(out, MACEntry{MAC: mac, Peer: e.peer.addr, LastSeen: time.Unix(0, e.seen.Load())})
	}
	slices.SortFunc(out, func(a, b MACEntry) int { return slices.Compare(a.MAC[:], b.MAC[:]) })
	return out
}
