package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Each invalid connect request is a ValidationError naming the JSON field
// at fault, and never a CLI flag; nothing is attached.
func TestConnectFieldErrors(t *testing.T) {
	e := newEnv(t)
	e.createNetwork(api.NetworkCreate{Name: "web", Subnet: "10.9.0.0/24"})
	ns, bare := "/run/netns/c", "/tmp/bind-mounted-netns"
	e.att.AddNetNS(ns)
	e.att.AddNetNS(bare)
	for _, tc := range []struct {
		name  string
		req   api.EndpointCreate
		field string
	}{
		{"netns and pid", api.EndpointCreate{NetNS: ns, PID: 1}, "pid"},
		{"negative pid", api.EndpointCreate{PID: -4}, "pid"},
		{"no such pid", api.EndpointCreate{PID: 999999}, "pid"},
		{"relative netns", api.EndpointCreate{NetNS: "run/netns/c"}, "netns"},
		{"no namespace", api.EndpointCreate{}, "netns"},
		{"bad ifname", api.EndpointCreate{NetNS: ns, IfName: "a/b"}, "ifname"},
		{"bad mac", api.EndpointCreate{NetNS: ns, MAC: "zz"}, "mac"},
		{"multicast mac", api.EndpointCreate{NetNS: ns, MAC: "01:00:5e:00:00:01"}, "mac"},
		{"bad ip", api.EndpointCreate{NetNS: ns, IP: "10.9.0"}, "ip"},
		{"bad alias", api.EndpointCreate{NetNS: ns, Aliases: []string{"no spaces"}}, "aliases"},
		{"tap-only with netns", api.EndpointCreate{TapOnly: "vm0", NetNS: ns}, "tap_only"},
		{"tap-only and another name", api.EndpointCreate{TapOnly: "vm0", Name: "other"}, "name"},
		{"bad tap-only", api.EndpointCreate{TapOnly: "a b"}, "tap_only"},
		{"resolv.conf of a netns path", api.EndpointCreate{NetNS: bare, WriteResolvConf: true}, "write_resolv_conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.d.Connect(context.Background(), "web", tc.req)
			var ve *api.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tc.field {
				t.Fatalf("error %v, want a ValidationError naming %q", err, tc.field)
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("the API error speaks in CLI flags: %v", err)
			}
		})
	}
	if eps := e.storedEndpoints(); len(eps) != 0 {
		t.Errorf("refused connects left endpoints: %+v", eps)
	}
}
