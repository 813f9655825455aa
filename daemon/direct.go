package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/attach"
	"github.com/switchyard-net/switchyard/daemon/ipam"
	"github.com/switchyard-net/switchyard/daemon/store"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
)

// Direct routing (issue 15): a network's host interface and its routed
// remote subnets.
//
// The host interface is a TAP in the daemon's own network namespace,
// attached to the network's switch like an endpoint, with an address of
// the subnet (by default its last usable one, reserved like an aux
// address): the host kernel has the subnet on-link through it, so the
// host reaches every endpoint by address and routes the subnet, as it
// does through docker0. The routes (api.NetworkCreate.Routes) are other
// hosts' container subnets: the gateway forwards packets for them to the
// host interface unchanged but for the TTL (gateway/route.go), and the
// host kernel sends them on by its own routing table. Replies to senders
// outside the routes that came in through the host interface go back to
// it too (gateway/returnpath.go). Only a root daemon can make a TAP in its
// own namespace.

// hostIfAuxName is the key under which a network's host interface
// address is reserved in its address pool.
const hostIfAuxName = "host-interface"

// parseDirect checks host_interface, host_interface_addr and routes on
// their own (and against subnet, if the request gives one).
func parseDirect(errs *fieldErrs, req api.NetworkCreate, subnet netip.Prefix) (*store.HostInterface, []netip.Prefix) {
	var hi *store.HostInterface
	if req.HostInterface == "" {
		if req.HostInterfaceAddr != "" {
			errs.add("host_interface_addr", req.HostInterfaceAddr, "given without `host_interface`", "`host_interface` NAME, or no `host_interface_addr`")
		}
	} else {
		if why := ifNameProblem(req.HostInterface); why != "" {
			errs.add("host_interface", req.HostInterface, why, ifNameRule)
		}
		hi = &store.HostInterface{Name: req.HostInterface}
		if req.HostInterfaceAddr != "" {
			a, err := netip.ParseAddr(req.HostInterfaceAddr)
			if err != nil || a.Zone() != "" {
				errs.add("host_interface_addr", req.HostInterfaceAddr, "not an IP address", "an unused address inside `subnet`")
			}
			hi.Addr = a
		}
	}
	if len(req.Routes) == 0 {
		return hi, nil
	}
	if req.HostInterface == "" {
		errs.add("routes", strings.Join(req.Routes, ","), "given without `host_interface`, the next hop they are routed to", "`host_interface` NAME with `routes`")
	}
	if req.Internal {
		errs.add("routes", strings.Join(req.Routes, ","), "excludes `internal`: an internal network never routes", "one of the two")
	}
	var routes []netip.Prefix
	for _, s := range req.Routes {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			errs.add("routes", s, "not a CIDR prefix", "CIDR notation like 10.1.0.0/24")
			continue
		case p != p.Masked():
			errs.add("routes", s, "has bits set after the prefix length", p.Masked().String())
			continue
		case p.Bits() == 0:
			errs.add("routes", s, "is a default route: only other hosts' container subnets are routed", "a prefix such as 10.1.0.0/24")
			continue
		}
		if why := reservedSubnet(p); why != "" {
			errs.add("routes", s, why, "another host's container subnet, such as 10.1.0.0/24")
			continue
		}
		if subnet.IsValid() {
			if why := routeVersusSubnet(p, subnet); why != "" {
				errs.add("routes", s, why, "another host's container subnet, outside "+subnet.String())
				continue
			}
		}
		dup := false
		for _, q := range routes {
			if q.Overlaps(p) {
				errs.add("routes", s, "overlaps route "+q.String(), "routes that do not overlap")
				dup = true
				break
			}
		}
		if !dup {
			routes = append(routes, p)
		}
	}
	return hi, routes
}

// routeVersusSubnet says why route p cannot be routed by a network of
// subnet, or "".
func routeVersusSubnet(p, subnet netip.Prefix) string {
	switch {
	case p.Addr().Is4() != subnet.Addr().Is4():
		return "not of the network's address family (" + subnet.String() + ")"
	case ipam.Overlaps(p, subnet):
		return "overlaps the network's own subnet " + subnet.String()
	}
	return ""
}

// ifNameRule is what ifNameProblem accepts, said for a person.
const ifNameRule = "1-15 characters, none of them '/', ':' or white space, not '.' or '..'"

// ifNameProblem says why the kernel would refuse name as an interface
// name (dev_valid_name), or "".
func ifNameProblem(name string) string {
	switch {
	case len(name) > 15:
		return "longer than 15 characters"
	case name == "." || name == "..":
		return "not an interface name"
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return "contains '/', ':' or white space"
	}
	return ""
}

// lastUsable is the subnet's last address an endpoint could have: before
// the broadcast address in IPv4, the very last in IPv6.
func lastUsable(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	last, _ := netip.AddrFromSlice(b)
	if last.Is4() {
		last = last.Prev()
	}
	return last
}

// finishDirect completes the host interface of rec once its subnet is
// known (its address, by default the last usable one, and its MAC) and
// checks it, and the routes, against the subnet and the other networks.
// It runs under Daemon.mu.
func (d *Daemon) finishDirect(req api.NetworkCreate, rec *store.Network) error {
	hi := rec.HostInterface
	if hi == nil {
		return nil
	}
	var errs fieldErrs
	field, value := "host_interface_addr", req.HostInterfaceAddr
	if !hi.Addr.IsValid() {
		hi.Addr = lastUsable(rec.Subnet)
		field, value = "subnet", rec.Subnet.String()
	}
	switch {
	case !rec.Subnet.Contains(hi.Addr) || hi.Addr == rec.Subnet.Addr() || (hi.Addr.Is4() && hi.Addr == lastUsable(rec.Subnet).Next()):
		errs.add(field, value, "the host interface address "+hi.Addr.String()+" is not a usable address of "+rec.Subnet.String(), "an address inside `subnet` other than its network and broadcast addresses")
	case hi.Addr == rec.Gateway:
		errs.add(field, value, "the host interface address "+hi.Addr.String()+" is the gateway's", "another address of `subnet`, or another `gateway`")
	}
	for name, a := range rec.AuxAddresses {
		if a == hi.Addr {
			errs.add(field, value, "the host interface address "+hi.Addr.String()+" is aux address "+name+"'s", "an address no `aux_addresses` entry takes")
		}
	}
	for _, p := range rec.Routes {
		if why := routeVersusSubnet(p, rec.Subnet); why != "" {
			errs.add("routes", p.String(), why, "another host's container subnet, outside "+rec.Subnet.String())
		}
	}
	if err := api.Validate(req, errs); err != nil {
		return err
	}
	hi.MAC = dockerMAC(hi.Addr)
	if err := d.checkForwarding(*rec); err != nil {
		return err
	}
	for _, other := range d.allRecords() {
		if other.HostInterface != nil && other.HostInterface.Name == hi.Name {
			return conflict("host interface %s is network %q's: choose another name", hi.Name, other.Name)
		}
		for _, p := range rec.Routes {
			if ipam.Overlaps(p, other.Subnet) {
				return conflict("route %s overlaps network %q (%s) of this host: route only other hosts' subnets", p, other.Name, other.Subnet)
			}
		}
	}
	return nil
}

// checkRoutedBy refuses a subnet that another network of this host
// routes to another host.
func (d *Daemon) checkRoutedBy(subnet netip.Prefix) error {
	for _, other := range d.allRecords() {
		for _, p := range other.Routes {
			if ipam.Overlaps(p, subnet) {
				return conflict("subnet %s overlaps %s, which network %q routes to another host: choose another subnet", subnet, p, other.Name)
			}
		}
		if other.Direct != nil && ipam.Overlaps(other.Direct.Range, subnet) {
			return conflict("subnet %s overlaps %s, the cluster range network %q routes to the other hosts: choose another subnet", subnet, other.Direct.Range, other.Name)
		}
	}
	return nil
}

// allRecords returns the records of every network, those being created or
// removed included. Daemon.mu is held.
func (d *Daemon) allRecords() []store.Network {
	out := make([]store.Network, 0, len(d.networks)+len(d.reserved))
	for _, n := range d.networks {
		out = append(out, n.rec)
	}
	for _, rec := range d.reserved {
		out = append(out, rec)
	}
	return out
}

// rootlessHostInterface is the refusal of a host interface by a rootless
// daemon.
func rootlessHostInterface(errs *fieldErrs, req api.NetworkCreate) {
	errs.add("host_interface", req.HostInterface,
		"a rootless daemon cannot make a host interface: it is a TAP in the daemon's own network namespace, which needs CAP_NET_ADMIN there",
		"switchyardd running as root, or no `host_interface` (reach endpoints through published ports)")
}

// forwardingSysctl names the sysctl that makes the kernel forward a
// family.
func forwardingSysctl(v6 bool) string {
	if v6 {
		return "net.ipv6.conf.all.forwarding"
	}
	return "net.ipv4.ip_forward"
}

// HostForwarding reads whether the kernel of the calling process's
// network namespace forwards IPv4 (IPv6 if v6) packets.
func HostForwarding(v6 bool) (bool, error) {
	path := "/proc/sys/" + strings.ReplaceAll(forwardingSysctl(v6), ".", "/")
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)) != "0", nil
}

// checkForwarding refuses routes the host kernel would drop: it must
// forward their family.
func (d *Daemon) checkForwarding(rec store.Network) error {
	if len(rec.Routes) == 0 && rec.Direct == nil {
		return nil
	}
	what := fmt.Sprintf("routes %v", rec.Routes)
	if rec.Direct != nil {
		what = "routing direct (the other hosts' leases)"
	}
	v6 := rec.Subnet.Addr().Is6()
	on, err := d.cfg.Forwarding(v6)
	if err != nil {
		return fmt.Errorf("%s: cannot tell whether the host forwards them: %w", what, err)
	}
	if !on {
		name := forwardingSysctl(v6)
		return conflict("%s need the host kernel to forward packets between the host interface and the other hosts, and %s is 0: run `sysctl -w %s=1` first", what, name, name)
	}
	return nil
}

// hostIf is a network's live host interface.
type hostIf struct {
	port attach.Port
	link *vswitch.Link
}

// openHostInterface makes (or, restoring, re-attaches to) n's host
// interface and attaches it to n's switch. On error nothing of it is
// left.
func (d *Daemon) openHostInterface(ctx context.Context, n *network, restoring bool) error {
	hi := n.rec.HostInterface
	port, err := d.attach.Open(ctx, tap.Config{
		Name: hi.Name, PortName: "host-if", MAC: hi.MAC, MTU: n.rec.MTU,
		Addrs: []netip.Prefix{netip.PrefixFrom(hi.Addr, n.rec.Subnet.Bits())}, Offload: d.cfg.Offload,
		Owner: d.id, Existing: restoring, Configure: true, Logger: d.log, Loop: n.loop,
	})
	if err != nil {
		if errors.Is(err, tap.ErrExists) {
			return conflict("host interface %s: an interface of that name exists in the daemon's namespace: choose another `host_interface`", hi.Name)
		}
		return fmt.Errorf("host interface %s: %w", hi.Name, err)
	}
	// The host interface is a router's port: not isolated (the host
	// reaches endpoints of an --icc=false network, as through docker0),
	// no address binding (it carries other hosts' addresses), its MAC
	// locked.
	// Attached through the gateway, which learns from the frames the host
	// brings in whom to send replies back to (the return path).
	link, err := n.sw.Attach(n.gw.HostInterfacePort(port), vswitch.AttachOptions{LockMAC: hi.MAC})
	if err != nil {
		port.Forget()
		port.Close()
		return fmt.Errorf("host interface %s: %w", hi.Name, err)
	}
	if err := n.gw.PinNeighbor(hi.Addr, hi.MAC); err != nil {
		port.Forget()
		n.sw.Detach(link)
		return fmt.Errorf("host interface %s: %w", hi.Name, err)
	}
	n.hostIf = &hostIf{port: port, link: link}
	d.log.Info("host interface up", zap.String("network", n.rec.Name), zap.String("ifname", hi.Name),
		zap.Stringer("addr", hi.Addr), zap.Stringers("routes", n.rec.Routes))
	return nil
}

// forgetHostInterface arranges for n's host interface to be deleted when
// the switch closes its port (the network is removed for good).
func (n *network) forgetHostInterface(log *zap.Logger) {
	if n.hostIf == nil {
		return
	}
	if err := n.hostIf.port.Forget(); err != nil {
		log.Warn("host interface not deleted", zap.String("network", n.rec.Name), zap.String("ifname", n.rec.HostInterface.Name), zap.Error(err))
	}
}

// directView renders the host interface and routes of n for the API.
func directView(n *network, v *api.Network) {
	if hi := n.rec.HostInterface; hi != nil {
		v.HostInterface = &api.HostInterface{Name: hi.Name, Addr: hi.Addr, MAC: hi.MAC.String()}
		if n.hostIf != nil {
			v.HostInterface.Port = portStats(n.hostIf.link.Stats())
		}
	}
	if len(n.rec.Routes) > 0 {
		v.Routes = n.rec.Routes
		st := n.gw.RouteStats()
		v.Routing = &api.RouteStats{Forwarded: st.Forwarded, TTLExceeded: st.TTLExceeded, Looped: st.Looped}
	}
	if n.rec.HostInterface != nil && !n.rec.Internal {
		st := n.gw.ReturnStats()
		v.ReturnPath = &api.ReturnPathStats{Senders: st.Senders, Learned: st.Learned, Evicted: st.Evicted, Expired: st.Expired, Forwarded: st.Forwarded}
	}
}
