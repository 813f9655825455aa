package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/gateway"
)

// Cluster networks with routing "direct" (issue 15; flannel's host-gw):
// the network's subnet on this host is its lease of the cluster's range,
// and every other host's lease is a routed subnet, in the gateway (which
// forwards it to the host interface, gateway.SetRoutes) and in the host
// kernel (a route to the lease via that host's public address, which
// must be on a network this host reaches directly). Both follow the
// leases as hosts come and go; there is no tunnel.
//
// Why the subnet is the lease, not the range as with a tunnel: without
// a tunnel the range is not one L2 segment, so an endpoint that thought
// the whole range on-link would look for another host's containers by
// ARP and never reach them. The lease is known only once this host has
// joined etcd, so bringUp joins before it builds the address pool, and
// rewrites the record (subnet, gateway, host interface address) to the
// lease; the checks of the request against the other networks ran on
// the whole range.

// parseRouting checks `routing` and `public_addr` and, for routing
// "direct", the cluster fields.
func parseRouting(errs *fieldErrs, req api.NetworkCreate, subnet netip.Prefix) *store.DirectCluster {
	if !routesDirect(errs, req) {
		return nil
	}
	checkDirectFields(errs, req)
	pa := parsePublicAddr(errs, req, subnet)
	return parseDirectCluster(errs, req, subnet, pa)
}

// routesDirect reports whether req asks for routing "direct"; it refuses
// an unknown routing, and `public_addr` without routing.
func routesDirect(errs *fieldErrs, req api.NetworkCreate) bool {
	switch req.Routing {
	case "":
		if req.PublicAddr != "" {
			errs.add("public_addr", req.PublicAddr, "given without `routing` direct", "`routing` direct with `cluster`, or no `public_addr`")
		}
		return false
	case "direct":
		return true
	default:
		errs.add("routing", req.Routing, "unknown routing", "direct (with `cluster`)")
		return false
	}
}

// checkDirectFields checks the fields routing "direct" needs (a cluster,
// a host interface, the subnet) and refuses those it excludes.
func checkDirectFields(errs *fieldErrs, req api.NetworkCreate) {
	excl := func(field, value, why string) {
		errs.add(field, value, "excludes `routing` direct: "+why, "no `"+field+"`")
	}
	if req.Cluster == "" {
		errs.add("routing", req.Routing, "needs `cluster`: the other hosts' subnets come from its leases",
			"`cluster` etcd://HOST:PORT, or `routes` with the other hosts' subnets and no `routing`")
	}
	if req.Tunnel != "" {
		excl("tunnel", req.Tunnel, "direct routing carries no tunnel")
	}
	if len(req.Routes) > 0 {
		excl("routes", strings.Join(req.Routes, ","), "the routes come from the cluster's leases")
	}
	if req.HostInterface == "" {
		errs.add("host_interface", "", "missing: `routing` direct routes through the host interface", "a name for it, like sy-direct")
	}
	if req.HostInterfaceAddr != "" {
		excl("host_interface_addr", req.HostInterfaceAddr, "the host interface takes the last usable address of this host's lease")
	}
	if req.Gateway != "" {
		excl("gateway", req.Gateway, "the gateway is the first address of this host's lease")
	}
	if req.IPRange != "" {
		excl("ip_range", req.IPRange, "this host's range is its lease")
	}
	if len(req.AuxAddresses) > 0 {
		excl("aux_addresses", strings.Join(req.AuxAddresses, ","), "the addresses of the range belong to the hosts' leases")
	}
	if req.Internal {
		excl("internal", "true", "an internal network never routes")
	}
	if req.Subnet == "" && len(req.Subnets) == 0 {
		errs.add("subnet", "", "missing: `routing` direct needs the cluster's whole range", "the same range on every host, like 10.240.0.0/16")
	}
}

// parsePublicAddr checks this host's public address against subnet's
// family; a bad one is returned invalid.
func parsePublicAddr(errs *fieldErrs, req api.NetworkCreate, subnet netip.Prefix) netip.Addr {
	pa, err := netip.ParseAddr(req.PublicAddr)
	if err != nil || pa.Zone() != "" || pa.IsUnspecified() || pa.IsMulticast() {
		errs.add("public_addr", req.PublicAddr, "not this host's address", "this host's IP on the network the hosts share, like 192.0.2.1")
		return netip.Addr{}
	}
	if subnet.IsValid() && pa.Is4() != subnet.Addr().Is4() {
		errs.add("public_addr", req.PublicAddr, "not of the subnet's address family", "an address of the family of "+subnet.String())
	}
	return pa
}

// parseDirectCluster checks the cluster's own fields as a tunnel's are;
// the public address pa stands for the tunnel's listening address.
func parseDirectCluster(errs *fieldErrs, req api.NetworkCreate, subnet netip.Prefix, pa netip.Addr) *store.DirectCluster {
	dc := &store.DirectCluster{Range: subnet, PublicAddr: pa}
	// The lease's key needs a port with the address; direct routing has
	// no use for it, and publishes port 1.
	treq := req
	treq.IPRange = ""
	if pa.IsValid() {
		dc.Cluster.Listen = netip.AddrPortFrom(pa, 1)
		treq.TunnelListen = dc.Cluster.Listen.String()
	} else {
		dc.Cluster.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), 1)
		treq.TunnelListen = "-" // reported above as public_addr
	}
	var cerrs fieldErrs
	parseTunnelCluster(&cerrs, treq, subnet, netip.Prefix{}, &dc.Cluster)
	for _, e := range cerrs {
		if e.Field != "tunnel_listen" {
			*errs = append(*errs, e)
		}
	}
	dc.Cluster.Mode = "direct"
	return dc
}

// RouteTable is the host kernel's routing table, as a network with
// routing "direct" writes it: a route to each other host's lease.
type RouteTable interface {
	// Replace adds the route dst via gw, or replaces a route to dst.
	Replace(dst netip.Prefix, gw netip.Addr) error
	// Delete removes the route dst via gw; one already gone is no error.
	Delete(dst netip.Prefix, gw netip.Addr) error
}

// netlinkRoutes is the RouteTable of the daemon's own network namespace.
type netlinkRoutes struct{}

func (netlinkRoutes) route(dst netip.Prefix, gw netip.Addr) *netlink.Route {
	return &netlink.Route{
		Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
		Gw:  gw.AsSlice(), Protocol: routeProtocol,
	}
}

// routeProtocol marks the kernel routes Switchyard writes (ip route
// shows "proto 0x5e"); any number outside the kernel's own would do.
const routeProtocol = 0x5e

func (t netlinkRoutes) Replace(dst netip.Prefix, gw netip.Addr) error {
	if err := netlink.RouteReplace(t.route(dst, gw)); err != nil {
		return fmt.Errorf("ip route replace %s via %s: %w", dst, gw, err)
	}
	return nil
}

func (t netlinkRoutes) Delete(dst netip.Prefix, gw netip.Addr) error {
	err := netlink.RouteDel(t.route(dst, gw))
	if err != nil && !strings.Contains(err.Error(), "no such process") {
		return fmt.Errorf("ip route del %s via %s: %w", dst, gw, err)
	}
	return nil
}

// netDirect is a live network's membership of its cluster with routing
// "direct".
type netDirect struct {
	log     *zap.Logger
	kernel  RouteTable
	own     netip.Prefix // this host's subnet (the record's)
	cluster atomic.Pointer[cluster.Cluster]
	ctx     context.Context // ends when the network stops
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	gw        *gateway.Gateway            // set once the gateway is up
	installed map[netip.Prefix]netip.Addr // kernel routes written
	closed    bool
}

func (d *Daemon) newNetDirect(rec store.Network) *netDirect {
	x := &netDirect{log: d.log.With(zap.String("network", rec.Name)), kernel: d.cfg.KernelRoutes,
		own: rec.Subnet, installed: map[netip.Prefix]netip.Addr{}}
	if x.kernel == nil {
		x.kernel = netlinkRoutes{}
	}
	x.ctx, x.stop = context.WithCancel(context.Background())
	return x
}

// joinDirect joins rec's cluster; the lease is this host's subnet.
func (d *Daemon) joinDirect(ctx context.Context, rec store.Network, x *netDirect) (*cluster.Cluster, error) {
	dc := rec.Direct
	if d.cfg.Cluster == nil {
		return nil, fmt.Errorf("network %s: %w", rec.Name, ErrNoCluster)
	}
	where := fmt.Sprintf("join cluster %s for network %s", strings.Join(dc.Cluster.Cluster, ","), rec.Name)
	dial, err := clusterDial(&dc.Cluster)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	backend, err := d.cfg.Cluster(ctx, dial)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c, err := cluster.Join(ctx, cluster.Config{
		Backend: backend, Network: rec.Name, NetworkCIDR: dc.Range, SubnetLen: dc.Cluster.SubnetLen,
		PublicAddr: dc.Cluster.Listen, HostID: dc.Cluster.HostID, PreviousSubnet: dc.Cluster.HostSubnet,
		TTL: time.Duration(dc.Cluster.LeaseTTL) * time.Second, Logger: x.log,
		OnChange: func(e cluster.Event) {
			if e.Type == cluster.LeaseChanged {
				x.leaseChanged(e.Lease.Subnet)
			}
			x.sync()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return c, nil
}

// directRecord rewrites rec for this host's lease: the subnet, its
// gateway and the host interface's address.
func directRecord(rec store.Network, lease netip.Prefix) store.Network {
	rec.Subnet, rec.IPRange = lease, lease
	rec.Gateway = lease.Masked().Addr().Next()
	rec.GatewayMAC = dockerMAC(rec.Gateway)
	hi := *rec.HostInterface
	hi.Addr = lastUsable(lease)
	hi.MAC = dockerMAC(hi.Addr)
	rec.HostInterface = &hi
	dc := *rec.Direct
	dc.Cluster.HostSubnet = lease
	rec.Direct = &dc
	return rec
}

// startDirect hands x the network's gateway and routes what the cluster
// knows; a restored network (no cluster yet) rejoins in the background.
func (d *Daemon) startDirect(rec store.Network, x *netDirect, gw *gateway.Gateway) {
	x.mu.Lock()
	x.gw = gw
	x.mu.Unlock()
	if x.cluster.Load() != nil {
		x.sync()
		return
	}
	x.wg.Add(1)
	go d.rejoinDirect(rec, x)
}

// rejoinDirect retries joining the cluster until it works or the network
// stops.
func (d *Daemon) rejoinDirect(rec store.Network, x *netDirect) {
	defer x.wg.Done()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(x.ctx, clusterTimeout)
		c, err := d.joinDirect(ctx, rec, x)
		cancel()
		if err == nil {
			if got := c.Lease().Subnet; got != rec.Subnet {
				x.log.Error("rejoined the cluster with another subnet: this host's endpoints have addresses of the old one; not routing. Remove and create the network again",
					zap.Stringer("old", rec.Subnet), zap.Stringer("new", got))
				c.Close()
				return
			}
			x.log.Info("rejoined the cluster", zap.Stringer("subnet", rec.Subnet))
			if x.ctx.Err() != nil {
				c.Close()
				return
			}
			x.cluster.Store(c)
			x.sync()
			return
		}
		if attempt == 0 {
			x.log.Warn("cluster unreachable; the network runs without routes to the other hosts, retrying", zap.Error(err))
		}
		select {
		case <-x.ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// leaseChanged reports this host's new lease: if it is another subnet,
// the endpoints' addresses are the old one's, which the other hosts no
// longer route here.
func (x *netDirect) leaseChanged(lease netip.Prefix) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gw != nil && lease != x.own {
		x.log.Error("this host lost its subnet lease and took another: its endpoints keep addresses of the old one, which the other hosts no longer route here; remove and create the network again",
			zap.Stringer("old", x.own), zap.Stringer("new", lease))
	}
}

// sync makes the gateway's routes and the kernel's routes those of the
// other hosts' leases now.
func (x *netDirect) sync() {
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.cluster.Load()
	if c == nil || x.gw == nil || x.closed {
		return
	}
	want := map[netip.Prefix]netip.Addr{}
	for _, l := range c.Peers() {
		via := l.PublicAddr.Addr()
		switch {
		case l.Subnet.Overlaps(x.own):
			x.log.Error("another host's lease overlaps this host's subnet: not routed", zap.Stringer("lease", l.Subnet), zap.String("host", l.HostID))
			continue
		case !via.IsValid() || via.IsUnspecified():
			x.log.Warn("another host's lease has no address to route to: not routed", zap.Stringer("lease", l.Subnet), zap.String("host", l.HostID))
			continue
		}
		want[l.Subnet] = via
	}
	routes := make([]netip.Prefix, 0, len(want))
	for p := range want {
		routes = append(routes, p)
	}
	slices.SortFunc(routes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if err := x.gw.SetRoutes(routes); err != nil {
		x.log.Error("gateway routes not updated", zap.Error(err))
	}
	for p, via := range x.installed {
		if want[p] == via {
			continue
		}
		if err := x.kernel.Delete(p, via); err != nil {
			x.log.Warn("kernel route not removed", zap.Error(err))
		}
		delete(x.installed, p)
	}
	for p, via := range want {
		if _, ok := x.installed[p]; ok {
			continue
		}
		if err := x.kernel.Replace(p, via); err != nil {
			x.log.Error("kernel route not added: this host cannot reach the lease", zap.Error(err))
			continue
		}
		x.installed[p] = via
	}
	x.log.Info("routes from the cluster", zap.Stringers("routes", routes))
}

// close stops the background join and the routing, removes the kernel
// routes and closes the membership (the lease stays until its TTL
// ends); leave gives the lease up too (network rm).
func (x *netDirect) close(leave bool) {
	x.stop()
	x.wg.Wait()
	x.mu.Lock()
	x.closed = true
	for p, via := range x.installed {
		if err := x.kernel.Delete(p, via); err != nil {
			x.log.Warn("kernel route not removed", zap.Error(err))
		}
	}
	clear(x.installed)
	x.mu.Unlock()
	c := x.cluster.Swap(nil)
	if c == nil {
		return
	}
	if !leave {
		c.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Leave(ctx); err != nil {
		x.log.Warn("leaving the cluster; the lease will expire by itself", zap.Error(err))
	}
}

// directClusterView renders the cluster of a network with routing
// "direct" for the API.
func directClusterView(n *network, v *api.Network) {
	dc := n.rec.Direct
	if dc == nil {
		return
	}
	v.DirectCluster = &api.DirectCluster{Range: dc.Range, Cluster: dc.Cluster.Cluster, PublicAddr: dc.PublicAddr}
	if n.direct != nil {
		v.DirectCluster.Joined = n.direct.cluster.Load() != nil
	}
	v.Routes = n.gw.Routes()
	st := n.gw.RouteStats()
	v.Routing = &api.RouteStats{Forwarded: st.Forwarded, TTLExceeded: st.TTLExceeded, Looped: st.Looped}
}
