package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults for Config fields left zero.
const (
	// DefaultTTL is flannel's subnet lease time. A host that stops
	// renewing keeps its subnet, and stays in the others' peer lists, for
	// that long: long enough to survive a daemon restart, an etcd outage
	// or a partition without renumbering its containers.
	DefaultTTL         = 24 * time.Hour
	DefaultKeyPrefix   = "/switchyard"
	DefaultDialTimeout = 5 * time.Second

	// maxAttempts bounds how often Join re-reads the leases after losing
	// the race for a subnet to another host.
	maxAttempts = 32
)

// Errors callers can branch on.
var (
	// ErrNoSubnet: every subnet of the network is leased.
	ErrNoSubnet = errors.New("no free subnet")
	// ErrConfigMismatch: the network is registered in etcd with another
	// range or subnet length.
	ErrConfigMismatch = errors.New("network registered with another configuration")
	// ErrClosed: the Cluster was closed.
	ErrClosed = errors.New("cluster membership closed")
)

// Config configures a host's membership of one network.
type Config struct {
	// Backend reaches etcd (package etcdv3 makes one from a Dial). The
	// Cluster owns it from Join on, and closes it, even if Join fails.
	Backend Backend

	// Network is the network's name, one path element (no "/").
	Network string
	// NetworkCIDR is the whole range, cut into SubnetLen-sized subnets,
	// one per host.
	NetworkCIDR netip.Prefix
	SubnetLen   int
	// NetworkCIDR6 and SubnetLen6, if set, are the IPv6 range of a
	// dual-stack network whose NetworkCIDR is IPv4. A host's lease of
	// IPv4 subnet number i also gives it IPv6 subnet number i, so one
	// etcd key holds both and no second race is run; the network then
	// has as many leases as the smaller of the two cuts.
	NetworkCIDR6 netip.Prefix
	SubnetLen6   int

	// PublicAddr is this host's tunnel endpoint, published with its
	// lease for the other hosts to send to.
	PublicAddr netip.AddrPort
	// HostID identifies the host across restarts (the daemon keeps one in
	// its state directory). Two hosts with the same ID would take each
	// other's subnet.
	HostID string
	// PreviousSubnet, if set, is the subnet the host held before; Join
	// takes it again if no other host holds it.
	PreviousSubnet netip.Prefix

	// TTL is the lease time; etcd rounds it to whole seconds and has a
	// minimum (about 2 s with default election settings). If zero,
	// DefaultTTL.
	TTL time.Duration
	// KeyPrefix roots every key. If empty, DefaultKeyPrefix.
	KeyPrefix string

	// OnChange, if set, is told about every other host's lease coming and
	// going, and about this host's lease being replaced, in order and
	// never concurrently; Peers already reflects the change when it is
	// called. It must not call Close or Leave.
	OnChange func(Event)
	// Logger; nil means no logging.
	Logger *zap.Logger
}

// Lease is one host's subnet lease.
type Lease struct {
	Subnet netip.Prefix
	// Subnet6 is the host's IPv6 subnet in a dual-stack network, else
	// zero.
	Subnet6    netip.Prefix
	HostID     string
	PublicAddr netip.AddrPort
}

// EventType says what happened to a lease.
type EventType uint8

const (
	// PeerAdded: another host leased a subnet (or was there at Join).
	PeerAdded EventType = iota
	// PeerRemoved: another host's lease expired or was revoked.
	PeerRemoved
	// LeaseChanged: this host lost its lease (it could not renew it
	// within the TTL) and took a new one, with Lease in the event; if
	// the subnet differs, its containers need new addresses.
	LeaseChanged
)

func (t EventType) String() string {
	switch t {
	case PeerAdded:
		return "added"
	case PeerRemoved:
		return "removed"
	case LeaseChanged:
		return "lease-changed"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is a change in the network's leases.
type Event struct {
	Type  EventType
	Lease Lease
}

// Cluster is a host's membership of a network: its lease, kept alive, and
// the other hosts' leases, watched. Its methods are safe for concurrent
// use.
type Cluster struct {
	cfg    Config
	log    *zap.Logger
	client Backend
	keys   keys
	space  space
	space6 space // dual stack: IPv6 subnet i goes with space's subnet i
	ttl    int64 // seconds

	mu      sync.Mutex
	own     Lease            // guarded by mu
	ownKey  string           // guarded by mu
	leaseID int64            // guarded by mu
	peers   map[string]Lease // by key; guarded by mu

	notifyMu sync.Mutex // serialises OnChange calls

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Join registers the host in the network: it checks or writes the
// network's configuration, takes a subnet lease, starts renewing it and
// starts watching the other hosts. The returned Cluster knows the peers
// present at Join; OnChange is told about them too, from the watcher.
func Join(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := checkConfig(&cfg); err != nil {
		if cfg.Backend != nil {
			cfg.Backend.Close()
		}
		return nil, err
	}
	sp, err := newSpace(cfg.NetworkCIDR, cfg.SubnetLen)
	if err != nil {
		cfg.Backend.Close()
		return nil, fmt.Errorf("network %s: %w", cfg.Network, err)
	}
	var sp6 space
	if cfg.NetworkCIDR6.IsValid() || cfg.SubnetLen6 != 0 {
		if sp6, err = newSpace6(sp, cfg.NetworkCIDR6, cfg.SubnetLen6); err != nil {
			cfg.Backend.Close()
			return nil, fmt.Errorf("network %s: %w", cfg.Network, err)
		}
	}
	c := &Cluster{
		cfg:    cfg,
		log:    cfg.Logger.Named("cluster").With(zap.String("network", cfg.Network), zap.String("host", cfg.HostID)),
		keys:   newKeys(cfg.KeyPrefix, cfg.Network),
		space:  sp,
		space6: sp6,
		ttl:    max(int64((cfg.TTL+time.Second-1)/time.Second), 1),
		peers:  map[string]Lease{},
		client: cfg.Backend,
	}
	if err := c.join(ctx); err != nil {
		c.client.Close()
		return nil, err
	}
	return c, nil
}

func checkConfig(cfg *Config) error {
	switch {
	case cfg.Network == "" || strings.ContainsAny(cfg.Network, "/\x00"):
		return fmt.Errorf("network name %q: want a non-empty name without '/'", cfg.Network)
	case cfg.HostID == "":
		return fmt.Errorf("network %s: host ID not set: want a stable ID per host (the daemon keeps one in its state directory)", cfg.Network)
	case !cfg.PublicAddr.IsValid() || cfg.PublicAddr.Addr().IsUnspecified() || cfg.PublicAddr.Port() == 0:
		return fmt.Errorf("network %s: public address %v: want the host's tunnel endpoint, an address the other hosts reach, and a port, like 10.0.0.5:4789", cfg.Network, cfg.PublicAddr)
	case cfg.Backend == nil:
		return fmt.Errorf("network %s: no etcd backend: want one made from the etcd endpoints (package etcdv3)", cfg.Network)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return nil
}

func (c *Cluster) join(ctx context.Context) error {
	if err := c.checkNetworkConfig(ctx); err != nil {
		return err
	}
	own, key, id, err := c.acquire(ctx, c.cfg.PreviousSubnet)
	if err != nil {
		return err
	}
	c.own, c.ownKey, c.leaseID = own, key, id
	c.ctx, c.cancel = context.WithCancel(context.Background())
	ka := c.client.KeepAlive(c.ctx, id)
	rev, initial, err := c.list(ctx)
	if err != nil {
		c.cancel()
		c.wg.Wait()
		return err
	}
	for k, l := range initial {
		if k != key {
			c.peers[k] = l
		}
	}
	c.log.Info("joined", zap.Stringer("subnet", own.Subnet), zap.Stringer("public", own.PublicAddr),
		zap.Int("peers", len(c.peers)), zap.Int64("ttl_seconds", c.ttl))
	c.wg.Add(2)
	go c.renew(ka)
	go c.watch(rev, initial)
	return nil
}

// checkNetworkConfig writes the network's configuration if it is the
// first host, or checks that it agrees with what is registered.
func (c *Cluster) checkNetworkConfig(ctx context.Context) error {
	want := networkConfig{Network: c.space.network, SubnetLen: c.space.subnetLen, Network6: c.space6.network, SubnetLen6: c.space6.subnetLen}
	b, _ := json.Marshal(want)
	key := c.keys.config()
	ok, kvs, err := c.client.PutIf(ctx, key, string(b), 0, CreateRevision, 0, true)
	if err != nil {
		return fmt.Errorf("network %s: register configuration in etcd: %w", c.cfg.Network, err)
	}
	if ok {
		return nil
	}
	if len(kvs) == 0 {
		return fmt.Errorf("network %s: configuration key %s vanished; try again", c.cfg.Network, key)
	}
	var have networkConfig
	if err := json.Unmarshal(kvs[0].Value, &have); err != nil {
		return fmt.Errorf("network %s: configuration key %s holds %q: %w", c.cfg.Network, key, kvs[0].Value, err)
	}
	if have != want {
		return fmt.Errorf("network %s: %w: etcd has %s, this host wants %s",
			c.cfg.Network, ErrConfigMismatch, have, want)
	}
	return nil
}

// list reads every lease of the network.
func (c *Cluster) list(ctx context.Context) (int64, map[string]Lease, error) {
	rev, kvs, err := c.client.Range(ctx, c.keys.subnets)
	if err != nil {
		return 0, nil, fmt.Errorf("network %s: read leases: %w", c.cfg.Network, err)
	}
	out := make(map[string]Lease, len(kvs))
	for _, kv := range kvs {
		if l, ok := parseLease(c.keys, string(kv.Key), kv.Value); ok {
			out[string(kv.Key)] = l
		} else {
			c.log.Debug("ignoring a malformed lease", zap.ByteString("key", kv.Key))
		}
	}
	return rev, out, nil
}

// acquire takes a subnet lease (see the package doc for the order of
// preference) and returns it with its key and etcd lease.
func (c *Cluster) acquire(ctx context.Context, prefer netip.Prefix) (Lease, string, int64, error) {
	id, err := c.client.Grant(ctx, c.ttl)
	if err != nil {
		return Lease{}, "", 0, fmt.Errorf("network %s: grant an etcd lease: %w", c.cfg.Network, err)
	}
	l, key, err := c.take(ctx, id, prefer)
	if err != nil {
		// Best effort: the lease holds nothing and would expire anyway.
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.client.Revoke(rctx, id)
		cancel()
		return Lease{}, "", 0, err
	}
	return l, key, id, nil
}

func (c *Cluster) take(ctx context.Context, id int64, prefer netip.Prefix) (Lease, string, error) {
	for range maxAttempts {
		_, kvs, err := c.client.Range(ctx, c.keys.subnets)
		if err != nil {
			return Lease{}, "", fmt.Errorf("network %s: read leases: %w", c.cfg.Network, err)
		}
		taken, mine := c.scan(kvs)
		if mine.key != "" {
			// Our own key, from an earlier run whose lease has not
			// expired: move it to the new lease, unless it changed
			// since we read it.
			key := mine.key
			p, _ := c.keys.parseSubnet(key)
			ok, _, err := c.client.PutIf(ctx, key, c.lease(p).value(), id, ModRevision, mine.modRev, false)
			if err != nil {
				return Lease{}, "", fmt.Errorf("network %s: renew lease of %s: %w", c.cfg.Network, p, err)
			}
			if ok {
				if old := mine.lease; old != 0 && old != id {
					_ = c.client.Revoke(ctx, old) // holds nothing any more
				}
				c.log.Info("kept own subnet from an earlier run", zap.Stringer("subnet", p))
				return c.lease(p), key, nil
			}
			continue
		}
		p, ok := c.pick(taken, prefer)
		if !ok {
			return Lease{}, "", fmt.Errorf("network %s: %w: all %d subnets /%d of %s are leased", c.cfg.Network, ErrNoSubnet, c.count(), c.space.subnetLen, c.space.network)
		}
		key := c.keys.subnet(p)
		won, _, err := c.client.PutIf(ctx, key, c.lease(p).value(), id, CreateRevision, 0, false)
		if err != nil {
			return Lease{}, "", fmt.Errorf("network %s: lease %s: %w", c.cfg.Network, p, err)
		}
		if won {
			return c.lease(p), key, nil
		}
		c.log.Debug("lost the race for a subnet; reading the leases again", zap.Stringer("subnet", p))
	}
	return Lease{}, "", fmt.Errorf("network %s: lost the race for a subnet %d times in a row; try again", c.cfg.Network, maxAttempts)
}

// ownKey is a subnet key holding this host's ID.
type ownKey struct {
	key    string
	modRev int64
	lease  int64
}

// scan returns the subnets taken, by index, and the first key holding
// this host's ID, if any.
func (c *Cluster) scan(kvs []KV) (map[uint64]bool, ownKey) {
	taken := make(map[uint64]bool, len(kvs))
	var mine ownKey
	for _, kv := range kvs {
		p, ok := c.keys.parseSubnet(string(kv.Key))
		if !ok {
			continue
		}
		i, inSpace := c.space.index(p)
		if inSpace {
			taken[i] = true // even if its value is unreadable: someone's
		}
		if l, ok := parseLease(c.keys, string(kv.Key), kv.Value); ok && inSpace && l.HostID == c.cfg.HostID && mine.key == "" {
			mine = ownKey{key: string(kv.Key), modRev: kv.ModRevision, lease: kv.Lease}
		}
	}
	return taken, mine
}

func (c *Cluster) lease(p netip.Prefix) Lease {
	l := Lease{Subnet: p, HostID: c.cfg.HostID, PublicAddr: c.cfg.PublicAddr}
	if i, ok := c.space.index(p); ok && c.space6.network.IsValid() && i < c.space6.count() {
		l.Subnet6 = c.space6.subnet(i)
	}
	return l
}

// count is the number of leases the network has: its IPv4 subnets, or
// fewer if its IPv6 range is cut into fewer.
func (c *Cluster) count() uint64 {
	n := c.space.count()
	if c.space6.network.IsValid() {
		n = min(n, c.space6.count())
	}
	return n
}

// pick chooses a free subnet: prefer if it is one and free, else the
// first free one from the host's starting point.
func (c *Cluster) pick(taken map[uint64]bool, prefer netip.Prefix) (netip.Prefix, bool) {
	n := c.count()
	if i, ok := c.space.index(prefer); ok && i < n && !taken[i] {
		return prefer, true
	}
	if uint64(len(taken)) >= n {
		return netip.Prefix{}, false
	}
	start := c.space.start(c.cfg.HostID) % n
	for k := uint64(0); k < n; k++ {
		if i := (start + k) % n; !taken[i] {
			return c.space.subnet(i), true
		}
	}
	return netip.Prefix{}, false
}

// Lease returns this host's lease.
func (c *Cluster) Lease() Lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.own
}

// Peers returns the other hosts' leases, sorted by subnet.
func (c *Cluster) Peers() []Lease {
	c.mu.Lock()
	out := make([]Lease, 0, len(c.peers))
	for _, l := range c.peers {
		out = append(out, l)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	return out
}

// Close stops renewing the lease and watching, and closes the Backend. The lease is not revoked: it expires after the TTL,
// and a host that joins again with the same HostID before then keeps its
// subnet.
func (c *Cluster) Close() error { return c.close("stopped; the lease stays until it expires") }

func (c *Cluster) close(why string) error {
	var err error
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
		err = c.client.Close()
		c.log.Info(why)
	})
	return err
}

// Leave revokes the lease, so that the other hosts drop this one at once
// and the subnet is free, then closes the Cluster.
func (c *Cluster) Leave(ctx context.Context) error {
	c.mu.Lock()
	id, subnet := c.leaseID, c.own.Subnet
	c.mu.Unlock()
	rerr := c.client.Revoke(ctx, id)
	cerr := c.close("left; the lease is revoked")
	if rerr != nil {
		return fmt.Errorf("network %s: revoke lease of %s: %w", c.cfg.Network, subnet, rerr)
	}
	return cerr
}
