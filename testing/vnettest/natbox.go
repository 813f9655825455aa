package vnettest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/switchyard-net/switchyard/internal/csum"
)

// Behavior is one of RFC 4787's three behaviours of a NAT's mapping or
// filtering (sections 4.1 and 5).
type Behavior int

const (
	// EndpointIndependent: one mapping per internal address and port,
	// whatever the remote (RFC 4787 REQ-1); every remote may send to it.
	EndpointIndependent Behavior = iota
	// AddressDependent: a mapping (or permission) per remote address.
	AddressDependent
	// AddressAndPortDependent: a mapping (or permission) per remote
	// address and port (a "symmetric" NAT when used for mapping).
	AddressAndPortDependent
)

func (b Behavior) String() string {
	switch b {
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	}
	return fmt.Sprintf("Behavior(%d)", int(b))
}

// NATConfig describes a NAT box's behaviour for UDP and TCP.
type NATConfig struct {
	Mapping   Behavior
	Filtering Behavior
	// Hairpinning lets a host inside reach another inside host at its
	// external address and port (RFC 4787 section 6); the packet then
	// comes from the sender's external address, as REQ-9 asks.
	Hairpinning bool
	// PortPreservation gives a new mapping the internal port as its
	// external port when that is free (RFC 4787 section 4.2.1).
	PortPreservation bool
	// PublicAddr is the box's address on the outside network; "" takes
	// the lowest free one.
	PublicAddr string
	// MappingTimeout, if positive, ends a mapping that has sent nothing
	// out for that long, on the World's clock (virtual under
	// VirtualTime); packets from outside do not keep it alive (RFC 4787
	// REQ-6 lets a NAT refresh on outbound packets only; REQ-5 asks 2
	// minutes at least for UDP). An expired mapping lets nothing in, and
	// the next packet out makes a new one. Zero: mappings never expire.
	MappingTimeout time.Duration
}

// NATBox is a NAT between an inside network (whose hosts it serves as
// their gateway, at the inside network's gateway address) and an outside
// one (where it has one public address), with the RFC 4787 behaviours of
// its NATConfig. It is a Router whose outside leg translates UDP and TCP
// as the box's mapping and filtering say; other protocols (ICMP included)
// do not cross it: packets of theirs from inside are dropped at the
// outside leg. Mappings expire after NATConfig.MappingTimeout, if set.
type NATBox struct {
	*Router
	cfg    NATConfig
	public netip.Addr
	inside netip.Prefix

	mu     sync.Mutex
	byKey  map[natKey]*natMapping  // mapping lookups for outgoing packets
	byPort map[natPort]*natMapping // external protocol and port → mapping
	stats  NATStats
}

// NATStats counts what a NAT box did.
type NATStats struct {
	Mappings  int    // mappings made
	Filtered  uint64 // inbound packets refused by the filtering behaviour
	Unmapped  uint64 // inbound packets to no mapping (or to an expired one)
	Hairpined uint64 // packets turned back inside
	Expired   int    // mappings that timed out
}

type natKey struct {
	proto    uint8
	internal netip.AddrPort
	remote   netip.AddrPort // zeroed to what the mapping behaviour ignores
}

type natPort struct {
	proto uint8
	port  uint16
}

type natMapping struct {
	key      natKey
	proto    uint8
	internal netip.AddrPort
	external uint16
	lastOut  time.Time // when the mapping last sent a packet out
	// sentTo holds the remotes the mapping has sent to, for filtering.
	sentTo map[netip.AddrPort]bool
	sentIP map[netip.Addr]bool
}

// NewNATBox puts a NAT box between inside and outside.
func (w *World) NewNATBox(name string, inside, outside *Network, cfg NATConfig) *NATBox {
	w.t.Helper()
	b, err := w.newNATBox(name, inside, outside, cfg)
	if err != nil {
		w.fail("%v", err)
	}
	return b
}

func (w *World) newNATBox(name string, inside, outside *Network, cfg NATConfig) (*NATBox, error) {
	if cfg.MappingTimeout < 0 {
		return nil, fmt.Errorf("NAT box %q: mapping timeout %v: want 0 (never) or more", name, cfg.MappingTimeout)
	}
	for _, b := range []Behavior{cfg.Mapping, cfg.Filtering} {
		if b < EndpointIndependent || b > AddressAndPortDependent {
			return nil, fmt.Errorf("NAT box %q: behaviour %d: want EndpointIndependent, AddressDependent or AddressAndPortDependent", name, int(b))
		}
	}
	if inside == nil || outside == nil || inside == outside {
		return nil, fmt.Errorf("NAT box %q: want two different networks, inside and outside", name)
	}
	if err := inside.claimGatewayAddr("NAT box " + name); err != nil {
		return nil, fmt.Errorf("NAT box %q: %w", name, err)
	}
	public, err := outside.claim(name+"@"+outside.name, cfg.PublicAddr)
	if err != nil {
		return nil, fmt.Errorf("NAT box %q: %w", name, err)
	}
	r, err := w.newRouterAt(name, []*Network{inside, outside}, []netip.Addr{inside.GatewayAddr(), public})
	if err != nil {
		return nil, err
	}
	b := &NATBox{Router: r, cfg: cfg, public: public, inside: inside.subnet,
		byKey: map[natKey]*natMapping{}, byPort: map[natPort]*natMapping{}}
	out := r.Wire(outside)
	in := r.Wire(inside)
	// Up on the outside leg: from the box to the outside network.
	if err := out.SetStages(Up, StageFunc(b.outbound)); err != nil {
		return nil, err
	}
	if err := out.SetStages(Down, StageFunc(b.inbound)); err != nil {
		return nil, err
	}
	if err := in.SetStages(Down, StageFunc(b.hairpin)); err != nil {
		return nil, err
	}
	return b, nil
}

// PublicAddr returns the box's address on the outside network.
func (b *NATBox) PublicAddr() netip.Addr { return b.public }

// Stats returns the box's counters.
func (b *NATBox) Stats() NATStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// l4 is a view of an IPv4 UDP or TCP packet inside an Ethernet frame.
type l4 struct {
	ip    []byte
	proto uint8
	seg   []byte
}

func parseL4(f []byte) (l4, bool) {
	if len(f) < ethHeaderLen+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return l4{}, false
	}
	ip := f[ethHeaderLen:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ihl < 20 || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return l4{}, false // not IPv4, malformed, or a fragment
	}
	ip = ip[:total]
	p := l4{ip: ip, proto: ip[9], seg: ip[ihl:]}
	switch {
	case p.proto == 17 && len(p.seg) >= 8, p.proto == 6 && len(p.seg) >= 20:
		return p, true
	}
	return l4{}, false
}

// ipv4Src returns the source address of an IPv4 frame.
func ipv4Src(f []byte) (netip.Addr, bool) {
	if len(f) < ethHeaderLen+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(f[ethHeaderLen+12 : ethHeaderLen+16])), true
}

func (p l4) src() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.ip[12:16])), binary.BigEndian.Uint16(p.seg))
}
func (p l4) dst() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.ip[16:20])), binary.BigEndian.Uint16(p.seg[2:]))
}

// rewrite sets the packet's addresses and ports and recomputes its
// checksums.
func (p l4) rewrite(src, dst netip.AddrPort) {
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(p.ip[12:16], s4[:])
	copy(p.ip[16:20], d4[:])
	binary.BigEndian.PutUint16(p.seg, src.Port())
	binary.BigEndian.PutUint16(p.seg[2:], dst.Port())
	ihl := int(p.ip[0]&0xf) * 4
	p.ip[10], p.ip[11] = 0, 0
	binary.BigEndian.PutUint16(p.ip[10:], ^checksum.Checksum(p.ip[:ihl], 0))
	field := 16
	if p.proto == 17 {
		field = 6
		if binary.BigEndian.Uint16(p.seg[6:]) == 0 {
			return // UDP without checksum
		}
	}
	p.seg[field], p.seg[field+1] = 0, 0
	sum := checksum.Checksum(p.seg, csum.Pseudo(p.ip, false, tcpip.TransportProtocolNumber(p.proto), len(p.seg)))
	binary.BigEndian.PutUint16(p.seg[field:], csum.Field(sum, p.proto == 17))
}

// expiredLocked reports whether m has timed out at now, and if so
// removes it. b.mu is held.
func (b *NATBox) expiredLocked(m *natMapping, now time.Time) bool {
	if b.cfg.MappingTimeout <= 0 || now.Sub(m.lastOut) < b.cfg.MappingTimeout {
		return false
	}
	delete(b.byKey, m.key)
	delete(b.byPort, natPort{m.proto, m.external})
	b.stats.Expired++
	return true
}

// mapping returns the mapping for a packet from internal to remote,
// making it if needed, and marks it as used at now. b.mu is held.
func (b *NATBox) mappingLocked(proto uint8, internal, remote netip.AddrPort, now time.Time) *natMapping {
	key := natKey{proto: proto, internal: internal}
	switch b.cfg.Mapping {
	case AddressDependent:
		key.remote = netip.AddrPortFrom(remote.Addr(), 0)
	case AddressAndPortDependent:
		key.remote = remote
	}
	if m := b.byKey[key]; m != nil && !b.expiredLocked(m, now) {
		m.lastOut = now
		return m
	}
	port := uint16(0)
	if _, taken := b.byPort[natPort{proto, internal.Port()}]; b.cfg.PortPreservation && !taken && internal.Port() != 0 {
		port = internal.Port()
	}
	for p := uint16(20000); port == 0 && p < 65535; p++ {
		if _, taken := b.byPort[natPort{proto, p}]; !taken {
			port = p
		}
	}
	if port == 0 {
		return nil // out of ports
	}
	m := &natMapping{key: key, proto: proto, internal: internal, external: port, lastOut: now, sentTo: map[netip.AddrPort]bool{}, sentIP: map[netip.Addr]bool{}}
	b.byKey[key] = m
	b.byPort[natPort{proto, port}] = m
	b.stats.Mappings++
	return m
}

// outbound translates what the box sends out: inside sources become the
// public address and the mapping's port.
func (b *NATBox) outbound(c *StageContext, p Packet, emit func(Packet)) {
	pk, ok := parseL4(p.Data)
	if !ok {
		if src, isIP := ipv4Src(p.Data); isIP && b.inside.Contains(src) {
			return // ICMP, fragments, other protocols: not translated, not leaked
		}
		emit(p) // the box's own ARP and the like
		return
	}
	src, dst := pk.src(), pk.dst()
	if !b.inside.Contains(src.Addr()) {
		emit(p)
		return
	}
	b.mu.Lock()
	m := b.mappingLocked(pk.proto, src, dst, c.Now)
	if m != nil {
		m.sentTo[dst] = true
		m.sentIP[dst.Addr()] = true
	}
	b.mu.Unlock()
	if m == nil {
		return
	}
	pk.rewrite(netip.AddrPortFrom(b.public, m.external), dst)
	emit(p)
}

// lookupInbound finds the mapping of a packet from remote to the public
// address and port, applying the filtering behaviour.
func (b *NATBox) lookupInbound(proto uint8, remote netip.AddrPort, port uint16, now time.Time) *natMapping {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.byPort[natPort{proto, port}]
	if m == nil || b.expiredLocked(m, now) {
		b.stats.Unmapped++
		return nil
	}
	allowed := true
	switch b.cfg.Filtering {
	case AddressDependent:
		allowed = m.sentIP[remote.Addr()]
	case AddressAndPortDependent:
		allowed = m.sentTo[remote]
	}
	if !allowed {
		b.stats.Filtered++
		return nil
	}
	return m
}

// inbound translates what comes to the public address back to the inside
// host, and drops what no mapping lets in.
func (b *NATBox) inbound(c *StageContext, p Packet, emit func(Packet)) {
	pk, ok := parseL4(p.Data)
	if !ok || pk.dst().Addr() != b.public {
		emit(p)
		return
	}
	m := b.lookupInbound(pk.proto, pk.src(), pk.dst().Port(), c.Now)
	if m == nil {
		return
	}
	pk.rewrite(pk.src(), m.internal)
	emit(p)
}

// hairpin turns packets from inside to the public address back inside,
// from the sender's own mapping.
func (b *NATBox) hairpin(c *StageContext, p Packet, emit func(Packet)) {
	pk, ok := parseL4(p.Data)
	if !ok || pk.dst().Addr() != b.public || !b.inside.Contains(pk.src().Addr()) {
		emit(p)
		return
	}
	if !b.cfg.Hairpinning {
		b.mu.Lock()
		b.stats.Filtered++
		b.mu.Unlock()
		return
	}
	src := pk.src()
	b.mu.Lock()
	from := b.mappingLocked(pk.proto, src, pk.dst(), c.Now)
	if from != nil {
		from.sentTo[pk.dst()] = true
		from.sentIP[b.public] = true
	}
	b.mu.Unlock()
	if from == nil {
		return
	}
	ext := netip.AddrPortFrom(b.public, from.external)
	to := b.lookupInbound(pk.proto, ext, pk.dst().Port(), c.Now)
	if to == nil {
		return
	}
	b.mu.Lock()
	b.stats.Hairpined++
	b.mu.Unlock()
	pk.rewrite(ext, to.internal)
	emit(p)
}
