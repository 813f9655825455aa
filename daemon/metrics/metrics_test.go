package metrics

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func snapshot() api.Stats {
	return api.Stats{
		Networks: []api.NetworkStats{{
			Network: "web", FDBEntries: 3, FDBFull: 6, Conntrack: 2, DNSQueries: 9,
			Routing:    &api.RouteStats{Forwarded: 11, TTLExceeded: 1},
			ReturnPath: &api.ReturnPathStats{Senders: 2, Learned: 3, Expired: 1, Forwarded: 12},
			Loop:       &api.LoopStats{Frames: 40, Wakeups: 13, Holds: 4, Spins: 99, WindowNS: 25000},
			Ports: []api.PortCounters{
				{Name: "b", Kind: "tap", Stats: api.PortStats{RXFrames: 1}},
				{Name: "a", Kind: "tap", Stats: api.PortStats{RXFrames: 10, TXFrames: 7, RXBytes: 1000, DropsBy: map[string]uint64{"oversize": 4}}},
				{Name: `we"ird\` + "\n", Kind: "tap"},
			},
		}},
		Proxy: api.ProxyStats{TCPTotal: 5, Listeners: 2, TCPBytesIn: 1 << 40},
	}
}

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, snapshot()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# HELP switchyard_port_frames_total Frames a switch port received (rx) from its device or sent (tx) to it.\n" +
			"# TYPE switchyard_port_frames_total counter\n" +
			`switchyard_port_frames_total{direction="rx",kind="tap",network="web",port="a"} 10` + "\n" +
			`switchyard_port_frames_total{direction="tx",kind="tap",network="web",port="a"} 7` + "\n" +
			`switchyard_port_frames_total{direction="rx",kind="tap",network="web",port="b"} 1` + "\n",
		`switchyard_port_drops_total{kind="tap",network="web",port="a",reason="oversize"} 4` + "\n",
		`port="we\"ird\\\n"`,
		"# TYPE switchyard_fdb_entries gauge\nswitchyard_fdb_entries{network=\"web\"} 3\n",
		"switchyard_fdb_full_total{network=\"web\"} 6\n",
		"switchyard_conntrack_entries{network=\"web\"} 2\n",
		"switchyard_dns_queries_total{network=\"web\"} 9\n",
		"switchyard_routed_packets_total{network=\"web\",result=\"forwarded\"} 11\n",
		"switchyard_routed_packets_total{network=\"web\",result=\"ttl_exceeded\"} 1\n",
		"switchyard_return_path_senders{network=\"web\"} 2\n",
		"switchyard_return_path_senders_total{event=\"learned\",network=\"web\"} 3\n",
		"switchyard_return_path_forwarded_total{network=\"web\"} 12\n",
		"switchyard_loop_frames_total{network=\"web\"} 40\n",
		"switchyard_loop_waits_total{how=\"hold\",network=\"web\"} 4\n",
		"switchyard_loop_waits_total{how=\"spin\",network=\"web\"} 99\n",
		"switchyard_loop_waits_total{how=\"wakeup\",network=\"web\"} 13\n",
		"switchyard_loop_spin_window_seconds{network=\"web\"} 2.5e-05\n",
		"switchyard_proxy_tcp_connections_total 5\n",
		`switchyard_proxy_tcp_bytes_total{direction="in"} 1.099511627776e+12` + "\n",
		"# TYPE process_resident_memory_bytes gauge\n",
		"# TYPE go_goroutines gauge\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	checkFormat(t, out)
}

// checkFormat checks the text format's grammar: every family announced
// once with HELP then TYPE before its samples, every sample line a name,
// optional labels and a value.
func checkFormat(t *testing.T, out string) {
	t.Helper()
	sampleRE := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? ([-+]?[0-9.eE+-]+|NaN|[+-]Inf)$`)
	seen := map[string]bool{}
	current := ""
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "# HELP "):
			name := strings.Fields(l)[2]
			if seen[name] {
				t.Errorf("line %d: family %s announced twice", i+1, name)
			}
			seen[name] = true
			if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "# TYPE "+name+" ") {
				t.Errorf("line %d: HELP of %s not followed by its TYPE", i+1, name)
			}
			current = name
		case strings.HasPrefix(l, "# TYPE "):
		default:
			m := sampleRE.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("line %d is not a sample: %q", i+1, l)
				continue
			}
			if m[1] != current {
				t.Errorf("line %d: sample of %s under family %s", i+1, m[1], current)
			}
		}
	}
}
