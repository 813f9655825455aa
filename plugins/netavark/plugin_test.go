package netavark

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// The setup input of netavark's plugin-API.md, as podman sends it.
const docSetup = `{
    "container_id": "752947ff91f961eb3cb47ffe9315016979f3ffbec09e4d96a4fae3fb03391697",
    "container_name": "testctr",
    "port_mappings": [
        {
            "container_port": 80,
            "host_ip": "127.0.0.1",
            "host_port": 8080,
            "protocol": "tcp",
            "range": 1
        }
    ],
    "network": {
        "dns_enabled": false,
        "driver": "bridge",
        "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
        "internal": false,
        "ipv6_enabled": false,
        "name": "podman",
        "network_interface": "podman0",
        "options": null,
        "ipam_options": {
            "driver": "host-local"
        },
        "subnets": [
            {
                "gateway": "10.88.0.1",
                "lease_range": null,
                "subnet": "10.88.0.0/16"
            }
        ],
        "network_dns_servers": null
    },
    "network_options": {
        "aliases": [
            "752947ff91f9"
        ],
        "interface_name": "eth0",
        "static_ips": [
            "10.88.0.50"
        ],
        "static_mac": "aa:bb:cc:dd:aa:00"
    }
}`

// The create input of plugin-API.md.
const docCreate = `{
    "name": "example1",
    "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
    "driver": "mydriver",
    "network_interface": "enp1",
    "subnets": [
        {
            "subnet": "10.0.0.0/16",
            "gateway": "10.0.0.1"
        }
    ],
    "ipv6_enabled": false,
    "internal": false,
    "dns_enabled": false,
    "ipam_options": {
        "driver": "host-local"
    },
    "options": {
        "mtu": "1400"
    },
    "labels": {"team": "a"},
    "created": "2026-12-02T17:00:00.000000000Z"
}`

func newPlugin(t *testing.T, f *fakeDaemon) *Plugin {
	return &Plugin{Socket: "/fake.sock", Version: "9.9.9", Log: zaptest.NewLogger(t),
		Dial: func(string) Daemon { return f }}
}

// run runs a command and decodes its answer: the error text if it failed.
func run(t *testing.T, p *Plugin, stdin string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := p.Run(context.Background(), args, strings.NewReader(stdin), &out)
	if code != 0 {
		var e jsonError
		if err := json.Unmarshal(out.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%v: exit %d with %q: not netavark's error JSON (%v)", args, code, out.String(), err)
		}
		return e.Error, code
	}
	return out.String(), code
}

func TestSetupDocumentInput(t *testing.T) {
	f := newFake()
	p := newPlugin(t, f)
	f.CreateNetwork(context.Background(), api.NetworkCreate{Name: "podman", Subnet: "10.88.0.0/16"})
	out, code := run(t, p, docSetup, "setup", "/run/netns/netns-1")
	if code != 0 {
		t.Fatalf("setup: %s", out)
	}
	want := api.EndpointCreate{NetNS: "/run/netns/netns-1", IfName: "eth0", Name: "testctr", IP: "10.88.0.50",
		MAC: "aa:bb:cc:dd:aa:00", Aliases: []string{"752947ff91f9"}, Publish: []string{"127.0.0.1:8080:80/tcp"},
		ContainerID: "752947ff91f961eb3cb47ffe9315016979f3ffbec09e4d96a4fae3fb03391697", Runtime: "netavark"}
	if len(f.connects) != 1 || !reflect.DeepEqual(f.connects[0], want) {
		t.Errorf("connect requests %+v\nwant %+v", f.connects, want)
	}
	// The answer, as plugin-API.md's example with our DNS server.
	wantOut := `{"dns_search_domains":[],"dns_server_ips":["10.88.0.1"],"interfaces":{"eth0":{"mac_address":"aa:bb:cc:dd:aa:00","subnets":[{"gateway":"10.88.0.1","ipnet":"10.88.0.50/16"}]}}}`
	if strings.TrimSpace(out) != wantOut {
		t.Errorf("status block\n%s\nwant\n%s", out, wantOut)
	}
}

// A setup repeated for the same container and namespace answers as the
// first; another container cannot take its place.
func TestSetupRepeated(t *testing.T) {
	f := newFake()
	p := newPlugin(t, f)
	f.CreateNetwork(context.Background(), api.NetworkCreate{Name: "podman", Subnet: "10.88.0.0/16"})
	first, code := run(t, p, docSetup, "setup", "/run/netns/netns-1")
	if code != 0 {
		t.Fatal(first)
	}
	again, code := run(t, p, docSetup, "setup", "/run/netns/netns-1")
	if code != 0 || again != first {
		t.Errorf("repeated setup: exit %d, %s; want %s", code, again, first)
	}
	if n := len(f.eps["podman"]); n != 1 {
		t.Errorf("%d endpoints after a repeated setup; want 1", n)
	}
	if out, code := run(t, p, docSetup, "setup", "/run/netns/netns-2"); code == 0 || !strings.Contains(out, "already exists") {
		t.Errorf("the same container in another namespace: exit %d, %s", code, out)
	}
	other := strings.Replace(docSetup, "752947ff91f961eb", "000000ff91f961eb", 1)
	if out, code := run(t, p, other, "setup", "/run/netns/netns-1"); code == 0 || !strings.Contains(out, "already exists") {
		t.Errorf("another container with the same name: exit %d, %s", code, out)
	}
}

func TestSetupCreatesLostNetwork(t *testing.T) {
	f := newFake()
	p := newPlugin(t, f)
	if out, code := run(t, p, docSetup, "setup", "/run/netns/netns-1"); code != 0 {
		t.Fatalf("setup on a network the daemon lacks: %s", out)
	}
	if n := f.networks["podman"]; n.Subnet.String() != "10.88.0.0/16" || n.Gateway.String() != "10.88.0.1" {
		t.Errorf("network made again from podman's config: %+v", n)
	}
}

func TestTeardownIdempotent(t *testing.T) {
	f := newFake()
	p := newPlugin(t, f)
	f.CreateNetwork(context.Background(), api.NetworkCreate{Name: "podman", Subnet: "10.88.0.0/16"})
	// Another container stays.
	f.Connect(context.Background(), "podman", api.EndpointCreate{Name: "other", ContainerID: "other-id"})
	if out, code := run(t, p, docSetup, "setup", "/run/netns/netns-1"); code != 0 {
		t.Fatal(out)
	}
	for i := range 2 {
		if out, code := run(t, p, docSetup, "teardown", "/run/netns/netns-1"); code != 0 || out != "" {
			t.Fatalf("teardown %d: exit %d, %q; want exit 0 and no output", i+1, code, out)
		}
	}
	eps := f.eps["podman"]
	if len(eps) != 1 || eps[0].Name != "other" {
		t.Errorf("endpoints after teardown: %+v; want only other's", eps)
	}
	// No network at all: nothing to tear down.
	delete(f.networks, "podman")
	if out, code := run(t, p, docSetup, "teardown", "/run/netns/netns-1"); code != 0 {
		t.Errorf("teardown on a network the daemon lacks: %s", out)
	}
	// The daemon down: an error, for nothing could be freed.
	f.down = true
	if out, code := run(t, p, docSetup, "teardown", "/run/netns/netns-1"); code == 0 || !strings.Contains(out, "cannot reach") {
		t.Errorf("teardown with the daemon down: exit %d, %q", code, out)
	}
}

func TestCreate(t *testing.T) {
	f := newFake()
	p := newPlugin(t, f)
	out, code := run(t, p, docCreate, "create")
	if code != 0 {
		t.Fatal(out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	json.Unmarshal([]byte(docCreate), &in)
	// Everything comes back as given: name, id, driver, options, labels,
	// the creation time, the subnet.
	if !reflect.DeepEqual(got, in) {
		t.Errorf("create answered\n%v\nwant the input\n%v", got, in)
	}
	if len(f.creates) != 1 || !reflect.DeepEqual(f.creates[0], api.NetworkCreate{Name: "example1", Subnet: "10.0.0.0/16", Gateway: "10.0.0.1", MTU: 1400}) {
		t.Errorf("network create requests: %+v", f.creates)
	}

	// No subnet: the daemon's choice is filled in.
	out, code = run(t, p, `{"name":"auto","id":"1","driver":"switchyard-netavark","dns_enabled":false,"internal":false,"ipv6_enabled":false}`, "create")
	if code != 0 {
		t.Fatal(out)
	}
	var nw Network
	json.Unmarshal([]byte(out), &nw)
	if len(nw.Subnets) != 1 || nw.Subnets[0] != (Subnet{Subnet: "172.18.0.0/16", Gateway: "172.18.0.1"}) {
		t.Errorf("subnets filled in: %+v", nw.Subnets)
	}

	// An existing network is adopted, the same subnet given or none.
	if out, code := run(t, p, `{"name":"again","id":"2","driver":"d","options":{"network":"example1"}}`, "create"); code != 0 || !strings.Contains(out, `"subnet":"10.0.0.0/16"`) {
		t.Errorf("create over existing network: exit %d, %s", code, out)
	}
	if out, _ := run(t, p, `{"name":"x","id":"2","driver":"d","options":{"network":"example1"},"subnets":[{"subnet":"10.1.0.0/16"}]}`, "create"); !strings.Contains(out, `subnets[0].subnet "10.1.0.0/16": Switchyard network "example1" exists with subnet 10.0.0.0/16`) {
		t.Errorf("create with a clashing subnet: %s", out)
	}
}

func TestBadInput(t *testing.T) {
	f := newFake()
	p := newPlugin(t, f)
	f.CreateNetwork(context.Background(), api.NetworkCreate{Name: "podman", Subnet: "10.88.0.0/16"})
	setup := func(edit func(m map[string]any)) string {
		var m map[string]any
		json.Unmarshal([]byte(docSetup), &m)
		edit(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	opts := func(m map[string]any) map[string]any { return m["network_options"].(map[string]any) }
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"bad subnet", `{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"10.0.0.300/24"}]}`, []string{"create"},
			`subnets[0].subnet "10.0.0.300/24": not a subnet; want CIDR`},
		{"two subnets of a family", `{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"fd00:1::/64"},{"subnet":"fd00::/64"}]}`, []string{"create"},
			`subnets[1].subnet "fd00::/64": a second subnet of its family (after fd00:1::/64)`},
		{"three subnets", `{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"10.0.0.0/24"},{"subnet":"fd00::/64"},{"subnet":"10.1.0.0/24"}]}`, []string{"create"},
			"subnets: 3 given; want at most one IPv4 and one IPv6 subnet"},
		{"two static ips of a family", `{"container_id":"c","container_name":"c","network":{"name":"n","id":"1","driver":"d"},"network_options":{"interface_name":"eth0","static_ips":["10.0.0.5","10.0.0.6"]}}`,
			[]string{"setup", "/run/netns/x"}, "two addresses of one family"},
		{"gateway outside", `{"name":"n","id":"1","driver":"d","subnets":[{"subnet":"10.0.0.0/24","gateway":"10.0.1.1"}]}`, []string{"create"},
			`subnets[0].gateway "10.0.1.1": not an address inside 10.0.0.0/24`},
		{"unknown option", `{"name":"n","id":"1","driver":"d","options":{"colour":"red"}}`, []string{"create"},
			"options.colour: unknown option; want one of mtu, network, socket"},
		{"no id", `{"name":"n","driver":"d"}`, []string{"create"}, "id missing or empty"},
		{"not JSON", `{"name":`, []string{"create"}, "not valid JSON"},
		{"two values", `{"name":"n","id":"1","driver":"d"} {}`, []string{"create"}, "more than one JSON value"},
		{"wrong type", `{"name":"n","id":1,"driver":"d"}`, []string{"create"}, "id: a JSON number where a string is wanted"},
		{"empty stdin", ``, []string{"setup", "/run/netns/x"}, "empty"},
		{"no netns", docSetup, []string{"setup"}, "netns path argument is missing"},
		{"relative netns", docSetup, []string{"setup", "netns-1"}, `netns path "netns-1": not an absolute path`},
		{"ip outside", setup(func(m map[string]any) { opts(m)["static_ips"] = []string{"10.99.0.5"} }), []string{"setup", "/run/netns/x"},
			`network_options.static_ips "10.99.0.5": outside the network's subnet; want an address inside 10.88.0.0/16`},
		// The daemon's validation error, in podman's words.
		{"ip outside, no subnet in podman's config", setup(func(m map[string]any) {
			opts(m)["static_ips"] = []string{"10.99.0.5"}
			delete(m["network"].(map[string]any), "subnets")
		}), []string{"setup", "/run/netns/x"},
			`invalid network_options.static_ips "10.99.0.5": outside the subnet; want an address inside 10.88.0.0/16`},
		{"not an ip", setup(func(m map[string]any) { opts(m)["static_ips"] = []string{"10.88.0"} }), []string{"setup", "/run/netns/x"},
			`network_options.static_ips "10.88.0": not an IP address`},
		{"two ips", setup(func(m map[string]any) { opts(m)["static_ips"] = []string{"10.88.0.5", "10.88.0.6"} }), []string{"setup", "/run/netns/x"},
			"want at most one"},
		{"no interface", setup(func(m map[string]any) { delete(opts(m), "interface_name") }), []string{"setup", "/run/netns/x"},
			"network_options.interface_name missing or empty"},
		{"port too big", setup(func(m map[string]any) {
			m["port_mappings"] = []map[string]any{{"container_port": 80, "host_port": 70000, "host_ip": "", "protocol": "tcp", "range": 1}}
		}), []string{"setup", "/run/netns/x"}, "port_mappings.host_port: a JSON number 70000 where a number 0-65535 is wanted"},
		{"sctp", setup(func(m map[string]any) {
			m["port_mappings"] = []map[string]any{{"container_port": 80, "host_port": 8080, "host_ip": "", "protocol": "tcp,sctp", "range": 1}}
		}), []string{"setup", "/run/netns/x"}, `port_mappings[0].protocol "tcp,sctp": "sctp" is not supported`},
		{"unknown command", ``, []string{"delete"}, `unknown subcommand "delete"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.eps["podman"])
			out, code := run(t, p, tc.stdin, tc.args...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, %q; want an error containing %q", code, out, tc.want)
			}
			if n := len(f.eps["podman"]); n != before {
				t.Errorf("%d endpoints after the failure, %d before", n, before)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	p := newPlugin(t, newFake())
	for _, args := range [][]string{{"info"}, nil} {
		out, code := run(t, p, "", args...)
		var info map[string]string
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info["version"] != "9.9.9" || info["api_version"] != "1.0.0" {
			t.Errorf("%v: exit %d, %s", args, code, out)
		}
	}
}

func TestPublishSpecs(t *testing.T) {
	for _, tc := range []struct {
		pm   PortMapping
		want []string
	}{
		{PortMapping{ContainerPort: 80, HostPort: 8080, Protocol: "tcp", Range: 1}, []string{"8080:80/tcp"}},
		{PortMapping{ContainerPort: 80, HostPort: 8080}, []string{"8080:80/tcp"}},
		{PortMapping{ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1", Protocol: "tcp,udp"}, []string{"127.0.0.1:5353:53/tcp", "127.0.0.1:5353:53/udp"}},
		{PortMapping{ContainerPort: 80, HostPort: 18080, Range: 3, Protocol: "udp"}, []string{"18080-18082:80-82/udp"}},
		{PortMapping{ContainerPort: 80, HostIP: "::1", HostPort: 8080, Protocol: "tcp"}, []string{"[::1]:8080:80/tcp"}},
		{PortMapping{ContainerPort: 80, HostIP: "127.0.0.1", Protocol: "tcp"}, []string{"127.0.0.1::80/tcp"}},
		{PortMapping{ContainerPort: 80, Protocol: "tcp"}, []string{"80/tcp"}},
	} {
		got, err := publishSpecs([]PortMapping{tc.pm})
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: %q, %v; want %q", tc.pm, got, err, tc.want)
		}
	}
}

func TestEndpointName(t *testing.T) {
	id := "752947ff91f961eb3cb47ffe9315016979f3ffbec09e4d96a4fae3fb03391697"
	for _, tc := range []struct{ name, want string }{
		{"web", "web"},
		{"", "752947ff91f9"},
		{"-bad", "752947ff91f9"},
		{strings.Repeat("a", 65), "752947ff91f9"},
	} {
		ex := PluginExec{ContainerID: id, ContainerName: tc.name, NetworkOptions: PerNetworkOptions{Aliases: []string{"752947ff91f9", "db"}}}
		if got := endpointName(ex); got != tc.want {
			t.Errorf("endpointName(%q) = %q, want %q", tc.name, got, tc.want)
		}
		// The endpoint's own name is not repeated as an alias.
		for _, a := range aliases(ex) {
			if a == endpointName(ex) {
				t.Errorf("name %q: aliases %q repeat the endpoint's name", tc.name, aliases(ex))
			}
		}
	}
}
