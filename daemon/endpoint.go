package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/attach"
	"github.com/switchyard-net/switchyard/daemon/store"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
)

// endpoint is one connected namespace (or VM TAP): its record, its port
// and its link on the network's switch.
type endpoint struct {
	rec       store.Endpoint
	port      attach.Port
	link      *vswitch.Link
	capturing bool // guarded by Daemon.mu
}

func (e *endpoint) view(n *network) api.Endpoint {
	v := api.Endpoint{
		Network: e.rec.Network, Name: e.rec.Name, NetNS: e.rec.NetNS, PID: e.rec.PID, IfName: e.rec.IfName,
		MAC: e.rec.MAC.String(), Address: e.rec.Address, Offload: e.port.Offload(), Created: e.rec.Created,
		Stats: portStats(e.link.Stats()), Kind: "netns", DHCP: e.rec.DHCP,
		Aliases: e.rec.Aliases, ResolvConf: e.rec.ResolvConf,
		AllowedAddresses: formatPrefixes(e.rec.AllowedAddresses), MACSpoofing: e.rec.MACSpoofing,
	}
	if n.dns != nil {
		v.DNS = n.rec.Gateway
	}
	switch {
	case e.rec.Handoff:
		v.Kind, v.NetNS = "handoff", ""
	case e.rec.TapOnly:
		v.Kind, v.NetNS = "vm", ""
	}
	v.ContainerID, v.Runtime, v.Sandbox = e.rec.ContainerID, e.rec.Runtime, e.rec.Sandbox
	if !n.rec.Internal {
		v.Gateway = n.rec.Gateway
	}
	v.Expose = e.rec.Expose
	v.Address6 = e.rec.Address6
	if !n.rec.Internal && e.rec.Address6.IsValid() {
		v.Gateway6 = n.rec.Gateway6
	}
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

// attachPort opens the port for rec (re-attaching to an existing device
// if restoring) and plugs it into the network's switch.
func (d *Daemon) attachPort(ctx context.Context, n *network, rec store.Endpoint, restoring bool) (*endpoint, error) {
	var port attach.Port
	var err error
	switch {
	case rec.Handoff:
		cfg := d.handoffConfig(n, rec, restoring)
		if restoring {
			// Re-attach only to a device that is there: opening a
			// missing one would make a new one.
			cfg.NetNS, cfg.Name, err = d.handoffPlace(rec)
			if err != nil {
				return nil, err
			}
		}
		port, err = d.attach.Open(ctx, cfg)
	case rec.TapOnly:
		port, err = d.attach.OpenVM(ctx, tap.VMConfig{Name: rec.IfName, PortName: rec.Name, Owner: rec.TapOwner, Group: -1, Daemon: d.id,
			MTU: n.rec.MTU, Existing: restoring, Logger: d.log.With(zap.String("network", n.rec.Name))})
	default:
		port, err = d.attach.Open(ctx, d.tapConfig(n, rec, restoring))
	}
	if err != nil {
		if errors.Is(err, tap.ErrExists) {
			return nil, &kindError{fmt.Errorf("connect %s: %w", rec.Key(), err), api.ErrConflict}
		}
		return nil, fmt.Errorf("connect %s: %w", rec.Key(), err)
	}
	link, err := n.sw.Attach(port, vswitch.AttachOptions{Isolated: !n.rec.ICC, Binding: endpointBinding(rec, n.slaacPrefix())})
	if err == nil {
		for _, a := range rec.Addrs() {
			if err = n.gw.PinNeighbor(a, rec.MAC); err != nil {
				n.sw.Detach(link)
				break
			}
		}
	}
	if err != nil {
		// The switch closed the port: the device is deleted by name.
		nsPath := rec.NetNS
		if rec.TapOnly {
			nsPath = ""
		}
		if rerr := d.attach.Remove(nsPath, rec.IfName); rerr != nil {
			d.log.Warn("removing the device of a failed connect", zap.String("endpoint", rec.Key()), zap.Error(rerr))
		}
		return nil, fmt.Errorf("connect %s: %w", rec.Key(), err)
	}
	n.addrs.Bind(rec.MAC, rec.Address.Addr())
	if n.addrs6 != nil && rec.Address6.IsValid() {
		n.addrs6.Bind(rec.MAC, rec.Address6.Addr()) // the DHCPv6 server's static lease
	}
	return &endpoint{rec: rec, port: port, link: link}, nil
}

// tapConfig describes the TAP of rec in its namespace.
func (d *Daemon) tapConfig(n *network, rec store.Endpoint, restoring bool) tap.Config {
	cfg := tap.Config{
		NetNS: rec.NetNS, Name: rec.IfName, PortName: rec.Name, MAC: rec.MAC, MTU: n.rec.MTU,
		Addrs: endpointPrefixes(rec), Offload: d.cfg.Offload, Existing: restoring, Configure: true, Owner: d.id,
		Logger: d.log.With(zap.String("network", n.rec.Name)), Loop: n.loop,
		OnGone: func(err error) {
			// Called from the port's reader: detach from another goroutine.
			go d.endpointGone(rec, fmt.Sprintf("its device %s was deleted (%v)", rec.IfName, err))
		},
	}
	if !n.rec.Internal {
		cfg.Gateway, cfg.Gateway6 = n.rec.Gateway, n.rec.Gateway6
	}
	if rec.DHCP {
		// MAC and MTU, up, no address of either family and no default
		// route: the namespace's own clients do the rest. DHCP gives
		// the endpoint's IPv4 address and router; the gateway's Router
		// Advertisements give SLAAC and the IPv6 default route, and a
		// DHCPv6 client is given the endpoint's IPv6 address. Autoconf
		// is left as the kernel has it. On restore the device is taken
		// as it is, with the addresses its clients gave it.
		cfg.Addrs, cfg.Gateway, cfg.Gateway6 = nil, netip.Addr{}, netip.Addr{}
		cfg.Configure = !restoring
	}
	return cfg
}

// endpointPrefixes are the addresses of rec's interface, IPv4 first.
func endpointPrefixes(rec store.Endpoint) []netip.Prefix {
	out := []netip.Prefix{rec.Address}
	if rec.Address6.IsValid() {
		out = append(out, rec.Address6)
	}
	return out
}

// handoffConfig describes rec's handoff TAP: made in the daemon's own
// namespace with the endpoint's MAC and MTU and nothing else, for the
// runtime to move into its sandbox. The daemon's descriptor keeps working
// wherever the device goes.
func (d *Daemon) handoffConfig(n *network, rec store.Endpoint, restoring bool) tap.Config {
	return tap.Config{
		Name: rec.IfName, PortName: rec.Name, MAC: rec.MAC, MTU: n.rec.MTU, Offload: d.cfg.Offload,
		Existing: restoring, Configure: !restoring, LinkOnly: true, Owner: d.id,
		Logger: d.log.With(zap.String("network", n.rec.Name)), Loop: n.loop,
		OnGone: func(err error) {
			go d.endpointGone(rec, fmt.Sprintf("its device %s was deleted (%v)", rec.IfName, err))
		},
	}
}

// handoffPlace finds the TAP of a handoff endpoint being restored: in the
// daemon's namespace under its own name (not handed over yet, or given
// back), or in its sandbox under the name its runtime gave it there,
// found by this daemon's mark and the endpoint's MAC; if the sandbox's
// path does not open here, in whichever process's namespace has it.
func (d *Daemon) handoffPlace(rec store.Endpoint) (nsPath, name string, err error) {
	if names, err := d.attach.Marked("", d.id); err == nil && slices.Contains(names, rec.IfName) {
		return "", rec.IfName, nil
	}
	if rec.Sandbox != "" {
		if _, err := d.attach.NetNS(rec.Sandbox); err == nil {
			if name, err := d.attach.FindMarked(rec.Sandbox, d.id, rec.MAC); err == nil && name != "" {
				return rec.Sandbox, name, nil
			}
		} else {
			// The runtime's sandbox path is not to be opened from here
			// (a runtime in a mount namespace of its own): look in
			// every process's namespace for the mark and MAC.
			paths, _ := d.attach.ProcessNetNSes()
			for _, p := range paths {
				if name, err := d.attach.FindMarked(p, d.id, rec.MAC); err == nil && name != "" {
					return p, name, nil
				}
			}
		}
	}
	return "", "", fmt.Errorf("its TAP %s (MAC %s) is neither in the daemon's namespace nor in its sandbox %q", rec.IfName, rec.MAC, rec.Sandbox)
}

// restoreEndpointLocked brings a stored endpoint back after a restart, if
// its namespace is still the one it was connected in. Its ports are
// published by restorePortsLocked, once every endpoint is back.
func (d *Daemon) restoreEndpointLocked(n *network, rec store.Endpoint) error {
	if !rec.TapOnly {
		id, err := d.attach.NetNS(rec.NetNS)
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
	if rec.Address6.IsValid() && n.addrs6 != nil {
		if err := n.addrs6.Reserve(rec.Address6.Addr(), rec.Name); err != nil {
			n.addrs.Release(rec.Address.Addr())
			return fmt.Errorf("re-reserve its IPv6 address: %w", err)
		}
	}
	ep, err := d.attachPort(context.Background(), n, rec, true)
	if err != nil {
		n.release(rec)
		nsPath := rec.NetNS
		if rec.TapOnly {
			nsPath = ""
		}
		if rerr := d.attach.Remove(nsPath, rec.IfName); errors.Is(rerr, tap.ErrNotOurs) {
			d.log.Warn("an interface stands where the endpoint's TAP was, and Switchyard did not make it: left alone",
				zap.String("endpoint", rec.Key()), zap.Error(rerr))
		}
		return err
	}
	n.endpoints[rec.Name] = ep
	d.syncNamesLocked(n)
	return nil
}

// restorePortsLocked publishes the restored endpoints' ports again, on
// the host ports they had where they are free. Every endpoint gets back
// the ports it remembers before any port is chosen afresh: otherwise an
// ephemeral port chosen for one endpoint (its own taken meanwhile) could
// be another's that is not restored yet.
func (d *Daemon) restorePortsLocked(host []netip.Addr) {
	type later struct {
		n  *network
		e  *endpoint
		ps portSpec
		p  store.Port
	}
	var again []later
	for _, n := range d.sortedNetworksLocked() {
		for _, e := range n.sortedEndpoints() {
			for _, p := range e.rec.Ports {
				ps, err := parsePortSpec(p.Spec)
				if err == nil {
					_, err = d.publish(n, e, ps, p.Bound, false)
				}
				if errors.Is(err, errNotRebound) {
					again = append(again, later{n, e, ps, p})
				} else if err != nil {
					d.log.Warn("published port not restored", zap.String("endpoint", e.rec.Key()), zap.String("spec", p.Spec), zap.Error(err))
				}
			}
		}
	}
	for _, l := range again {
		if _, err := d.publish(l.n, l.e, l.ps, l.p.Bound, true); err != nil {
			d.log.Warn("published port not restored", zap.String("endpoint", l.e.rec.Key()), zap.String("spec", l.p.Spec), zap.Error(err))
		}
	}
	for _, n := range d.networks {
		d.syncNATLocked(n, host)
	}
}

// Disconnect detaches an endpoint, deletes its TAP and frees its address.
// The endpoint's name and address stay held (network.pending) until its
// device is gone, without Daemon.mu. ctx ended before the disconnect
// begins cancels it; once begun, it is done.
func (d *Daemon) Disconnect(ctx context.Context, network, name string) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errClosed
	}
	n, e, err := d.findEndpointLocked(network, name)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		d.mu.Unlock()
		return err
	}
	delete(n.endpoints, name)
	n.pending[name] = e.rec
	d.busy.Add(1)
	d.mu.Unlock()
	defer d.busy.Done()

	if err := d.store.DeleteEndpoint(network, name); err != nil {
		d.mu.Lock()
		delete(n.pending, name)
		n.endpoints[name] = e
		d.mu.Unlock()
		return fmt.Errorf("disconnect %s: save state: %w", e.rec.Key(), err)
	}
	d.remove(n, e)
	d.log.Info("endpoint disconnected", zap.String("endpoint", e.rec.Key()))
	return nil
}

// remove finishes removing e, which is pending in n: it detaches it, then
// gives back its name and address.
func (d *Daemon) remove(n *network, e *endpoint) {
	d.detach(n, e)
	host := d.hostAddrs()
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(n.pending, e.rec.Name)
	n.release(e.rec)
	d.syncNATLocked(n, host)
	d.syncNamesLocked(n)
}

// detach unpublishes e's ports, detaches it from its network and deletes
// its device and resolv.conf. e must be in no table of the network any
// more; its address is the caller's to release.
func (d *Daemon) detach(n *network, e *endpoint) {
	d.ports.UnpublishAll(e.rec.Key())
	d.removeResolvConf(e.rec)
	d.unattach(n, e)
}

// endpointGone removes an endpoint whose namespace or device disappeared,
// like Disconnect.
func (d *Daemon) endpointGone(rec store.Endpoint, why string) {
	d.mu.Lock()
	n := d.networks[rec.Network]
	var e *endpoint
	if n != nil && !d.closed {
		e = n.endpoints[rec.Name]
	}
	if e == nil || e.rec.NetNSID != rec.NetNSID || !e.rec.Created.Equal(rec.Created) {
		d.mu.Unlock()
		return // already gone, or a newer endpoint of the same name
	}
	delete(n.endpoints, rec.Name)
	n.pending[rec.Name] = e.rec
	d.busy.Add(1)
	d.mu.Unlock()
	defer d.busy.Done()
	d.store.DeleteEndpoint(rec.Network, rec.Name)
	d.remove(n, e)
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
		id, err := d.attach.NetNS(rec.NetNS)
		if (err != nil && errors.Is(err, os.ErrNotExist)) || (err == nil && id != rec.NetNSID) {
			gone = append(gone, rec)
		}
	}
	return gone
}
