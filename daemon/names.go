package daemon

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/store"
	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/gateway/dns"
)

// Names: every network runs a DNS server at its gateway address (Docker
// serves 127.0.0.11 inside each container; a TAP-attached namespace has
// no such loopback trick, so Switchyard serves the gateway). On
// user-defined networks it answers the endpoints' names and aliases, with
// the network's name as a search domain (web and web.NETWORK); the default
// network answers none, as Docker's default bridge. Every other name goes
// to the host's resolvers, from the daemon's own sockets; an --internal
// network has no upstreams and refuses them.

// systemdResolvConf lists systemd-resolved's real upstreams, read when the
// host's resolv.conf names none.
const systemdResolvConf = "/run/systemd/resolve/resolv.conf"

// loadUpstreams reads the host's resolvers.
func loadUpstreams(path string, log *zap.Logger) []netip.AddrPort {
	explicit := path != ""
	if !explicit {
		path = "/etc/resolv.conf"
	}
	ups, _, err := dns.ReadResolvConf(path)
	if err == nil && len(ups) == 0 && !explicit {
		ups, _, err = dns.ReadResolvConf(systemdResolvConf)
	}
	if err != nil {
		log.Warn("no upstream DNS resolvers: names outside the networks will not resolve", zap.Error(err))
		return nil
	}
	if len(ups) == 0 {
		log.Warn("no upstream DNS resolvers: names outside the networks will not resolve", zap.String("resolv_conf", path))
	}
	return ups
}

// startDNS starts n's DNS server on its gateway.
func (d *Daemon) startDNS(n *network) error {
	cfg := dns.Config{
		Stack: n.gw.Stack(), NIC: gateway.NICID, Addr: n.rec.Gateway,
		Logger: d.log.With(zap.String("network", n.rec.Name)),
	}
	if !n.rec.Default {
		cfg.Domain = n.rec.Name
	}
	if !n.rec.Internal {
		cfg.Upstreams = d.upstreams
	}
	s, err := dns.New(cfg)
	if err != nil {
		return err
	}
	n.dns = s
	if _, gw6, _ := n.rec.IPv6(); gw6.IsValid() && gw6 != n.rec.Gateway {
		// A dual-stack network answers at its IPv6 gateway too (the
		// address its Router Advertisements name), from a second
		// server given the same names.
		cfg.Addr = gw6
		s6, err := dns.New(cfg)
		if err != nil {
			s.Close()
			n.dns = nil
			return err
		}
		n.dns6 = s6
	}
	return nil
}

// syncNamesLocked gives n's DNS server the names of its endpoints.
func (d *Daemon) syncNamesLocked(n *network) {
	if n.dns == nil || n.rec.Default {
		return
	}
	names := map[string][]netip.Addr{}
	for _, e := range n.endpoints {
		as := e.rec.Addrs()
		names[e.rec.Name] = append(names[e.rec.Name], as...)
		for _, al := range e.rec.Aliases {
			names[al] = append(names[al], as...)
		}
	}
	n.dns.SetNames(names)
	if n.dns6 != nil {
		n.dns6.SetNames(names)
	}
	n.names = len(names)
}

// checkAliases validates --alias names.
func checkAliases(aliases []string) error {
	for _, a := range aliases {
		if a == "" || len(a) > 253 || strings.ContainsAny(a, " \t\n/:") || strings.HasPrefix(a, ".") || strings.HasSuffix(a, ".") ||
			strings.Contains(a, "..") {
			return endpointField("aliases", a, "not a DNS name", "letters, digits, '-', '.', like db or db.internal")
		}
	}
	return nil
}

// resolvConfPath is where --write-resolv-conf writes for rec: the file
// `ip netns exec NAME` bind-mounts over /etc/resolv.conf for a named
// namespace, the process's own /etc/resolv.conf (through /proc/PID/root)
// for a PID.
func resolvConfPath(rec store.Endpoint) (string, error) {
	if rec.PID > 0 {
		return "/proc/" + strconv.Itoa(rec.PID) + "/root/etc/resolv.conf", nil
	}
	if dir := filepath.Dir(rec.NetNS); dir == "/var/run/netns" || dir == "/run/netns" {
		return filepath.Join("/etc/netns", filepath.Base(rec.NetNS), "resolv.conf"), nil
	}
	return "", endpointField("write_resolv_conf", "", fmt.Sprintf("namespace %s is neither /var/run/netns/NAME nor a process's (`pid`): it has no resolv.conf of its own to write", rec.NetNS), "")
}

// resolvConfText is the resolv.conf --write-resolv-conf writes for an
// endpoint of n: the network's DNS server (at each of the gateway's
// addresses on a dual-stack network, IPv4 first), and its name as the
// search domain.
func resolvConfText(n *network) []byte {
	var b strings.Builder
	b.WriteString("# written by switchyard connect --write-resolv-conf\n")
	fmt.Fprintf(&b, "nameserver %s\n", n.rec.Gateway)
	if _, gw6, _ := n.rec.IPv6(); gw6.IsValid() && gw6 != n.rec.Gateway {
		fmt.Fprintf(&b, "nameserver %s\n", gw6)
	}
	if !n.rec.Default {
		fmt.Fprintf(&b, "search %s\n", n.rec.Name)
	}
	b.WriteString("options ndots:0\n")
	return []byte(b.String())
}

// removeResolvConf undoes what writeResolvConf wrote: for a named
// namespace it removes the file; for a process it puts back what the file
// held, but only while that process is still the endpoint's (its network
// namespace is the one connected), never into a process that reused the
// PID.
func (d *Daemon) removeResolvConf(rec store.Endpoint) {
	if rec.ResolvConf == "" {
		return
	}
	if rec.PID > 0 {
		if rec.ResolvConfPrev == nil {
			return
		}
		id, err := d.attach.NetNS(rec.NetNS)
		if err != nil || id != rec.NetNSID {
			return // the process is gone: so is its file
		}
	}
	if err := d.attach.RemoveResolvConf(rec.ResolvConf, rec.PID, rec.ResolvConfPrev); err != nil {
		d.log.Warn("could not undo --write-resolv-conf", zap.String("endpoint", rec.Key()), zap.Error(err))
	}
}

// dnsView describes n's DNS server for the API.
func dnsView(n *network, upstreams []netip.AddrPort) *api.DNSStats {
	if n.dns == nil {
		return nil
	}
	s := n.dns.Stats()
	v := &api.DNSStats{
		Addr: n.rec.Gateway, Upstreams: upstreams, Names: n.names, Queries: s.UDPQueries + s.TCPQueries, Local: s.Local,
		Forwarded: s.Forwarded, UpstreamFailures: s.UpstreamFailures, ServFail: s.ServFail,
		Overflow: s.Overflow, Malformed: s.Malformed,
	}
	if n.rec.Internal {
		v.Upstreams = nil
	}
	return v
}

// dhcpLeases lists n's DHCP leases for the API: DHCPv4's, then
// DHCPv6's.
func dhcpLeases(n *network) []api.DHCPLease {
	var out []api.DHCPLease
	if s := n.gw.DHCP(); s != nil {
		for _, l := range s.Leases() {
			out = append(out, api.DHCPLease{MAC: l.MAC.String(), Addr: l.Addr, Hostname: l.Hostname, Expiry: l.Expiry, State: string(l.State)})
		}
	}
	if s := n.gw.DHCP6(); s != nil {
		for _, l := range s.Leases() {
			out = append(out, api.DHCPLease{MAC: l.MAC.String(), Addr: l.Addr, DUID: l.DUID, Expiry: l.Expiry, State: "bound"})
		}
	}
	return out
}

// checkResolvConf tells whether --write-resolv-conf can be done for rec,
// before anything is made for it.
func (d *Daemon) checkResolvConf(rec store.Endpoint) error {
	if rec.TapOnly {
		return endpointField("write_resolv_conf", "", "a `tap_only` endpoint has no namespace; its VM gets the resolver by DHCP", "")
	}
	if _, err := resolvConfPath(rec); err != nil {
		return err
	}
	if rec.PID > 0 && d.attach.SharesMountNS(rec.PID) {
		return endpointField("write_resolv_conf", "", fmt.Sprintf("process %d shares the daemon's mount namespace, so its /etc/resolv.conf is the host's: not overwriting it", rec.PID), "")
	}
	return nil
}

// writeResolvConf writes e's resolv.conf (--write-resolv-conf) and records
// it, so that disconnect undoes it. On error nothing stays written. A
// process's own file is written inside its root, never following the
// container's symlinks (the daemon may be root, the file the
// container's); what it held before is recorded, so that disconnect can
// put it back.
func (d *Daemon) writeResolvConf(n *network, e *endpoint) error {
	path, err := resolvConfPath(e.rec)
	if err != nil {
		return err
	}
	prev, err := d.attach.WriteResolvConf(path, e.rec.PID, resolvConfText(n))
	if err != nil {
		if e.rec.PID > 0 {
			return endpointField("write_resolv_conf", "", fmt.Sprintf("process %d: %v", e.rec.PID, err), "")
		}
		return fmt.Errorf("--write-resolv-conf: %w", err)
	}
	rec := e.rec
	rec.ResolvConf, rec.ResolvConfPrev = path, prev
	if err := d.store.PutEndpoint(rec); err != nil {
		d.removeResolvConf(rec)
		return fmt.Errorf("connect %s: save state: %w", rec.Key(), err)
	}
	e.rec = rec
	return nil
}
