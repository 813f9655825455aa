package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Runtime is the runtime name the plugin's endpoints carry.
const Runtime = "cni"

// Versions are the CNI spec versions the plugin speaks.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Daemon is the part of the daemon's API the plugin uses; *api.Client
// has it.
type Daemon interface {
	Version(ctx context.Context) (api.Version, error)
	Network(ctx context.Context, name string) (api.Network, error)
	CreateNetwork(ctx context.Context, req api.NetworkCreate) (api.Network, error)
	RemoveNetwork(ctx context.Context, name string) error
	Connect(ctx context.Context, network string, req api.EndpointCreate) (api.Endpoint, error)
	Disconnect(ctx context.Context, network, name string) error
	Endpoints(ctx context.Context, network string) ([]api.Endpoint, error)
}

var _ Daemon = (*api.Client)(nil)

// Plugin runs CNI commands against a daemon.
type Plugin struct {
	// DefaultSocket is used when the config has no `socket`.
	DefaultSocket string
	// Dial returns a client for a socket. If nil, api.NewClient.
	Dial func(socket string) Daemon
	// Stdout receives ADD's result. If nil, os.Stdout.
	Stdout io.Writer
	// Log; if nil, nothing is logged.
	Log *zap.Logger
	// Timeout bounds each command; 0 means one minute.
	Timeout time.Duration
	// socket is the one setup chose, for messages.
	socket string
	// Inspect reads the container's interface for CHECK. If nil, it is
	// read with netlink in the container's namespace.
	Inspect func(netns, ifName string) (Link, error)
}

// Funcs returns the plugin's commands for skel.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status, GC: p.GC}
}

// Main runs the command named by CNI_COMMAND with the process's
// environment, stdin and stdout, prints a CNI error on failure, and
// returns the exit code.
func Main(defaultSocket string) int {
	return (&Plugin{DefaultSocket: defaultSocket}).Main()
}

// Main is the package's Main with p's settings.
func (p *Plugin) Main() int {
	if e := skel.PluginMainFuncsWithError(p.Funcs(), Versions, "switchyard CNI plugin"); e != nil {
		if err := e.Print(); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard: write CNI error:", err)
		}
		return 1
	}
	return 0
}

func (p *Plugin) log() *zap.Logger {
	if p.Log == nil {
		return zap.NewNop()
	}
	return p.Log
}

// setup parses the config and the args and returns a client and a
// context for the command.
func (p *Plugin) setup(args *skel.CmdArgs) (*NetConf, Daemon, context.Context, context.CancelFunc, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, nil, nil, nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	socket := conf.Socket
	if socket == "" {
		socket = os.Getenv("SWITCHYARD_SOCKET")
	}
	if socket == "" {
		socket = p.DefaultSocket
	}
	p.socket = socket
	var d Daemon
	if p.Dial != nil {
		d = p.Dial(socket)
	} else {
		d = api.NewClient(socket)
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return conf, d, ctx, cancel, nil
}

// Add connects the container's namespace to the network.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, d, ctx, cancel, err := p.setup(args)
	if err != nil {
		return err
	}
	defer cancel()
	cargs, err := ParseArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	req, err := buildRequest(conf, cargs)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	if args.Netns == "" {
		return types.NewError(types.ErrInvalidNetNS, "CNI_NETNS is empty; want the path of the container's network namespace", "")
	}
	var prev *types100.Result
	if conf.PrevResult != nil {
		// Chained after another plugin: its result comes first.
		if prev, err = types100.NewResultFromResult(conf.PrevResult); err != nil {
			return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("prevResult: %v", err), "")
		}
	}
	nw, created, err := p.ensureNetwork(ctx, d, conf)
	if err != nil {
		return err
	}
	eps, err := d.Endpoints(ctx, nw.Name)
	if err != nil {
		return p.undoNetwork(ctx, d, nw.Name, created, p.fail("list endpoints of network "+nw.Name, err))
	}
	name := req.Name
	if name == "" || nameTaken(eps, name) {
		name = endpointName(args.ContainerID, args.IfName)
	}
	ep, err := d.Connect(ctx, nw.Name, api.EndpointCreate{
		NetNS:       args.Netns,
		IfName:      args.IfName,
		Name:        name,
		IP:          req.IP,
		MAC:         req.MAC,
		Publish:     req.Publish,
		ContainerID: args.ContainerID,
		Runtime:     Runtime,
	})
	if err != nil {
		return p.undoNetwork(ctx, d, nw.Name, created, p.fail(fmt.Sprintf("connect %s (%s) to network %s", args.Netns, args.IfName, nw.Name), err))
	}
	p.log().Info("added", zap.String("network", nw.Name), zap.String("endpoint", ep.Name), zap.String("container", args.ContainerID))
	res := result(nw, ep, args.Netns)
	if prev != nil {
		res = merge(prev, res)
	}
	w := p.Stdout
	if w == nil {
		w = os.Stdout
	}
	out, err := res.GetAsVersion(conf.CNIVersion)
	if err == nil {
		err = out.PrintTo(w)
	}
	if err != nil {
		// The runtime will not learn of the endpoint: take it back.
		if derr := d.Disconnect(ctx, nw.Name, ep.Name); derr != nil {
			p.log().Warn("could not disconnect after a failed ADD", zap.String("endpoint", ep.Name), zap.Error(derr))
		}
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("result for cniVersion %q: %v", conf.CNIVersion, err), "")
	}
	return nil
}

// ensureNetwork returns the config's network, creating it from the
// config's subnet when absent. created says whether this call made it.
func (p *Plugin) ensureNetwork(ctx context.Context, d Daemon, conf *NetConf) (api.Network, bool, error) {
	nw, err := d.Network(ctx, conf.Network)
	if err == nil {
		if conf.Subnet != "" && nw.Subnet.String() != netip.MustParsePrefix(conf.Subnet).Masked().String() {
			return nw, false, types.NewError(types.ErrInvalidNetworkConfig,
				fmt.Sprintf("network config: subnet %s: network %s exists with subnet %s; want that subnet, or no subnet", conf.Subnet, conf.Network, nw.Subnet), "")
		}
		if conf.Subnet6 != "" && nw.Subnet6 != netip.MustParsePrefix(conf.Subnet6) {
			return nw, false, types.NewError(types.ErrInvalidNetworkConfig,
				fmt.Sprintf("network config: subnet6 %s: network %s exists with IPv6 subnet %s; want that subnet, or no subnet6", conf.Subnet6, conf.Network, nw.Subnet6), "")
		}
		return nw, false, nil
	}
	if !errors.Is(err, api.ErrNotFound) {
		return nw, false, p.fail("look up network "+conf.Network, err)
	}
	if conf.Subnet == "" {
		return nw, false, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("network config: network %q does not exist and the config has no subnet; create it (switchyard network create --subnet …) or add `subnet` to the config", conf.Network), "")
	}
	create := api.NetworkCreate{Name: conf.Network, Subnet: conf.Subnet}
	if conf.Subnet6 != "" {
		create.Subnets = []string{conf.Subnet6}
	}
	nw, err = d.CreateNetwork(ctx, create)
	if errors.Is(err, api.ErrConflict) {
		// Another ADD made it first, or its subnet clashes: look again.
		if again, err2 := d.Network(ctx, conf.Network); err2 == nil {
			return again, false, nil
		}
	}
	if err != nil {
		return nw, false, p.fail(fmt.Sprintf("create network %s with subnet %s", conf.Network, conf.Subnet), err)
	}
	p.log().Info("created network", zap.String("network", nw.Name), zap.Stringer("subnet", nw.Subnet))
	return nw, true, nil
}

// undoNetwork removes a network this ADD created before it failed, so a
// failed ADD leaves nothing behind; it returns err.
func (p *Plugin) undoNetwork(ctx context.Context, d Daemon, name string, created bool, err error) error {
	if created {
		if rerr := d.RemoveNetwork(ctx, name); rerr != nil {
			p.log().Warn("could not remove the network a failed ADD created", zap.String("network", name), zap.Error(rerr))
		}
	}
	return err
}

func nameTaken(eps []api.Endpoint, name string) bool {
	for _, e := range eps {
		if e.Name == name {
			return true
		}
	}
	return false
}

// result is the CNI result of an endpoint.
func result(nw api.Network, ep api.Endpoint, netns string) *types100.Result {
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{{Name: ep.IfName, Mac: ep.MAC, Mtu: nw.MTU, Sandbox: netns}},
	}
	if ep.Address.IsValid() {
		ipc := &types100.IPConfig{Interface: types100.Int(0), Address: ipNet(ep.Address)}
		if ep.Gateway.IsValid() {
			ipc.Gateway = net.IP(ep.Gateway.AsSlice())
		}
		res.IPs = []*types100.IPConfig{ipc}
	}
	if ep.Address6.IsValid() {
		// A dual-stack endpoint: its IPv6 address on the same interface.
		ipc := &types100.IPConfig{Interface: types100.Int(0), Address: ipNet(ep.Address6)}
		if ep.Gateway6.IsValid() {
			ipc.Gateway = net.IP(ep.Gateway6.AsSlice())
		}
		res.IPs = append(res.IPs, ipc)
	}
	if ep.Gateway.IsValid() && !nw.Internal {
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if ep.Gateway.Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		res.Routes = []*types.Route{{Dst: ipNet(def), GW: net.IP(ep.Gateway.AsSlice())}}
	}
	if ep.Gateway6.IsValid() && !nw.Internal {
		res.Routes = append(res.Routes, &types.Route{Dst: ipNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0)), GW: net.IP(ep.Gateway6.AsSlice())})
	}
	dns := ep.DNS
	if !dns.IsValid() {
		dns = ep.Gateway
	}
	if dns.IsValid() {
		res.DNS = types.DNS{Nameservers: []string{dns.String()}}
	}
	return res
}

// merge appends own's interface, addresses and routes to prev's, with
// interface indexes shifted, and adds own's nameservers.
func merge(prev, own *types100.Result) *types100.Result {
	out := *prev
	out.CNIVersion = types100.ImplementedSpecVersion
	base := len(prev.Interfaces)
	out.Interfaces = append(slices.Clone(prev.Interfaces), own.Interfaces...)
	out.IPs = slices.Clone(prev.IPs)
	for _, ip := range own.IPs {
		c := *ip
		if c.Interface != nil {
			c.Interface = types100.Int(*c.Interface + base)
		}
		out.IPs = append(out.IPs, &c)
	}
	out.Routes = append(slices.Clone(prev.Routes), own.Routes...)
	for _, ns := range own.DNS.Nameservers {
		if !slices.Contains(out.DNS.Nameservers, ns) {
			out.DNS.Nameservers = append(out.DNS.Nameservers, ns)
		}
	}
	return &out
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// find returns the plugin's endpoint of a container and interface.
func find(eps []api.Endpoint, containerID, ifName string) (api.Endpoint, bool) {
	for _, e := range eps {
		if e.Runtime == Runtime && e.ContainerID == containerID && e.IfName == ifName {
			return e, true
		}
	}
	return api.Endpoint{}, false
}

// Del disconnects the container's endpoint; what is already gone is
// success.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, d, ctx, cancel, err := p.setup(args)
	if err != nil {
		return err
	}
	defer cancel()
	eps, err := d.Endpoints(ctx, conf.Network)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return p.fail("list endpoints of network "+conf.Network, err)
	}
	ep, ok := find(eps, args.ContainerID, args.IfName)
	if !ok {
		return nil
	}
	if err := d.Disconnect(ctx, ep.Network, ep.Name); err != nil && !errors.Is(err, api.ErrNotFound) {
		return p.fail(fmt.Sprintf("disconnect endpoint %s of network %s", ep.Name, ep.Network), err)
	}
	p.log().Info("deleted", zap.String("network", ep.Network), zap.String("endpoint", ep.Name), zap.String("container", args.ContainerID))
	return nil
}

// Check compares the container's endpoint with prevResult.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, d, ctx, cancel, err := p.setup(args)
	if err != nil {
		return err
	}
	defer cancel()
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "network config: CHECK needs prevResult; want the result of ADD", "")
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("prevResult: %v", err), "")
	}
	nw, err := d.Network(ctx, conf.Network)
	if err != nil {
		return p.fail("look up network "+conf.Network, err)
	}
	eps, err := d.Endpoints(ctx, conf.Network)
	if err != nil {
		return p.fail("list endpoints of network "+conf.Network, err)
	}
	ep, ok := find(eps, args.ContainerID, args.IfName)
	if !ok {
		return types.NewError(types.ErrUnknownContainer,
			fmt.Sprintf("container %s has no interface %s on network %s", args.ContainerID, args.IfName, conf.Network), "")
	}
	idx, err := compare(prev, result(nw, ep, args.Netns))
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("container %s, %s on network %s: %v", args.ContainerID, args.IfName, conf.Network, err), "")
	}
	inspect := p.Inspect
	if inspect == nil {
		inspect = inspectLink
	}
	link, err := inspect(args.Netns, args.IfName)
	if errors.Is(err, errNoNetNS) {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("container %s: %v", args.ContainerID, err), "")
	}
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("container %s: %v", args.ContainerID, err), "")
	}
	if err := compareLink(prev, idx, link); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("container %s, %s on network %s: %v", args.ContainerID, args.IfName, conf.Network, err), "")
	}
	return nil
}

// compare says how prev (the runtime's record) differs from now (the
// daemon's): each of prev's interfaces, addresses and routes of the
// endpoint must still be there. It returns the index of the endpoint's
// interface in prev.
func compare(prev, now *types100.Result) (int, error) {
	idx, err := compareInterface(prev, now.Interfaces[0])
	if err != nil {
		return idx, err
	}
	if err := compareIPs(prev, now, idx); err != nil {
		return idx, err
	}
	return idx, compareRoutes(prev, now)
}

// compareInterface finds the endpoint's interface iface in prev (by name,
// in its sandbox if prev names one) and checks its MAC. It returns the
// index of the last interface that matches, -1 if none does.
func compareInterface(prev *types100.Result, iface *types100.Interface) (int, error) {
	idx := -1
	for i, pi := range prev.Interfaces {
		if pi.Name == iface.Name && (pi.Sandbox == "" || pi.Sandbox == iface.Sandbox) {
			idx = i
			if !strings.EqualFold(pi.Mac, iface.Mac) {
				return idx, fmt.Errorf("interface %s has MAC %s, prevResult says %s", iface.Name, iface.Mac, pi.Mac)
			}
		}
	}
	if idx < 0 {
		return idx, fmt.Errorf("prevResult has no interface %s in %s", iface.Name, iface.Sandbox)
	}
	return idx, nil
}

// compareIPs checks that each of prev's addresses of interface idx (or of
// no interface) is one of now's, with the same gateway if prev has one.
func compareIPs(prev, now *types100.Result, idx int) error {
	for _, pip := range prev.IPs {
		if pip.Interface != nil && *pip.Interface != idx {
			continue
		}
		found := slices.ContainsFunc(now.IPs, func(nip *types100.IPConfig) bool {
			return nip.Address.String() == pip.Address.String() && (pip.Gateway == nil || pip.Gateway.Equal(nip.Gateway))
		})
		if !found {
			return fmt.Errorf("address %s (gateway %s) of prevResult is not the endpoint's", pip.Address.String(), pip.Gateway)
		}
	}
	return nil
}

// compareRoutes checks that each of prev's routes is one of now's, via
// the same gateway if prev has one.
func compareRoutes(prev, now *types100.Result) error {
	for _, pr := range prev.Routes {
		found := slices.ContainsFunc(now.Routes, func(nr *types.Route) bool {
			return nr.Dst.String() == pr.Dst.String() && (pr.GW == nil || pr.GW.Equal(nr.GW))
		})
		if !found {
			return fmt.Errorf("route %s via %s of prevResult is not the endpoint's", pr.Dst.String(), pr.GW)
		}
	}
	return nil
}

// Status says whether ADD can work now.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, d, ctx, cancel, err := p.setup(args)
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := d.Version(ctx); err != nil {
		e := p.fail("STATUS", err)
		e.Code = types.ErrPluginNotAvailable
		return e
	}
	_, err = d.Network(ctx, conf.Network)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrNotFound) && conf.Subnet != "":
		return nil // the first ADD creates it
	case errors.Is(err, api.ErrNotFound):
		return types.NewError(types.ErrPluginNotAvailable,
			fmt.Sprintf("network %q does not exist and the config has no subnet to create it", conf.Network), "")
	}
	return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
}

// GC disconnects the network's CNI endpoints that are not valid
// attachments.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, d, ctx, cancel, err := p.setup(args)
	if err != nil {
		return err
	}
	defer cancel()
	valid := map[types.GCAttachment]bool{}
	for _, a := range conf.ValidAttachments {
		valid[a] = true
	}
	eps, err := d.Endpoints(ctx, conf.Network)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return p.fail("list endpoints of network "+conf.Network, err)
	}
	var failed []string
	for _, e := range eps {
		if e.Runtime != Runtime || valid[types.GCAttachment{ContainerID: e.ContainerID, IfName: e.IfName}] {
			continue
		}
		if err := d.Disconnect(ctx, e.Network, e.Name); err != nil && !errors.Is(err, api.ErrNotFound) {
			failed = append(failed, fmt.Sprintf("%s: %v", e.Name, err))
			continue
		}
		p.log().Info("collected", zap.String("network", e.Network), zap.String("endpoint", e.Name), zap.String("container", e.ContainerID))
	}
	if len(failed) > 0 {
		return types.NewError(types.ErrTryAgainLater, "GC of network "+conf.Network+": "+strings.Join(failed, "; "), "")
	}
	return nil
}

// unreachableCause digs out of the client's unreachable error the
// cause it wraps beside api.ErrUnreachable (a refused dial, a missing
// socket directory).
func unreachableCause(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if m, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range m.Unwrap() {
				if c != api.ErrUnreachable {
					var oe *net.OpError
					if errors.As(c, &oe) {
						return oe.Err
					}
					return c
				}
			}
		}
	}
	return err
}

// CodeInUse is the plugin's error code for an address, a host port or a
// name already in use (codes from 100 are the plugin's own).
const CodeInUse uint = 100

// fail turns a daemon error into a CNI error with the spec's code.
func (p *Plugin) fail(what string, err error) *types.Error {
	msg := what + ": " + err.Error()
	var ve *api.ValidationError
	switch {
	case errors.Is(err, api.ErrUnreachable):
		// The client's message speaks of the CLI's flags; say it in
		// the config's words.
		msg = fmt.Sprintf("%s: the switchyard daemon does not answer on %s (is it running? the network config's `socket` names another): %v", what, p.socket, unreachableCause(err))
		return types.NewError(types.ErrTryAgainLater, msg, "")
	case errors.As(err, &ve):
		for _, f := range ve.Fields {
			if f.Field == "netns" {
				return types.NewError(types.ErrInvalidNetNS, msg, "")
			}
		}
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	case errors.Is(err, api.ErrInvalid):
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	case errors.Is(err, api.ErrConflict):
		return types.NewError(CodeInUse, msg, "")
	case errors.Is(err, api.ErrNotFound):
		return types.NewError(types.ErrInvalidNetworkConfig, msg, "")
	}
	return types.NewError(types.ErrInternal, msg, "")
}
