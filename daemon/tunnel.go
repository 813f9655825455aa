package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/internal/evloop"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tunnel"
)

// Networks across hosts. A network created with --tunnel has one more
// port on its switch, a tunnel.Port, which carries its frames to the same
// network on the other hosts (VXLAN, or sealed). Every host runs its own
// gateway with the same address and MAC (an anycast gateway: each host's
// containers leave through their own host), so the tunnel's link refuses
// frames from the gateway MAC (vswitch.AttachOptions.DenyMAC) and no
// remote gateway ever displaces the local one. Addresses stay unique
// across hosts by giving each host its own part of the subnet: --ip-range
// per host with static --peers, or, with --cluster, a SubnetLen-sized
// lease each host takes in etcd (flannel's model), where it also finds
// its peers; a dual-stack network's lease holds an IPv6 range too
// (SubnetLen6), and endpoints take an address of each family from
// their host's leases. The hosts may talk over IPv4 or IPv6 (the
// underlay), whatever the network carries; over IPv6 the inner MTU is
// 20 bytes less.
//
// What stays per host: DNS names (each gateway knows its own host's
// endpoints), DHCP (a client may hear several servers; only its own
// host's answers reach it, the others' come from the gateway MAC and are
// refused), published ports and egress.

// DefaultVNI is the VNI of a tunnel created without --vni (flannel's).
const DefaultVNI = 1

// DefaultSubnetLen is the size of each host's lease with --cluster.
const DefaultSubnetLen = 24

// DefaultSubnetBits6 is how many bits longer than an IPv6-only cluster
// network's subnet each host's lease is by default: 65,536 /80s of a /64.
const DefaultSubnetBits6 = 16

// clusterTimeout bounds joining the cluster when a network is created,
// and each attempt to rejoin after a restart.
const clusterTimeout = 10 * time.Second

// netTunnel is a network's live tunnel.
type netTunnel struct {
	port     *tunnel.Port
	senderID uint32
	cluster  atomic.Pointer[cluster.Cluster]
	ctx      context.Context // ends when the network stops
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// tunnelMode parses a tunnel's mode.
func tunnelMode(s string) (tunnel.Mode, bool) {
	switch s {
	case "vxlan":
		return tunnel.ModeVXLAN, true
	case "secure":
		return tunnel.ModeSecure, true
	}
	return tunnel.ModeVXLAN, false
}

// tunnelMTU is the inner MTU of t's tunnel in mode m: its underlay's MTU
// less the encapsulation, over IPv6 if it listens on an IPv6 address or
// has an IPv6 peer.
func tunnelMTU(m tunnel.Mode, t *store.Tunnel) int {
	return m.InnerMTU(t.UnderlayMTU, underlay6(t))
}

// parseHostPort parses IP or IP:PORT (with [ ] around an IPv6 address).
func parseHostPort(s string, defPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), defPort)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a.Unmap(), defPort), nil
}

// parseCluster turns etcd://HOST:PORT[,HOST:PORT...] into http:// client
// URLs, and etcds://… into https:// ones; false if s is not of that form.
func parseCluster(s string) ([]string, bool) {
	scheme := "http://"
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		scheme = "https://"
		rest, ok = strings.CutPrefix(s, "etcds://")
	}
	if !ok || rest == "" {
		return nil, false
	}
	var eps []string
	for _, hp := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			return nil, false
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, false
		}
		eps = append(eps, scheme+net.JoinHostPort(host, port))
	}
	return eps, true
}

// prepareTunnel opens the tunnel's socket and, for a cluster network
// being created, joins the cluster to learn this host's range. It runs
// before the network's address pool is made, and returns the record
// with the host's subnet filled in.
func (d *Daemon) prepareTunnel(ctx context.Context, rec store.Network, loop *evloop.Loop) (*netTunnel, store.Network, error) {
	tc := rec.Tunnel
	mode, ok := tunnelMode(tc.Mode)
	if !ok {
		return nil, rec, fmt.Errorf("network %s: stored tunnel mode %q is neither vxlan nor secure", rec.Name, tc.Mode)
	}
	cfg := tunnel.Config{
		Name: "tunnel", Mode: mode, VNI: tc.VNI, Listen: tc.Listen, Peers: tc.Peers,
		MTU: tunnelMTU(mode, tc), Logger: d.log.With(zap.String("network", rec.Name)),
		Loop: loop, // nil with Config.Spin < 0: a reader goroutine
	}
	t := &netTunnel{}
	t.ctx, t.stop = context.WithCancel(context.Background())
	var rotation *tunnel.Rotation
	if mode == tunnel.ModeSecure {
		key, r, err := startKeys(cfg.Logger, tc, time.Now())
		if err != nil {
			return nil, rec, err
		}
		rotation = r
		// A fresh sender ID at every start: the nonce is (sender,
		// counter), and the counter starts again at 1.
		for t.senderID == 0 {
			var b [4]byte
			rand.Read(b[:])
			t.senderID = binary.BigEndian.Uint32(b[:])
		}
		cfg.Key, cfg.KeyID, cfg.SenderID = key, tunnel.KeyIDOf(key), t.senderID
	}
	port, err := tunnel.New(cfg)
	if err != nil {
		return nil, rec, fmt.Errorf("tunnel on %s: %w", tc.Listen, err)
	}
	if rotation != nil {
		if err := port.Rotate(*rotation); err != nil {
			port.Close()
			return nil, rec, fmt.Errorf("resume the key rotation to %s: %w", tc.KeyFile, err)
		}
	}
	t.port = port
	if len(tc.Cluster) > 0 && !tc.HostSubnet.IsValid() {
		ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
		c, err := d.joinCluster(ctx, rec, t)
		cancel()
		if err != nil {
			port.Close()
			return nil, rec, err
		}
		t.cluster.Store(c)
		copied := *tc
		copied.HostSubnet, copied.HostSubnet6 = c.Lease().Subnet, c.Lease().Subnet6
		rec.Tunnel = &copied
	}
	return t, rec, nil
}

// ErrNoCluster: this daemon binary was built without an etcd client
// (Config.Cluster is nil), so it cannot serve `cluster` networks.
var ErrNoCluster = errors.New("this daemon has no etcd client: `cluster` networks are served by switchyardd (`switchyard daemon` starts it; install it with go install ./cmd/...)")

// clusterDial is how tc reaches etcd, with the password read from its
// file.
func clusterDial(tc *store.Tunnel) (cluster.Dial, error) {
	dial := cluster.Dial{Endpoints: tc.Cluster, CACert: tc.EtcdCACert, Cert: tc.EtcdCert, Key: tc.EtcdKey,
		Username: tc.EtcdUser, Timeout: clusterTimeout / 2}
	if tc.EtcdPasswordFile != "" {
		pw, err := readPassword(tc.EtcdPasswordFile)
		if err != nil {
			return dial, err
		}
		dial.Password = pw
	}
	return dial, nil
}

// readPassword reads the first line of path.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("etcd password: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("etcd password file %s: empty", path)
	}
	return pw, nil
}

// joinCluster joins rec's cluster with t's port as this host's endpoint.
func (d *Daemon) joinCluster(ctx context.Context, rec store.Network, t *netTunnel) (*cluster.Cluster, error) {
	tc := rec.Tunnel
	log := d.log.With(zap.String("network", rec.Name))
	if d.cfg.Cluster == nil {
		return nil, fmt.Errorf("network %s: %w", rec.Name, ErrNoCluster)
	}
	dial, err := clusterDial(tc)
	if err != nil {
		return nil, fmt.Errorf("join cluster %s for network %s: %w", strings.Join(tc.Cluster, ","), rec.Name, err)
	}
	backend, err := d.cfg.Cluster(ctx, dial)
	if err != nil {
		return nil, fmt.Errorf("join cluster %s for network %s: %w", strings.Join(tc.Cluster, ","), rec.Name, err)
	}
	cfg := cluster.Config{
		Backend: backend, Network: rec.Name, NetworkCIDR: rec.Subnet, SubnetLen: tc.SubnetLen,
		PublicAddr: tc.Listen, HostID: tc.HostID, PreviousSubnet: tc.HostSubnet,
		TTL: time.Duration(tc.LeaseTTL) * time.Second, Logger: log,
		OnChange: func(e cluster.Event) {
			switch e.Type {
			case cluster.PeerAdded:
				if err := t.port.AddPeer(e.Lease.PublicAddr); err != nil {
					log.Warn("cluster peer not added", zap.Stringer("peer", e.Lease.PublicAddr), zap.Error(err))
				}
			case cluster.PeerRemoved:
				if !slices.Contains(tc.Peers, e.Lease.PublicAddr) {
					t.port.RemovePeer(e.Lease.PublicAddr)
				}
			case cluster.LeaseChanged:
				if e.Lease.Subnet != tc.HostSubnet && tc.HostSubnet.IsValid() {
					log.Error("this host lost its subnet lease and took another: endpoints keep their old addresses, which another host may now hand out; reconnect them",
						zap.Stringer("old", tc.HostSubnet), zap.Stringer("new", e.Lease.Subnet), zap.Stringer("new6", e.Lease.Subnet6))
				}
			}
		},
	}
	if rec.Subnet6.IsValid() {
		cfg.NetworkCIDR6, cfg.SubnetLen6 = rec.Subnet6, tc.SubnetLen6
	}
	c, err := cluster.Join(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("join cluster %s for network %s: %w", strings.Join(tc.Cluster, ","), rec.Name, err)
	}
	return c, nil
}

// startTunnel attaches the tunnel to n's switch and, for a restored
// cluster network, rejoins the cluster in the background: the network
// works at once with the subnet it had, and finds its peers when etcd
// answers.
func (d *Daemon) startTunnel(n *network, t *netTunnel) error {
	if _, err := n.sw.Attach(t.port, vswitch.AttachOptions{DenyMAC: n.rec.GatewayMAC}); err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	n.tun = t
	if len(n.rec.Tunnel.Cluster) > 0 && t.cluster.Load() == nil {
		t.wg.Add(1)
		go d.rejoin(n.rec, t)
	}
	return nil
}

// rejoin retries joining the cluster until it works or the network stops.
func (d *Daemon) rejoin(rec store.Network, t *netTunnel) {
	defer t.wg.Done()
	log := d.log.With(zap.String("network", rec.Name))
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(t.ctx, clusterTimeout)
		c, err := d.joinCluster(ctx, rec, t)
		cancel()
		if err == nil {
			if got := c.Lease().Subnet; got != rec.Tunnel.HostSubnet {
				log.Error("rejoined the cluster with another subnet: endpoints keep their addresses from the old one; reconnect them",
					zap.Stringer("old", rec.Tunnel.HostSubnet), zap.Stringer("new", got))
			} else {
				log.Info("rejoined the cluster", zap.Stringer("subnet", got))
			}
			if t.ctx.Err() != nil {
				c.Close()
			} else {
				t.cluster.Store(c)
			}
			return
		}
		if attempt == 0 {
			log.Warn("cluster unreachable; the network runs with its previous subnet and static peers, retrying", zap.Error(err))
		}
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// close stops the background join and leaves the cluster's lease to
// expire (a restart within its TTL keeps the subnet). The port itself is
// closed with the switch.
func (t *netTunnel) close() {
	t.stop()
	t.wg.Wait()
	if c := t.cluster.Load(); c != nil {
		c.Close()
	}
}

// leave gives up the cluster lease for good (network rm).
func (t *netTunnel) leave(log *zap.Logger) {
	if c := t.cluster.Load(); c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.Leave(ctx); err != nil {
			log.Warn("leaving the cluster; the lease will expire by itself", zap.Error(err))
		}
		cancel()
		t.cluster.Store(nil)
	}
}

// tunnelInfo summarises n's tunnel, nil if it has none.
func tunnelInfo(n *network) *api.TunnelInfo {
	if n.tun == nil {
		return nil
	}
	tc := n.rec.Tunnel
	return &api.TunnelInfo{
		Mode: tc.Mode, VNI: tc.VNI, Listen: n.tun.port.LocalAddr(), MTU: n.tun.port.Info().MTU,
		PeerCount: len(n.tun.port.Peers()), Cluster: tc.Cluster, HostSubnet: tc.HostSubnet, HostSubnet6: tc.HostSubnet6,
	}
}

// Tunnel describes a network's tunnel: peers, learned MACs, counters and
// the cluster's hosts.
func (d *Daemon) Tunnel(name string) (api.Tunnel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.tunnelNetworkLocked(name)
	if err != nil {
		return api.Tunnel{}, err
	}
	tc := n.rec.Tunnel
	out := api.Tunnel{Network: name, TunnelInfo: *tunnelInfo(n), StaticPeers: tc.Peers, HostID: tc.HostID,
		Encrypted: tc.Mode == "secure", SenderID: n.tun.senderID, Keys: tunnelKeys(n.tun.port)}
	if out.StaticPeers == nil {
		out.StaticPeers = []netip.AddrPort{}
	}
	st := n.tun.port.Stats()
	out.Stats = api.TunnelStats{RXDatagrams: st.RXDatagrams, RXFrames: st.RXFrames, RXBytes: st.RXBytes,
		TXDatagrams: st.TXDatagrams, TXFrames: st.TXFrames, TXBytes: st.TXBytes, Drops: st.Drops}
	for _, r := range tunnel.DropReasons() {
		if v := st.DropsBy[r]; v > 0 {
			if out.DropsBy == nil {
				out.DropsBy = map[string]uint64{}
			}
			out.DropsBy[r.String()] = v
		}
	}
	out.Peers = []api.TunnelPeer{}
	for _, p := range st.Peers {
		out.Peers = append(out.Peers, api.TunnelPeer{Addr: p.Addr, Static: slices.Contains(tc.Peers, p.Addr),
			RXFrames: p.RXFrames, RXBytes: p.RXBytes, TXFrames: p.TXFrames, TXBytes: p.TXBytes, MACs: p.MACs, LastSeen: p.LastSeen})
	}
	out.MACs = []api.TunnelMAC{}
	for _, m := range n.tun.port.MACs() {
		out.MACs = append(out.MACs, api.TunnelMAC{MAC: m.MAC.String(), Peer: m.Peer, LastSeen: m.LastSeen})
	}
	if c := n.tun.cluster.Load(); c != nil {
		out.Joined = true
		own := c.Lease()
		out.Hosts = append(out.Hosts, api.TunnelHost{HostID: own.HostID, Subnet: own.Subnet, Subnet6: own.Subnet6, PublicAddr: own.PublicAddr, Self: true})
		for _, l := range c.Peers() {
			out.Hosts = append(out.Hosts, api.TunnelHost{HostID: l.HostID, Subnet: l.Subnet, Subnet6: l.Subnet6, PublicAddr: l.PublicAddr})
		}
	}
	return out, nil
}

func (d *Daemon) tunnelNetworkLocked(name string) (*network, error) {
	n := d.networks[name]
	if n == nil {
		return nil, notFoundNetwork(name)
	}
	if n.tun == nil {
		return nil, invalid("network %q has no tunnel: it was created without one", name)
	}
	return n, nil
}

// AddTunnelPeer adds a static peer to a network's tunnel, at once and for
// good (it is stored). ctx ended before it begins cancels it.
func (d *Daemon) AddTunnelPeer(ctx context.Context, name, addr string) (api.Tunnel, error) {
	d.mu.Lock()
	n, err := d.tunnelNetworkLocked(name)
	if err != nil {
		d.mu.Unlock()
		return api.Tunnel{}, err
	}
	mode, _ := tunnelMode(n.rec.Tunnel.Mode)
	ap, err := parseHostPort(addr, mode.DefaultPort())
	if err != nil || ap.Addr().IsUnspecified() {
		d.mu.Unlock()
		return api.Tunnel{}, api.Validate(api.PeerRequest{}, fieldErrs{{Field: "addr", Value: addr,
			Problem: "not another host's address", Accepted: "IP[:PORT], like 192.0.2.3:" + strconv.Itoa(int(mode.DefaultPort())) + " or [fd00::3]:" + strconv.Itoa(int(mode.DefaultPort()))}})
	}
	if slices.Contains(n.rec.Tunnel.Peers, ap) {
		d.mu.Unlock()
		return api.Tunnel{}, conflict("%s is already a peer of network %q", ap, name)
	}
	if err := ctx.Err(); err != nil {
		d.mu.Unlock()
		return api.Tunnel{}, fmt.Errorf("add peer %s: %w", ap, err)
	}
	if err := n.tun.port.AddPeer(ap); err != nil {
		d.mu.Unlock()
		return api.Tunnel{}, invalid("peer %s: %v", ap, err)
	}
	rec := n.rec
	tc := *rec.Tunnel
	tc.Peers = append(slices.Clone(tc.Peers), ap)
	rec.Tunnel = &tc
	if err := d.store.PutNetwork(rec); err != nil {
		n.tun.port.RemovePeer(ap)
		d.mu.Unlock()
		return api.Tunnel{}, fmt.Errorf("add peer %s: save state: %w", ap, err)
	}
	n.rec = rec
	d.mu.Unlock()
	d.log.Info("tunnel peer added", zap.String("network", name), zap.Stringer("peer", ap))
	return d.Tunnel(name)
}

// RemoveTunnelPeer removes a static peer. ctx ended before it begins
// cancels it.
func (d *Daemon) RemoveTunnelPeer(ctx context.Context, name, addr string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.tunnelNetworkLocked(name)
	if err != nil {
		return err
	}
	mode, _ := tunnelMode(n.rec.Tunnel.Mode)
	ap, err := parseHostPort(addr, mode.DefaultPort())
	if err != nil {
		return api.Validate(api.PeerRequest{}, fieldErrs{{Field: "addr", Value: addr, Problem: "not an address", Accepted: "IP[:PORT]"}})
	}
	i := slices.Index(n.rec.Tunnel.Peers, ap)
	if i < 0 {
		return notFound("%s is not a static peer of network %q (peers from the cluster come and go with their leases)", ap, name)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove peer %s: %w", ap, err)
	}
	rec := n.rec
	tc := *rec.Tunnel
	tc.Peers = slices.Delete(slices.Clone(tc.Peers), i, i+1)
	rec.Tunnel = &tc
	if err := d.store.PutNetwork(rec); err != nil {
		return fmt.Errorf("remove peer %s: save state: %w", ap, err)
	}
	n.rec = rec
	if !clusterHas(n.tun, ap) {
		n.tun.port.RemovePeer(ap)
	}
	d.log.Info("tunnel peer removed", zap.String("network", name), zap.Stringer("peer", ap))
	return nil
}

// clusterHas reports whether a cluster lease names ap.
func clusterHas(t *netTunnel, ap netip.AddrPort) bool {
	if c := t.cluster.Load(); c != nil {
		for _, l := range c.Peers() {
			if l.PublicAddr == ap {
				return true
			}
		}
	}
	return false
}
