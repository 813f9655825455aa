package netavark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Daemon is what the plugin asks of the Switchyard daemon: a subset of
// *api.Client, so tests can put an in-memory daemon behind it.
type Daemon interface {
	Network(ctx context.Context, name string) (api.Network, error)
	CreateNetwork(ctx context.Context, req api.NetworkCreate) (api.Network, error)
	Connect(ctx context.Context, network string, req api.EndpointCreate) (api.Endpoint, error)
	Disconnect(ctx context.Context, network, name string) error
	Endpoints(ctx context.Context, network string) ([]api.Endpoint, error)
}

var _ Daemon = (*api.Client)(nil)

// Plugin runs the plugin's commands. Its zero value is not usable: Socket
// must be set.
type Plugin struct {
	// Socket is the daemon's API socket when a network's options name
	// none.
	Socket string
	// Dial returns the daemon behind a socket. If nil, api.NewClient.
	Dial func(socket string) Daemon
	// Version is the plugin's version, for info.
	Version string
	// Timeout bounds each command; 0 means a minute.
	Timeout time.Duration
	// Log receives what the plugin does (netavark passes the plugin's
	// stderr on to podman's). If nil, nothing is logged.
	Log *zap.Logger
}

// Run runs the command args (create, setup NETNS, teardown NETNS, info;
// none means info) with its input on stdin and its answer on stdout, and
// returns the exit status: 0, or 1 with {"error": ...} on stdout.
func (p *Plugin) Run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := p.run(ctx, args, stdin)
	if err != nil {
		p.log().Info("failed", zap.Strings("args", args), zap.Error(err))
		b, _ := json.Marshal(jsonError{Error: err.Error()})
		fmt.Fprintf(stdout, "%s\n", b)
		return 1
	}
	if out != nil {
		b, err := json.Marshal(out)
		if err != nil {
			b, _ = json.Marshal(jsonError{Error: fmt.Sprintf("encode the answer: %v", err)})
			fmt.Fprintf(stdout, "%s\n", b)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return 0
}

func (p *Plugin) log() *zap.Logger {
	if p.Log == nil {
		return zap.NewNop()
	}
	return p.Log
}

// run dispatches args; a nil answer prints nothing.
func (p *Plugin) run(ctx context.Context, args []string, stdin io.Reader) (any, error) {
	cmd := "info"
	if len(args) > 0 {
		cmd = args[0]
	}
	netns := func() (string, error) {
		if len(args) != 2 || args[1] == "" {
			return "", fmt.Errorf("%s: the netns path argument is missing; want %s NETNS_PATH", cmd, cmd)
		}
		return args[1], nil
	}
	switch cmd {
	case "info":
		return map[string]string{
			"version":     p.Version,
			"api_version": APIVersion,
			"description": "Switchyard: a userspace virtual switch and port proxy",
			"socket":      p.Socket,
		}, nil
	case "create":
		if len(args) != 1 {
			return nil, fmt.Errorf("create: %d arguments; want none (the network config comes on stdin)", len(args)-1)
		}
		nw, err := decodeNetwork(stdin)
		if err != nil {
			return nil, err
		}
		return p.Create(ctx, nw)
	case "setup":
		ns, err := netns()
		if err != nil {
			return nil, err
		}
		ex, err := decodeExec(stdin)
		if err != nil {
			return nil, err
		}
		return p.Setup(ctx, ns, ex)
	case "teardown":
		ns, err := netns()
		if err != nil {
			return nil, err
		}
		ex, err := decodeExec(stdin)
		if err != nil {
			return nil, err
		}
		return nil, p.Teardown(ctx, ns, ex)
	}
	return nil, fmt.Errorf("unknown subcommand %q; want create, setup, teardown or info", cmd)
}

// daemon returns the daemon a network's options point at.
func (p *Plugin) daemon(o options) Daemon {
	socket := o.socket
	if socket == "" {
		socket = p.Socket
	}
	if p.Dial != nil {
		return p.Dial(socket)
	}
	return api.NewClient(socket)
}

// target returns the Switchyard network a podman network maps onto.
func target(nw Network, o options) string {
	if o.network != "" {
		return o.network
	}
	return nw.Name
}

// Create validates a new podman network and fills in its subnet and
// gateway from the Switchyard network it maps onto, which it creates if
// there is none yet. Name, ID and driver are returned as given.
func (p *Plugin) Create(ctx context.Context, nw Network) (Network, error) {
	o, err := parseOptions(nw.Options)
	if err != nil {
		return nw, err
	}
	v4, v6, err := nw.subnets()
	if err != nil {
		return nw, err
	}
	name := target(nw, o)
	if !namePattern.MatchString(name) || len(name) > 64 {
		return nw, fmt.Errorf("network %q: not a Switchyard network name; want letters, digits, '_', '.', '-', starting with a letter or digit, at most 64 characters (or set options.network)", name)
	}
	sy, err := p.ensureNetwork(ctx, p.daemon(o), name, nw, o, v4, v6)
	if err != nil {
		return nw, err
	}
	nw.Subnets = nil
	for _, f := range families(sy) {
		s := Subnet{Subnet: f.subnet.String()}
		if f.gw.IsValid() {
			s.Gateway = f.gw.String()
		}
		nw.Subnets = append(nw.Subnets, s)
	}
	nw.IPv6 = sy.Subnet6.IsValid() || sy.Subnet.Addr().Is6()
	return nw, nil
}

// families are a Switchyard network's subnets with their gateways, the
// IPv4 one first.
func families(sy api.Network) []subnetGW {
	var out []subnetGW
	if sy.Subnet.IsValid() {
		out = append(out, subnetGW{sy.Subnet, sy.Gateway})
	}
	if sy.Subnet6.IsValid() && sy.Subnet6 != sy.Subnet {
		out = append(out, subnetGW{sy.Subnet6, sy.Gateway6})
	}
	return out
}

// subnetIndex is where p is in nw's subnets, for messages.
func subnetIndex(nw Network, p netip.Prefix) int {
	for i, s := range nw.Subnets {
		if q, err := netip.ParsePrefix(s.Subnet); err == nil && q == p {
			return i
		}
	}
	return 0
}

// describe names subnets for a message: "subnet 10.0.0.0/24 and subnet
// fd00::/64".
func describe(fs []subnetGW) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, "subnet "+f.subnet.String())
	}
	if len(parts) == 0 {
		return "no subnet"
	}
	return strings.Join(parts, " and ")
}

// family returns the Switchyard network's subnet of one family (IPv6 if
// v6), zero if it has none.
func family(sy api.Network, v6 bool) subnetGW {
	for _, f := range families(sy) {
		if f.subnet.Addr().Is6() == v6 {
			return f
		}
	}
	return subnetGW{}
}

// ensureNetwork returns the Switchyard network name, created from nw if
// it does not exist; an existing one must agree with nw.
func (p *Plugin) ensureNetwork(ctx context.Context, d Daemon, name string, nw Network, o options, v4, v6 subnetGW) (api.Network, error) {
	sy, err := d.Network(ctx, name)
	switch {
	case err == nil:
		for _, want := range []subnetGW{v4, v6} {
			if !want.subnet.IsValid() {
				continue
			}
			have := family(sy, want.subnet.Addr().Is6())
			i := subnetIndex(nw, want.subnet)
			if have.subnet != want.subnet {
				return sy, fmt.Errorf("subnets[%d].subnet %q: Switchyard network %q exists with %s; want that subnet, or none", i, want.subnet, name, describe(families(sy)))
			}
			if want.gw.IsValid() && have.gw != want.gw {
				return sy, fmt.Errorf("subnets[%d].gateway %q: Switchyard network %q exists with gateway %s; want that gateway, or none", i, want.gw, name, have.gw)
			}
		}
		if nw.IPv6 && !family(sy, true).subnet.IsValid() {
			return sy, fmt.Errorf("ipv6_enabled: Switchyard network %q exists without an IPv6 subnet", name)
		}
		if sy.Internal != nw.Internal {
			return sy, fmt.Errorf("internal %v: Switchyard network %q exists with internal %v", nw.Internal, name, sy.Internal)
		}
		return sy, nil
	case !errors.Is(err, api.ErrNotFound):
		return sy, fmt.Errorf("look up Switchyard network %q: %w", name, err)
	}
	req := api.NetworkCreate{Name: name, MTU: o.mtu, Internal: nw.Internal}
	// The first family in Subnet and Gateway, the second (IPv6 beside
	// IPv4) in Subnets and Gateways.
	for _, f := range []subnetGW{v4, v6} {
		switch {
		case !f.subnet.IsValid():
		case req.Subnet == "":
			req.Subnet = f.subnet.String()
			if f.gw.IsValid() {
				req.Gateway = f.gw.String()
			}
		default:
			req.Subnets = append(req.Subnets, f.subnet.String())
			if f.gw.IsValid() {
				req.Gateways = append(req.Gateways, f.gw.String())
			}
		}
	}
	// ipv6_enabled without an IPv6 subnet: the daemon gives one from its
	// ULA pool, as podman's own IPAM would.
	req.IPv6 = nw.IPv6 && !v6.subnet.IsValid()
	sy, err = d.CreateNetwork(ctx, req)
	if errors.Is(err, api.ErrConflict) {
		// Another plugin process created it meanwhile.
		if again, err2 := d.Network(ctx, name); err2 == nil {
			return again, nil
		}
	}
	if err != nil {
		return sy, fmt.Errorf("create Switchyard network %q: %w", name, inNetavarkWords(err, networkFields))
	}
	p.log().Info("network created", zap.String("network", name), zap.Stringer("subnet", sy.Subnet))
	return sy, nil
}

// Setup connects the container's namespace at netns to the network and
// returns what podman shows of it; a repeated setup answers as the first
// did. On failure nothing is left: the daemon undoes a connect that fails
// at any step.
func (p *Plugin) Setup(ctx context.Context, netns string, ex PluginExec) (StatusBlock, error) {
	o, err := parseOptions(ex.Network.Options)
	if err != nil {
		return StatusBlock{}, fmt.Errorf("network.%w", err)
	}
	v4, v6, serr := ex.Network.subnets()
	req, err := endpointRequest(netns, ex, v4.subnet.IsValid() || !v6.subnet.IsValid())
	if err != nil {
		return StatusBlock{}, err
	}
	for _, ip := range []string{req.IP, req.IP6} {
		a, err := netip.ParseAddr(ip)
		if err != nil || serr != nil {
			continue
		}
		if f := map[bool]subnetGW{false: v4, true: v6}[a.Is6()]; f.subnet.IsValid() && !f.subnet.Contains(a) {
			return StatusBlock{}, fmt.Errorf("network_options.static_ips %q: outside the network's subnet; want an address inside %s", ip, f.subnet)
		}
	}
	d, name := p.daemon(o), target(ex.Network, o)
	ep, err := d.Connect(ctx, name, req)
	if errors.Is(err, api.ErrNotFound) {
		// The network is podman's but the daemon lost it (a new state
		// directory, another host): make it again from podman's config.
		if serr != nil {
			return StatusBlock{}, fmt.Errorf("network.%w", serr)
		}
		if _, nerr := p.ensureNetwork(ctx, d, name, ex.Network, o, v4, v6); nerr != nil {
			return StatusBlock{}, nerr
		}
		ep, err = d.Connect(ctx, name, req)
	}
	if errors.Is(err, api.ErrConflict) {
		// A setup repeated: the container is connected already.
		if ep, ok := p.connected(ctx, d, name, netns, req); ok {
			return status(ep, req.IfName), nil
		}
	}
	if err != nil {
		return StatusBlock{}, fmt.Errorf("connect container %s to Switchyard network %q: %w", req.Name, name, inNetavarkWords(err, endpointFields))
	}
	p.log().Info("set up", zap.String("network", name), zap.String("endpoint", ep.Name), zap.String("netns", netns),
		zap.Stringer("address", ep.Address), zap.Stringer("address6", ep.Address6))
	return status(ep, req.IfName), nil
}

// connected returns the endpoint of network that req would make, if it
// exists: the same container, namespace and interface.
func (p *Plugin) connected(ctx context.Context, d Daemon, network, netns string, req api.EndpointCreate) (api.Endpoint, bool) {
	eps, err := d.Endpoints(ctx, network)
	if err != nil {
		return api.Endpoint{}, false
	}
	for _, ep := range eps {
		if ep.ContainerID == req.ContainerID && ep.NetNS == netns && ep.IfName == req.IfName {
			return ep, true
		}
	}
	return api.Endpoint{}, false
}

// Teardown disconnects the container from the network: every endpoint of
// the network with its container ID. It succeeds when there is nothing to
// remove (a second teardown, a network the daemon no longer has); the
// daemon frees the address and ports even when the namespace is gone.
func (p *Plugin) Teardown(ctx context.Context, netns string, ex PluginExec) error {
	o, err := parseOptions(ex.Network.Options)
	if err != nil {
		return fmt.Errorf("network.%w", err)
	}
	d, name := p.daemon(o), target(ex.Network, o)
	eps, err := d.Endpoints(ctx, name)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("teardown of container %s: list endpoints of Switchyard network %q: %w", ex.ContainerID, name, err)
	}
	for _, ep := range eps {
		if ep.ContainerID != ex.ContainerID {
			continue
		}
		if err := d.Disconnect(ctx, name, ep.Name); err != nil && !errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("teardown of container %s: disconnect %s/%s: %w", ex.ContainerID, name, ep.Name, err)
		}
		p.log().Info("torn down", zap.String("network", name), zap.String("endpoint", ep.Name), zap.String("netns", netns))
	}
	return nil
}
