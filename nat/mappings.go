package nat

import "net/netip"

// ruleset is the data the DOCKER chain is made of: the local addresses and
// the published ports. A ruleset is never modified once published through
// Table.rules; changes build a new one.
type ruleset struct {
	// locals are the gateway addresses followed by the host's addresses:
	// the destinations `-m addrtype --dst-type LOCAL` matches.
	locals    []netip.Addr
	hostAddrs []netip.Addr
	mappings  []PortMapping
	byPort    map[portKey][]PortMapping
}

type portKey struct {
	proto Proto
	port  uint16
}

func newRuleset(cfg *Config, hostAddrs []netip.Addr, mappings []PortMapping) *ruleset {
	rs := &ruleset{hostAddrs: hostAddrs, mappings: mappings, byPort: make(map[portKey][]PortMapping, len(mappings))}
	for _, gw := range []netip.Addr{cfg.Gateway, cfg.Gateway6} {
		if gw.IsValid() {
			rs.locals = append(rs.locals, gw)
		}
	}
	for _, a := range hostAddrs {
		if !containsAddr(rs.locals, a) {
			rs.locals = append(rs.locals, a)
		}
	}
	for _, m := range mappings {
		k := portKey{m.Proto, m.HostPort}
		rs.byPort[k] = append(rs.byPort[k], m)
	}
	return rs
}

// isLocal reports whether a is the gateway or one of the host's addresses.
func (rs *ruleset) isLocal(a netip.Addr) bool {
	for _, l := range rs.locals {
		if l == a {
			return true
		}
	}
	return false
}

// published reports whether port is a published host port of proto.
func (rs *ruleset) published(proto Proto, port uint16) bool {
	_, ok := rs.byPort[portKey{proto, port}]
	return ok
}

// has reports whether m is one of the mappings.
func (rs *ruleset) has(m PortMapping) bool {
	for _, x := range rs.byPort[portKey{m.Proto, m.HostPort}] {
		if x == m {
			return true
		}
	}
	return false
}

// match returns the mapping that DNATs a packet of proto to dst:port: the
// DOCKER chain. dst is known to be local.
func (rs *ruleset) match(proto Proto, dst netip.Addr, port uint16) (PortMapping, bool) {
	for _, m := range rs.byPort[portKey{proto, port}] {
		if m.Target.Addr().Is4() != dst.Is4() {
			continue
		}
		if wildcard(m.HostIP) || m.HostIP == dst {
			return m, true
		}
	}
	return PortMapping{}, false
}

// wildcard reports whether a mapping's host IP means "any local address".
func wildcard(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() }

// checkMappings validates ms and returns a normalized copy: IPv4-mapped
// addresses unmapped. Two mappings of one protocol and host port may not
// both match one destination (Docker would refuse the second bind).
func checkMappings(network string, ms []PortMapping) ([]PortMapping, error) {
	type famKey struct {
		portKey
		v4 bool
	}
	out := make([]PortMapping, 0, len(ms))
	seen := make(map[famKey][]PortMapping)
	for i, m := range ms {
		m.HostIP = m.HostIP.Unmap()
		m.Target = netip.AddrPortFrom(m.Target.Addr().Unmap(), m.Target.Port())
		t := m.Target.Addr()
		switch m.Proto {
		case TCP, UDP:
			if m.HostPort == 0 || m.Target.Port() == 0 {
				return nil, configErrorf("nat for %s: mapping %d (%s): ports must not be 0", network, i, m)
			}
		case ICMP:
			if m.HostPort != 0 || m.Target.Port() != 0 {
				return nil, configErrorf("nat for %s: mapping %d (%s): an icmp mapping has no ports", network, i, m)
			}
		default:
			return nil, configErrorf("nat for %s: mapping %d: protocol %d: want tcp, udp or icmp", network, i, m.Proto)
		}
		if !t.IsValid() || t.IsUnspecified() || t.IsMulticast() {
			return nil, configErrorf("nat for %s: mapping %d (%s): target %s is not a unicast address", network, i, m, t)
		}
		if m.HostIP.IsValid() && m.HostIP.Is4() != t.Is4() {
			return nil, configErrorf("nat for %s: mapping %d (%s): host IP and target are of different families", network, i, m)
		}
		k := famKey{portKey{m.Proto, m.HostPort}, t.Is4()}
		for _, o := range seen[k] {
			if wildcard(o.HostIP) || wildcard(m.HostIP) || o.HostIP == m.HostIP {
				return nil, configErrorf("nat for %s: mapping %d (%s) overlaps %s: one host address and port, one target", network, i, m, o)
			}
		}
		seen[k] = append(seen[k], m)
		out = append(out, m)
	}
	return out, nil
}
