package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// PluginType is the `type` of the plugin in a CNI config.
const PluginType = "switchyard"

// NetConf is the plugin's CNI config.
type NetConf struct {
	types.PluginConf
	// Network is the Switchyard network; empty means the CNI network's
	// name.
	Network string `json:"network,omitempty"`
	// Subnet creates the network on the first ADD when it is absent.
	Subnet string `json:"subnet,omitempty"`
	// Socket is the daemon's API socket; empty means its default.
	Socket string `json:"socket,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`

	// Subnet6, with an IPv4 Subnet, makes the network created on the
	// first ADD dual-stack: its IPv6 subnet.
	Subnet6 string `json:"subnet6,omitempty"`
}

// RuntimeConfig holds the capabilities the plugin honours.
type RuntimeConfig struct {
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	IPs          []string      `json:"ips,omitempty"`
	MAC          string        `json:"mac,omitempty"`
}

// PortMapping is the portMappings capability's entry.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// ParseConfig decodes and checks the config on a command's stdin. Its
// errors name the offending key and what is accepted.
func ParseConfig(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	if conf.Type != PluginType {
		return nil, fmt.Errorf("network config: type %q: want %q", conf.Type, PluginType)
	}
	if conf.Network == "" {
		conf.Network = conf.Name
	}
	if conf.Network == "" {
		return nil, fmt.Errorf("network config: neither `network` nor `name` is set; want a Switchyard network name")
	}
	if conf.Subnet != "" {
		p, err := netip.ParsePrefix(conf.Subnet)
		if err != nil {
			return nil, fmt.Errorf("network config: subnet %q: not a CIDR prefix; want one like 10.99.0.0/24", conf.Subnet)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("network config: subnet %q: has host bits set; want %s", conf.Subnet, p.Masked())
		}
	}
	if conf.Subnet6 != "" {
		p, err := netip.ParsePrefix(conf.Subnet6)
		switch {
		case err != nil || !p.Addr().Is6() || p.Addr().Is4In6():
			return nil, fmt.Errorf("network config: subnet6 %q: not an IPv6 CIDR prefix; want one like fd00:99::/64", conf.Subnet6)
		case p != p.Masked():
			return nil, fmt.Errorf("network config: subnet6 %q: has host bits set; want %s", conf.Subnet6, p.Masked())
		case conf.Subnet == "" || !netip.MustParsePrefix(conf.Subnet).Addr().Is4():
			return nil, fmt.Errorf("network config: subnet6 %q: given without an IPv4 `subnet`; want both, or `subnet` alone", conf.Subnet6)
		}
	}
	if conf.Socket != "" && !strings.HasPrefix(conf.Socket, "/") {
		return nil, fmt.Errorf("network config: socket %q: not an absolute path; want the daemon's socket, like /run/switchyard/switchyard.sock", conf.Socket)
	}
	for i, pm := range conf.RuntimeConfig.PortMappings {
		if _, err := pm.Spec(); err != nil {
			return nil, fmt.Errorf("network config: runtimeConfig.portMappings[%d]: %w", i, err)
		}
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, fmt.Errorf("network config: prevResult: %w", err)
	}
	return conf, nil
}

// Spec returns the mapping as a Docker -p spec,
// "hostIP:hostPort:containerPort/proto".
func (pm PortMapping) Spec() (string, error) {
	if pm.HostPort < 1 || pm.HostPort > 65535 {
		return "", fmt.Errorf("hostPort %d: want 1-65535", pm.HostPort)
	}
	if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
		return "", fmt.Errorf("containerPort %d: want 1-65535", pm.ContainerPort)
	}
	proto := strings.ToLower(pm.Protocol)
	switch proto {
	case "":
		proto = "tcp"
	case "tcp", "udp":
	default:
		return "", fmt.Errorf("protocol %q: want tcp or udp", pm.Protocol)
	}
	host := ""
	if pm.HostIP != "" {
		ip, err := netip.ParseAddr(pm.HostIP)
		if err != nil || ip.Zone() != "" {
			return "", fmt.Errorf("hostIP %q: not an IP address; want one like 127.0.0.1, or none for every address", pm.HostIP)
		}
		if ip.Is6() && !ip.Is4In6() {
			host = "[" + ip.String() + "]:"
		} else {
			host = ip.Unmap().String() + ":"
		}
	}
	return fmt.Sprintf("%s%d:%d/%s", host, pm.HostPort, pm.ContainerPort, proto), nil
}

// Args are the CNI_ARGS the plugin reads; others are refused unless
// IgnoreUnknown=1 is among them.
type Args struct {
	types.CommonArgs
	IP                         types.UnmarshallableString
	MAC                        types.UnmarshallableString
	K8S_POD_NAME               types.UnmarshallableString
	K8S_POD_NAMESPACE          types.UnmarshallableString
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString
	K8S_POD_UID                types.UnmarshallableString
}

// ParseArgs decodes CNI_ARGS.
func ParseArgs(s string) (Args, error) {
	var a Args
	if err := types.LoadArgs(s, &a); err != nil {
		return Args{}, fmt.Errorf("CNI_ARGS %q: %w; want KEY=VALUE pairs separated by ';' (IP, MAC, K8S_POD_NAME, IgnoreUnknown=1)", s, err)
	}
	return a, nil
}

// request is what ADD asks of the daemon, from the config and the args.
type request struct {
	IP      string // "" lets IPAM choose
	MAC     string
	Name    string // K8S_POD_NAME if usable
	Publish []string
}

// dnsLabel is RFC 1123's label: what a container name must be to resolve
// in the network's DNS.
var dnsLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// buildRequest merges the runtime config and CNI_ARGS: runtimeConfig
// wins where both give an address or a MAC, and they must agree.
func buildRequest(conf *NetConf, args Args) (request, error) {
	var r request
	ips := conf.RuntimeConfig.IPs
	if len(ips) > 1 {
		return r, fmt.Errorf("runtimeConfig.ips %q: a Switchyard endpoint has one address; want one", ips)
	}
	if len(ips) == 1 {
		a, err := parseIP(ips[0])
		if err != nil {
			return r, fmt.Errorf("runtimeConfig.ips %q: %w", ips[0], err)
		}
		r.IP = a.String()
	}
	if s := string(args.IP); s != "" {
		a, err := parseIP(s)
		if err != nil {
			return r, fmt.Errorf("CNI_ARGS IP=%s: %w", s, err)
		}
		if r.IP != "" && r.IP != a.String() {
			return r, fmt.Errorf("CNI_ARGS IP=%s disagrees with runtimeConfig.ips %s; give one", s, r.IP)
		}
		r.IP = a.String()
	}
	r.MAC = conf.RuntimeConfig.MAC
	if s := string(args.MAC); s != "" {
		if r.MAC != "" && !strings.EqualFold(r.MAC, s) {
			return r, fmt.Errorf("CNI_ARGS MAC=%s disagrees with runtimeConfig.mac %s; give one", s, r.MAC)
		}
		r.MAC = s
	}
	if n := string(args.K8S_POD_NAME); dnsLabel.MatchString(n) {
		r.Name = n
	}
	for _, pm := range conf.RuntimeConfig.PortMappings {
		spec, err := pm.Spec()
		if err != nil {
			return r, err
		}
		r.Publish = append(r.Publish, spec)
	}
	return r, nil
}

// parseIP accepts an address, or an address with a prefix length (the
// ips capability's form).
func parseIP(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("not an IP address; want one like 10.99.0.7 or 10.99.0.7/24")
	}
	return a, nil
}

// endpointName derives an endpoint's name from the container ID (the
// spec allows letters, digits, '_', '.', '-') and the interface.
func endpointName(containerID, ifName string) string {
	id := containerID
	if len(id) > 12 {
		id = id[:12]
	}
	return "cni-" + id + "-" + ifName
}
