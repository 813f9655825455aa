package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/ipam"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/gateway/dns"
	"github.com/switchyard-net/switchyard/internal/evloop"
	"github.com/switchyard-net/switchyard/nat"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
	"github.com/switchyard-net/switchyard/tap"
)

// DefaultNetwork is the network every daemon has, Docker's docker0.
const DefaultNetwork = "bridge"

// DefaultHostLoopback is the address through which endpoints reach the
// host's loopback when a network has --host-loopback: the address Podman
// gives host.containers.internal with pasta. slirp4netns's 10.0.2.2 only
// makes sense inside its own 10.0.2.0/24.
var DefaultHostLoopback = netip.MustParseAddr("169.254.1.2")

// MTU bounds for a network: IPv4's minimum, and the largest MTU a TAP
// frame can carry with its headers in 64 KiB.
const (
	minMTU = 68
	maxMTU = 65520
)

// network is one live network: a switch, its gateway, its address pool and
// its endpoints.
type network struct {
	rec       store.Network
	sw        *vswitch.Switch
	gw        *gateway.Gateway
	nat       *nat.Table
	addrs     *addrs
	addrs6    *addrs // the IPv6 pool of a dual-stack network, else nil
	dns       *dns.Server
	dns6      *dns.Server  // a dual-stack network's, at its IPv6 gateway
	loop      *evloop.Loop // reads the network's TAPs; nil with Config.Spin < 0
	tun       *netTunnel   // nil unless the network spans hosts
	hostIf    *hostIf      // nil unless the network has a host interface (direct.go)
	direct    *netDirect   // nil unless routing "direct" with a cluster (clusterdirect.go)
	names     int          // names the DNS server answers
	endpoints map[string]*endpoint
	// pending holds the records of endpoints being connected or
	// disconnected: their names, namespaces and addresses are taken,
	// though they are in no other table.
	pending map[string]store.Endpoint
}

// records returns the records of the network's endpoints, those being
// connected or disconnected included.
func (n *network) records() []store.Endpoint {
	out := make([]store.Endpoint, 0, len(n.endpoints)+len(n.pending))
	for _, e := range n.endpoints {
		out = append(out, e.rec)
	}
	for _, rec := range n.pending {
		out = append(out, rec)
	}
	return out
}

// taken reports whether an endpoint of the network, or one being connected
// or disconnected, has the name.
func (n *network) taken(name string) bool {
	_, pending := n.pending[name]
	return pending || n.endpoints[name] != nil
}

// sortedEndpoints returns the network's endpoints by name.
func (n *network) sortedEndpoints() []*endpoint {
	es := make([]*endpoint, 0, len(n.endpoints))
	for _, e := range n.endpoints {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].rec.Name < es[j].rec.Name })
	return es
}

// sortedNetworksLocked returns the networks by name.
func (d *Daemon) sortedNetworksLocked() []*network {
	ns := make([]*network, 0, len(d.networks))
	for _, n := range d.networks {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].rec.Name < ns[j].rec.Name })
	return ns
}

// namePattern is Docker's rule for network and container names.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func checkName(kind, name string) error {
	if !namePattern.MatchString(name) || len(name) > 64 {
		return invalid("invalid %s name %q: want letters, digits, '_', '.', '-', starting with a letter or digit, at most 64 characters", kind, name)
	}
	return nil
}

// CreateNetwork validates req, stores the network and brings it up. The
// name and subnet are reserved under Daemon.mu (Daemon.reserved); the
// network is brought up without it, for it may take a while: a tunnel
// network joins its cluster, until ctx ends or clusterTimeout.
func (d *Daemon) CreateNetwork(ctx context.Context, req api.NetworkCreate) (api.Network, error) {
	host := d.readHost(req)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return api.Network{}, errClosed
	}
	d.host = host
	rec, err := d.newNetworkRecord(req)
	if err == nil && d.reserved[rec.Name].Name != "" {
		err = conflict("network %q is being created or removed", rec.Name)
	}
	if err != nil {
		d.mu.Unlock()
		return api.Network{}, err
	}
	d.reserved[rec.Name] = rec
	d.busy.Add(1)
	d.mu.Unlock()
	defer d.busy.Done()
	return d.create(ctx, rec)
}

// create brings up and stores a network whose record is reserved, and
// adds it to the daemon's networks.
func (d *Daemon) create(ctx context.Context, rec store.Network) (api.Network, error) {
	n, err := d.bringUp(ctx, rec, false)
	if err != nil {
		err = fmt.Errorf("create network %s: %w", rec.Name, err)
	} else if err = d.store.PutNetwork(n.rec); err != nil {
		err = fmt.Errorf("create network %s: save state: %w", rec.Name, err)
	}
	d.mu.Lock()
	delete(d.reserved, rec.Name)
	if err == nil && d.closed {
		err = errClosed
		d.store.DeleteNetwork(rec.Name)
	}
	if err != nil {
		d.mu.Unlock()
		if n != nil {
			n.remove(d.log)
		}
		return api.Network{}, err
	}
	d.networks[rec.Name] = n
	v := d.networkView(n)
	d.mu.Unlock()
	d.log.Info("network created", zap.String("network", rec.Name), zap.Stringer("subnet", rec.Subnet),
		zap.Stringer("gateway", rec.Gateway), zap.Int("mtu", rec.MTU), zap.Bool("icc", rec.ICC), zap.Bool("internal", rec.Internal))
	return v, nil
}

// overlapping returns a network one of whose subnets overlaps p, or nil.
// A network being created or removed counts.
func (d *Daemon) overlapping(p netip.Prefix) *network {
	for _, n := range d.networks {
		for _, s := range n.rec.Subnets() {
			if ipam.Overlaps(s, p) {
				return n
			}
		}
	}
	for _, rec := range d.reserved {
		for _, s := range rec.Subnets() {
			if ipam.Overlaps(s, p) {
				return &network{rec: rec}
			}
		}
	}
	return nil
}

// hostView is what Config.HostPrefixes answered, read before Daemon.mu is
// taken (it is a netlink call) for newNetworkRecord's pickSubnet.
type hostView struct {
	prefixes []netip.Prefix
	err      error
}

// readHost reads the host's prefixes if a network of req needs them (a
// family of it has no subnet named). Call it without Daemon.mu, and give
// the answer to d.host under the lock before newNetworkRecord.
func (d *Daemon) readHost(req api.NetworkCreate) hostView {
	var errs fieldErrs
	if a := parseAddressing(&errs, req); a.named() {
		return hostView{}
	}
	p, err := d.cfg.HostPrefixes()
	return hostView{p, err}
}

// ipv6SubnetsTried bounds the /64s of the ULA pool pickSubnet looks at.
const ipv6SubnetsTried = 4096

// pickSubnet chooses a subnet of family f. IPv4 as Docker does: the
// first of its default pools that overlaps neither a route or address of
// the host nor another network. IPv6: the first free /64 of the daemon's
// ULA pool (Config.IPv6Pool).
// The host's prefixes are those hostPrefixesLocked answers.
func (d *Daemon) pickSubnet(f int) (netip.Prefix, error) {
	if d.host.err != nil {
		return netip.Prefix{}, fmt.Errorf("read the host's routes to pick a free subnet: %w", d.host.err)
	}
	inUse := slices.Clone(d.host.prefixes)
	for _, n := range d.networks {
		inUse = append(inUse, n.rec.Subnets()...)
	}
	for _, rec := range d.reserved {
		inUse = append(inUse, rec.Subnets()...)
	}
	for _, rec := range d.allRecords() {
		inUse = append(inUse, rec.Routes...) // other hosts' subnets
		if rec.Direct != nil {
			inUse = append(inUse, rec.Direct.Range) // the cluster's, routed
		}
	}
	candidates := ipam.DefaultPools()
	if f == fam6 {
		candidates = ipam.Split(d.ipv6Pool(), 64, ipv6SubnetsTried)
	}
	p, err := ipam.NextFree(candidates, inUse)
	if err != nil {
		if f == fam6 {
			return netip.Prefix{}, conflict("no free /64 left in the IPv6 pool %s; choose an IPv6 subnet for the network", d.ipv6Pool())
		}
		return netip.Prefix{}, conflict("no free subnet left in the default pools; choose a subnet for the network: %v", err)
	}
	return p, nil
}

// ipv6Pool is Config.IPv6Pool, or a ULA /48 of this daemon's own.
func (d *Daemon) ipv6Pool() netip.Prefix {
	if d.cfg.IPv6Pool.IsValid() {
		return d.cfg.IPv6Pool
	}
	return ipam.ULAPool([]byte(d.id))
}

// ensureDefaultNetwork creates "bridge" if it does not exist, on
// 172.17.0.0/16 unless the host uses that range already. It runs in New,
// before anyone else has the daemon.
func (d *Daemon) ensureDefaultNetwork() error {
	req := api.NetworkCreate{Name: DefaultNetwork, IPv6: d.cfg.DefaultIPv6}
	host := d.readHost(req)
	d.mu.Lock()
	if d.networks[DefaultNetwork] != nil {
		d.mu.Unlock()
		return nil
	}
	d.host = host
	rec, err := d.newNetworkRecord(req)
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("create the default network %s: %w", DefaultNetwork, err)
	}
	rec.Default = true
	if first := ipam.DefaultPools()[0]; rec.Subnet != first {
		d.log.Warn("default network does not use Docker's usual subnet: it is in use on this host",
			zap.String("network", DefaultNetwork), zap.Stringer("usual", first), zap.Stringer("subnet", rec.Subnet))
	}
	_, err = d.create(context.Background(), rec)
	return err
}

// bringUp builds the live network for a record: switch, gateway and pool,
// and its host interface, made anew or, restoring, re-attached.
func (d *Daemon) bringUp(ctx context.Context, rec store.Network, restoring bool) (*network, error) {
	// The loop comes first: the tunnel, made with the overlay, is read
	// by it too.
	loop, err := d.newLoop(rec)
	if err != nil {
		return nil, err
	}
	ov, rec, err := d.prepareOverlay(ctx, rec, restoring, loop)
	if err != nil {
		closeLoop(loop)
		return nil, err
	}
	rec, pools, err := d.newPools(rec)
	if err != nil {
		ov.close()
		closeLoop(loop)
		return nil, err
	}
	binder := newLeaseBinder(d.log.With(zap.String("network", rec.Name)))
	sw := vswitch.New(vswitch.Config{Name: rec.Name, Logger: d.log})
	gw, err := gateway.New(sw, d.gatewayConfig(rec, pools, binder))
	if err != nil {
		sw.Close()
		closeLoop(loop)
		ov.close()
		return nil, err
	}
	binder.start(sw, gw)
	n := &network{rec: rec, sw: sw, gw: gw, nat: pools.nat, addrs: pools.v4, addrs6: pools.v6, endpoints: map[string]*endpoint{},
		pending: map[string]store.Endpoint{}, loop: loop}
	if err := d.startNetwork(ctx, n, ov.tun, restoring); err != nil {
		ov.close() // n.shutdown closed the loop; the tunnel's Close does not need it
		return nil, err
	}
	if ov.direct != nil {
		n.direct = ov.direct
		d.startDirect(rec, ov.direct, gw)
	}
	d.syncNATLocked(n, d.hostAddrs())
	return n, nil
}

// overlay is what links a network to other hosts before its switch
// exists: a tunnel, or a direct-routing cluster; either may be nil.
type overlay struct {
	tun       *netTunnel
	direct    *netDirect
	restoring bool
}

// close undoes prepareOverlay when the network cannot come up; a direct
// network made anew leaves its cluster.
func (o overlay) close() {
	if o.tun != nil {
		o.tun.close()
		o.tun.port.Close()
	}
	if o.direct != nil {
		o.direct.close(!o.restoring)
	}
}

// prepareOverlay prepares rec's tunnel, or its direct routing (joining
// the cluster when the network is made anew), and returns rec with the
// subnet they give this host.
func (d *Daemon) prepareOverlay(ctx context.Context, rec store.Network, restoring bool, loop *evloop.Loop) (overlay, store.Network, error) {
	o := overlay{restoring: restoring}
	if rec.Tunnel != nil {
		var err error
		if o.tun, rec, err = d.prepareTunnel(ctx, rec, loop); err != nil {
			return o, rec, err
		}
	}
	if rec.Direct != nil {
		o.direct = d.newNetDirect(rec)
		if !restoring {
			var err error
			if rec, err = d.joinDirectNow(ctx, rec, o.direct); err != nil {
				return o, rec, err
			}
		}
	}
	return o, rec, nil
}

// joinDirectNow joins rec's direct-routing cluster within clusterTimeout
// and returns rec with the subnet the cluster leased this host.
func (d *Daemon) joinDirectNow(ctx context.Context, rec store.Network, direct *netDirect) (store.Network, error) {
	jctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	c, err := d.joinDirect(jctx, rec, direct)
	cancel()
	if err != nil {
		return rec, err
	}
	direct.cluster.Store(c)
	rec = directRecord(rec, c.Lease().Subnet)
	direct.mu.Lock()
	direct.own = rec.Subnet
	direct.mu.Unlock()
	return rec, nil
}

// netPools are a network's address pools (v6 nil without a second,
// IPv6, family) and its NAT table.
type netPools struct {
	v4, v6 *addrs
	nat    *nat.Table
}

// newPools makes rec's address pools and NAT table, and returns rec with
// the ranges a tunnel leased this host.
func (d *Daemon) newPools(rec store.Network) (store.Network, netPools, error) {
	var pools netPools
	icfg := firstPoolConfig(rec)
	if rec.Tunnel != nil && rec.Tunnel.HostSubnet.IsValid() {
		rec.IPRange = icfg.IPRange
	}
	pool, err := ipam.New(icfg)
	if err != nil {
		return rec, pools, err
	}
	if pools.nat, err = nat.NewTable(d.natConfig(rec)); err != nil {
		return rec, pools, err
	}
	pools.v4 = newAddrs(pool)
	if rec.Subnet6.IsValid() {
		if rec.Tunnel != nil && rec.Tunnel.HostSubnet6.IsValid() {
			rec.IPRange6 = rec.Tunnel.HostSubnet6 // this host's IPv6 lease
		}
		p6, err := ipam.New(ipam.Config{Subnet: rec.Subnet6, Gateway: rec.Gateway6, IPRange: rec.IPRange6, Aux: auxOf(rec.AuxAddresses, fam6)})
		if err != nil {
			return rec, pools, err
		}
		pools.v6 = newAddrs(p6)
	}
	return rec, pools, nil
}

// firstPoolConfig is the configuration of the pool of rec's first family:
// its aux addresses with the host interface's, and a tunnel's lease as
// its range.
func firstPoolConfig(rec store.Network) ipam.Config {
	icfg := ipam.Config{Subnet: rec.Subnet, Gateway: rec.Gateway, IPRange: rec.IPRange, Aux: auxOf(rec.AuxAddresses, familyOf(rec.Subnet.Addr()))}
	if hi := rec.HostInterface; hi != nil {
		if icfg.Aux == nil {
			icfg.Aux = map[string]netip.Addr{}
		}
		icfg.Aux[hostIfAuxName] = hi.Addr
	}
	if rec.Tunnel != nil && rec.Tunnel.HostSubnet.IsValid() {
		icfg.IPRange = rec.Tunnel.HostSubnet // this host's lease
	}
	return icfg
}

// natConfig is the configuration of rec's NAT table.
func (d *Daemon) natConfig(rec store.Network) nat.Config {
	ncfg := nat.Config{Network: rec.Name, Gateway: rec.Gateway, Isolated: !rec.ICC, Internal: rec.Internal,
		MasqPorts: d.cfg.MasqPorts, MasqPortsPerSource: d.cfg.MasqPortsPerSource}
	ncfg.Subnet, ncfg.Gateway, _ = rec.IPv4()
	ncfg.Subnet6, ncfg.Gateway6, _ = rec.IPv6()
	return ncfg
}

// gatewayConfig is the configuration of rec's gateway: its addresses, NAT
// and egress, routes through the host interface, and the DHCP, RA and
// DHCPv6 servers of its families.
func (d *Daemon) gatewayConfig(rec store.Network, pools netPools, binder *leaseBinder) gateway.Config {
	gcfg := gateway.Config{
		Network: rec.Name, Subnet: rec.Subnet, Addr: rec.Gateway, MAC: rec.GatewayMAC, MTU: rec.MTU,
		Internal: rec.Internal, HostLoopback: rec.HostLoopback, NAT: pools.nat, Logger: d.log,
		Refuse: d.ownListener, Subnet6: rec.Subnet6, Addr6: rec.Gateway6,
		// Egress flows hold host sockets from the same descriptors as
		// published ports: they share the ports' connection limit.
		Egress: gateway.EgressConfig{Admit: d.ports.AdmitExternal, Release: d.ports.ReleaseExternal},
	}
	if hi := rec.HostInterface; hi != nil && !rec.Internal {
		// The host interface is the next hop of the routes, and of the
		// replies to whoever came in through it (the return path).
		gcfg.Routes, gcfg.NextHop, gcfg.NextHopMAC = rec.Routes, hi.Addr, hi.MAC
	}
	if rec.Subnet.Addr().Is4() {
		// Clients get the gateway as router and resolver, and the
		// network's name as their domain.
		gcfg.DHCP = &gateway.DHCPConfig{Allocator: dhcpAllocator{pools.v4, binder}, DNS: []netip.Addr{rec.Gateway}}
		if !rec.Default {
			gcfg.DHCP.DomainName = rec.Name
		}
	}
	if sub6, gw6, _ := rec.IPv6(); sub6.IsValid() {
		gcfg.RA, gcfg.DHCP6 = d.ipv6Config(rec, gw6, pools)
	}
	return gcfg
}

// ipv6Config is the RA and DHCPv6 configuration of a network with IPv6.
// Hosts on the network learn the prefix (SLAAC), the gateway as default
// router and the DNS server from its advertisements; their M flag sends
// DHCPv6 clients (VMs on --tap-only TAPs) to the gateway's DHCPv6 server
// for their endpoint's address.
func (d *Daemon) ipv6Config(rec store.Network, gw6 netip.Addr, pools netPools) (*gateway.RAConfig, *gateway.DHCP6Config) {
	ra := &gateway.RAConfig{RDNSS: []netip.Addr{gw6}, Interval: d.cfg.RAInterval, NoSLAAC: rec.NoSLAAC}
	v6 := pools.v6
	if v6 == nil { // IPv6-only: the first pool is the IPv6 one
		v6 = pools.v4
	}
	dhcp6 := &gateway.DHCP6Config{Reservations: reservations6{v6}, DNS: []netip.Addr{gw6}}
	if !rec.Default {
		dhcp6.DomainName = rec.Name
	}
	return ra, dhcp6
}

// startNetwork opens the host interface of n, starts its DNS server and
// its tunnel. On error n is shut down (its host interface forgotten).
func (d *Daemon) startNetwork(ctx context.Context, n *network, tun *netTunnel, restoring bool) error {
	if n.rec.HostInterface != nil {
		if err := d.openHostInterface(ctx, n, restoring); err != nil {
			n.shutdown()
			return err
		}
	}
	if err := d.startDNS(n); err != nil {
		n.forgetHostInterface(d.log)
		n.shutdown()
		return err
	}
	if tun != nil {
		if err := d.startTunnel(n, tun); err != nil {
			n.forgetHostInterface(d.log)
			n.shutdown()
			return err
		}
	}
	return nil
}

// auxOf returns the aux addresses of family f.
func auxOf(aux map[string]netip.Addr, f int) map[string]netip.Addr {
	var out map[string]netip.Addr
	for name, a := range aux {
		if familyOf(a) == f {
			if out == nil {
				out = map[string]netip.Addr{}
			}
			out[name] = a
		}
	}
	return out
}

// slaacPrefix is the IPv6 subnet the gateway advertises for SLAAC, if
// any: the port security of an endpoint allows the address SLAAC forms
// from it.
func (n *network) slaacPrefix() netip.Prefix {
	if n.rec.NoSLAAC {
		return netip.Prefix{}
	}
	p, _, _ := n.rec.IPv6()
	return p
}

// release gives rec's addresses back to the network's pools.
func (n *network) release(rec store.Endpoint) {
	n.addrs.Release(rec.Address.Addr())
	if n.addrs6 != nil && rec.Address6.IsValid() {
		n.addrs6.Release(rec.Address6.Addr())
	}
}

// shutdown detaches every port of the network without deleting TAP
// devices (daemon shutdown).
func (n *network) shutdown() {
	if n.tun != nil {
		n.tun.close()
	}
	if n.dns6 != nil {
		n.dns6.Close()
	}
	if n.direct != nil {
		n.direct.close(false)
	}
	if n.dns != nil {
		n.dns.Close()
	}
	n.gw.Close()
	n.sw.Close()
	closeLoop(n.loop)
}

// DefaultSpin is Config.Spin's default: longer than the gap between a
// small request and the next on the paths that cross Switchyard twice
// (a published port's round trip, 100–140 µs on these VMs, and a
// tunnel's), short enough that the loop's core is back to idle at once
// when the traffic stops. 50 µs, the first default, caught the answer
// between two containers but woke the loop once per round trip on those
// paths; 200 µs gained no more round trips than 100 but burnt more CPU
// while they ran (benchmarks/RESULTS.md, "The spin window: 50, 100 or
// 200 µs").
const DefaultSpin = 100 * time.Microsecond

// NoSpin as Config.Spin makes the loops park as soon as nothing is ready.
const NoSpin = time.Nanosecond

// newLoop makes the loop that reads rec's TAPs and tunnel, or nil with
// Config.Spin < 0 (a reader goroutine per port).
func (d *Daemon) newLoop(rec store.Network) (*evloop.Loop, error) {
	if d.cfg.Spin < 0 {
		return nil, nil
	}
	spin := d.cfg.Spin
	if spin == 0 {
		spin = DefaultSpin
	}
	loop, err := evloop.New(evloop.Config{Spin: spin, BufLen: tap.LoopBufLen, Yield: stackport.DeliveredSince()})
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", rec.Name, err)
	}
	return loop, nil
}

// closeLoop closes loop if there is one.
func closeLoop(loop *evloop.Loop) {
	if loop != nil {
		loop.Close()
	}
}

// remove shuts a network down for good: it leaves its cluster too.
func (n *network) remove(log *zap.Logger) {
	if n.tun != nil {
		n.tun.leave(log)
	}
	if n.direct != nil {
		n.direct.close(true)
	}
	n.forgetHostInterface(log)
	n.shutdown()
}

// RemoveNetwork removes a network with no endpoints. Its name and subnet
// stay reserved until it is shut down, which is done without Daemon.mu
// (leaving a cluster is a call to etcd). ctx ended before the removal
// begins cancels it.
func (d *Daemon) RemoveNetwork(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	n := d.networks[name]
	if n == nil {
		return notFoundNetwork(name)
	}
	if n.rec.Default {
		return conflict("%s is the default network and cannot be removed", name)
	}
	if len(n.endpoints)+len(n.pending) > 0 {
		names := make([]string, 0, len(n.endpoints)+len(n.pending))
		for _, rec := range n.records() {
			names = append(names, rec.Name)
		}
		sort.Strings(names)
		return conflict("network %q has active endpoints (%s): disconnect them first", name, strings.Join(names, ", "))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	if err := d.store.DeleteNetwork(name); err != nil {
		return fmt.Errorf("remove network %s: save state: %w", name, err)
	}
	delete(d.networks, name)
	d.reserved[name] = n.rec
	d.busy.Add(1)
	d.mu.Unlock()
	n.remove(d.log)
	d.log.Info("network removed", zap.String("network", name))
	d.busy.Done()
	d.mu.Lock()
	delete(d.reserved, name)
	return nil
}

// view renders the network for the API.
func (d *Daemon) networkView(n *network) api.Network {
	st := n.sw.Stats()
	eg := n.gw.Stats()
	v := api.Network{
		Name: n.rec.Name, Subnet: n.rec.Subnet, Gateway: n.rec.Gateway, GatewayMAC: n.rec.GatewayMAC.String(),
		IPRange: n.rec.IPRange, AuxAddresses: n.rec.AuxAddresses, MTU: n.rec.MTU, ICC: n.rec.ICC,
		Internal: n.rec.Internal, HostLoopback: n.rec.HostLoopback, Default: n.rec.Default, Created: n.rec.Created,
		Endpoints: len(n.endpoints), FDBEntries: st.FDBEntries, GatewayStats: portStats(n.gw.Link().Stats()),
		Egress: egressView(eg),
		DNS:    dnsView(n, d.upstreams), DHCPLeases: dhcpLeases(n), Tunnel: tunnelInfo(n),
		Labels:  n.rec.Labels,
		Subnets: n.rec.Subnets(),
	}
	v.Subnet6, v.Gateway6, v.IPRange6 = n.rec.IPv6()
	slaac := n.slaacPrefix()
	v.SLAAC = slaac.Bits() == 64
	if slaac.IsValid() && !v.SLAAC {
		v.Warnings = append(v.Warnings, fmt.Sprintf("IPv6 subnet %s is not a /64: SLAAC is off (the gateway advertises it on-link only); "+
			"endpoints get their IPv6 addresses from the daemon", v.Subnet6))
	}
	directView(n, &v)
	directClusterView(n, &v)
	return v
}

// dockerMAC returns 02:42 followed by the last four bytes of addr, as
// Docker derives MAC addresses from IPv4 addresses.
func dockerMAC(addr netip.Addr) vswitch.MAC {
	b := addr.AsSlice()
	b = b[len(b)-4:]
	return vswitch.MAC{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// portStats converts switch counters for the API.
func portStats(s vswitch.PortStats) api.PortStats {
	out := api.PortStats{
		RXFrames: s.RX.Frames, RXBytes: s.RX.Bytes, RXDrops: s.RX.Drops,
		TXFrames: s.TX.Frames, TXBytes: s.TX.Bytes, TXDrops: s.TX.Drops,
	}
	for _, r := range vswitch.DropReasons() {
		if v := s.RX.DropsBy[r] + s.TX.DropsBy[r]; v > 0 {
			if out.DropsBy == nil {
				out.DropsBy = map[string]uint64{}
			}
			out.DropsBy[r.String()] = v
		}
	}
	return out
}
