package vnettest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"

	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// TunnelMode is the encapsulation of a Tunnel.
type TunnelMode int

const (
	// VXLAN carries frames in plain VXLAN (RFC 7348) datagrams.
	VXLAN TunnelMode = iota
	// Sealed seals every datagram with ChaCha20-Poly1305 under a
	// pre-shared key (Switchyard's secure tunnel mode).
	Sealed
)

func (m TunnelMode) String() string {
	if m == Sealed {
		return "sealed"
	}
	return "vxlan"
}

// TunnelConfig describes a Tunnel.
type TunnelConfig struct {
	// Mode is VXLAN (the zero value) or Sealed.
	Mode TunnelMode
	// VNI is the VXLAN network identifier, 0 to 16777215.
	VNI uint32
	// Key is the pre-shared key of a Sealed tunnel. Zero means one drawn
	// from the World's seed.
	Key [32]byte
}

// Tunnel joins two networks of a World into one L2 segment with
// Switchyard's real tunnel (package tunnel): on each network's switch a
// tunnel port, whose datagrams travel as UDP between two hosts of an
// underlay network, NAME-a and NAME-b — ordinary hosts whose wires can be
// impaired or cut like any other:
//
//	host on a ─ switch a ─ tunnel port ─ UDP on NAME-a ═ underlay ═ NAME-b ─ tunnel port ─ switch b ─ host on b
//
// The two networks share one subnet and one pool of addresses: hosts
// added to either get addresses apart.
type Tunnel struct {
	name  string
	mode  TunnelMode
	ends  [2]*Host
	ports [2]*tunnel.Port
	nets  [2]*Network
	links [2]*vswitch.Link
	once  sync.Once
}

// underlayMTU is the MTU of a tunnel's end hosts: jumbo frames, as on a
// data-centre underlay, so that a tunnelled 1500-byte packet crosses the
// underlay in one datagram, not in IP fragments. (Fragments also work, but
// the netstack's reassembly loses datagrams when the underlay reorders
// or drops fragments, and a lossy underlay is what tests want.)
const underlayMTU = 9000

// NewTunnel joins networks a and b, which must have the same subnet,
// through a tunnel whose two ends are new hosts NAME-a and NAME-b on
// underlay.
func (w *World) NewTunnel(name string, a, b, underlay *Network, cfg TunnelConfig) *Tunnel {
	w.t.Helper()
	t, err := w.newTunnel(name, a, b, underlay, cfg)
	if err != nil {
		w.fail("%v", err)
	}
	return t
}

func (w *World) newTunnel(name string, a, b, underlay *Network, cfg TunnelConfig) (*Tunnel, error) {
	if err := w.checkTunnel(name, a, b, underlay, cfg); err != nil {
		return nil, err
	}
	if err := b.sharePool(a); err != nil {
		return nil, fmt.Errorf("tunnel %q: %w", name, err)
	}
	t := &Tunnel{name: name, mode: cfg.Mode, nets: [2]*Network{a, b}}
	for i, suffix := range []string{"-a", "-b"} {
		h, err := underlay.newHostMTU(name+suffix, "", underlayMTU)
		if err != nil {
			return nil, fmt.Errorf("tunnel %q: %w", name, err)
		}
		t.ends[i] = h
	}
	mode, key := w.tunnelModeKey(name, cfg)
	w.mu.Lock()
	w.tunnels = append(w.tunnels, t) // closed with the World even if set-up fails below
	w.mu.Unlock()
	for i := range t.nets {
		if err := w.startTunnelEnd(t, i, mode, key, cfg.VNI); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkTunnel refuses a tunnel NewTunnel cannot build: networks of
// another World or not three different ones, ends of different subnets,
// an unknown mode or a VNI out of range.
func (w *World) checkTunnel(name string, a, b, underlay *Network, cfg TunnelConfig) error {
	for _, n := range []*Network{a, b, underlay} {
		if n == nil || n.w != w {
			return fmt.Errorf("tunnel %q: a network is nil or of another World", name)
		}
	}
	if a == b || a == underlay || b == underlay {
		return fmt.Errorf("tunnel %q: networks %s, %s and underlay %s: want three different networks", name, a.name, b.name, underlay.name)
	}
	if a.subnet != b.subnet {
		return fmt.Errorf("tunnel %q: networks %s (%s) and %s (%s): want one subnet on both ends", name, a.name, a.subnet, b.name, b.subnet)
	}
	if cfg.Mode != VXLAN && cfg.Mode != Sealed {
		return fmt.Errorf("tunnel %q: mode %d: want VXLAN or Sealed", name, cfg.Mode)
	}
	if cfg.VNI > tunnel.MaxVNI {
		return fmt.Errorf("tunnel %q: VNI %d: want 0 to %d", name, cfg.VNI, tunnel.MaxVNI)
	}
	return nil
}

// tunnelModeKey returns package tunnel's mode for cfg's, and the key: a
// Sealed tunnel without one gets a key derived from the World's seed and
// the tunnel's name.
func (w *World) tunnelModeKey(name string, cfg TunnelConfig) (tunnel.Mode, tunnel.Key) {
	key := tunnel.Key(cfg.Key)
	if cfg.Mode == Sealed && key == (tunnel.Key{}) {
		var seed [8]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(w.seed))
		key = sha256.Sum256(append(seed[:], "vnettest tunnel "+name...))
	}
	mode := tunnel.ModeVXLAN
	if cfg.Mode == Sealed {
		mode = tunnel.ModeSecure
	}
	return mode, key
}

// startTunnelEnd opens end i of t: a socket on its underlay host, the
// tunnel port to the other end, attached to network i's switch.
func (w *World) startTunnelEnd(t *Tunnel, i int, mode tunnel.Mode, key tunnel.Key, vni uint32) error {
	n, end, other := t.nets[i], t.ends[i], t.ends[1-i]
	pc, err := end.ListenPacket("udp", fmt.Sprintf(":%d", mode.DefaultPort()))
	if err != nil {
		return fmt.Errorf("tunnel %q: socket on %s: %w", t.name, end.Name(), err)
	}
	p, err := tunnel.New(tunnel.Config{
		Name: t.name, Mode: mode, VNI: vni, PacketConn: pc,
		Peers: []netip.AddrPort{netip.AddrPortFrom(other.Addr(), mode.DefaultPort())},
		Key:   key, KeyID: tunnel.KeyIDOf(key), SenderID: uint32(i + 1),
		// Frames of a 1500-byte network, whole: the ends' jumbo MTU
		// keeps the datagrams whole.
		MTU:    vswitch.DefaultMTU,
		Logger: w.log,
	})
	if err != nil {
		return fmt.Errorf("tunnel %q: port on %s: %w", t.name, n.name, err)
	}
	t.ports[i] = p
	link, err := n.sw.Attach(p, vswitch.AttachOptions{})
	if err != nil {
		return fmt.Errorf("tunnel %q: attach to %s: %w", t.name, n.name, err)
	}
	t.links[i] = link
	return nil
}

// Name returns the tunnel's name.
func (t *Tunnel) Name() string { return t.name }

// Ends returns the tunnel's two hosts on the underlay, on network a's
// side and on b's: impair or cut their wires to impair the tunnel.
func (t *Tunnel) Ends() (*Host, *Host) { return t.ends[0], t.ends[1] }

// TunnelStats counts what one end of a tunnel carried.
type TunnelStats struct {
	TXFrames, RXFrames uint64 // frames sent into and taken out of the tunnel
	Drops              uint64 // datagrams or frames dropped, for any reason
	// DropsBy counts the drops by reason (package tunnel's names, such as
	// "replay" or "too_big"); reasons that never happened are left out.
	DropsBy map[string]uint64
}

// Stats returns the counters of the tunnel's port on network a (i = 0) or
// b (i = 1).
func (t *Tunnel) Stats(i int) TunnelStats {
	if i < 0 || i > 1 || t.ports[i] == nil {
		return TunnelStats{}
	}
	s := t.ports[i].Stats()
	ts := TunnelStats{TXFrames: s.TXFrames, RXFrames: s.RXFrames, Drops: s.Drops, DropsBy: map[string]uint64{}}
	for r, n := range s.DropsBy {
		if n > 0 {
			ts.DropsBy[tunnel.DropReason(r).String()] = n
		}
	}
	return ts
}

func (t *Tunnel) close() {
	t.once.Do(func() {
		for i, p := range t.ports {
			if p == nil {
				continue
			}
			if t.links[i] != nil {
				t.nets[i].sw.Detach(t.links[i]) // closes the port
			} else {
				p.Close()
			}
		}
	})
}

// sharePool makes n take its host addresses from the pool of o (joined by
// a tunnel into one segment), after checking that no address is used on
// both.
func (n *Network) sharePool(o *Network) error {
	o = o.pool()
	if n.pool() == o {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owner != nil {
		return fmt.Errorf("network %s is joined to %s already", n.name, n.owner.name)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for a, name := range n.used {
		if other, taken := o.used[a]; taken && !(name == "(gateway)" && other == "(gateway)") {
			return fmt.Errorf("address %s is used on both %s (by %s) and %s (by %s)", a, n.name, name, o.name, other)
		}
	}
	for a, name := range n.used {
		o.used[a] = name
	}
	n.owner = o
	return nil
}

// pool returns the network whose address pool n uses.
func (n *Network) pool() *Network {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owner != nil {
		return n.owner
	}
	return n
}
