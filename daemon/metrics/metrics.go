// Package metrics exports the daemon's counters in Prometheus's text
// format (version 0.0.4). Each scrape takes one snapshot (api.Stats), so
// nothing is counted twice and the data path pays nothing for metrics.
//
// The format is written here rather than with the Prometheus client
// library, whose package initialisation (its default registry and
// runtime collectors) costs every start of this binary several
// milliseconds — and `switchyard run` starts it twice before the
// command runs.
package metrics

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// ContentType is the media type of the text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

type kind string

const (
	counter kind = "counter"
	gauge   kind = "gauge"
)

// family is one metric: its samples share a name, help and type.
type family struct {
	name, help string
	kind       kind
	labels     []string
	samples    []sample
}

type sample struct {
	values []string // one per label
	v      float64
}

func (f *family) add(v float64, values ...string) {
	f.samples = append(f.samples, sample{values: values, v: v})
}

// families returns the metric families of snapshot s, in a fixed order.
func families(s api.Stats) []*family {
	var all []*family
	def := func(name string, k kind, help string, labels ...string) *family {
		f := &family{name: "switchyard_" + name, help: help, kind: k, labels: labels}
		all = append(all, f)
		return f
	}
	port := []string{"network", "port", "kind", "direction"}
	portFrames := def("port_frames_total", counter, "Frames a switch port received (rx) from its device or sent (tx) to it.", port...)
	portBytes := def("port_bytes_total", counter, "Bytes a switch port received (rx) or sent (tx).", port...)
	portDrops := def("port_drops_total", counter, "Frames dropped at a switch port, by reason.", "network", "port", "kind", "reason")
	fdb := def("fdb_entries", gauge, "MAC addresses a network's switch has learned.", "network")
	fdbMoves := def("fdb_moves_total", counter, "MAC addresses relearned on another port.", "network")
	fdbFull := def("fdb_full_total", counter, "Frames from new MAC addresses forwarded unlearned because the table was full.", "network")
	segmented := def("segmented_total", counter, "Superframes cut into segments for ports without segmentation offload.", "network")
	icmpTooBig := def("icmp_too_big_total", counter, "ICMP fragmentation-needed / packet-too-big errors sent for path MTU discovery.", "network")
	conntrack := def("conntrack_entries", gauge, "Connections tracked by a network's NAT.", "network")
	natTranslated := def("nat_translated_total", counter, "Packets rewritten by a network's NAT.", "network")
	natDropped := def("nat_dropped_total", counter, "Packets dropped by a network's NAT (filters, full table, invalid).", "network")
	egressActive := def("egress_flows", gauge, "Egress flows open now.", "network", "proto")
	egressTotal := def("egress_flows_total", counter, "Egress flows opened.", "network", "proto")
	egressFailed := def("egress_failures_total", counter, "Egress flows refused or unreachable.", "network", "proto")
	dnsQueries := def("dns_queries_total", counter, "Queries to a network's embedded DNS server.", "network")
	dhcpLeases := def("dhcp_leases", gauge, "Active DHCP leases of a network.", "network")
	routed := def("routed_packets_total", counter, "Packets for routed subnets the gateway forwarded to the host interface, or dropped (TTL exceeded, looped).", "network", "result")
	returnSenders := def("return_path_senders", gauge, "Senders that came in through the host interface, remembered now.", "network")
	returnEvents := def("return_path_senders_total", counter, "Senders the return path learned, evicted from a full table, or let expire.", "network", "event")
	returnForwarded := def("return_path_forwarded_total", counter, "Packets sent back to the host interface for senders of the return path.", "network")
	loopFrames := def("loop_frames_total", counter, "Frames a network's loop read from its TAPs and tunnel.", "network")
	loopWaits := def("loop_waits_total", counter, "How a network's loop waited: woken after parking (wakeup), of which first held in the kernel (hold); polls that found nothing while spinning (spin).", "network", "how")
	loopYields := def("loop_yields_total", counter, "Turns after which a network's loop yielded to the netstack goroutines its frames woke.", "network")
	loopContended := def("loop_contended_total", counter, "Polls after which a network's loop narrowed its spin window because another thread wanted the CPU.", "network")
	loopWindow := def("loop_spin_window_seconds", gauge, "How long a network's loop spins after a frame now.", "network")
	proxyConns := def("proxy_tcp_connections", gauge, "Published-port TCP connections open now.")
	proxyConnsTotal := def("proxy_tcp_connections_total", counter, "Published-port TCP connections accepted.")
	proxyBytes := def("proxy_tcp_bytes_total", counter, "Bytes relayed through published TCP ports.", "direction")
	proxyFlows := def("proxy_udp_flows", gauge, "Published-port UDP flows open now.")
	proxyFlowsTotal := def("proxy_udp_flows_total", counter, "Published-port UDP flows created.")
	listeners := def("proxy_listeners", gauge, "Host sockets serving published ports.")

	for _, n := range s.Networks {
		for _, p := range n.Ports {
			portFrames.add(float64(p.Stats.RXFrames), n.Network, p.Name, p.Kind, "rx")
			portFrames.add(float64(p.Stats.TXFrames), n.Network, p.Name, p.Kind, "tx")
			portBytes.add(float64(p.Stats.RXBytes), n.Network, p.Name, p.Kind, "rx")
			portBytes.add(float64(p.Stats.TXBytes), n.Network, p.Name, p.Kind, "tx")
			for reason, v := range p.Stats.DropsBy {
				portDrops.add(float64(v), n.Network, p.Name, p.Kind, reason)
			}
		}
		fdb.add(float64(n.FDBEntries), n.Network)
		fdbMoves.add(float64(n.FDBMoves), n.Network)
		fdbFull.add(float64(n.FDBFull), n.Network)
		segmented.add(float64(n.Segmented), n.Network)
		icmpTooBig.add(float64(n.ICMPTooBig), n.Network)
		conntrack.add(float64(n.Conntrack), n.Network)
		natTranslated.add(float64(n.NATTranslated), n.Network)
		natDropped.add(float64(n.NATDropped), n.Network)
		egressActive.add(float64(n.Egress.TCPActive), n.Network, "tcp")
		egressActive.add(float64(n.Egress.UDPActive), n.Network, "udp")
		egressTotal.add(float64(n.Egress.TCPTotal), n.Network, "tcp")
		egressTotal.add(float64(n.Egress.UDPTotal), n.Network, "udp")
		egressTotal.add(float64(n.Egress.ICMPEchoes), n.Network, "icmp")
		egressFailed.add(float64(n.Egress.TCPRefused+n.Egress.TCPFailed), n.Network, "tcp")
		egressFailed.add(float64(n.Egress.UDPRefused), n.Network, "udp")
		egressFailed.add(float64(n.Egress.ICMPDropped), n.Network, "icmp")
		dnsQueries.add(float64(n.DNSQueries), n.Network)
		dhcpLeases.add(float64(n.DHCPLeases), n.Network)
		if r := n.Routing; r != nil {
			routed.add(float64(r.Forwarded), n.Network, "forwarded")
			routed.add(float64(r.TTLExceeded), n.Network, "ttl_exceeded")
			routed.add(float64(r.Looped), n.Network, "looped")
		}
		if l := n.Loop; l != nil {
			loopFrames.add(float64(l.Frames), n.Network)
			loopWaits.add(float64(l.Wakeups), n.Network, "wakeup")
			loopWaits.add(float64(l.Holds), n.Network, "hold")
			loopWaits.add(float64(l.Spins), n.Network, "spin")
			loopYields.add(float64(l.Yields), n.Network)
			loopContended.add(float64(l.Contended), n.Network)
			loopWindow.add(float64(l.WindowNS)/1e9, n.Network)
		}
		if r := n.ReturnPath; r != nil {
			returnSenders.add(float64(r.Senders), n.Network)
			returnEvents.add(float64(r.Learned), n.Network, "learned")
			returnEvents.add(float64(r.Evicted), n.Network, "evicted")
			returnEvents.add(float64(r.Expired), n.Network, "expired")
			returnForwarded.add(float64(r.Forwarded), n.Network)
		}
	}
	proxyConns.add(float64(s.Proxy.TCPActive))
	proxyConnsTotal.add(float64(s.Proxy.TCPTotal))
	proxyBytes.add(float64(s.Proxy.TCPBytesIn), "in")
	proxyBytes.add(float64(s.Proxy.TCPBytesOut), "out")
	proxyFlows.add(float64(s.Proxy.UDPFlowsActive))
	proxyFlowsTotal.add(float64(s.Proxy.UDPFlowsTotal))
	listeners.add(float64(s.Proxy.Listeners))
	return all
}

// process returns a few metrics of the daemon process itself, under the
// names the Prometheus client library uses.
func process() []*family {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := []*family{
		{name: "go_goroutines", kind: gauge, help: "Number of goroutines that currently exist.",
			samples: []sample{{v: float64(runtime.NumGoroutine())}}},
		{name: "go_memstats_heap_alloc_bytes", kind: gauge, help: "Number of heap bytes allocated and still in use.",
			samples: []sample{{v: float64(ms.HeapAlloc)}}},
		{name: "go_memstats_sys_bytes", kind: gauge, help: "Number of bytes obtained from the system.",
			samples: []sample{{v: float64(ms.Sys)}}},
	}
	gc := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(gc)
	if gc[0].Value.Kind() == metrics.KindUint64 {
		out = append(out, &family{name: "go_gc_cycles_total", kind: counter, help: "Completed GC cycles.",
			samples: []sample{{v: float64(gc[0].Value.Uint64())}}})
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				out = append(out, &family{name: "process_resident_memory_bytes", kind: gauge, help: "Resident memory size in bytes.",
					samples: []sample{{v: float64(pages * uint64(os.Getpagesize()))}}})
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		out = append(out, &family{name: "process_open_fds", kind: gauge, help: "Number of open file descriptors.",
			samples: []sample{{v: float64(len(ents))}}})
	}
	return out
}

// Write writes the metrics of snapshot s, then the process's own, in the
// text format. Families without samples are left out; samples within a
// family are sorted by their label values (in the order the family
// declares its labels), and labels are written in name order.
func Write(w io.Writer, s api.Stats) error {
	bw := bufio.NewWriter(w)
	for _, f := range append(families(s), process()...) {
		if len(f.samples) == 0 {
			continue
		}
		slices.SortFunc(f.samples, func(a, b sample) int {
			return cmp.Compare(strings.Join(a.values, "\xff"), strings.Join(b.values, "\xff"))
		})
		// Labels in name order, as the Prometheus client library writes them.
		order := make([]int, len(f.labels))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(f.labels[a], f.labels[b]) })
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		for _, smp := range f.samples {
			bw.WriteString(f.name)
			if len(f.labels) > 0 {
				bw.WriteByte('{')
				for i, j := range order {
					if i > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, "%s=\"%s\"", f.labels[j], escapeLabel(smp.values[j]))
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(formatValue(smp.v))
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// Handler serves the metrics of snapshot at each request.
func Handler(snapshot func() api.Stats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		Write(w, snapshot())
	})
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
