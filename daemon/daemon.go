// Package daemon is Switchyard's control plane: it owns the networks (a
// switch, a gateway and an address pool each) and the endpoints attached
// to them, keeps them in the state store, brings them back after a restart,
// and serves the API on a unix socket.
//
//	HTTP (api) ──► Daemon ──► network ── vswitch.Switch
//	                 │           ├────── gateway.Gateway
//	                 │           ├────── ipam.Pool
//	                 │           └────── endpoints ── attach.Port (a TAP)
//	                 ├──► attach.Attacher (TAPs in namespaces, via package tap)
//	                 └──► store (bbolt: networks, endpoints)
//
// Control-plane operations hold Daemon.mu while they read or change the
// daemon's tables; the slow work of connecting and disconnecting an
// endpoint (the Attacher's fork/exec and netlink calls, the state file)
// runs without it, between a reservation and a commit (see connect.go).
// The data path (switch readers) never takes it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/attach"
	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/internal/rlimit"
	"github.com/switchyard-net/switchyard/proxy"
)

// Version of the daemon, reported by the API.
const Version = "0.1.0"

// Config configures a Daemon.
type Config struct {
	// StateDir holds state.db.
	StateDir string
	// Socket is the unix socket the API is served on (by Serve).
	Socket string
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Offload opens TAPs with IFF_VNET_HDR and TSO/checksum offload.
	Offload bool
	// Spin is how long each network's loop goes on polling after a
	// frame before it parks (internal/evloop): while traffic flows, the
	// frames of all the network's TAPs and the datagrams of its tunnel
	// are read without a wake-up. Zero means DefaultSpin, NoSpin parks at
	// once; negative gives every TAP and tunnel a reader goroutine of its
	// own instead of a loop.
	Spin time.Duration
	// HostPrefixes lists the prefixes in use on the host (addresses and
	// routes of the daemon's namespace), which a network picked
	// automatically must not overlap. nil means HostPrefixes.
	HostPrefixes func() ([]netip.Prefix, error)
	// WatchInterval is how often endpoints' namespaces are checked for
	// being gone. 0 means 2 s.
	WatchInterval time.Duration
	// OwnListeners are the daemon process's own TCP listeners (metrics):
	// containers' egress flows to them are refused, --host-loopback
	// networks included.
	OwnListeners []netip.AddrPort
	// MaxConns and MaxConnsPerPort limit published ports' connections and
	// UDP flows, over all ports and per port; 0 derives them from the
	// open-file limit, negative removes them (proxy.Config).
	MaxConns, MaxConnsPerPort int
	// MasqPorts is the inclusive range of source ports the networks'
	// hairpin NAT masquerades to, and MasqPortsPerSource what one
	// container address may hold toward one published port; zero takes
	// nat's defaults (61000-65535, a quarter of the range).
	MasqPorts          [2]uint16
	MasqPortsPerSource int
	// NetnsDir is where named network namespaces are, searched at start
	// for TAPs of this daemon's that no endpoint names. Empty: /run/netns.
	NetnsDir string
	// NoDefaultNetwork skips creating the "bridge" network.
	NoDefaultNetwork bool
	// Ephemeral state is not synced to disk: it need not survive a crash
	// (switchyard run).
	Ephemeral bool
	// Rootless daemons refuse host interfaces (a TAP in the daemon's own
	// namespace needs CAP_NET_ADMIN there). switchyardd sets it when it
	// does not run as root.
	Rootless bool
	// Forwarding reports whether the host kernel forwards packets of the
	// family (IPv6 if v6), which routed subnets need: the host interface
	// hands it their packets. nil reads /proc/sys (HostForwarding).
	Forwarding func(v6 bool) (bool, error)
	// Attacher opens endpoints' ports and inspects namespaces. nil means
	// TAP devices (attach.TAPs).
	Attacher attach.Attacher
	// HostAddrs lists the daemon's own addresses, which published ports
	// hairpin. nil means HostAddrs.
	HostAddrs func() ([]netip.Addr, error)
	// ResolvConf names the host's resolvers, to which the networks' DNS
	// servers forward names they do not know. Empty: /etc/resolv.conf
	// (or systemd-resolved's upstreams if it lists none).
	ResolvConf string
	// Cluster connects to etcd for a `cluster` network, as dial says.
	// nil means this binary has no etcd client: creating a `cluster`
	// network fails with ErrNoCluster. switchyardd sets it to package
	// etcdv3's New; the CLI binary leaves it nil so that it does not
	// link etcd's client (gRPC), which slows every start.
	Cluster func(ctx context.Context, dial cluster.Dial) (cluster.Backend, error)
	// IPv6Pool is where a network with `ipv6` and no IPv6 subnet gets
	// its /64. Zero: a unique local /48 (RFC 4193) whose global ID is
	// derived from the daemon's ID, stable across restarts.
	IPv6Pool netip.Prefix
	// DefaultIPv6 gives the default network "bridge", when it is
	// created, an IPv6 subnet from IPv6Pool too (Docker's daemon option
	// "ipv6"); without it the default network is IPv4 only.
	DefaultIPv6 bool
	// RAInterval is how often the gateways of networks with IPv6 send
	// unsolicited Router Advertisements; 0 means gateway.DefaultRAInterval.
	RAInterval time.Duration
	// KernelRoutes is the routing table a network with routing "direct"
	// writes its routes to the other hosts' leases in; nil means the
	// daemon's own namespace's, through netlink.
	KernelRoutes RouteTable
}

// Daemon is the control plane. Create it with New, serve it with Serve,
// stop it with Close.
type Daemon struct {
	cfg Config
	log *zap.Logger
	// id marks the TAPs this daemon makes (see orphans.go).
	id     string
	attach attach.Attacher
	store  stateStore
	// ports serves every published port of every network.
	ports *proxy.Manager
	// upstreams are the host's resolvers (Config.ResolvConf), read once.
	upstreams []netip.AddrPort

	mu       sync.Mutex
	networks map[string]*network
	// reserved holds networks being created or removed: their names and
	// subnets are taken.
	reserved map[string]store.Network
	// host is the host's prefixes, read for the network being validated.
	host   hostView
	closed bool
	// busy counts connects and disconnects under way without mu; Close
	// waits for them.
	busy sync.WaitGroup

	stop chan struct{}
	wg   sync.WaitGroup
}

// New opens the state, brings every stored network and endpoint back, and
// makes sure the default network "bridge" exists.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	rlimit.Raise(cfg.Logger) // before the proxy sizes its connection limits from it
	if cfg.HostPrefixes == nil {
		cfg.HostPrefixes = HostPrefixes
	}
	if cfg.HostAddrs == nil {
		cfg.HostAddrs = HostAddrs
	}
	if cfg.Forwarding == nil {
		cfg.Forwarding = HostForwarding
	}
	if cfg.Attacher == nil {
		cfg.Attacher = attach.TAPs{}
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 2 * time.Second
	}
	if p := cfg.IPv6Pool; p.IsValid() && (!p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() > 64) {
		return nil, fmt.Errorf("IPv6 pool %s: want an IPv6 prefix of /64 or shorter, like fd00:1::/48", p)
	}
	open := store.Open
	if cfg.Ephemeral {
		open = store.OpenEphemeral
	}
	st, err := open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:       cfg,
		log:       cfg.Logger,
		attach:    cfg.Attacher,
		store:     st,
		ports:     proxy.NewManager(proxy.Config{Logger: cfg.Logger, MaxConns: cfg.MaxConns, MaxConnsPerPort: cfg.MaxConnsPerPort}),
		networks:  map[string]*network{},
		reserved:  map[string]store.Network{},
		stop:      make(chan struct{}),
		upstreams: loadUpstreams(cfg.ResolvConf, cfg.Logger),
	}
	if d.id, err = loadID(cfg.StateDir); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.restore(); err != nil {
		d.Close()
		return nil, err
	}
	d.sweepOrphans()
	if !cfg.NoDefaultNetwork {
		if err := d.ensureDefaultNetwork(); err != nil {
			d.Close()
			return nil, err
		}
	}
	d.wg.Add(1)
	go d.watch()
	return d, nil
}

// Close stops the daemon's goroutines and detaches every port. TAP devices
// stay in their namespaces (they are persistent), so a later daemon with
// the same state directory re-attaches them.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.busy.Wait() // connects under way see closed and undo what they did
	d.mu.Lock()
	nets := d.networks
	d.networks = map[string]*network{}
	d.mu.Unlock()

	close(d.stop)
	d.wg.Wait()
	d.ports.Close() // listeners first: no new connection into a closing network
	for _, n := range nets {
		n.shutdown()
	}
	return d.store.Close()
}

// restore brings stored networks and endpoints back. An endpoint whose
// namespace is gone is reported and removed; so is one whose TAP cannot be
// re-attached. A network that cannot be brought up is an error: the
// daemon does not start half-way.
func (d *Daemon) restore() error {
	host := d.hostAddrs()
	d.mu.Lock() // nobody else has d yet, but the endpoints' OnGone may fire
	defer d.mu.Unlock()
	nets, err := d.store.Networks()
	if err != nil {
		return fmt.Errorf("read networks from %s: %w", d.store.Path(), err)
	}
	for _, rec := range nets {
		n, err := d.bringUp(context.Background(), rec, true)
		if err != nil {
			return fmt.Errorf("restore network %s: %w", rec.Name, err)
		}
		d.networks[rec.Name] = n
	}
	eps, err := d.store.Endpoints()
	if err != nil {
		return fmt.Errorf("read endpoints from %s: %w", d.store.Path(), err)
	}
	for _, w := range d.store.Warnings() {
		d.log.Warn(w)
	}
	restored := 0
	for _, rec := range eps {
		n := d.networks[rec.Network]
		if n == nil {
			d.log.Warn("endpoint removed: its network is gone", zap.String("endpoint", rec.Key()))
			d.store.DeleteEndpoint(rec.Network, rec.Name)
			continue
		}
		if err := d.restoreEndpointLocked(n, rec); err != nil {
			d.log.Warn("endpoint removed", zap.String("endpoint", rec.Key()), zap.String("netns", rec.NetNS), zap.Error(err))
			d.store.DeleteEndpoint(rec.Network, rec.Name)
			continue
		}
		restored++
	}
	d.restorePortsLocked(host)
	if len(nets) > 0 {
		d.log.Info("state restored", zap.Int("networks", len(nets)), zap.Int("endpoints", restored),
			zap.Int("removed", len(eps)-restored), zap.String("state", d.store.Path()))
	}
	return nil
}

// Networks lists the networks, by name.
func (d *Daemon) Networks() []api.Network {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]api.Network, 0, len(d.networks))
	for _, n := range d.networks {
		out = append(out, d.networkView(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Network returns one network.
func (d *Daemon) Network(name string) (api.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.networks[name]
	if n == nil {
		return api.Network{}, notFoundNetwork(name)
	}
	return d.networkView(n), nil
}

// Endpoints lists endpoints, of one network if network is not empty.
func (d *Daemon) Endpoints(network string) ([]api.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.Endpoint
	for name, n := range d.networks {
		if network != "" && name != network {
			continue
		}
		for _, e := range n.endpoints {
			v := e.view(n)
			v.Ports = d.bindingsLocked(n, e, nil)
			out = append(out, v)
		}
	}
	if network != "" && d.networks[network] == nil {
		return nil, notFoundNetwork(network)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Network != out[j].Network {
			return out[i].Network < out[j].Network
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// VersionInfo describes this daemon.
func (d *Daemon) VersionInfo() api.Version {
	return api.Version{Version: Version, PID: os.Getpid(), Socket: d.cfg.Socket, State: d.cfg.StateDir}
}

func notFoundNetwork(name string) error {
	return notFound("network %q not found (list them with `switchyard network ls`)", name)
}

// kindError gives an error one of the api error kinds without changing its
// text: the user sees the message, callers branch with errors.Is.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

func invalid(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), api.ErrInvalid}
}

func conflict(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), api.ErrConflict}
}

func notFound(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), api.ErrNotFound}
}

// stateStore is the state file as the daemon uses it: a *store.Store,
// which tests wrap to make writes fail.
type stateStore interface {
	Path() string
	Close() error
	PutNetwork(store.Network) error
	DeleteNetwork(name string) error
	Networks() ([]store.Network, error)
	PutEndpoint(store.Endpoint) error
	DeleteEndpoint(network, name string) error
	Endpoints() ([]store.Endpoint, error)
	Warnings() []string
}

// errClosed is returned by operations on a closed daemon.
var errClosed = errors.New("daemon shutting down")
