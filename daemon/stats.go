package daemon

import (
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/gateway"
)

// Stats returns every counter of the daemon.
func (d *Daemon) Stats() api.Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out api.Stats
	for _, n := range d.sortedNetworksLocked() {
		sw := n.sw.Stats()
		eg := n.gw.Stats()
		nat, lost := n.gw.NATStats()
		ns := api.NetworkStats{
			Network: n.rec.Name, FDBEntries: sw.FDBEntries, FDBMoves: sw.FDBMoves, FDBFull: sw.FDBFull,
			Segmented: sw.Segmented, ICMPTooBig: sw.ICMPSent,
			Conntrack: int(nat.Entries), NATTranslated: nat.TranslatedOrig + nat.TranslatedReply,
			NATDropped: nat.Dropped() + lost,
			Egress:     egressView(eg),
		}
		if n.dns != nil {
			s := n.dns.Stats()
			ns.DNSQueries = s.UDPQueries + s.TCPQueries
		}
		for _, l := range dhcpLeases(n) {
			if l.State == "bound" {
				ns.DHCPLeases++
			}
		}
		for _, p := range sw.Ports {
			ns.Ports = append(ns.Ports, api.PortCounters{Name: p.Name, Kind: p.Kind, Stats: portStats(p)})
		}
		var v api.Network
		directView(n, &v)
		directClusterView(n, &v)
		ns.Routing, ns.ReturnPath = v.Routing, v.ReturnPath
		if n.loop != nil {
			ls := n.loop.Stats()
			ns.Loop = &api.LoopStats{
				Frames: ls.Frames, Wakeups: ls.Wakeups, Holds: ls.Holds, Spins: ls.Spins, Yields: ls.Yields,
				Contended: ls.Contended, WindowNS: int64(ls.Window),
			}
		}
		out.Networks = append(out.Networks, ns)
	}
	ps := d.ports.Stats()
	out.Proxy = api.ProxyStats{
		Listeners: len(ps.Bindings), TCPActive: ps.TCP.Active, TCPTotal: ps.TCP.Total, TCPRefused: ps.TCP.Refused,
		TCPBytesIn: ps.TCP.BytesIn, TCPBytesOut: ps.TCP.BytesOut,
		UDPFlowsActive: ps.UDP.FlowsActive, UDPFlowsTotal: ps.UDP.FlowsTotal, UDPEvicted: ps.UDP.FlowsEvicted, UDPExpired: ps.UDP.FlowsExpired,
		OverLimit: ps.TCP.OverLimit + ps.UDP.FlowsOverLimit, AcceptErrors: ps.TCP.AcceptErrors,
		Conns: ps.Conns, MaxConns: ps.MaxConns, MaxConnsPerPort: ps.MaxConnsPerPort,
	}
	return out
}

// egressView is the API's view of a gateway's egress counters.
func egressView(eg gateway.EgressStats) api.EgressStats {
	return api.EgressStats{
		TCPActive: eg.TCPActive, TCPTotal: eg.TCPTotal, TCPRefused: eg.TCPRefused, TCPFailed: eg.TCPFailed,
		UDPActive: eg.UDPActive, UDPTotal: eg.UDPTotal, UDPRefused: eg.UDPRefused,
		ICMPEchoes: eg.ICMPEchoes, ICMPReplies: eg.ICMPReplies, ICMPDropped: eg.ICMPDropped, ICMPErrors: eg.ICMPErrors,
		Unreachables: eg.Unreachables, UnreachablesLimited: eg.UnreachablesLimited,
		OverLimit: eg.TCPOverLimit + eg.UDPOverLimit,
	}
}
