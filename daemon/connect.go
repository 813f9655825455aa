package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/ipam"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/internal/nsenter"
	vswitch "github.com/switchyard-net/switchyard/switch"
)

// Connecting an endpoint is done in four steps, so that the slow part
// (the TAP helper's fork/exec, netlink, the state file) runs without
// Daemon.mu and no other API call waits for it:
//
//	locate     no lock   the namespace the request names, its interfaces
//	reserve    Daemon.mu validate; hold the name, the namespace and the
//	                     address (network.pending)
//	build      no lock   write ahead, open and attach the port, write
//	                     resolv.conf, publish the ports
//	commit     Daemon.mu the endpoint joins the network; or, if the daemon
//	                     closed meanwhile, everything is undone
//
// On any error nothing is left behind: no address held, no record, no
// device, no host port.

// place is where a connect request's namespace is, found before the
// lock is taken.
type place struct {
	netns string
	pid   int
	id    nsenter.ID
	links []string // interfaces in the namespace, if the request names none
}

// Connect creates a TAP in the namespace named by req and attaches it to
// the network. On any error nothing is left behind: no address held, no
// record, no device.
func (d *Daemon) Connect(ctx context.Context, network string, req api.EndpointCreate) (api.Endpoint, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return api.Endpoint{}, errClosed
	}
	n := d.networks[network]
	if n == nil {
		d.mu.Unlock()
		return api.Endpoint{}, notFoundNetwork(network)
	}
	d.busy.Add(1)
	d.mu.Unlock()
	defer d.busy.Done()

	specs, err := requestedSpecs(n, req)
	if err != nil {
		return api.Endpoint{}, err
	}
	if err := checkAliases(req.Aliases); err != nil {
		return api.Endpoint{}, err
	}
	at, err := d.locate(ctx, req)
	if err != nil {
		return api.Endpoint{}, err
	}
	rec, err := d.reserve(n, req, at)
	if err != nil {
		return api.Endpoint{}, err
	}
	ep, err := d.build(ctx, n, rec, specs, req.WriteResolvConf)
	if err != nil {
		d.unreserve(n, rec)
		return api.Endpoint{}, err
	}
	host := d.hostAddrs()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.mu.Unlock() // Close waits for this connect: undo without the lock
		d.teardown(n, ep)
		d.mu.Lock()
		delete(n.pending, rec.Name)
		return api.Endpoint{}, errClosed
	}
	delete(n.pending, rec.Name)
	n.endpoints[rec.Name] = ep
	if len(specs) > 0 {
		d.syncNATLocked(n, host)
	}
	d.syncNamesLocked(n)
	d.log.Info("endpoint connected", zap.String("endpoint", rec.Key()), zap.String("netns", rec.NetNS),
		zap.String("ifname", rec.IfName), zap.Stringer("address", rec.Address), zap.Stringer("mac", rec.MAC),
		zap.Bool("offload", ep.port.Offload()))
	v := ep.view(n)
	v.Ports = d.bindingsLocked(n, ep, nil)
	return v, nil
}

// locate finds the namespace req names, and its interfaces when req
// leaves the interface name to the daemon.
func (d *Daemon) locate(ctx context.Context, req api.EndpointCreate) (place, error) {
	var at place
	if req.TapOnly != "" {
		return at, nil
	}
	switch {
	case req.NetNS != "" && req.PID != 0:
		return at, endpointField("pid", strconv.Itoa(req.PID), "given with `netns`", "one of `netns` and `pid`")
	case req.PID < 0:
		return at, endpointField("pid", strconv.Itoa(req.PID), "not a process ID", "a positive process ID")
	case req.PID > 0:
		p, err := d.attach.NetNSOfPID(req.PID)
		if err != nil {
			return at, endpointField("pid", strconv.Itoa(req.PID), fmt.Sprintf("no such process (%v)", errors.Unwrap(err)), "")
		}
		at.netns, at.pid = p, req.PID
	case req.NetNS != "":
		if !filepath.IsAbs(req.NetNS) {
			return at, endpointField("netns", req.NetNS, "not an absolute path", "an absolute path like /var/run/netns/NAME")
		}
		at.netns = req.NetNS
	default:
		return at, endpointField("netns", "", "missing: no network namespace to connect", "`netns` (a path) or `pid` (a process)")
	}
	id, err := d.attach.ForeignNetNS(at.netns)
	if err != nil {
		if at.pid > 0 {
			return at, endpointField("pid", strconv.Itoa(at.pid), err.Error(), "")
		}
		return at, endpointField("netns", at.netns, err.Error(), "")
	}
	at.id = id
	if req.IfName == "" {
		names, err := d.attach.Links(ctx, at.netns)
		if err != nil {
			if ctx.Err() != nil {
				return at, fmt.Errorf("list interfaces in %s: %w", at.netns, err)
			}
			return at, invalid("%v", err)
		}
		at.links = names
	}
	return at, nil
}

// reserve validates req against the network and holds what the endpoint
// will use: its name and namespace (in n.pending) and its address.
func (d *Daemon) reserve(n *network, req api.EndpointCreate, at place) (store.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return store.Endpoint{}, errClosed
	}
	if d.networks[n.rec.Name] != n {
		return store.Endpoint{}, notFoundNetwork(n.rec.Name)
	}
	rec, err := d.newEndpointRecordLocked(n, req, at)
	if err != nil {
		return store.Endpoint{}, err
	}
	rec.Expose, rec.Aliases = req.Expose, req.Aliases
	if req.WriteResolvConf {
		if err := d.checkResolvConf(rec); err != nil {
			n.release(rec)
			return store.Endpoint{}, err
		}
	}
	n.pending[rec.Name] = rec
	return rec, nil
}

// unreserve gives back what reserve held, after a failed build.
func (d *Daemon) unreserve(n *network, rec store.Endpoint) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(n.pending, rec.Name)
	n.release(rec)
}

// build makes the endpoint of a reserved record; on error it undoes all it
// did (the reservation is the caller's to give back).
func (d *Daemon) build(ctx context.Context, n *network, rec store.Endpoint, specs []portSpec, resolvConf bool) (*endpoint, error) {
	// Write ahead: a daemon killed between creating the TAP and saving the
	// record would otherwise leave a device nobody knows of.
	if err := d.store.PutEndpoint(rec); err != nil {
		return nil, fmt.Errorf("connect %s: save state: %w", rec.Key(), err)
	}
	ep, err := d.attachPort(ctx, n, rec, false)
	if err != nil {
		d.store.DeleteEndpoint(rec.Network, rec.Name)
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		d.unattach(n, ep)
		return nil, fmt.Errorf("connect %s: %w", rec.Key(), err)
	}
	if resolvConf {
		if err := d.writeResolvConf(n, ep); err != nil {
			d.unattach(n, ep)
			return nil, err
		}
	}
	if err := d.publishAll(n, ep, specs); err != nil {
		d.removeResolvConf(ep.rec)
		d.unattach(n, ep)
		return nil, err
	}
	return ep, nil
}

// unattach undoes attachPort and the record of a new endpoint: the device
// is deleted, the address stays reserved.
func (d *Daemon) unattach(n *network, ep *endpoint) {
	d.store.DeleteEndpoint(ep.rec.Network, ep.rec.Name)
	if err := ep.port.Forget(); err != nil {
		d.log.Debug("forgetting the device", zap.String("endpoint", ep.rec.Key()), zap.Error(err))
	}
	n.sw.Detach(ep.link)
	for _, a := range ep.rec.Addrs() {
		n.gw.UnpinNeighbor(a)
	}
	n.addrs.Unbind(ep.rec.MAC, ep.rec.Address.Addr())
	if n.addrs6 != nil && ep.rec.Address6.IsValid() {
		n.addrs6.Unbind(ep.rec.MAC, ep.rec.Address6.Addr())
	}
}

// teardown removes a built endpoint that never joined its network (the
// daemon closed while it was being connected).
func (d *Daemon) teardown(n *network, ep *endpoint) {
	d.ports.UnpublishAll(ep.rec.Key())
	d.removeResolvConf(ep.rec)
	d.unattach(n, ep)
	n.release(ep.rec)
}

// requestedSpecs validates the -p, --expose and -P of a connect request
// and returns the specs to publish, before anything is created.
func requestedSpecs(n *network, req api.EndpointCreate) ([]portSpec, error) {
	raw := slices.Clone(req.Publish)
	if req.PublishAll {
		exp, err := exposedSpecs(req.Expose)
		if err != nil {
			return nil, err
		}
		raw = append(raw, exp...)
	} else if _, err := exposedSpecs(req.Expose); err != nil {
		return nil, err
	}
	var specs []portSpec
	for _, s := range raw {
		ps, err := parsePortSpec(s)
		if err != nil {
			return nil, err
		}
		specs = append(specs, ps)
	}
	if len(specs) > 0 && n.rec.Internal {
		return nil, invalid("network %q is internal: it has no published ports (as Docker's --internal)", n.rec.Name)
	}
	return specs, nil
}

// publishAll publishes specs for a new endpoint and records them; on
// failure nothing stays published.
func (d *Daemon) publishAll(n *network, e *endpoint, specs []portSpec) error {
	if len(specs) == 0 {
		return nil
	}
	var ports []store.Port
	for _, ps := range specs {
		pubs, err := d.publish(n, e, ps, nil, true)
		if err != nil {
			d.ports.UnpublishAll(e.rec.Key())
			return err
		}
		ports = append(ports, store.Port{Spec: ps.raw, Bound: boundAddrs(pubs)})
	}
	rec := e.rec
	rec.Ports = ports
	if err := d.store.PutEndpoint(rec); err != nil {
		d.ports.UnpublishAll(e.rec.Key())
		return fmt.Errorf("connect %s: save state: %w", rec.Key(), err)
	}
	e.rec = rec
	return nil
}

// newEndpointRecordLocked validates req and reserves the endpoint's
// address.
func (d *Daemon) newEndpointRecordLocked(n *network, req api.EndpointCreate, at place) (store.Endpoint, error) {
	rec := store.Endpoint{Network: n.rec.Name, Created: time.Now().UTC(), DHCP: req.DHCP, TapOwner: -1, MACSpoofing: req.MACSpoofing}
	allowed, err := parseAllowedAddresses(req.AllowedAddresses)
	if err != nil {
		return rec, err
	}
	rec.AllowedAddresses = allowed
	if err := setRuntimeIdentity(&rec, req); err != nil {
		return rec, err
	}
	if req.TapOnly != "" {
		return d.newVMRecordLocked(n, rec, req)
	}
	rec.NetNS, rec.PID, rec.NetNSID = at.netns, at.pid, at.id
	for _, other := range n.records() {
		if other.NetNSID == at.id {
			return rec, conflict("namespace %s is already connected to network %q as endpoint %q", rec.NetNS, n.rec.Name, other.Name)
		}
	}

	rec.Name = req.Name
	if rec.Name == "" {
		rec.Name = defaultEndpointName(rec, at.id)
	}
	if err := checkName("endpoint", rec.Name); err != nil {
		return rec, err
	}
	if n.taken(rec.Name) {
		return rec, conflict("endpoint %q already exists in network %q (choose another name)", rec.Name, n.rec.Name)
	}

	rec.IfName = req.IfName
	if rec.IfName == "" {
		rec.IfName = d.freeIfNameLocked(at)
	} else if err := checkIfName("ifname", rec.IfName); err != nil {
		return rec, err
	}

	return rec, d.assignAddress(n, &rec, req)
}

// newVMRecordLocked validates a --tap-only request.
func (d *Daemon) newVMRecordLocked(n *network, rec store.Endpoint, req api.EndpointCreate) (store.Endpoint, error) {
	if req.NetNS != "" || req.PID != 0 {
		return rec, endpointField("tap_only", req.TapOnly, "makes a TAP in the daemon's namespace, so takes no `netns` or `pid`", "")
	}
	if err := checkIfName("tap_only", req.TapOnly); err != nil {
		return rec, err
	}
	rec.TapOnly, rec.Name, rec.IfName, rec.DHCP = true, req.TapOnly, req.TapOnly, true
	if req.Handoff {
		// A runtime's device: it may name the endpoint, and the
		// address is static, configured by the runtime in its sandbox.
		rec.Handoff, rec.DHCP, rec.Sandbox = true, false, req.Sandbox
		if req.Name != "" {
			rec.Name = req.Name
			if err := checkName("endpoint", rec.Name); err != nil {
				return rec, err
			}
		}
		if req.Sandbox != "" && !filepath.IsAbs(req.Sandbox) {
			return rec, endpointField("sandbox", req.Sandbox, "not an absolute path", "the path of the namespace the runtime moves the TAP to")
		}
	} else if req.Name != "" && req.Name != req.TapOnly {
		return rec, endpointField("name", req.Name, "differs from `tap_only`, which names the endpoint", "no `name`, or the same as `tap_only`")
	}
	if req.TapOwner != nil {
		rec.TapOwner = *req.TapOwner
	}
	if n.taken(rec.Name) {
		return rec, conflict("endpoint %q already exists in network %q", rec.Name, n.rec.Name)
	}
	for _, other := range d.networks {
		for _, e := range other.records() {
			if e.TapOnly && e.IfName == rec.IfName {
				return rec, conflict("a VM TAP named %s already exists (endpoint %s)", rec.IfName, e.Key())
			}
		}
	}
	return rec, d.assignAddress(n, &rec, req)
}

// setRuntimeIdentity validates and records the runtime's identity of
// the endpoint (container ID, runtime name) and refuses handoff fields
// without tap_only.
func setRuntimeIdentity(rec *store.Endpoint, req api.EndpointCreate) error {
	if req.ContainerID != "" {
		if len(req.ContainerID) > 128 || strings.TrimFunc(req.ContainerID, isIDRune) != "" {
			return endpointField("container_id", req.ContainerID, "not a container ID", "1-128 letters, digits, '_', '.' or '-'")
		}
	}
	if req.Runtime != "" {
		if len(req.Runtime) > 32 || strings.TrimFunc(req.Runtime, isRuntimeRune) != "" {
			return endpointField("runtime", req.Runtime, "not a runtime name", "1-32 lowercase letters, digits or '-', like cni, docker or netavark")
		}
	}
	if req.TapOnly == "" {
		if req.Handoff {
			return endpointField("handoff", "true", "needs `tap_only`, the name of the TAP to hand off", "")
		}
		if req.Sandbox != "" {
			return endpointField("sandbox", req.Sandbox, "only for a `handoff` TAP", "")
		}
	} else if req.Sandbox != "" && !req.Handoff {
		return endpointField("sandbox", req.Sandbox, "only for a `handoff` TAP", "")
	}
	rec.ContainerID, rec.Runtime = req.ContainerID, req.Runtime
	return nil
}

func isIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}

func isRuntimeRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
}

// checkIfName validates an interface name given in field.
func checkIfName(field, s string) error {
	if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") {
		return endpointField(field, s, "not an interface name", "1-15 characters, no '/', ':' or spaces")
	}
	return nil
}

// endpointField is a problem with one field of an api.EndpointCreate, as
// the API reports it: named by its JSON name (the CLI maps it to its
// flag), other fields named in the text between backquotes.
func endpointField(field, value, problem, accepted string) error {
	return api.Validate(api.EndpointCreate{}, []api.FieldError{{Field: field, Value: value, Problem: problem, Accepted: accepted}})
}

// parseMAC validates a requested MAC.
func parseMAC(s string) (vswitch.MAC, error) {
	m, err := vswitch.ParseMAC(s)
	if err != nil {
		return m, endpointField("mac", s, err.Error(), "a MAC address like 02:42:0a:00:00:05")
	}
	if m.IsMulticast() || m.IsZero() {
		return m, endpointField("mac", s, "not a unicast address", "a unicast address (the first byte even)")
	}
	return m, nil
}

// assignAddress takes the endpoint's MAC (--mac) and reserves its
// address (--ip or the lowest free), from which the MAC is derived if
// none was given.
func (d *Daemon) assignAddress(n *network, rec *store.Endpoint, req api.EndpointCreate) error {
	if req.MAC != "" {
		m, err := parseMAC(req.MAC)
		if err != nil {
			return err
		}
		rec.MAC = m
	}
	var addr netip.Addr
	if req.IP != "" {
		a, err := netip.ParseAddr(req.IP)
		if err != nil {
			return endpointField("ip", req.IP, "not an IP address", "an address inside "+n.rec.Subnet.String())
		}
		if err := n.addrs.Reserve(a, rec.Name); err != nil {
			return ipamError(err)
		}
		addr = a
	} else {
		a, err := n.addrs.Allocate(rec.Name)
		if err != nil {
			return ipamError(err)
		}
		addr = a
	}
	rec.Address = netip.PrefixFrom(addr, n.rec.Subnet.Bits())
	if err := assignAddress6(n, rec, req); err != nil {
		n.addrs.Release(addr)
		return err
	}
	if rec.MAC.IsZero() {
		rec.MAC = dockerMAC(addr)
	}
	return nil
}

// assignAddress6 reserves the IPv6 address of an endpoint of a
// dual-stack network: --ip6 or the lowest free.
func assignAddress6(n *network, rec *store.Endpoint, req api.EndpointCreate) error {
	if n.addrs6 == nil {
		if req.IP6 != "" {
			return endpointField("ip6", req.IP6, "network "+strconv.Quote(n.rec.Name)+" has no second, IPv6 subnet", "no `ip6`; on an IPv6-only network, `ip`")
		}
		return nil
	}
	var addr netip.Addr
	if req.IP6 != "" {
		a, err := netip.ParseAddr(req.IP6)
		if err != nil || !a.Is6() || a.Is4In6() {
			return endpointField("ip6", req.IP6, "not an IPv6 address", "an address inside "+n.rec.Subnet6.String())
		}
		if err := n.addrs6.Reserve(a, rec.Name); err != nil {
			return ipamError(err)
		}
		addr = a
	} else {
		a, err := n.addrs6.Allocate(rec.Name)
		if err != nil {
			return ipamError(err)
		}
		addr = a
	}
	rec.Address6 = netip.PrefixFrom(addr, n.rec.Subnet6.Bits())
	return nil
}

// ipamError gives an address-pool error its API kind.
func ipamError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrInUse), errors.Is(err, ipam.ErrExhausted):
		return &kindError{err, api.ErrConflict}
	}
	return &kindError{err, api.ErrInvalid}
}

// defaultEndpointName names an endpoint after its namespace: the file name
// of /var/run/netns/NAME, "pid1234" for a process, else the namespace's
// inode.
func defaultEndpointName(rec store.Endpoint, id nsenter.ID) string {
	if rec.PID > 0 {
		return "pid" + strconv.Itoa(rec.PID)
	}
	if base := filepath.Base(rec.NetNS); base != "net" && namePattern.MatchString(base) {
		return base
	}
	return "ns" + strconv.FormatUint(id.Ino, 10)
}

// freeIfNameLocked returns the first ethN that is neither in the
// namespace when it was located nor given to an endpoint of the same
// namespace since (in any network, being connected or connected).
func (d *Daemon) freeIfNameLocked(at place) string {
	taken := map[string]bool{}
	for _, n := range at.links {
		taken[n] = true
	}
	for _, n := range d.networks {
		for _, rec := range n.records() {
			if !rec.TapOnly && rec.NetNSID == at.id {
				taken[rec.IfName] = true
			}
		}
	}
	for i := 0; ; i++ {
		if n := "eth" + strconv.Itoa(i); !taken[n] {
			return n
		}
	}
}
