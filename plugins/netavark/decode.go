package netavark

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxInput bounds what is read from stdin: podman's requests are a few
// kilobytes.
const maxInput = 1 << 20

// decode reads one JSON value of what (for messages) into v from r, and
// nothing after it. Unknown fields are ignored: netavark may add some.
func decode(r io.Reader, what string, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return fmt.Errorf("read %s from stdin: %w", what, err)
	}
	if len(data) > maxInput {
		return fmt.Errorf("%s on stdin: longer than %d bytes", what, maxInput)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s on stdin: empty; want the JSON netavark sends (see netavark's plugin-API.md)", what)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s on stdin: %s: a JSON %s where %s is wanted", what, te.Field, te.Value, jsonKind(te.Type.String()))
		}
		return fmt.Errorf("%s on stdin: not valid JSON: %w", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s on stdin: more than one JSON value", what)
	}
	return nil
}

// jsonKind says a Go type in JSON's words.
func jsonKind(goType string) string {
	switch goType {
	case "uint16":
		return "a number 0-65535"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	}
	if strings.HasPrefix(goType, "[]") {
		return "an array"
	}
	if strings.HasPrefix(goType, "map[") {
		return "an object of strings"
	}
	return "an object"
}

// decodeNetwork reads create's input.
func decodeNetwork(r io.Reader) (Network, error) {
	var nw Network
	if err := decode(r, "network config", &nw); err != nil {
		return nw, err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"name", nw.Name}, {"id", nw.ID}, {"driver", nw.Driver}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nw, fmt.Errorf("network config on stdin: %s missing or empty; podman fills them before calling the plugin", strings.Join(missing, ", "))
	}
	return nw, nil
}

// decodeExec reads setup's and teardown's input.
func decodeExec(r io.Reader) (PluginExec, error) {
	var ex PluginExec
	if err := decode(r, "setup/teardown input", &ex); err != nil {
		return ex, err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"container_id", ex.ContainerID},
		{"network.name", ex.Network.Name},
		{"network_options.interface_name", ex.NetworkOptions.InterfaceName},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return ex, fmt.Errorf("setup/teardown input on stdin: %s missing or empty", strings.Join(missing, ", "))
	}
	return ex, nil
}

// options are a network's options ("podman network create -o KEY=VALUE").
type options struct {
	// network is the Switchyard network; empty means the podman
	// network's name.
	network string
	// socket is the daemon's API socket; empty means the plugin's default.
	socket string
	mtu    int
}

// optionKeys are the options a network may have.
var optionKeys = []string{"mtu", "network", "socket"}

// parseOptions validates a network's options.
func parseOptions(m map[string]string) (options, error) {
	var o options
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case "network":
			o.network = v
		case "socket":
			if v != "" && !strings.HasPrefix(v, "/") {
				return o, fmt.Errorf("options.socket %q: not an absolute path; want the daemon's API socket, like /run/switchyard/switchyard.sock", v)
			}
			o.socket = v
		case "mtu":
			n, err := strconv.Atoi(v)
			if err != nil || n < 68 || n > 65535 {
				return o, fmt.Errorf("options.mtu %q: not an MTU; want a number 68-65535", v)
			}
			o.mtu = n
		default:
			return o, fmt.Errorf("options.%s: unknown option; want one of %s", k, strings.Join(optionKeys, ", "))
		}
	}
	return o, nil
}

// subnetGW is one family's subnet of a podman network and its gateway
// (zero if podman named none).
type subnetGW struct {
	subnet netip.Prefix
	gw     netip.Addr
}

// subnets validates the network's subnets: none (the daemon picks), or one
// per address family, as podman's --subnet gives them for a dual-stack
// network. v4 and v6 are zero where the config names none.
func (nw Network) subnets() (v4, v6 subnetGW, err error) {
	if len(nw.Routes) > 0 {
		return v4, v6, errors.New("routes: static routes are not supported by switchyard-netavark; want none")
	}
	if len(nw.Subnets) > 2 {
		return v4, v6, fmt.Errorf("subnets: %d given; want at most one IPv4 and one IPv6 subnet", len(nw.Subnets))
	}
	for i, s := range nw.Subnets {
		field := fmt.Sprintf("subnets[%d]", i)
		p, err := netip.ParsePrefix(s.Subnet)
		if err != nil || p.Addr().Zone() != "" {
			return v4, v6, fmt.Errorf("%s.subnet %q: not a subnet; want CIDR like 10.89.0.0/24 or fd00:89::/64", field, s.Subnet)
		}
		if p != p.Masked() {
			return v4, v6, fmt.Errorf("%s.subnet %q: host bits set; want %s", field, s.Subnet, p.Masked())
		}
		sg := subnetGW{subnet: p}
		if s.Gateway != "" {
			if sg.gw, err = netip.ParseAddr(s.Gateway); err != nil || !p.Contains(sg.gw) {
				return v4, v6, fmt.Errorf("%s.gateway %q: not an address inside %s", field, s.Gateway, p)
			}
		}
		if lr := s.LeaseRange; lr != nil && (lr.StartIP != nil || lr.EndIP != nil) {
			return v4, v6, fmt.Errorf("%s.lease_range: not supported by switchyard-netavark; want none", field)
		}
		fam := &v4
		if p.Addr().Is6() {
			fam = &v6
		}
		if fam.subnet.IsValid() {
			return v4, v6, fmt.Errorf("%s.subnet %q: a second subnet of its family (after %s); want at most one IPv4 and one IPv6 subnet", field, s.Subnet, fam.subnet)
		}
		*fam = sg
	}
	return v4, v6, nil
}
