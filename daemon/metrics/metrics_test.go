package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func TestCollect(t *testing.T) {
	snap := api.Stats{
		Networks: []api.NetworkStats{{
			Network: "web", FDBEntries: 3, Conntrack: 2,
			Ports: []api.PortCounters{{Name: "a", Kind: "tap", Stats: api.PortStats{RXFrames: 10, TXFrames: 7, RXBytes: 1000, DropsBy: map[string]uint64{"oversize": 4}}}},
		}},
		Proxy: api.ProxyStats{TCPTotal: 5, Listeners: 2},
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(New(func() api.Stats { return snap })); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP switchyard_port_frames_total Frames a switch port received (rx) from its device or sent (tx) to it.
# TYPE switchyard_port_frames_total counter
switchyard_port_frames_total{direction="rx",kind="tap",network="web",port="a"} 10
switchyard_port_frames_total{direction="tx",kind="tap",network="web",port="a"} 7
# HELP switchyard_port_drops_total Frames dropped at a switch port, by reason.
# TYPE switchyard_port_drops_total counter
switchyard_port_drops_total{kind="tap",network="web",port="a",reason="oversize"} 4
# HELP switchyard_fdb_entries MAC addresses a network's switch has learned.
# TYPE switchyard_fdb_entries gauge
switchyard_fdb_entries{network="web"} 3
# HELP switchyard_conntrack_entries Connections tracked by a network's NAT.
# TYPE switchyard_conntrack_entries gauge
switchyard_conntrack_entries{network="web"} 2
# HELP switchyard_proxy_tcp_connections_total Published-port TCP connections accepted.
# TYPE switchyard_proxy_tcp_connections_total counter
switchyard_proxy_tcp_connections_total 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_port_frames_total", "switchyard_port_drops_total",
		"switchyard_fdb_entries", "switchyard_conntrack_entries", "switchyard_proxy_tcp_connections_total"); err != nil {
		t.Fatal(err)
	}
}
