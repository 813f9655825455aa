package netavark

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Runtime is the runtime name stored on the endpoints this plugin makes.
const Runtime = "netavark"

// namePattern is the rule podman, Docker and the daemon share for
// container and endpoint names.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// endpointName is the endpoint's name in the Switchyard network: the
// container's name, which the network's DNS then resolves, or the first
// 12 characters of its ID when the name will not do.
func endpointName(ex PluginExec) string {
	if n := ex.ContainerName; namePattern.MatchString(n) && len(n) <= 64 {
		return n
	}
	id := ex.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// endpointRequest translates setup's input for the namespace at netns
// into a connect request. has4 says whether the network has IPv4: on a
// dual-stack network a static IPv6 address is the endpoint's second (IP6),
// on an IPv6-only one its only (IP).
func endpointRequest(netns string, ex PluginExec, has4 bool) (api.EndpointCreate, error) {
	req := api.EndpointCreate{
		NetNS:       netns,
		IfName:      ex.NetworkOptions.InterfaceName,
		Name:        endpointName(ex),
		Aliases:     aliases(ex),
		ContainerID: ex.ContainerID,
		Runtime:     Runtime,
	}
	if !namePattern.MatchString(req.Name) {
		return req, fmt.Errorf("container_id %q: not usable as an endpoint name, and neither is container_name %q; want letters, digits, '_', '.', '-'", ex.ContainerID, ex.ContainerName)
	}
	if !strings.HasPrefix(netns, "/") {
		return req, fmt.Errorf("netns path %q: not an absolute path; want the container's namespace, like /run/netns/netns-1234", netns)
	}
	ips := ex.NetworkOptions.StaticIPs
	if len(ips) > 2 {
		return req, fmt.Errorf("network_options.static_ips %q: %d addresses; want at most one per address family", ips, len(ips))
	}
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return req, fmt.Errorf("network_options.static_ips %q: not an IP address", s)
		}
		a = a.Unmap()
		dst := &req.IP
		if a.Is6() && has4 {
			dst = &req.IP6
		}
		if *dst != "" {
			return req, fmt.Errorf("network_options.static_ips %q: two addresses of one family; want at most one per address family", ips)
		}
		*dst = a.String()
	}
	if m := ex.NetworkOptions.StaticMAC; m != nil {
		req.MAC = *m
	}
	specs, err := publishSpecs(ex.PortMappings)
	if err != nil {
		return req, err
	}
	req.Publish = specs
	return req, nil
}

// aliases are the container's DNS names besides its endpoint's name:
// podman's (the short container ID among them), and the container's name
// when the endpoint could not be named after it.
func aliases(ex PluginExec) []string {
	out := make([]string, 0, len(ex.NetworkOptions.Aliases)+1)
	name := endpointName(ex)
	for _, a := range ex.NetworkOptions.Aliases {
		if a != name {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// publishSpecs turns podman's port mappings into Docker -p specs, one per
// mapping and protocol.
func publishSpecs(pms []PortMapping) ([]string, error) {
	var specs []string
	for i, pm := range pms {
		field := fmt.Sprintf("port_mappings[%d]", i)
		n := int(pm.Range)
		if n == 0 {
			n = 1
		}
		if pm.ContainerPort == 0 {
			return nil, fmt.Errorf("%s.container_port: 0; want a port 1-65535", field)
		}
		if int(pm.ContainerPort)+n-1 > 65535 {
			return nil, fmt.Errorf("%s.range %d: container_port %d + range passes 65535", field, pm.Range, pm.ContainerPort)
		}
		if int(pm.HostPort)+n-1 > 65535 {
			return nil, fmt.Errorf("%s.range %d: host_port %d + range passes 65535", field, pm.Range, pm.HostPort)
		}
		if pm.HostPort == 0 && n > 1 {
			return nil, fmt.Errorf("%s.host_port: 0 with range %d; want the first host port of the range", field, n)
		}
		var ip string
		if pm.HostIP != "" {
			a, err := netip.ParseAddr(pm.HostIP)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%s.host_ip %q: not an IP address; want an address of this host, or empty for all", field, pm.HostIP)
			}
			ip = a.String()
			if a.Is6() {
				ip = "[" + ip + "]"
			}
		}
		ports := func(first uint16) string {
			if n == 1 {
				return fmt.Sprint(first)
			}
			return fmt.Sprintf("%d-%d", first, int(first)+n-1)
		}
		host := ""
		if pm.HostPort != 0 {
			host = ports(pm.HostPort)
		}
		protos := strings.Split(pm.Protocol, ",")
		if pm.Protocol == "" {
			protos = []string{"tcp"}
		}
		for _, proto := range protos {
			proto = strings.ToLower(strings.TrimSpace(proto))
			if proto != "tcp" && proto != "udp" {
				return nil, fmt.Errorf("%s.protocol %q: %q is not supported; want tcp, udp or tcp,udp", field, pm.Protocol, proto)
			}
			spec := ports(pm.ContainerPort) + "/" + proto
			switch {
			case ip != "":
				spec = ip + ":" + host + ":" + spec
			case host != "":
				spec = host + ":" + spec
			}
			specs = append(specs, spec)
		}
	}
	return specs, nil
}

// status is setup's answer for the endpoint the daemon made.
func status(ep api.Endpoint, ifname string) StatusBlock {
	sb := StatusBlock{
		DNSSearchDomains: []string{},
		DNSServerIPs:     []netip.Addr{},
		Interfaces: map[string]NetInterface{ifname: {
			MACAddress: ep.MAC,
			Subnets:    []NetAddress{{Gateway: ep.Gateway, IPNet: ep.Address}},
		}},
	}
	if ep.Address6.IsValid() && ep.Address6 != ep.Address {
		ni := sb.Interfaces[ifname]
		ni.Subnets = append(ni.Subnets, NetAddress{Gateway: ep.Gateway6, IPNet: ep.Address6})
		sb.Interfaces[ifname] = ni
	}
	if ep.DNS.IsValid() {
		sb.DNSServerIPs = append(sb.DNSServerIPs, ep.DNS)
	}
	return sb
}
