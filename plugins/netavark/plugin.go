package netavark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
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
	subnet, gw, err := nw.subnet()
	if err != nil {
		return nw, err
	}
	name := target(nw, o)
	if !namePattern.MatchString(name) || len(name) > 64 {
		return nw, fmt.Errorf("network %q: not a Switchyard network name; want letters, digits, '_', '.', '-', starting with a letter or digit, at most 64 characters (or set options.network)", name)
	}
	sy, err := p.ensureNetwork(ctx, p.daemon(o), name, nw, o, subnet, gw)
	if err != nil {
		return nw, err
	}
	s := Subnet{Subnet: sy.Subnet.String()}
	if sy.Gateway.IsValid() {
		s.Gateway = sy.Gateway.String()
	}
	nw.Subnets = []Subnet{s}
	nw.IPv6 = sy.Subnet.Addr().Is6()
	return nw, nil
}

// ensureNetwork returns the Switchyard network name, created from nw if
// it does not exist; an existing one must agree with nw.
func (p *Plugin) ensureNetwork(ctx context.Context, d Daemon, name string, nw Network, o options, subnet netip.Prefix, gw netip.Addr) (api.Network, error) {
	sy, err := d.Network(ctx, name)
	switch {
	case err == nil:
		if subnet.IsValid() && sy.Subnet != subnet {
			return sy, fmt.Errorf("subnets[0].subnet %q: Switchyard network %q exists with subnet %s; want that subnet, or none", subnet, name, sy.Subnet)
		}
		if gw.IsValid() && sy.Gateway != gw {
			return sy, fmt.Errorf("subnets[0].gateway %q: Switchyard network %q exists with gateway %s; want that gateway, or none", gw, name, sy.Gateway)
		}
		if sy.Internal != nw.Internal {
			return sy, fmt.Errorf("internal %v: Switchyard network %q exists with internal %v", nw.Internal, name, sy.Internal)
		}
		return sy, nil
	case !errors.Is(err, api.ErrNotFound):
		return sy, fmt.Errorf("look up Switchyard network %q: %w", name, err)
	}
	req := api.NetworkCreate{Name: name, MTU: o.mtu, Internal: nw.Internal}
	if subnet.IsValid() {
		req.Subnet = subnet.String()
	}
	if gw.IsValid() {
		req.Gateway = gw.String()
	}
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
	req, err := endpointRequest(netns, ex)
	if err != nil {
		return StatusBlock{}, err
	}
	subnet, gw, serr := ex.Network.subnet()
	if ip, err := netip.ParseAddr(req.IP); err == nil && serr == nil && subnet.IsValid() && !subnet.Contains(ip) {
		return StatusBlock{}, fmt.Errorf("network_options.static_ips %q: outside the network's subnet; want an address inside %s", req.IP, subnet)
	}
	d, name := p.daemon(o), target(ex.Network, o)
	ep, err := d.Connect(ctx, name, req)
	if errors.Is(err, api.ErrNotFound) {
		// The network is podman's but the daemon lost it (a new state
		// directory, another host): make it again from podman's config.
		if serr != nil {
			return StatusBlock{}, fmt.Errorf("network.%w", serr)
		}
		if _, nerr := p.ensureNetwork(ctx, d, name, ex.Network, o, subnet, gw); nerr != nil {
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
		zap.Stringer("address", ep.Address))
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
