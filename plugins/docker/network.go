package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Option keys Docker passes in CreateNetwork's and
// ProgramExternalConnectivity's Options.
const (
	optGeneric  = "com.docker.network.generic"
	optInternal = "com.docker.network.internal"
	optMTU      = "com.docker.network.driver.mtu"
	optPortMap  = "com.docker.network.portmap"
	// optName, among the -o options, names the Switchyard network.
	optName = "name"
)

// defaultNetworkName is the Switchyard name of a Docker network given no
// -o name=NAME: "docker-" and the start of its ID.
func defaultNetworkName(nid string) string {
	if len(nid) > 12 {
		nid = nid[:12]
	}
	return "docker-" + nid
}

// tapName is the TAP an endpoint gets, and the Switchyard endpoint's
// name: "sy" and the start of the Docker endpoint ID, 14 characters,
// within an interface name's 15.
func tapName(eid string) string {
	if len(eid) > 12 {
		eid = eid[:12]
	}
	return "sy" + eid
}

// networkCreate translates a CreateNetwork call into the daemon's
// request.
func networkCreate(req createNetworkRequest) (api.NetworkCreate, error) {
	nc := api.NetworkCreate{Name: defaultNetworkName(req.NetworkID), Labels: map[string]string{LabelNetworkID: req.NetworkID}}
	if req.NetworkID == "" {
		return nc, fmt.Errorf("CreateNetwork without a NetworkID")
	}
	switch len(req.IPv4Data) {
	case 0:
		return nc, fmt.Errorf("the network has no IPv4 subnet: give --subnet")
	case 1:
	default:
		return nc, fmt.Errorf("%d IPv4 subnets given: a switchyard network has one", len(req.IPv4Data))
	}
	d := req.IPv4Data[0]
	subnet, err := netip.ParsePrefix(d.Pool)
	if err != nil || !subnet.Addr().Is4() {
		return nc, fmt.Errorf("subnet %q: want an IPv4 prefix like 10.98.0.0/24", d.Pool)
	}
	nc.Subnet = subnet.Masked().String()
	if d.Gateway != "" {
		gw, err := netip.ParsePrefix(d.Gateway)
		if err != nil {
			return nc, fmt.Errorf("gateway %q: want an address in CIDR form inside %s", d.Gateway, subnet)
		}
		nc.Gateway = gw.Addr().String()
	}
	for name, a := range d.AuxAddresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nc, fmt.Errorf("aux address %s=%q: want an address in CIDR form inside %s", name, a, subnet)
		}
		nc.AuxAddresses = append(nc.AuxAddresses, name+"="+p.Addr().String())
	}
	if err := networkCreate6(&nc, req.IPv6Data); err != nil {
		return nc, err
	}
	slices.Sort(nc.AuxAddresses)
	if v, ok := req.Options[optInternal].(bool); ok {
		nc.Internal = v
	}
	if g, ok := req.Options[optGeneric].(map[string]any); ok {
		for k, v := range g {
			s, _ := v.(string)
			switch k {
			case optName:
				if s == "" {
					return nc, fmt.Errorf("option name=%v: want a network name", v)
				}
				nc.Name = s
			case optMTU:
				mtu, err := strconv.Atoi(s)
				if err != nil || mtu <= 0 {
					return nc, fmt.Errorf("option %s=%v: want a positive MTU", optMTU, v)
				}
				nc.MTU = mtu
			}
		}
	}
	return nc, nil
}

// networkCreate6 adds the IPv6 pool of a dual-stack network (docker
// network create --ipv6 --subnet fd00:98::/64) to nc.
func networkCreate6(nc *api.NetworkCreate, data []ipamData) error {
	switch len(data) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("%d IPv6 subnets given: a switchyard network has one per family", len(data))
	}
	d := data[0]
	subnet, err := netip.ParsePrefix(d.Pool)
	if err != nil || !subnet.Addr().Is6() || subnet.Addr().Is4In6() {
		return fmt.Errorf("IPv6 subnet %q: want an IPv6 prefix like fd00:98::/64", d.Pool)
	}
	nc.Subnets = append(nc.Subnets, subnet.Masked().String())
	// Docker gives every container its IPAM address and expects no other
	// (its own bridge advertises nothing). The gateway's advertisements
	// still give the on-link prefix and the default route, without the
	// autonomous flag: no container forms a SLAAC address beside its
	// own, whatever Docker version configures its interface.
	slaac := false
	nc.SLAAC = &slaac
	if d.Gateway != "" {
		gw, err := netip.ParsePrefix(d.Gateway)
		if err != nil || !gw.Addr().Is6() {
			return fmt.Errorf("IPv6 gateway %q: want an address in CIDR form inside %s", d.Gateway, subnet)
		}
		nc.Gateways = append(nc.Gateways, gw.Addr().String())
	}
	for name, a := range d.AuxAddresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("aux address %s=%q: want an address in CIDR form inside %s", name, a, subnet)
		}
		nc.AuxAddresses = append(nc.AuxAddresses, name+"="+p.Addr().String())
	}
	return nil
}

func (p *Plugin) createNetwork(ctx context.Context, req createNetworkRequest) (any, error) {
	nc, err := networkCreate(req)
	if err != nil {
		return nil, err
	}
	if _, err := p.d.CreateNetwork(ctx, nc); err != nil {
		return nil, fmt.Errorf("create network %s: %w", nc.Name, err)
	}
	p.mu.Lock()
	p.networks[req.NetworkID] = nc.Name
	p.mu.Unlock()
	return nil, nil
}

// LabelNetworkID is the label of a Switchyard network made for a Docker
// network: its ID.
const LabelNetworkID = "docker.network.id"

// networkName is the Switchyard name of a Docker network: remembered
// since CreateNetwork, or found by its label (the plugin restarted).
// found is false if there is no such network.
func (p *Plugin) networkName(ctx context.Context, nid string) (name string, found bool, err error) {
	p.mu.Lock()
	name, ok := p.networks[nid]
	p.mu.Unlock()
	if ok {
		return name, true, nil
	}
	nets, err := p.d.Networks(ctx)
	if err != nil {
		return "", false, err
	}
	for _, n := range nets {
		if n.Labels[LabelNetworkID] == nid && nid != "" {
			p.mu.Lock()
			p.networks[nid] = n.Name
			p.mu.Unlock()
			return n.Name, true, nil
		}
	}
	return "", false, nil
}

func (p *Plugin) deleteNetwork(ctx context.Context, req networkRequest) (any, error) {
	name, found, err := p.networkName(ctx, req.NetworkID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil // gone already: deleting twice is no error
	}
	if err := p.d.RemoveNetwork(ctx, name); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("remove network %s: %w", name, err)
	}
	p.mu.Lock()
	delete(p.networks, req.NetworkID)
	p.mu.Unlock()
	return nil, nil
}

// dockerMAC is Docker's MAC for an address: 02:42 and its four bytes.
func dockerMAC(a netip.Addr) string {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}.String()
}

// parseEndpoint validates CreateEndpoint's interface: the addresses
// Docker's IPAM gave (IPv4, and IPv6 on a dual-stack network) and the MAC,
// if Docker chose one. The network is not filled in.
func parseEndpoint(req createEndpointRequest) (pendingEndpoint, error) {
	var pe pendingEndpoint
	if req.EndpointID == "" {
		return pe, fmt.Errorf("CreateEndpoint without an EndpointID")
	}
	in := req.Interface
	if in == nil || in.Address == "" {
		return pe, fmt.Errorf("endpoint %s has no IPv4 address: the network needs an IPv4 pool", req.EndpointID)
	}
	addr, err := netip.ParsePrefix(in.Address)
	if err != nil || !addr.Addr().Is4() {
		return pe, fmt.Errorf("endpoint %s: address %q: want an IPv4 address in CIDR form", req.EndpointID, in.Address)
	}
	pe.addr = addr
	if in.AddressIPv6 != "" {
		a6, err := netip.ParsePrefix(in.AddressIPv6)
		if err != nil || !a6.Addr().Is6() || a6.Addr().Is4In6() || a6.Addr().Zone() != "" {
			return pe, fmt.Errorf("endpoint %s: IPv6 address %q: want an IPv6 address in CIDR form, like fd00:98::2/64", req.EndpointID, in.AddressIPv6)
		}
		pe.addr6 = a6
	}
	if in.MacAddress == "" {
		return pe, nil
	}
	mac, err := net.ParseMAC(in.MacAddress)
	if err != nil || len(mac) != 6 {
		return pe, fmt.Errorf("endpoint %s: MAC %q: want a MAC address like 02:42:0a:62:00:02", req.EndpointID, in.MacAddress)
	}
	pe.mac = mac.String()
	return pe, nil
}

// CreateEndpoint only validates and remembers the endpoint: the daemon
// connects it at Join, when the sandbox it goes to is known (see doc.go).
func (p *Plugin) createEndpoint(ctx context.Context, req createEndpointRequest) (any, error) {
	pe, err := parseEndpoint(req)
	if err != nil {
		return nil, err
	}
	name, found, err := p.networkName(ctx, req.NetworkID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("network %s is not a switchyard network (was it removed with `switchyard network rm`?)", req.NetworkID)
	}
	var out createEndpointResponse
	if pe.mac == "" {
		pe.mac = dockerMAC(pe.addr.Addr())
		out.Interface = &endpointInterface{MacAddress: pe.mac}
	}
	pe.network = name
	p.mu.Lock()
	p.endpoints[req.EndpointID] = pe
	p.mu.Unlock()
	return out, nil
}

// findEndpoint returns the Switchyard endpoint of a Docker endpoint, by
// its name: found in whichever network it is, so that a restarted plugin
// needs no memory of it.
func (p *Plugin) findEndpoint(ctx context.Context, eid string) (api.Endpoint, bool, error) {
	eps, err := p.d.Endpoints(ctx, "")
	if err != nil {
		return api.Endpoint{}, false, err
	}
	name := tapName(eid)
	for _, e := range eps {
		if e.Name == name && e.Runtime == "docker" {
			return e, true, nil
		}
	}
	return api.Endpoint{}, false, nil
}

func (p *Plugin) deleteEndpoint(ctx context.Context, req endpointRequest) (any, error) {
	p.mu.Lock()
	delete(p.endpoints, req.EndpointID)
	p.mu.Unlock()
	e, ok, err := p.findEndpoint(ctx, req.EndpointID)
	if err != nil || !ok {
		return nil, err
	}
	if err := p.d.Disconnect(ctx, e.Network, e.Name); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("disconnect endpoint %s/%s: %w", e.Network, e.Name, err)
	}
	return nil, nil
}

func (p *Plugin) operInfo(ctx context.Context, req endpointRequest) (any, error) {
	e, ok, err := p.findEndpoint(ctx, req.EndpointID)
	if err != nil {
		return nil, err
	}
	v := map[string]any{}
	if ok {
		v["network"], v["endpoint"], v["mac"], v["address"] = e.Network, e.Name, e.MAC, e.Address.String()
		if e.Address6.IsValid() {
			v["address6"] = e.Address6.String()
		}
	}
	return operInfoResponse{Value: v}, nil
}

func (p *Plugin) join(ctx context.Context, req joinRequest) (any, error) {
	p.mu.Lock()
	pe, ok := p.endpoints[req.EndpointID]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("join: endpoint %s is unknown (created before the plugin restarted?): reconnect the container", req.EndpointID)
	}
	name := tapName(req.EndpointID)
	e, err := p.d.Connect(ctx, pe.network, handoff(name, pe, req))
	if err != nil {
		return nil, fmt.Errorf("connect to network %s: %w", pe.network, err)
	}
	p.mu.Lock()
	delete(p.endpoints, req.EndpointID)
	p.mu.Unlock()
	out := joinResponse{InterfaceName: &interfaceName{SrcName: name, DstPrefix: "eth"}}
	if e.Gateway.IsValid() {
		out.Gateway = e.Gateway.String()
	}
	// No GatewayIPv6: the gateway's Router Advertisements give the
	// container its IPv6 default route (via the gateway's link-local
	// address). Docker adds a GatewayIPv6 as a route of the same metric
	// with NLM_F_EXCL, so an advertisement that arrives first (one
	// answering another container's solicitation) makes the container
	// fail to start with "failed to set IPv6 gateway ...: file exists".
	return out, nil
}

// handoff is the daemon's request for a joining endpoint: a TAP in the
// daemon's namespace that Docker moves into the sandbox.
func handoff(name string, pe pendingEndpoint, req joinRequest) api.EndpointCreate {
	ec := api.EndpointCreate{
		TapOnly: name, Handoff: true, Sandbox: req.SandboxKey, Runtime: "docker",
		IP: pe.addr.Addr().String(), MAC: pe.mac,
	}
	if pe.addr6.IsValid() {
		ec.IP6 = pe.addr6.Addr().String()
	}
	return ec
}

// Leave has nothing to do: Docker moves the TAP back out of the sandbox
// after it, and DeleteEndpoint disconnects it.
func (p *Plugin) leave(context.Context, endpointRequest) (any, error) { return nil, nil }

// parsePortMap reads the com.docker.network.portmap option.
func parsePortMap(opts map[string]any) ([]portBinding, error) {
	raw, ok := opts[optPortMap]
	if !ok || raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("option %s: %w", optPortMap, err)
	}
	var pm []portBinding
	if err := json.Unmarshal(b, &pm); err != nil {
		return nil, fmt.Errorf("option %s: want a list of port bindings: %w", optPortMap, err)
	}
	return pm, nil
}

// spec is the -p spec of a port binding.
func (b portBinding) spec() (string, error) {
	var proto string
	switch b.Proto {
	case 6:
		proto = "tcp"
	case 17:
		proto = "udp"
	default:
		return "", fmt.Errorf("port %d: protocol %d is not supported; want tcp or udp", b.Port, b.Proto)
	}
	if b.Port == 0 {
		return "", fmt.Errorf("port binding with container port 0")
	}
	host := ""
	if b.HostIP != "" {
		ip, err := netip.ParseAddr(b.HostIP)
		if err != nil || ip.Zone() != "" {
			return "", fmt.Errorf("port %d: host IP %q: want an IP address without a %%zone", b.Port, b.HostIP)
		}
		if ip.Is4() {
			host = ip.String() + ":"
		} else {
			host = "[" + ip.String() + "]:"
		}
	}
	hostPort := ""
	switch {
	case b.HostPort == 0:
	case b.HostPortEnd > b.HostPort:
		hostPort = fmt.Sprintf("%d-%d", b.HostPort, b.HostPortEnd)
	default:
		hostPort = strconv.Itoa(int(b.HostPort))
	}
	if host == "" && hostPort == "" {
		return fmt.Sprintf("%d/%s", b.Port, proto), nil
	}
	return fmt.Sprintf("%s%s:%d/%s", host, hostPort, b.Port, proto), nil
}

func (p *Plugin) programExternal(ctx context.Context, req programRequest) (any, error) {
	pm, err := parsePortMap(req.Options)
	if err != nil {
		return nil, err
	}
	var specs []string
	for _, b := range pm {
		s, err := b.spec()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(specs, s) {
			specs = append(specs, s)
		}
	}
	if len(specs) == 0 {
		return nil, nil
	}
	e, ok, err := p.findEndpoint(ctx, req.EndpointID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("publish ports: endpoint %s is not connected", req.EndpointID)
	}
	for i, s := range specs {
		if _, err := p.d.AddPort(ctx, e.Network, e.Name, s); err != nil {
			for _, done := range specs[:i] {
				p.d.RemovePort(context.WithoutCancel(ctx), e.Network, e.Name, done)
			}
			return nil, err // it names the spec
		}
	}
	return nil, nil
}

func (p *Plugin) revokeExternal(ctx context.Context, req endpointRequest) (any, error) {
	e, ok, err := p.findEndpoint(ctx, req.EndpointID)
	if err != nil || !ok {
		return nil, err
	}
	bs, err := p.d.Ports(ctx, e.Network+"/"+e.Name)
	if err != nil {
		return nil, err
	}
	var specs []string
	for _, b := range bs {
		if !slices.Contains(specs, b.Spec) {
			specs = append(specs, b.Spec)
		}
	}
	for _, s := range specs {
		if err := p.d.RemovePort(ctx, e.Network, e.Name, s); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("unpublish %s: %w", s, err)
		}
	}
	return nil, nil
}
