package main

import (
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/proxy"
)

// port ls's PORT[/PROTO] filter, as `docker port C 80` and `80/udp`.
func TestPortFilter(t *testing.T) {
	tcp80 := api.PortBinding{ContainerPort: 80, Proto: "tcp"}
	udp80 := api.PortBinding{ContainerPort: 80, Proto: "udp"}
	tcp81 := api.PortBinding{ContainerPort: 81, Proto: "tcp"}
	for _, c := range []struct {
		filter string
		want   [3]bool // tcp80, udp80, tcp81
	}{
		{"", [3]bool{true, true, true}},
		{"80", [3]bool{true, true, false}},
		{"80/udp", [3]bool{false, true, false}},
		{"81/tcp", [3]bool{false, false, true}},
	} {
		var f portFilter
		if c.filter != "" {
			var err error
			if f.port, f.proto, f.hasProto, err = proxy.ParsePortFilter(c.filter); err != nil {
				t.Fatal(err)
			}
		}
		for i, b := range []api.PortBinding{tcp80, udp80, tcp81} {
			if got := f.match(b); got != c.want[i] {
				t.Errorf("filter %q on %d/%s: %v, want %v", c.filter, b.ContainerPort, b.Proto, got, c.want[i])
			}
		}
	}
}
