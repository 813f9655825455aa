package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/internal/netipx"
	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/proxy"
	"github.com/vishvananda/netlink"
)

// Published ports. Every -p spec of an endpoint is published by the
// daemon's one proxy.Manager (host listeners for all ports of all
// networks) and mirrored into the network's NAT table, so that the
// endpoints of the network reach it too through the gateway or a host
// address (hairpin).
//
// A spec may carry options after commas, beyond Docker's syntax:
//
//	path=netstack (default)  the connection to the container is opened by the
//	                         gateway's netstack; the container sees the real
//	                         client address (unless source=gateway)
//	path=splice              a kernel socket made inside the container's
//	                         namespace; both ends are kernel TCP and the relay
//	                         splices, but the container sees its own address
//	source=client (default)  keep the client's address (path=netstack only)
//	source=gateway           show the gateway's address instead

// Port paths and sources.
const (
	pathNetstack  = "netstack"
	pathSplice    = "splice"
	sourceClient  = "client"
	sourceGateway = "gateway"
)

// portSpec is a -p value parsed: the Docker mappings and our options.
type portSpec struct {
	raw      string
	mappings []proxy.Mapping
	path     string
	source   string
}

// parsePortSpec parses "SPEC[,path=...][,source=...]".
func parsePortSpec(s string) (portSpec, error) {
	parts := strings.Split(strings.TrimSpace(s), ",")
	ps := portSpec{raw: strings.TrimSpace(s), path: pathNetstack, source: sourceClient}
	ms, err := proxy.ParsePublish(parts[0])
	if err != nil {
		return ps, invalid("%v", err)
	}
	ps.mappings = ms
	sourceGiven := false
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		switch {
		case k == "path" && (v == pathNetstack || v == pathSplice):
			ps.path = v
		case k == "source" && (v == sourceClient || v == sourceGateway):
			ps.source, sourceGiven = v, true
		default:
			return ps, invalid("invalid option %q in port spec %q: want path=netstack, path=splice, source=client or source=gateway", opt, s)
		}
	}
	if ps.path == pathSplice {
		if sourceGiven && ps.source == sourceClient {
			return ps, invalid("port spec %q: source=client needs path=netstack (with path=splice the container sees its own address)", s)
		}
		ps.source = ""
	}
	return ps, nil
}

// sameSpec reports whether two -p values publish the same thing.
func sameSpec(a, b portSpec) bool {
	return a.path == b.path && a.source == b.source && slices.Equal(a.mappings, b.mappings)
}

// dialer returns the proxy dialer for a spec of endpoint e on network n.
func (d *Daemon) dialer(n *network, e *endpoint, ps portSpec) proxy.Dialer {
	if ps.path == pathSplice {
		return d.ports.NetnsDialer(e.rec.NetNS)
	}
	return n.gw.Dialer(ps.source != sourceGateway)
}

// errNotRebound is returned by publish, asked for no fresh port, when a
// mapping that may choose its host port cannot have the one it had.
var errNotRebound = errors.New("its previous host port is not free")

// publish publishes ps for e. prev, if given, are the host sockets a
// previous life of the daemon bound for it, tried first; if none is free
// and fresh is false, a mapping that would choose its port afresh fails
// with errNotRebound instead. It is all or nothing: on failure nothing of
// ps stays bound.
func (d *Daemon) publish(n *network, e *endpoint, ps portSpec, prev []netip.AddrPort, fresh bool) ([]proxy.Published, error) {
	if n.rec.Internal {
		return nil, invalid("network %q is internal: it has no published ports (as Docker's --internal)", n.rec.Name)
	}
	owner := e.rec.Key()
	dialer := d.dialer(n, e, ps)
	var done []proxy.Published
	var doneMappings []proxy.Mapping
	undo := func() {
		for _, mp := range doneMappings {
			d.ports.Unpublish(owner, mp)
		}
	}
	for _, mp := range ps.mappings {
		pub, err := d.publishMapping(owner, mp, e.rec.Address.Addr(), e.rec.Address6.Addr(), dialer, prev, fresh)
		if err != nil {
			undo()
			return nil, fmt.Errorf("publish %s for %s: %w", ps.raw, owner, err)
		}
		done = append(done, pub...)
		doneMappings = append(doneMappings, mp)
	}
	return done, nil
}

// publishMapping publishes one mapping, on the host port it had before if
// that one is free again, else (if fresh) on the one it would choose now.
// target6 is a dual-stack endpoint's IPv6 address (zero if none), for
// the mapping's IPv6 listeners.
func (d *Daemon) publishMapping(owner string, mp proxy.Mapping, target, target6 netip.Addr, dialer proxy.Dialer, prev []netip.AddrPort, fresh bool) ([]proxy.Published, error) {
	opts := proxy.Options{Target6: target6}
	named := !mp.HostPort.IsZero() && mp.HostPort.Start == mp.HostPort.End
	for _, hp := range prev {
		if hp.Port() == 0 || named {
			continue // the mapping names its port: nothing to remember
		}
		if !mp.HostPort.IsZero() && (hp.Port() < mp.HostPort.Start || hp.Port() > mp.HostPort.End) {
			continue
		}
		fixed := mp
		fixed.HostPort = proxy.PortRange{Start: hp.Port(), End: hp.Port()}
		if pub, err := d.ports.Publish(owner, fixed, target, dialer, opts); err == nil {
			return pub, nil
		}
	}
	if !fresh && !named && len(prev) > 0 {
		return nil, errNotRebound
	}
	pub, err := d.ports.Publish(owner, mp, target, dialer, opts)
	if err != nil {
		return nil, portError(err)
	}
	return pub, nil
}

// portError gives a proxy error its API kind.
func portError(err error) error {
	switch {
	case errors.Is(err, proxy.ErrAllocated), errors.Is(err, proxy.ErrAddrInUse):
		return &kindError{err, api.ErrConflict}
	case errors.Is(err, proxy.ErrPrivileged), errors.Is(err, proxy.ErrInvalidSpec):
		return &kindError{err, api.ErrInvalid}
	}
	return err
}

// boundAddrs lists the host sockets of pubs, for the store.
func boundAddrs(pubs []proxy.Published) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(pubs))
	for _, p := range pubs {
		out = append(out, p.HostAddr())
	}
	return out
}

// exposedSpecs turns --expose values into the -p specs -P publishes:
// each exposed port on an ephemeral host port.
func exposedSpecs(expose []string) ([]string, error) {
	var specs []string
	for _, x := range expose {
		ports, err := proxy.ParseExpose(x)
		if err != nil {
			return nil, invalid("%v", err)
		}
		for _, p := range ports {
			specs = append(specs, p.String())
		}
	}
	return specs, nil
}

// AddPort publishes one more -p spec on a running endpoint. ctx ended
// before it begins cancels it.
func (d *Daemon) AddPort(ctx context.Context, network, name, spec string) ([]api.PortBinding, error) {
	host := d.hostAddrs()
	d.mu.Lock()
	defer d.mu.Unlock()
	n, e, err := d.findEndpointLocked(network, name)
	if err != nil {
		return nil, err
	}
	ps, err := parsePortSpec(spec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish %s for %s: %w", spec, e.rec.Key(), err)
	}
	for _, p := range e.rec.Ports {
		if old, err := parsePortSpec(p.Spec); err == nil && sameSpec(old, ps) {
			return nil, conflict("%s already publishes %s", e.rec.Key(), spec)
		}
	}
	pubs, err := d.publish(n, e, ps, nil, true)
	if err != nil {
		return nil, err
	}
	rec := e.rec
	rec.Ports = append(slices.Clone(rec.Ports), store.Port{Spec: ps.raw, Bound: boundAddrs(pubs)})
	if err := d.store.PutEndpoint(rec); err != nil {
		for _, mp := range ps.mappings {
			d.ports.Unpublish(e.rec.Key(), mp)
		}
		return nil, fmt.Errorf("publish %s for %s: save state: %w", spec, e.rec.Key(), err)
	}
	e.rec = rec
	d.syncNATLocked(n, host)
	d.log.Info("port published", zap.String("endpoint", e.rec.Key()), zap.String("spec", spec))
	return d.bindingsLocked(n, e, &ps), nil
}

// RemovePort unpublishes one -p spec of a running endpoint. ctx ended
// before it begins cancels it.
func (d *Daemon) RemovePort(ctx context.Context, network, name, spec string) error {
	host := d.hostAddrs()
	d.mu.Lock()
	defer d.mu.Unlock()
	n, e, err := d.findEndpointLocked(network, name)
	if err != nil {
		return err
	}
	ps, err := parsePortSpec(spec)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(e.rec.Ports, func(p store.Port) bool {
		old, err := parsePortSpec(p.Spec)
		return err == nil && slices.Equal(old.mappings, ps.mappings)
	})
	if i < 0 {
		return notFound("%s does not publish %s (see `switchyard port ls %s`)", e.rec.Key(), spec, e.rec.Key())
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("unpublish %s for %s: %w", spec, e.rec.Key(), err)
	}
	old, _ := parsePortSpec(e.rec.Ports[i].Spec)
	bound := e.rec.Ports[i].Bound
	rec := e.rec
	rec.Ports = slices.Delete(slices.Clone(rec.Ports), i, i+1)
	if err := d.store.PutEndpoint(rec); err != nil {
		return fmt.Errorf("unpublish %s for %s: save state: %w", spec, e.rec.Key(), err)
	}
	e.rec = rec
	d.unpublishSpec(e.rec.Key(), old, bound)
	d.syncNATLocked(n, host)
	d.log.Info("port unpublished", zap.String("endpoint", e.rec.Key()), zap.String("spec", spec))
	return nil
}

// unpublishSpec removes what ps published for owner: each mapping as
// given, or, for a mapping that chose its host port (an ephemeral port or
// a range) and was published again after a restart, on the host port it
// was bound to, as publishMapping then fixes it.
func (d *Daemon) unpublishSpec(owner string, ps portSpec, bound []netip.AddrPort) {
	for _, mp := range ps.mappings {
		if d.ports.Unpublish(owner, mp) == nil {
			continue
		}
		for _, hp := range bound {
			fixed := mp
			fixed.HostPort = proxy.PortRange{Start: hp.Port(), End: hp.Port()}
			d.ports.Unpublish(owner, fixed)
		}
	}
}

// Ports lists published ports, of one endpoint ("net/name") or all.
func (d *Daemon) Ports(endpoint string) ([]api.PortBinding, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if endpoint != "" {
		network, name, ok := strings.Cut(endpoint, "/")
		if !ok {
			return nil, invalid("invalid endpoint %q: want NETWORK/NAME", endpoint)
		}
		n, e, err := d.findEndpointLocked(network, name)
		if err != nil {
			return nil, err
		}
		return d.bindingsLocked(n, e, nil), nil
	}
	var out []api.PortBinding
	for _, n := range d.sortedNetworksLocked() {
		for _, e := range n.sortedEndpoints() {
			out = append(out, d.bindingsLocked(n, e, nil)...)
		}
	}
	return out, nil
}

// bindingsLocked renders e's published ports (only those of spec only, if
// given).
func (d *Daemon) bindingsLocked(n *network, e *endpoint, only *portSpec) []api.PortBinding {
	specs := map[string]portSpec{}
	for _, p := range e.rec.Ports {
		if ps, err := parsePortSpec(p.Spec); err == nil {
			for _, mp := range ps.mappings {
				specs[mp.String()] = ps
			}
		}
	}
	var out []api.PortBinding
	for _, st := range d.ports.BindingStats(e.rec.Key()) {
		p := st.Published
		ps := specs[p.Spec.String()]
		if only != nil && !slices.Contains(only.mappings, p.Spec) {
			continue
		}
		out = append(out, api.PortBinding{
			Network: n.rec.Name, Endpoint: e.rec.Name, Proto: p.Proto.String(),
			HostIP: p.HostIP, HostPort: p.HostPort, ContainerIP: p.Target, ContainerPort: p.ContainerPort,
			Spec: ps.raw, Path: ps.path, Source: ps.source, Docker: p.String(),
			Active: st.TCP.Active + st.UDP.FlowsActive, OverLimit: st.TCP.OverLimit + st.UDP.FlowsOverLimit,
		})
	}
	return out
}

// syncNATLocked rebuilds the network's NAT mappings from its endpoints'
// published ports and refreshes the host's addresses (read by hostAddrs
// before the lock was taken, as it is a netlink call; nil if unknown).
func (d *Daemon) syncNATLocked(n *network, host []netip.Addr) {
	if n.nat == nil {
		return
	}
	if host != nil {
		n.nat.SetHostAddrs(host)
	}
	seen := map[nat.PortMapping]bool{}
	var ms []nat.PortMapping
	for _, e := range n.sortedEndpoints() {
		for _, p := range d.ports.List(e.rec.Key()) {
			hostIP := p.HostIP
			if hostIP.IsUnspecified() {
				hostIP = netip.Addr{} // any address, of either family
			}
			if !hostIP.IsValid() && p.Target.Is4() != (p.HostIP.Is4() || !p.HostIP.IsValid()) {
				continue // the [::] half of a wildcard for an IPv4 container
			}
			m := nat.PortMapping{Proto: natProto(p.Proto), HostIP: hostIP, HostPort: p.HostPort,
				Target: netip.AddrPortFrom(p.Target, p.ContainerPort)}
			if !seen[m] {
				seen[m] = true
				ms = append(ms, m)
			}
		}
	}
	if err := n.nat.SetMappings(ms); err != nil {
		d.log.Warn("hairpin NAT mappings refused", zap.String("network", n.rec.Name), zap.Error(err))
	}
}

func natProto(p proxy.Proto) nat.Proto {
	if p == proxy.UDP {
		return nat.UDP
	}
	return nat.TCP
}

// hostAddrs lists the addresses of the daemon's own namespace
// (Config.HostAddrs), or none if they cannot be read.
func (d *Daemon) hostAddrs() []netip.Addr {
	addrs, err := d.cfg.HostAddrs()
	if err != nil {
		d.log.Warn("reading the host's addresses for hairpin NAT", zap.Error(err))
		return nil
	}
	if addrs == nil {
		addrs = []netip.Addr{} // read, and none: not the same as unknown
	}
	return addrs
}

// HostAddrs lists the addresses of the daemon's own namespace (loopback
// aside): a container connecting to one of them on a published port is
// hairpinned.
func HostAddrs() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, ok := netipx.PrefixFromIPNet(a.IPNet); ok && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// NAT returns a network's rules and counters.
func (d *Daemon) NAT(network string) (api.NATTable, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.networks[network]
	if n == nil {
		return api.NATTable{}, notFoundNetwork(network)
	}
	out := api.NATTable{Network: network}
	if n.nat == nil {
		return out, nil
	}
	for _, r := range n.nat.Rules() {
		out.Rules = append(out.Rules, r.String())
	}
	st, lost := n.gw.NATStats()
	out.Entries = int(st.Entries)
	out.TranslatedOrig, out.TranslatedReply = st.TranslatedOrig, st.TranslatedReply
	out.Dropped = st.Dropped() + lost
	return out, nil
}

// Conntrack lists the tracked connections, of one network or all.
func (d *Daemon) Conntrack(network string) ([]api.ConntrackEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if network != "" && d.networks[network] == nil {
		return nil, notFoundNetwork(network)
	}
	out := []api.ConntrackEntry{}
	for _, n := range d.sortedNetworksLocked() {
		if (network != "" && n.rec.Name != network) || n.nat == nil {
			continue
		}
		for _, e := range n.nat.Entries(n.gw.NATNow()) {
			out = append(out, api.ConntrackEntry{Network: n.rec.Name, Entry: e.String()})
		}
	}
	return out, nil
}
