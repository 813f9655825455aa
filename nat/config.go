package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Proto is the transport protocol of a port mapping or a tracked flow,
// numbered as in the IP header.
type Proto uint8

// The protocols a Table tracks. ICMP means ICMP echo: ICMPv4 on IPv4,
// ICMPv6 (next header 58) on IPv6; the echo identifier plays the part of a
// port.
const (
	ICMP Proto = 1
	TCP  Proto = 6
	UDP  Proto = 17
)

// String returns "tcp", "udp" or "icmp", the spelling of iptables' -p.
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMP:
		return "icmp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// IP protocol numbers.
const (
	protoICMPv4 = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// DefaultMasqPorts is the default range of masquerade source ports:
// 61000-65535, the ports above Linux's default ip_local_port_range
// (32768-60999) that Linux leaves to masquerading. Container stacks pick
// their own ephemeral ports below it, and the gateway's netstack must be
// kept below it too (see Config.MasqPorts).
var DefaultMasqPorts = [2]uint16{61000, 65535}

// DefaultMasqShare is the divisor of the masquerade range that gives the
// default Config.MasqPortsPerSource: with the default range, 1,134 ports,
// far more open flows than one client keeps to one published port, while a
// source that floods it leaves three quarters of the range to the others.
// A share that follows the range keeps that meaning when the range is
// changed, where a fixed number would not.
const DefaultMasqShare = 4

// DefaultMaxEntries is the default size cap of the connection table, in
// connections (Linux's nf_conntrack_max is of the same order).
const DefaultMaxEntries = 65536

// Config describes a network's gateway. The zero value of each optional
// field gives Docker's behaviour.
type Config struct {
	// Network names the network. Rules uses it as the bridge interface
	// name (`-i web -o web`).
	Network string
	// Subnet and Subnet6 are the network's subnets. They appear in the
	// rendered rules (MASQUERADE -s, the --internal rule) and bound what
	// an internal network may reach (AllowEgress). Optional.
	Subnet, Subnet6 netip.Prefix
	// Gateway is the gateway's IPv4 address: a hairpin destination and the
	// masquerade source of IPv4 hairpin flows. Gateway6 is the IPv6 one;
	// zero means no IPv6 hairpin. At least one must be set.
	Gateway, Gateway6 netip.Addr
	// HostAddrs are the host's local addresses that count as "local" for
	// DNAT, as `-m addrtype --dst-type LOCAL` does: a container dialling
	// one of them at a published port is hairpinned. The gateway addresses
	// always count. SetHostAddrs replaces them at run time.
	HostAddrs []netip.Addr
	// Isolated is Docker's --icc=false: the hairpin flow between two
	// endpoints of the network is dropped (`-i net -o net -j DROP`), and,
	// as in Docker's iptables, so is an endpoint's flow to its own
	// published port. The switch isolates the endpoints at layer 2.
	Isolated bool
	// Internal is Docker's --internal: no DNAT at all, and AllowEgress
	// refuses every destination outside the network.
	Internal bool
	// MasqPorts is the inclusive range of masquerade source ports (and
	// ICMP echo identifiers), each available once toward each responder.
	// Zero means DefaultMasqPorts. The gateway's netstack must not pick
	// its own ephemeral ports from this range (Table.MasqPorts), or
	// replies to its connections into the network would be taken for
	// replies to hairpinned flows: with the default, call
	// stack.SetPortRange(16000, 60999) on it (gVisor's own default,
	// 16000-65535, overlaps). Published host ports inside the range are
	// skipped.
	MasqPorts [2]uint16
	// MasqPortsPerSource caps the masquerade ports toward one responder
	// that the open flows of one initiator address may hold at once, so
	// that one container cannot take them all; its further flows to that
	// responder are dropped and counted (Stats.PortsOverShare). Closed TCP
	// connections (TIME_WAIT) do not count. Zero means a quarter of the
	// range (DefaultMasqShare); a value at least the size of the range
	// means no cap.
	MasqPortsPerSource int
	// MaxEntries caps the connection table, in connections. Zero means
	// DefaultMaxEntries. When it is full, the oldest entry that is not
	// yet assured, or whose TCP connection has closed, is evicted (Linux's
	// early_drop); if there is none, the new flow is refused.
	MaxEntries int
	// Timeouts of entries per protocol and state; zero fields take
	// Linux's defaults (DefaultTimeouts).
	Timeouts Timeouts
}

// Timeouts are the idle timeouts of tracked flows, named after Linux's
// nf_conntrack_*_timeout_* sysctls. An entry expires when no packet has
// refreshed it for the timeout of its current state.
type Timeouts struct {
	TCPSynSent     time.Duration
	TCPSynRecv     time.Duration
	TCPEstablished time.Duration
	TCPFinWait     time.Duration
	TCPCloseWait   time.Duration
	TCPLastAck     time.Duration
	TCPTimeWait    time.Duration
	TCPClose       time.Duration
	// UDPUnreplied applies until the flow has seen traffic both ways for
	// more than two seconds; then UDPStream applies and the entry is
	// assured (a stream, not a query and its answer).
	UDPUnreplied time.Duration
	UDPStream    time.Duration
	ICMP         time.Duration
}

// DefaultTimeouts returns Linux's default conntrack timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     120 * time.Second,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 5 * 24 * time.Hour,
		TCPFinWait:     120 * time.Second,
		TCPCloseWait:   60 * time.Second,
		TCPLastAck:     30 * time.Second,
		TCPTimeWait:    120 * time.Second,
		TCPClose:       10 * time.Second,
		UDPUnreplied:   30 * time.Second,
		UDPStream:      120 * time.Second,
		ICMP:           30 * time.Second,
	}
}

// withDefaults returns t with each zero field set to Linux's default.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.TCPSynSent, &d.TCPSynSent}, {&t.TCPSynRecv, &d.TCPSynRecv},
		{&t.TCPEstablished, &d.TCPEstablished}, {&t.TCPFinWait, &d.TCPFinWait},
		{&t.TCPCloseWait, &d.TCPCloseWait}, {&t.TCPLastAck, &d.TCPLastAck},
		{&t.TCPTimeWait, &d.TCPTimeWait}, {&t.TCPClose, &d.TCPClose},
		{&t.UDPUnreplied, &d.UDPUnreplied}, {&t.UDPStream, &d.UDPStream},
		{&t.ICMP, &d.ICMP},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// PortMapping is one published port: Docker's `-p HostIP:HostPort:Target.Port/Proto`
// for the container at Target.Addr.
type PortMapping struct {
	// Proto is TCP or UDP. ICMP is an extension Docker does not write:
	// ICMP echo requests to the host address are forwarded to Target.Addr
	// (`-p icmp -j DNAT --to-destination B`); HostPort and Target.Port
	// must then be zero.
	Proto Proto
	// HostIP restricts the mapping to one local destination address. The
	// zero Addr means any local address of the target's family, as do
	// 0.0.0.0 (IPv4) and :: (IPv6).
	HostIP netip.Addr
	// HostPort is the published port.
	HostPort uint16
	// Target is the container's address and port.
	Target netip.AddrPort
}

// String formats m as "tcp 0.0.0.0:8080 -> 172.17.0.2:80"; "*" stands for
// the zero HostIP (any local address).
func (m PortMapping) String() string {
	host := "*"
	if m.HostIP.IsValid() {
		host = m.HostIP.String()
	}
	if m.Proto == ICMP {
		return "icmp " + host + " -> " + m.Target.Addr().String()
	}
	if m.HostIP.Is6() {
		host = "[" + host + "]"
	}
	return m.Proto.String() + " " + host + ":" + strconv.Itoa(int(m.HostPort)) + " -> " + m.Target.String()
}

// ErrInvalidConfig is wrapped by the errors of NewTable and SetMappings, so
// that a caller can tell a bad configuration from other failures.
var ErrInvalidConfig = errors.New("invalid nat configuration")

type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return ErrInvalidConfig }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// normalize validates c and fills in its defaults.
func (c Config) normalize() (Config, error) {
	c.Gateway, c.Gateway6 = c.Gateway.Unmap(), c.Gateway6.Unmap()
	if c.Gateway.IsValid() && (!c.Gateway.Is4() || c.Gateway.IsUnspecified()) {
		return c, configErrorf("nat for %s: gateway %s is not an IPv4 unicast address", c.Network, c.Gateway)
	}
	if c.Gateway6.IsValid() && (!c.Gateway6.Is6() || c.Gateway6.IsUnspecified()) {
		return c, configErrorf("nat for %s: gateway6 %s is not an IPv6 unicast address", c.Network, c.Gateway6)
	}
	if !c.Gateway.IsValid() && !c.Gateway6.IsValid() {
		return c, configErrorf("nat for %s: no gateway address: want Gateway, Gateway6 or both", c.Network)
	}
	if c.MasqPorts == [2]uint16{} {
		c.MasqPorts = DefaultMasqPorts
	}
	if c.MasqPorts[0] == 0 || c.MasqPorts[0] > c.MasqPorts[1] {
		return c, configErrorf("nat for %s: masquerade port range %d-%d: want 1 <= first <= last", c.Network, c.MasqPorts[0], c.MasqPorts[1])
	}
	if n := int(c.MasqPorts[1]-c.MasqPorts[0]) + 1; c.MasqPortsPerSource == 0 {
		c.MasqPortsPerSource = max(1, n/DefaultMasqShare)
	} else if c.MasqPortsPerSource < 0 {
		return c, configErrorf("nat for %s: MasqPortsPerSource %d: want 0 (a quarter of the range) or more", c.Network, c.MasqPortsPerSource)
	} else {
		c.MasqPortsPerSource = min(c.MasqPortsPerSource, n)
	}
	if c.MaxEntries < 0 {
		return c, configErrorf("nat for %s: MaxEntries %d: want 0 (default %d) or more", c.Network, c.MaxEntries, DefaultMaxEntries)
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	c.Timeouts = c.Timeouts.withDefaults()
	c.HostAddrs = normalizeAddrs(c.HostAddrs)
	return c, nil
}

// normalizeAddrs unmaps IPv4-mapped addresses and drops invalid,
// unspecified and repeated ones. It returns a new slice.
func normalizeAddrs(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || containsAddr(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, b := range s {
		if a == b {
			return true
		}
	}
	return false
}
