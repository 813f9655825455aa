package tunnel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/internal/evloop"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Mode is the encapsulation a Port uses.
type Mode uint8

const (
	// ModeVXLAN sends plain VXLAN (RFC 7348), interoperable with the Linux
	// vxlan device.
	ModeVXLAN Mode = iota
	// ModeSecure seals every datagram with ChaCha20-Poly1305 under a
	// pre-shared key (see secure.go). Both ends must be Switchyard.
	ModeSecure
)

// SecurePort is the default UDP port of secure mode. It is not VXLAN's
// 4789 (nor VXLAN-GPE's 4790): a Linux vxlan device listening there would
// otherwise try to parse sealed datagrams. 4793 sits next to the VXLAN
// family and is not registered with IANA for another service as of this
// writing.
const SecurePort = 4793

// DefaultPort returns the UDP port peers listen on unless told otherwise:
// VXLANPort (4789) or SecurePort (4793).
func (m Mode) DefaultPort() uint16 {
	if m == ModeSecure {
		return SecurePort
	}
	return VXLANPort
}

// String returns "vxlan" or "secure".
func (m Mode) String() string {
	switch m {
	case ModeVXLAN:
		return "vxlan"
	case ModeSecure:
		return "secure"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Features are the data-path optimisations of a Port. All are on unless
// disabled in Config.Disable; UDP GSO and GRO also need the kernel's
// support (Linux 4.18 and 5.0) and are turned off without it.
type Features uint8

const (
	// FeatureTSO: accept TCP and UDP superframes from the switch and cut
	// them into segments here, so that they can be sent as one batch.
	// Without it the switch cuts them and writes segments one by one.
	FeatureTSO Features = 1 << iota
	// FeatureGSO: send the datagrams of a batch to one peer in one
	// sendmsg with UDP_SEGMENT.
	FeatureGSO
	// FeatureGRO: receive with UDP_GRO, several datagrams per message.
	FeatureGRO
	// FeatureBatch: send and receive with sendmmsg and recvmmsg, several
	// messages per system call.
	FeatureBatch
	// FeatureCoalesce: merge consecutive received TCP segments of a flow
	// into one superframe for the switch (receive offload), so that an
	// offloading TAP gets 64 KiB writes instead of 1.5 KiB ones.
	FeatureCoalesce
	// FeaturePipeline: send the segments of superframes from a sender
	// goroutine, so that the caller reads and cuts the next superframe
	// while the kernel sends the last (see send.go).
	FeaturePipeline

	allFeatures = FeatureTSO | FeatureGSO | FeatureGRO | FeatureBatch | FeatureCoalesce | FeaturePipeline
)

var featureNames = []string{"tso", "gso", "gro", "batch", "coalesce", "pipeline"}

// String lists the features, like "tso,gso,gro,batch,coalesce".
func (f Features) String() string {
	var parts []string
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Defaults for Config fields left zero.
const (
	DefaultAging   = 300 * time.Second
	DefaultMaxMACs = 16384
	// DefaultLinkMTU is the underlay MTU assumed when Config.MTU is zero.
	DefaultLinkMTU = 1500
)

// Data-path errors returned by Write. They are sentinels, returned
// unwrapped, so that a failing Write does not allocate; the switch counts
// them as DropWrite and the Port counts the reason.
var (
	// ErrClosed: the port is closed.
	ErrClosed = errors.New("tunnel: port closed")
	// ErrNoPeers: the port has no peer to send the frame to.
	ErrNoPeers = errors.New("tunnel: no peers")
	// ErrFrame: the frame cannot be sent: shorter than an Ethernet header,
	// too big for a datagram, or a superframe that cannot be segmented.
	ErrFrame = errors.New("tunnel: frame cannot be sent")
	// ErrSend: the kernel refused a datagram for at least one peer.
	ErrSend = errors.New("tunnel: send failed")
)

// Config configures a Port.
type Config struct {
	// Name identifies the port on the switch and in logs. If empty,
	// "tunnel".
	Name string
	// Mode selects plain VXLAN or sealed datagrams.
	Mode Mode
	// VNI is the VXLAN Network Identifier of the network, 0 to MaxVNI.
	// Datagrams carrying another VNI are dropped (DropVNIMismatch).
	VNI uint32

	// Conn is a ready UDP socket, not connected, for instance one opened
	// inside another network namespace. The Port owns it from New on and
	// closes it on Close. If nil, the Port opens one on Listen.
	Conn *net.UDPConn
	// PacketConn, instead of Conn, is a datagram socket of any kind,
	// such as the in-process underlay of package vnettest. The Port sends
	// and receives on it one datagram per call (no GSO, GRO or batches);
	// its addresses are *net.UDPAddr, or print as IP:port. The Port owns
	// it from New on and closes it on Close.
	PacketConn net.PacketConn
	// Listen is the address to bind when Conn and PacketConn are nil. A
	// zero address, or [::], means every address of both families;
	// 0.0.0.0 every IPv4 address. A zero port means the mode's default
	// port. An IPv6 link-local address needs its zone (fe80::1%eth0).
	Listen netip.AddrPort

	// Peers are the remote endpoints at start; AddPeer and RemovePeer
	// change them later. A zero port means the mode's default port.
	Peers []netip.AddrPort

	// Key, KeyID and SenderID configure ModeSecure (and are ignored in
	// ModeVXLAN). Every host sharing the key needs a different SenderID,
	// which must not be 0: the ID is part of the nonce. Every host must
	// announce the same key under the same KeyID (KeyIDOf derives one).
	// Rotate replaces the key on a running port.
	Key      Key
	KeyID    uint16
	SenderID uint32

	// MTU is the largest inner IP packet the port carries, as advertised
	// to the switch: the underlay's MTU minus the encapsulation,
	// MTUFor(1500) = 1450 or SecureMTUFor(1500) = 1418 on a 1500-byte
	// IPv4 link, 20 bytes less over IPv6 (Mode.InnerMTU). If zero, the
	// value for a DefaultLinkMTU underlay, over IPv6 if the socket is
	// bound to an IPv6 address or any of Peers is one.
	MTU int
	// Aging is how long a learned MAC stays without traffic from it. If
	// zero, DefaultAging (300 s, as the switch and the Linux bridge).
	Aging time.Duration
	// MaxMACs caps the learned MACs; frames from new MACs beyond it are
	// delivered but not learned (frames to them are flooded). If zero,
	// DefaultMaxMACs.
	MaxMACs int

	// Disable turns data-path features off, to measure what each buys.
	Disable Features

	// Loop, if set, reads the socket instead of a reader goroutine of the
	// port's own: the loop that reads a network's TAPs (tap.Config.Loop)
	// then also catches the datagram that answers a frame it forwarded,
	// while it still polls, without a wake-up (see internal/evloop). It
	// needs a UDP socket (Conn or Listen), not a PacketConn, and Linux.
	// The loop's buffer is not used: the port reads into its own.
	Loop *evloop.Loop

	// Logger receives control-plane events (start, peers, kernel
	// features); nothing is logged per packet. If nil, nothing is logged.
	Logger *zap.Logger
}

// Port is a vswitch.Port that carries Ethernet frames to other hosts in
// UDP datagrams. Its methods are safe for concurrent use.
type Port struct {
	name     string
	log      *zap.Logger
	mode     Mode
	vni      uint32
	mtu      int
	maxFrame int // largest inner frame: MTU + Ethernet header + one VLAN tag
	headroom int // encapsulation headers in front of a frame
	tailroom int // bytes after it (the tag in secure mode)
	features Features
	aging    time.Duration

	sealer *keyring // secure mode: the keys, and the Sealer of the moment
	opener *Opener  // secure mode: sealer's Opener
	sock   *sysConn
	pconn  *packetConn // instead of sock, with Config.PacketConn
	loop   *evloop.Loop
	looped atomic.Pointer[loopReader] // set by Start when loop reads the socket

	peersMu sync.Mutex // serialises AddPeer and RemovePeer
	peers   atomic.Pointer[peerSet]
	macs    *macTable

	now atomic.Int64 // coarse clock, UnixNano, refreshed by the janitor
	ctr counters

	txPool sync.Pool    // *txBatch
	txBufs sync.Pool    // *txBuf
	txq    chan *txBuf  // to the sender goroutine; nil without FeaturePipeline
	txBusy atomic.Int32 // txBufs queued or being sent by the sender goroutine
	// congested: a Write waited txWait for a place in txq in vain;
	// Writes drop without waiting until the sender gets a batch out.
	congested atomic.Bool

	startOnce sync.Once
	closeOnce sync.Once
	closed    atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

var _ vswitch.Port = (*Port)(nil)

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65535 - 20 - 8

// New validates cfg, opens (or adopts) the socket and returns a Port
// that is not reading yet: attach it to a switch. On error, cfg.Conn is
// closed.
func New(cfg Config) (*Port, error) {
	p, err := newPort(cfg)
	if err != nil {
		if cfg.Conn != nil {
			cfg.Conn.Close()
		}
		if cfg.PacketConn != nil {
			cfg.PacketConn.Close()
		}
		return nil, err
	}
	return p, nil
}

// newPort is New without closing cfg.Conn on error.
func newPort(cfg Config) (*Port, error) {
	p, err := newPortState(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.PacketConn != nil {
		if cfg.Loop != nil {
			return nil, fmt.Errorf("tunnel %s: a Loop reads a UDP socket (Conn or Listen), not a PacketConn (%T): leave Loop nil", p.name, cfg.PacketConn)
		}
		return p.adoptPacketConn(cfg)
	}
	p.loop = cfg.Loop
	conn := cfg.Conn
	if conn == nil {
		conn, err = listen(cfg.Listen, p.mode)
		if err != nil {
			return nil, err
		}
	} else if conn.RemoteAddr() != nil {
		return nil, fmt.Errorf("tunnel %s: the UDP socket is connected to %s: want an unconnected socket that can send to every peer", p.name, conn.RemoteAddr())
	}
	p.sock, err = newSysConn(conn, cfg.Disable, &p.ctr, p.loop != nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tunnel %s: %w", p.name, err)
	}
	p.features = p.features&^(FeatureGSO|FeatureGRO|FeatureBatch) | p.sock.features()
	for _, ap := range cfg.Peers {
		if err := p.AddPeer(ap); err != nil {
			p.sock.close()
			return nil, err
		}
	}
	p.log = p.log.With(zap.Stringer("local", p.LocalAddr()))
	if p.features&FeaturePipeline != 0 {
		p.txq = make(chan *txBuf, txQueueLen)
		p.wg.Add(1)
		go p.sender()
	}
	return p, nil
}

// newPortState checks cfg and builds everything but the socket.
func newPortState(cfg Config) (*Port, error) {
	if cfg.Name == "" {
		cfg.Name = "tunnel"
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Aging <= 0 {
		cfg.Aging = DefaultAging
	}
	if cfg.MaxMACs <= 0 {
		cfg.MaxMACs = DefaultMaxMACs
	}
	p := &Port{
		name:     cfg.Name,
		log:      cfg.Logger.Named("tunnel").With(zap.String("port", cfg.Name), zap.Stringer("mode", cfg.Mode)),
		mode:     cfg.Mode,
		vni:      cfg.VNI,
		aging:    cfg.Aging,
		features: allFeatures &^ cfg.Disable,
		stop:     make(chan struct{}),
	}
	if cfg.VNI > MaxVNI {
		return nil, fmt.Errorf("tunnel %s: VNI %d: %w (want 0 to %d)", cfg.Name, cfg.VNI, ErrVNIRange, MaxVNI)
	}
	defaultMTU := 0
	switch cfg.Mode {
	case ModeVXLAN:
		p.headroom = VXLANHeaderLen
		defaultMTU = cfg.Mode.InnerMTU(DefaultLinkMTU, underlay6(cfg))
	case ModeSecure:
		if cfg.Key == (Key{}) {
			return nil, fmt.Errorf("tunnel %s: secure mode needs a key (tunnel.LoadKey or tunnel.GenerateKey); the all-zero key is refused", cfg.Name)
		}
		if cfg.SenderID == 0 {
			return nil, fmt.Errorf("tunnel %s: secure mode needs a SenderID other than 0, different on every host sharing the key (for instance the host's IPv4 address as a number)", cfg.Name)
		}
		var err error
		if p.sealer, err = newKeyring(cfg.Key, cfg.KeyID, cfg.SenderID, p.log); err != nil {
			return nil, fmt.Errorf("tunnel %s: %w", cfg.Name, err)
		}
		p.opener = p.sealer.opener
		p.headroom, p.tailroom = SecureHeadroom, TagLen
		defaultMTU = cfg.Mode.InnerMTU(DefaultLinkMTU, underlay6(cfg))
	default:
		return nil, fmt.Errorf("tunnel %s: unknown mode %d (want ModeVXLAN or ModeSecure)", cfg.Name, cfg.Mode)
	}
	if cfg.MTU == 0 {
		cfg.MTU = defaultMTU
	}
	maxMTU := maxDatagram - p.headroom - p.tailroom - vswitch.EthHeaderLen - 4
	if cfg.MTU < 68 || cfg.MTU > maxMTU {
		return nil, fmt.Errorf("tunnel %s: MTU %d out of range (want 68 to %d; %d on a %d-byte underlay)", cfg.Name, cfg.MTU, maxMTU, defaultMTU, DefaultLinkMTU)
	}
	p.mtu = cfg.MTU
	p.maxFrame = cfg.MTU + vswitch.EthHeaderLen + 4
	p.macs = newMACTable(cfg.MaxMACs, cfg.Aging, &p.ctr.macMoves)
	p.now.Store(time.Now().UnixNano())
	p.peers.Store(newPeerSet(nil))
	p.txPool.New = func() any { return newTxBatch(p) }
	p.txBufs.New = func() any { return newTxBuf() }
	return p, nil
}

// underlay6 reports whether cfg's underlay is IPv6: its socket is bound
// to an IPv6 address (not a wildcard, which takes both families) or one
// of its first peers is an IPv6 address.
func underlay6(cfg Config) bool {
	local := cfg.Listen.Addr()
	switch {
	case cfg.Conn != nil:
		local = cfg.Conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	case cfg.PacketConn != nil:
		ap, _ := addrPortOf(cfg.PacketConn.LocalAddr())
		local = ap.Addr()
	}
	if local.Is6() && !local.Is4In6() && !local.IsUnspecified() {
		return true
	}
	for _, ap := range cfg.Peers {
		if a := ap.Addr(); a.Is6() && !a.Is4In6() {
			return true
		}
	}
	return false
}

// ErrPeerFamily: a peer of one address family on a socket bound to an
// address of the other (an IPv4 peer on [fd00::1]:4789, an IPv6 one on
// 0.0.0.0:4789). A socket bound to [::] takes both.
var ErrPeerFamily = errors.New("peer's address family differs from the socket's")

// ErrZone: an IPv6 link-local address without the zone (interface) it
// belongs to, as a peer or as the address to listen on.
var ErrZone = errors.New("link-local address without a zone")

// needsZone reports whether a is an IPv6 link-local address without a
// zone: fe80::/10 is on every link, so the kernel needs to know which.
func needsZone(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) && a.Zone() == ""
}

// listen opens the port's own socket.
func listen(ap netip.AddrPort, m Mode) (*net.UDPConn, error) {
	if needsZone(ap.Addr()) {
		return nil, fmt.Errorf("tunnel: listen on %s: %w: want the interface too, like [%s%%eth0]:%d", ap, ErrZone, ap.Addr(), m.DefaultPort())
	}
	if ap.Port() == 0 {
		ap = netip.AddrPortFrom(ap.Addr(), m.DefaultPort())
	}
	network := "udp"
	switch {
	case ap.Addr().Is4():
		network = "udp4"
	case ap.Addr().Is6() && !ap.Addr().IsUnspecified():
		network = "udp6"
	}
	// [::] stays "udp": Go then opens a dual-stack socket, where "udp6"
	// would set IPV6_V6ONLY and refuse IPv4 peers.
	addr := net.UDPAddrFromAddrPort(ap)
	if !ap.Addr().IsValid() {
		addr = &net.UDPAddr{Port: int(ap.Port())}
	}
	c, err := net.ListenUDP(network, addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel: listen on UDP %s: %w", addr, err)
	}
	return c, nil
}

// LocalAddr returns the address the socket is bound to.
func (p *Port) LocalAddr() netip.AddrPort {
	if p.pconn != nil {
		return p.pconn.local
	}
	if p.sock == nil {
		return netip.AddrPort{}
	}
	return p.sock.local
}

// Mode returns the port's encapsulation.
func (p *Port) Mode() Mode { return p.mode }

// Features returns the data-path features in effect: those not disabled
// in Config and, for GSO and GRO, supported by the kernel.
func (p *Port) Features() Features { return p.features }

// Info implements vswitch.Port. With FeatureTSO the port takes
// superframes and frames with partial checksums, and finishes both itself.
func (p *Port) Info() vswitch.PortInfo {
	info := vswitch.PortInfo{Name: p.name, Kind: "tunnel", MTU: p.mtu}
	if p.features&FeatureTSO != 0 {
		info.Offloads = vswitch.OffloadCsum | vswitch.OffloadTSO4 | vswitch.OffloadTSO6 | vswitch.OffloadUSO
	}
	return info
}

// Start implements vswitch.Port: it starts the reader, or hands the
// socket to Config.Loop, and the janitor.
func (p *Port) Start(in vswitch.Ingress) error {
	if p.closed.Load() {
		return ErrClosed
	}
	started := false
	var err error
	p.startOnce.Do(func() {
		started = true
		if p.loop != nil {
			if err = p.startLoop(in); err != nil {
				return
			}
		} else {
			p.wg.Add(1)
			go p.read(in)
		}
		p.wg.Add(1)
		go p.janitor()
	})
	if !started {
		return fmt.Errorf("tunnel %s: started twice", p.name)
	}
	if err != nil {
		return fmt.Errorf("tunnel %s: %w", p.name, err)
	}
	p.log.Info("tunnel started", zap.Uint32("vni", p.vni), zap.Int("mtu", p.mtu),
		zap.Stringer("features", p.features), zap.Int("peers", len(p.peers.Load().list)))
	return nil
}

// janitor refreshes the coarse clock and ages out MACs.
func (p *Port) janitor() {
	defer p.wg.Done()
	tick := min(time.Second, max(p.aging/4, 10*time.Millisecond))
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			p.now.Store(ns)
			p.macs.sweep(ns)
		}
	}
}

// Close implements vswitch.Port: it closes the socket and waits for the
// reader, the sender and the janitor to stop. Datagrams still queued for
// the sender are dropped (counted as DropSend).
func (p *Port) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.stop)
		if lr := p.looped.Swap(nil); lr != nil {
			lr.stop() // before the socket closes: the loop reads a duplicate of it
		}
		if p.sealer != nil {
			p.sealer.close()
		}
		if p.sock != nil {
			err = p.sock.close()
		}
		if p.pconn != nil {
			err = p.pconn.pc.Close()
		}
		p.wg.Wait()
	})
	return err
}

// MACs returns the learned MAC addresses that have not aged out, sorted.
func (p *Port) MACs() []MACEntry { return p.macs.entries(time.Now().UnixNano()) }

// Stats returns a snapshot of the port's counters.
func (p *Port) Stats() Stats {
	c := &p.ctr
	s := Stats{
		RXDatagrams: c.rxDatagrams.Load(), RXFrames: c.rxFrames.Load(), RXBytes: c.rxBytes.Load(),
		RXBatches: c.rxBatches.Load(), RXGRO: c.rxGRO.Load(),
		Coalesced: c.coalesced.Load(), ReceivedSuperframes: c.rxSuper.Load(), ChecksumsCompleted: c.csumFixed.Load(), ReadErrors: c.readErrors.Load(),
		TXDatagrams: c.txDatagrams.Load(), TXFrames: c.txFrames.Load(), TXBytes: c.txBytes.Load(),
		TXSyscalls: c.txSyscalls.Load(), TXGSO: c.txGSO.Load(), Segmented: c.segmented.Load(),
		MACs: p.macs.len(), MACMoves: c.macMoves.Load(),
		Peers: p.Peers(),
	}
	for i := range c.drops {
		v := c.drops[i].Load()
		s.DropsBy[i] = v
		s.Drops += v
	}
	return s
}

// drop counts n packets dropped for reason r.
func (p *Port) drop(r DropReason, n int) { p.ctr.drops[r].Add(uint64(n)) }
