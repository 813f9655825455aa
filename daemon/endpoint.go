package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
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
	"github.com/switchyard-net/switchyard/tap"
)

// endpoint is one connected namespace (or VM TAP): its record, its port
// and its link on the network's switch.
type endpoint struct {
	rec       store.Endpoint
	port      endpointPort
	link      *vswitch.Link
	capturing bool // guarded by Daemon.mu
}

// endpointPort is a TAP in a namespace (*tap.Port) or a VM's TAP
// (*tap.VMPort).
type endpointPort interface {
	vswitch.Port
	Offload() bool
	// Forget arranges for the device to be deleted when the port closes
	// (disconnect), instead of staying for the next daemon (shutdown).
	Forget() error
}

func (e *endpoint) view(n *network) api.Endpoint {
	v := api.Endpoint{
		Network: e.rec.Network, Name: e.rec.Name, NetNS: e.rec.NetNS, PID: e.rec.PID, IfName: e.rec.IfName,
		MAC: e.rec.MAC.String(), Address: e.rec.Address, Offload: e.port.Offload(), Created: e.rec.Created,
		Stats: portStats(e.link.Stats()), Kind: "netns", DHCP: e.rec.DHCP,
		Aliases: e.rec.Aliases, ResolvConf: e.rec.ResolvConf,
	}
	if n.dns != nil {
		v.DNS = n.rec.Gateway
	}
	if e.rec.TapOnly {
		v.Kind, v.NetNS = "vm", ""
	}
	if !n.rec.Internal {
		v.Gateway = n.rec.Gateway
	}
	v.Expose = e.rec.Expose
	return v
}

// findEndpointLocked returns a network and one of its endpoints.
func (d *Daemon) findEndpointLocked(network, name string) (*network, *endpoint, error) {
	n := d.networks[network]
	if n == nil {
		return nil, nil, notFoundNetwork(network)
	}
	e := n.endpoints[name]
	if e == nil {
		return nil, nil, notFound("endpoint %q not found in network %q (list them with `switchyard endpoint ls --network %s`)", name, network, network)
	}
	return n, e, nil
}

// Connect creates a TAP in the namespace named by req and attaches it to
// the network. On any error nothing is left behind: no address held, no
// record, no device.
func (d *Daemon) Connect(network string, req api.EndpointCreate) (api.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return api.Endpoint{}, errClosed
	}
	n := d.networks[network]
	if n == nil {
		return api.Endpoint{}, notFoundNetwork(network)
	}
	specs, err := requestedSpecs(n, req)
	if err != nil {
		return api.Endpoint{}, err
	}
	if err := checkAliases(req.Aliases); err != nil {
		return api.Endpoint{}, err
	}
	rec, err := d.newEndpointRecord(n, req)
	if err != nil {
		return api.Endpoint{}, err
	}
	rec.Expose, rec.Aliases = req.Expose, req.Aliases

	// The address is held from here on; release it on failure.
	ok := false
	defer func() {
		if !ok {
			n.addrs.Release(rec.Address.Addr())
		}
	}()
	if req.WriteResolvConf && !rec.TapOnly {
		if _, err := resolvConfPath(rec); err != nil {
			return api.Endpoint{}, err
		}
	}
	// Write ahead: a daemon killed between creating the TAP and saving the
	// record would otherwise leave a device nobody knows of.
	if err := d.store.PutEndpoint(rec); err != nil {
		return api.Endpoint{}, fmt.Errorf("connect %s: save state: %w", rec.Key(), err)
	}
	ep, err := d.attach(n, rec, false)
	if err != nil {
		d.store.DeleteEndpoint(rec.Network, rec.Name)
		return api.Endpoint{}, err
	}
	undo := func() {
		d.store.DeleteEndpoint(rec.Network, rec.Name)
		ep.port.Forget()
		n.sw.Detach(ep.link)
		n.gw.RemoveNeighbor(rec.Address.Addr())
		n.addrs.Unbind(rec.MAC, rec.Address.Addr())
	}
	if req.WriteResolvConf {
		if err := d.resolvConfLocked(n, ep); err != nil {
			undo()
			return api.Endpoint{}, err
		}
	}
	if err := d.publishAllLocked(n, ep, specs); err != nil {
		removeResolvConf(ep.rec, d.log)
		undo()
		return api.Endpoint{}, err
	}
	ok = true
	n.endpoints[rec.Name] = ep
	if len(specs) > 0 {
		d.syncNATLocked(n)
	}
	d.syncNamesLocked(n)
	d.log.Info("endpoint connected", zap.String("endpoint", rec.Key()), zap.String("netns", rec.NetNS),
		zap.String("ifname", rec.IfName), zap.Stringer("address", rec.Address), zap.Stringer("mac", rec.MAC),
		zap.Bool("offload", ep.port.Offload()))
	v := ep.view(n)
	v.Ports = d.bindingsLocked(n, ep, nil)
	return v, nil
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

// publishAllLocked publishes specs for a new endpoint and records them;
// on failure nothing stays published.
func (d *Daemon) publishAllLocked(n *network, e *endpoint, specs []portSpec) error {
	if len(specs) == 0 {
		return nil
	}
	var ports []store.Port
	for _, ps := range specs {
		pubs, err := d.publishLocked(n, e, ps, nil)
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

// newEndpointRecord validates req and reserves the endpoint's address.
func (d *Daemon) newEndpointRecord(n *network, req api.EndpointCreate) (store.Endpoint, error) {
	rec := store.Endpoint{Network: n.rec.Name, Created: time.Now().UTC(), DHCP: req.DHCP, TapOwner: -1}
	if req.TapOnly != "" {
		return d.newVMRecord(n, rec, req)
	}
	switch {
	case req.NetNS != "" && req.PID != 0:
		return rec, invalid("give either --netns or --pid, not both")
	case req.PID < 0:
		return rec, invalid("invalid --pid %d: want a process ID", req.PID)
	case req.PID > 0:
		p, err := nsenter.PathOfPID(req.PID)
		if err != nil {
			return rec, invalid("--pid %d: no such process (%v)", req.PID, errors.Unwrap(err))
		}
		rec.NetNS, rec.PID = p, req.PID
	case req.NetNS != "":
		if !filepath.IsAbs(req.NetNS) {
			return rec, invalid("invalid --netns %q: want an absolute path like /var/run/netns/NAME", req.NetNS)
		}
		rec.NetNS = req.NetNS
	default:
		return rec, invalid("say which network namespace to connect: --netns PATH or --pid PID")
	}
	id, err := nsenter.Foreign(rec.NetNS)
	if err != nil {
		return rec, invalid("%v", err)
	}
	rec.NetNSID = id
	for _, other := range n.endpoints {
		if other.rec.NetNSID == id {
			return rec, conflict("namespace %s is already connected to network %q as endpoint %q", rec.NetNS, n.rec.Name, other.rec.Name)
		}
	}

	rec.Name = req.Name
	if rec.Name == "" {
		rec.Name = defaultEndpointName(rec, id)
	}
	if err := checkName("endpoint", rec.Name); err != nil {
		return rec, err
	}
	if n.endpoints[rec.Name] != nil {
		return rec, conflict("endpoint %q already exists in network %q (choose another --name)", rec.Name, n.rec.Name)
	}

	rec.IfName = req.IfName
	if rec.IfName == "" {
		name, err := freeIfName(rec.NetNS)
		if err != nil {
			return rec, err
		}
		rec.IfName = name
	} else if err := checkIfName(rec.IfName); err != nil {
		return rec, err
	}

	if req.MAC != "" {
		m, err := parseMAC(req.MAC)
		if err != nil {
			return rec, err
		}
		rec.MAC = m
	}

	return rec, d.assignAddress(n, &rec, req)
}

// newVMRecord validates a --tap-only request.
func (d *Daemon) newVMRecord(n *network, rec store.Endpoint, req api.EndpointCreate) (store.Endpoint, error) {
	if req.NetNS != "" || req.PID != 0 {
		return rec, invalid("--tap-only makes a TAP in the daemon's namespace: give no --netns or --pid")
	}
	if err := checkIfName(req.TapOnly); err != nil {
		return rec, err
	}
	rec.TapOnly, rec.Name, rec.IfName, rec.DHCP = true, req.TapOnly, req.TapOnly, true
	if req.Name != "" && req.Name != req.TapOnly {
		return rec, invalid("--tap-only %s names the endpoint; --name %s differs", req.TapOnly, req.Name)
	}
	if req.TapOwner != nil {
		rec.TapOwner = *req.TapOwner
	}
	if n.endpoints[rec.Name] != nil {
		return rec, conflict("endpoint %q already exists in network %q", rec.Name, n.rec.Name)
	}
	for _, other := range d.networks {
		for _, e := range other.endpoints {
			if e.rec.TapOnly && e.rec.IfName == rec.IfName {
				return rec, conflict("a VM TAP named %s already exists (endpoint %s)", rec.IfName, e.rec.Key())
			}
		}
	}
	if req.MAC != "" {
		m, err := parseMAC(req.MAC)
		if err != nil {
			return rec, err
		}
		rec.MAC = m
	}
	return rec, d.assignAddress(n, &rec, req)
}

// checkIfName validates an interface name.
func checkIfName(s string) error {
	if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") {
		return invalid("invalid interface name %q: want 1-15 characters, no '/', ':' or spaces", s)
	}
	return nil
}

// parseMAC validates a --mac.
func parseMAC(s string) (vswitch.MAC, error) {
	m, err := vswitch.ParseMAC(s)
	if err != nil {
		return m, invalid("invalid --mac: %v", err)
	}
	if m.IsMulticast() || m.IsZero() {
		return m, invalid("invalid --mac %s: want a unicast address (the first byte even)", m)
	}
	return m, nil
}

// assignAddress reserves the endpoint's address (--ip or the lowest free)
// and derives its MAC if none was given.
func (d *Daemon) assignAddress(n *network, rec *store.Endpoint, req api.EndpointCreate) error {
	var addr netip.Addr
	if req.IP != "" {
		a, err := netip.ParseAddr(req.IP)
		if err != nil {
			return invalid("invalid --ip %q: want an address inside %s", req.IP, n.rec.Subnet)
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
	if rec.MAC.IsZero() {
		rec.MAC = dockerMAC(addr)
	}
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

// freeIfName returns the first ethN not present in the namespace.
func freeIfName(nsPath string) (string, error) {
	names, err := tap.Links(nsPath)
	if err != nil {
		return "", invalid("%v", err)
	}
	taken := map[string]bool{}
	for _, n := range names {
		taken[n] = true
	}
	for i := 0; ; i++ {
		if n := "eth" + strconv.Itoa(i); !taken[n] {
			return n, nil
		}
	}
}

// attach opens the TAP for rec (re-attaching to an existing device if
// restoring) and plugs it into the network's switch.
func (d *Daemon) attach(n *network, rec store.Endpoint, restoring bool) (*endpoint, error) {
	var port endpointPort
	var err error
	if rec.TapOnly {
		port, err = d.openVM(n, rec, restoring)
	} else {
		port, err = d.openNetns(n, rec, restoring)
	}
	if err != nil {
		return nil, err
	}
	link, err := n.sw.Attach(port, vswitch.AttachOptions{Isolated: !n.rec.ICC})
	if err != nil {
		port.Forget()
		port.Close()
		return nil, fmt.Errorf("connect %s: %w", rec.Key(), err)
	}
	n.gw.SetNeighbor(rec.Address.Addr(), rec.MAC)
	n.addrs.Bind(rec.MAC, rec.Address.Addr())
	return &endpoint{rec: rec, port: port, link: link}, nil
}

// openVM opens a VM TAP in the daemon's namespace.
func (d *Daemon) openVM(n *network, rec store.Endpoint, restoring bool) (endpointPort, error) {
	p, err := tap.OpenVM(tap.VMConfig{Name: rec.IfName, PortName: rec.Name, Owner: rec.TapOwner, Group: -1,
		MTU: n.rec.MTU, Existing: restoring, Logger: d.log.With(zap.String("network", n.rec.Name))})
	if err != nil {
		if errors.Is(err, tap.ErrExists) {
			return nil, &kindError{fmt.Errorf("connect %s: %w", rec.Key(), err), api.ErrConflict}
		}
		return nil, fmt.Errorf("connect %s: %w", rec.Key(), err)
	}
	return vmPort{p}, nil
}

// vmPort gives a VM TAP the endpointPort methods.
type vmPort struct{ *tap.VMPort }

func (vmPort) Offload() bool   { return false }
func (p vmPort) Forget() error { p.VMPort.Close(); return tap.RemoveVM(p.Name()) }

// netnsPort gives a namespace TAP the endpointPort methods.
type netnsPort struct{ *tap.Port }

func (p netnsPort) Forget() error { return p.Unpersist() }

// openNetns opens the TAP in the endpoint's namespace.
func (d *Daemon) openNetns(n *network, rec store.Endpoint, restoring bool) (endpointPort, error) {
	cfg := tap.Config{
		NetNS: rec.NetNS, Name: rec.IfName, PortName: rec.Name, MAC: rec.MAC, MTU: n.rec.MTU,
		Addrs: []netip.Prefix{rec.Address}, Offload: d.cfg.Offload, Existing: restoring, Configure: true,
		Logger: d.log.With(zap.String("network", n.rec.Name)),
		OnGone: func(err error) {
			// Called from the port's reader: detach from another goroutine.
			go d.endpointGone(rec, fmt.Sprintf("its device %s was deleted (%v)", rec.IfName, err))
		},
	}
	if !n.rec.Internal {
		cfg.Gateway = n.rec.Gateway
	}
	if rec.DHCP {
		// MAC and MTU, up, no address: the DHCP client does the rest. On
		// restore the device is taken as it is, with the address DHCP gave.
		cfg.Addrs, cfg.Gateway = nil, netip.Addr{}
		cfg.Configure = !restoring
	}
	port, err := tap.Open(cfg)
	if err != nil {
		if errors.Is(err, tap.ErrExists) {
			return nil, &kindError{fmt.Errorf("connect %s: %w", rec.Key(), err), api.ErrConflict}
		}
		return nil, fmt.Errorf("connect %s: %w", rec.Key(), err)
	}
	return netnsPort{port}, nil
}

// restoreEndpoint brings a stored endpoint back after a restart, if its
// namespace is still the one it was connected in.
func (d *Daemon) restoreEndpoint(n *network, rec store.Endpoint) error {
	if !rec.TapOnly {
		id, err := nsenter.Stat(rec.NetNS)
		if err != nil {
			return fmt.Errorf("its namespace is gone: %w", err)
		}
		if id != rec.NetNSID {
			return fmt.Errorf("its namespace is gone: %s now names another namespace", rec.NetNS)
		}
	}
	if err := n.addrs.Reserve(rec.Address.Addr(), rec.Name); err != nil {
		return fmt.Errorf("re-reserve its address: %w", err)
	}
	ep, err := d.attach(n, rec, true)
	if err != nil {
		n.addrs.Release(rec.Address.Addr())
		if rec.TapOnly {
			tap.RemoveVM(rec.IfName)
		} else {
			tap.Remove(rec.NetNS, rec.IfName)
		}
		return err
	}
	n.endpoints[rec.Name] = ep
	for _, p := range rec.Ports {
		ps, err := parsePortSpec(p.Spec)
		if err == nil {
			_, err = d.publishLocked(n, ep, ps, p.Bound)
		}
		if err != nil {
			d.log.Warn("published port not restored", zap.String("endpoint", rec.Key()), zap.String("spec", p.Spec), zap.Error(err))
		}
	}
	d.syncNATLocked(n)
	d.syncNamesLocked(n)
	return nil
}

// Disconnect detaches an endpoint, deletes its TAP and frees its address.
func (d *Daemon) Disconnect(network, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.networks[network]
	if n == nil {
		return notFoundNetwork(network)
	}
	e := n.endpoints[name]
	if e == nil {
		return notFound("endpoint %q not found in network %q (list them with `switchyard endpoint ls --network %s`)", name, network, network)
	}
	if err := d.store.DeleteEndpoint(network, name); err != nil {
		return fmt.Errorf("disconnect %s: save state: %w", e.rec.Key(), err)
	}
	d.removeLocked(n, e)
	d.log.Info("endpoint disconnected", zap.String("endpoint", e.rec.Key()))
	return nil
}

// removeLocked detaches e and deletes its device.
func (d *Daemon) removeLocked(n *network, e *endpoint) {
	delete(n.endpoints, e.rec.Name)
	if err := e.port.Forget(); err != nil {
		d.log.Debug("forgetting the device", zap.String("endpoint", e.rec.Key()), zap.Error(err))
	}
	d.ports.UnpublishAll(e.rec.Key())
	n.sw.Detach(e.link)
	n.gw.RemoveNeighbor(e.rec.Address.Addr())
	n.addrs.Unbind(e.rec.MAC, e.rec.Address.Addr())
	n.addrs.Release(e.rec.Address.Addr())
	removeResolvConf(e.rec, d.log)
	d.syncNATLocked(n)
	d.syncNamesLocked(n)
}

// endpointGone removes an endpoint whose namespace or device disappeared.
func (d *Daemon) endpointGone(rec store.Endpoint, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.networks[rec.Network]
	if n == nil || d.closed {
		return
	}
	e := n.endpoints[rec.Name]
	if e == nil || e.rec.NetNSID != rec.NetNSID || !e.rec.Created.Equal(rec.Created) {
		return // already gone, or a newer endpoint of the same name
	}
	d.store.DeleteEndpoint(rec.Network, rec.Name)
	d.removeLocked(n, e)
	d.log.Warn("endpoint removed: "+why, zap.String("endpoint", rec.Key()), zap.String("netns", rec.NetNS))
}

// watch removes endpoints whose namespace path is gone or names another
// namespace. An open TAP keeps its namespace alive, so without this a
// deleted namespace would live on, unnamed, as long as the daemon.
func (d *Daemon) watch() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			for _, rec := range d.goneEndpoints() {
				d.endpointGone(rec, "its namespace is gone")
			}
		}
	}
}

// goneEndpoints lists endpoints whose namespace path no longer leads to
// the namespace they were connected in.
func (d *Daemon) goneEndpoints() []store.Endpoint {
	d.mu.Lock()
	var recs []store.Endpoint
	for _, n := range d.networks {
		for _, e := range n.endpoints {
			if !e.rec.TapOnly {
				recs = append(recs, e.rec)
			}
		}
	}
	d.mu.Unlock()
	var gone []store.Endpoint
	for _, rec := range recs {
		id, err := nsenter.Stat(rec.NetNS)
		if (err != nil && errors.Is(err, os.ErrNotExist)) || (err == nil && id != rec.NetNSID) {
			gone = append(gone, rec)
		}
	}
	return gone
}
