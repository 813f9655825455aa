// Package metrics exports the daemon's counters to Prometheus. The
// collector takes a snapshot (api.Stats) at each scrape, so nothing is
// counted twice and the data path pays nothing for metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// Collector is a prometheus.Collector over a stats snapshot function.
type Collector struct {
	snapshot func() api.Stats

	portFrames, portBytes, portDrops        *prometheus.Desc
	fdb, fdbMoves, segmented, icmpTooBig    *prometheus.Desc
	conntrack, natTranslated, natDropped    *prometheus.Desc
	egressActive, egressTotal, egressFailed *prometheus.Desc
	dnsQueries, dhcpLeases                  *prometheus.Desc
	proxyConns, proxyConnsTotal, proxyBytes *prometheus.Desc
	proxyFlows, proxyFlowsTotal, listeners  *prometheus.Desc
}

// New returns a collector reading snapshot at each scrape.
func New(snapshot func() api.Stats) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("switchyard_"+name, help, labels, nil)
	}
	port := []string{"network", "port", "kind", "direction"}
	return &Collector{
		snapshot:        snapshot,
		portFrames:      d("port_frames_total", "Frames a switch port received (rx) from its device or sent (tx) to it.", port...),
		portBytes:       d("port_bytes_total", "Bytes a switch port received (rx) or sent (tx).", port...),
		portDrops:       d("port_drops_total", "Frames dropped at a switch port, by reason.", "network", "port", "kind", "reason"),
		fdb:             d("fdb_entries", "MAC addresses a network's switch has learned.", "network"),
		fdbMoves:        d("fdb_moves_total", "MAC addresses relearned on another port.", "network"),
		segmented:       d("segmented_total", "Superframes cut into segments for ports without segmentation offload.", "network"),
		icmpTooBig:      d("icmp_too_big_total", "ICMP fragmentation-needed / packet-too-big errors sent for path MTU discovery.", "network"),
		conntrack:       d("conntrack_entries", "Connections tracked by a network's NAT.", "network"),
		natTranslated:   d("nat_translated_total", "Packets rewritten by a network's NAT.", "network"),
		natDropped:      d("nat_dropped_total", "Packets dropped by a network's NAT (filters, full table, invalid).", "network"),
		egressActive:    d("egress_flows", "Egress flows open now.", "network", "proto"),
		egressTotal:     d("egress_flows_total", "Egress flows opened.", "network", "proto"),
		egressFailed:    d("egress_failures_total", "Egress flows refused or unreachable.", "network", "proto"),
		dnsQueries:      d("dns_queries_total", "Queries to a network's embedded DNS server.", "network"),
		dhcpLeases:      d("dhcp_leases", "Active DHCP leases of a network.", "network"),
		proxyConns:      d("proxy_tcp_connections", "Published-port TCP connections open now."),
		proxyConnsTotal: d("proxy_tcp_connections_total", "Published-port TCP connections accepted."),
		proxyBytes:      d("proxy_tcp_bytes_total", "Bytes relayed through published TCP ports.", "direction"),
		proxyFlows:      d("proxy_udp_flows", "Published-port UDP flows open now."),
		proxyFlowsTotal: d("proxy_udp_flows_total", "Published-port UDP flows created."),
		listeners:       d("proxy_listeners", "Host sockets serving published ports."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.portFrames, c.portBytes, c.portDrops, c.fdb, c.fdbMoves, c.segmented, c.icmpTooBig,
		c.conntrack, c.natTranslated, c.natDropped, c.egressActive, c.egressTotal, c.egressFailed, c.dnsQueries, c.dhcpLeases,
		c.proxyConns, c.proxyConnsTotal, c.proxyBytes, c.proxyFlows, c.proxyFlowsTotal, c.listeners} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, n := range s.Networks {
		for _, p := range n.Ports {
			counter(c.portFrames, float64(p.Stats.RXFrames), n.Network, p.Name, p.Kind, "rx")
			counter(c.portFrames, float64(p.Stats.TXFrames), n.Network, p.Name, p.Kind, "tx")
			counter(c.portBytes, float64(p.Stats.RXBytes), n.Network, p.Name, p.Kind, "rx")
			counter(c.portBytes, float64(p.Stats.TXBytes), n.Network, p.Name, p.Kind, "tx")
			for reason, v := range p.Stats.DropsBy {
				counter(c.portDrops, float64(v), n.Network, p.Name, p.Kind, reason)
			}
		}
		gauge(c.fdb, float64(n.FDBEntries), n.Network)
		counter(c.fdbMoves, float64(n.FDBMoves), n.Network)
		counter(c.segmented, float64(n.Segmented), n.Network)
		counter(c.icmpTooBig, float64(n.ICMPTooBig), n.Network)
		gauge(c.conntrack, float64(n.Conntrack), n.Network)
		counter(c.natTranslated, float64(n.NATTranslated), n.Network)
		counter(c.natDropped, float64(n.NATDropped), n.Network)
		gauge(c.egressActive, float64(n.Egress.TCPActive), n.Network, "tcp")
		gauge(c.egressActive, float64(n.Egress.UDPActive), n.Network, "udp")
		counter(c.egressTotal, float64(n.Egress.TCPTotal), n.Network, "tcp")
		counter(c.egressTotal, float64(n.Egress.UDPTotal), n.Network, "udp")
		counter(c.egressTotal, float64(n.Egress.ICMPEchoes), n.Network, "icmp")
		counter(c.egressFailed, float64(n.Egress.TCPRefused+n.Egress.TCPFailed), n.Network, "tcp")
		counter(c.egressFailed, float64(n.Egress.UDPRefused), n.Network, "udp")
		counter(c.dnsQueries, float64(n.DNSQueries), n.Network)
		gauge(c.dhcpLeases, float64(n.DHCPLeases), n.Network)
	}
	gauge(c.proxyConns, float64(s.Proxy.TCPActive))
	counter(c.proxyConnsTotal, float64(s.Proxy.TCPTotal))
	counter(c.proxyBytes, float64(s.Proxy.TCPBytesIn), "in")
	counter(c.proxyBytes, float64(s.Proxy.TCPBytesOut), "out")
	gauge(c.proxyFlows, float64(s.Proxy.UDPFlowsActive))
	counter(c.proxyFlowsTotal, float64(s.Proxy.UDPFlowsTotal))
	gauge(c.listeners, float64(s.Proxy.Listeners))
}
