package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file parses and prints published-port specifications: the values of
// Docker's -p/--publish and --expose flags, and the port filter and output
// lines of `docker port`. It is pure string handling; nothing here opens a
// socket or reads the system.

// ErrInvalidSpec is wrapped by every error that ParsePublish, ParseExpose
// and ParsePortFilter return, so that a caller can tell a user's mistake
// from other failures with errors.Is. The message of the wrapping error
// names the offending input and says what would be accepted instead.
var ErrInvalidSpec = errors.New("invalid port spec")

// The grammars of a -p and an --expose value, quoted in errors.
const (
	publishForm = "[[ip:][hostPort]:]containerPort[/proto]"
	exposeForm  = "port[/proto] or start-end[/proto]"
)

// specError is the concrete type of every parse error in this file. Its
// message stands on its own; ErrInvalidSpec is reachable only through
// errors.Is, so that the sentinel's text is not repeated in front of it.
type specError struct{ msg string }

func (e *specError) Error() string { return e.msg }
func (e *specError) Unwrap() error { return ErrInvalidSpec }

func specErrorf(format string, args ...any) error {
	return &specError{msg: fmt.Sprintf(format, args...)}
}

// Proto is the transport protocol of a published or exposed port. The zero
// value is TCP, which is Docker's default when a spec names no protocol.
type Proto uint8

// The protocols a port spec may name. Docker also accepts sctp; Switchyard
// does not proxy it and rejects it at parse time.
const (
	TCP Proto = iota
	UDP
)

// String returns "tcp" or "udp", the spelling used in specs and in the
// network argument of net.Listen.
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "Proto(" + strconv.Itoa(int(p)) + ")"
}

// parseProto accepts tcp and udp in any ASCII case, as Docker does, and
// names spec in its error.
func parseProto(s, spec string) (Proto, error) {
	switch {
	case equalFoldASCII(s, "tcp"):
		return TCP, nil
	case equalFoldASCII(s, "udp"):
		return UDP, nil
	}
	return 0, specErrorf("invalid proto %q in %q: want tcp or udp", s, spec)
}

// equalFoldASCII reports whether s equals lower when ASCII letters in s are
// lowered. Unlike strings.EqualFold it folds ASCII only: Docker lowers the
// protocol bytewise, and no non-ASCII rune should pass for a protocol name.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// PortRange is an inclusive range of ports. A single port has End equal to
// Start. The zero value means no port was given: the host port is to be
// chosen from the kernel's ephemeral range.
type PortRange struct {
	Start, End uint16
}

// IsZero reports whether r is the zero value, meaning "any ephemeral port".
func (r PortRange) IsZero() bool { return r == PortRange{} }

// Len returns the number of ports in r: 0 for the zero value or a reversed
// range, 1 for a single port.
func (r PortRange) Len() int {
	if r.IsZero() || r.End < r.Start {
		return 0
	}
	return int(r.End) - int(r.Start) + 1
}

// String returns "8000" for a single port, "8000-8010" for a range and "0"
// for the zero value.
func (r PortRange) String() string {
	return string(r.appendTo(nil))
}

func (r PortRange) appendTo(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(r.Start), 10)
	if r.End != r.Start {
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(r.End), 10)
	}
	return b
}

// parseRange parses "port" or "start-end" with every port in 1-65535. On
// failure it returns a reason for the caller to put in its message, which
// names the input in the caller's terms.
func parseRange(s string) (PortRange, string) {
	lo, hi, isRange := strings.Cut(s, "-")
	start, reason := parsePort(lo)
	if reason != "" {
		return PortRange{}, reason
	}
	if !isRange {
		return PortRange{start, start}, ""
	}
	end, reason := parsePort(hi)
	if reason != "" {
		return PortRange{}, reason
	}
	if end < start {
		return PortRange{}, fmt.Sprintf("range start %d is greater than end %d", start, end)
	}
	return PortRange{start, end}, ""
}

// parsePort parses one decimal port in 1-65535. Leading zeros are allowed,
// as Docker allows them; signs, spaces and other bases are not.
func parsePort(s string) (uint16, string) {
	n, err := strconv.ParseUint(s, 10, 16)
	switch {
	case errors.Is(err, strconv.ErrRange), err == nil && n == 0:
		return 0, "want 1-65535"
	case err != nil:
		return 0, "want a port 1-65535 or a range start-end, like 8000-8010"
	}
	return uint16(n), ""
}

// isZeroPort reports whether s is a port number 0, written with any number
// of zeros. Docker takes host port 0 to mean "any ephemeral port".
func isZeroPort(s string) bool {
	return s != "" && strings.Trim(s, "0") == ""
}

// Mapping is one published container port: traffic to HostIP:HostPort on
// the host is relayed to ContainerPort in the container.
type Mapping struct {
	// HostIP is the host address to listen on. The zero Addr means all
	// host addresses, IPv4 and IPv6. An explicit 0.0.0.0 or :: is kept as
	// given and means that one family only. ParsePublish never returns an
	// IPv4-mapped IPv6 address (it unmaps them) or an address with a zone.
	HostIP netip.Addr

	// HostPort is the host port. The zero value means a port chosen from
	// the ephemeral range. A range with Start < End means any free port in
	// that range; ParsePublish returns such a range only when the spec has
	// a single container port.
	HostPort PortRange

	// ContainerPort is the port in the container, never 0.
	ContainerPort uint16

	// Proto is the transport protocol, shared by host and container side.
	Proto Proto
}

// String returns the canonical spec of m, which ParsePublish parses back
// to exactly []Mapping{m} for any Mapping that ParsePublish returned. The
// protocol is always written, the host address and port only when set:
//
//	80/tcp
//	8080:80/udp
//	8000-8010:80/tcp
//	127.0.0.1::80/tcp
//	[::1]:8080:80/tcp
func (m Mapping) String() string {
	b := make([]byte, 0, 64)
	if m.HostIP.IsValid() {
		if m.HostIP.Is6() {
			b = append(b, '[')
			b = m.HostIP.AppendTo(b)
			b = append(b, ']')
		} else {
			b = m.HostIP.AppendTo(b)
		}
		b = append(b, ':')
	}
	if !m.HostPort.IsZero() {
		b = m.HostPort.appendTo(b)
	}
	if m.HostIP.IsValid() || !m.HostPort.IsZero() {
		b = append(b, ':')
	}
	b = strconv.AppendUint(b, uint64(m.ContainerPort), 10)
	b = append(b, '/')
	b = append(b, m.Proto.String()...)
	return string(b)
}

// ParsePublish parses one value of Docker's -p/--publish flag and returns
// one Mapping per container port, in ascending container-port order. The
// accepted forms are Docker's:
//
//	containerPort                  ephemeral host port, all host addresses
//	hostPort:containerPort
//	ip:hostPort:containerPort
//	ip::containerPort              ephemeral host port on ip
//	[ipv6]:hostPort:containerPort  IPv6 addresses go in brackets
//
// Any containerPort may end in /tcp (the default) or /udp, in any case.
// Ports may be ranges start-end: a host range and a container range of the
// same length map pairwise; a host range with a single container port
// means any free host port in that range; a container range without a host
// port gets one ephemeral host port per container port. A host port of 0
// means an ephemeral port, as in Docker. Empty ip and hostPort fields, as in
// "::80", are accepted and mean the defaults.
//
// Zoned IPv6 addresses (fe80::1%eth0) and IPv6 addresses without brackets
// are rejected. Every error wraps ErrInvalidSpec and quotes spec.
func ParsePublish(spec string) ([]Mapping, error) {
	ipField, bracketed, hostField, ctrField, err := splitPublish(spec)
	if err != nil {
		return nil, err
	}

	var ip netip.Addr
	if bracketed || ipField != "" {
		if ip, err = parseHostIP(ipField, bracketed, spec); err != nil {
			return nil, err
		}
	}

	var host PortRange
	if hostField != "" && !isZeroPort(hostField) {
		var reason string
		if host, reason = parseRange(hostField); reason != "" {
			return nil, specErrorf("invalid host port %q in %q: %s", hostField, spec, reason)
		}
	}

	ctr, proto, err := parseContainerField(ctrField, spec, "containerPort", publishForm)
	if err != nil {
		return nil, err
	}

	n := ctr.Len()
	if !host.IsZero() && n > 1 && host.Len() != n {
		return nil, specErrorf("invalid ranges specified for container and host Ports: %q: %d host ports for %d container ports; want ranges of equal length, or a single container port",
			spec, host.Len(), n)
	}

	out := make([]Mapping, n)
	for i := range out {
		m := Mapping{HostIP: ip, ContainerPort: ctr.Start + uint16(i), Proto: proto}
		switch {
		case host.IsZero():
		case n == 1:
			m.HostPort = host
		default:
			h := host.Start + uint16(i)
			m.HostPort = PortRange{h, h}
		}
		out[i] = m
	}
	return out, nil
}

// splitPublish splits a -p value into its ip, hostPort and containerPort
// fields. bracketed reports that the ip was written in brackets, which
// makes it present even when empty, so that "[]" is reported rather than
// taken for "no address".
func splitPublish(spec string) (ip string, bracketed bool, host, ctr string, err error) {
	if spec == "" {
		return "", false, "", "", specErrorf("invalid port spec %q: want %s", spec, publishForm)
	}

	if spec[0] == '[' {
		end := strings.IndexByte(spec, ']')
		if end < 0 {
			return "", false, "", "", specErrorf("invalid IP address in %q: missing \"]\" after the IPv6 address; want [ipv6]:hostPort:containerPort", spec)
		}
		rest, ok := strings.CutPrefix(spec[end+1:], ":")
		if ok {
			host, ctr, ok = strings.Cut(rest, ":")
		}
		if !ok || strings.Contains(ctr, ":") {
			return "", false, "", "", specErrorf("invalid port spec %q: want [ipv6]:hostPort:containerPort or [ipv6]::containerPort", spec)
		}
		return spec[1:end], true, host, ctr, nil
	}

	switch strings.Count(spec, ":") {
	case 0:
		return "", false, "", spec, nil
	case 1:
		host, ctr, _ = strings.Cut(spec, ":")
		return "", false, host, ctr, nil
	case 2:
		ip, rest, _ := strings.Cut(spec, ":")
		host, ctr, _ = strings.Cut(rest, ":")
		return ip, false, host, ctr, nil
	}

	// More than two colons without brackets. Docker would take everything
	// before the last two fields as the address; we insist on brackets,
	// because "::1:8080:80" also reads as the address ::1:8080 with port 80.
	// When the leading part is an IPv6 address, say how to write it.
	last := strings.LastIndexByte(spec, ':')
	mid := strings.LastIndexByte(spec[:last], ':')
	if a, perr := netip.ParseAddr(spec[:mid]); perr == nil && a.Is6() && a.Zone() == "" {
		return "", false, "", "", specErrorf("invalid port spec %q: put the IPv6 address in brackets, as in %q", spec, "["+spec[:mid]+"]"+spec[mid:])
	}
	return "", false, "", "", specErrorf("invalid port spec %q: want %s", spec, publishForm)
}

// parseHostIP parses the ip field of a -p value. Brackets are for IPv6, but
// an IPv4 address in brackets is accepted, as Docker accepts it.
func parseHostIP(s string, bracketed bool, spec string) (netip.Addr, error) {
	shown := s
	if bracketed {
		shown = "[" + s + "]"
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, specErrorf("invalid IP address %q in %q: want an IPv4 address, or an IPv6 address in brackets", shown, spec)
	}
	if a.Zone() != "" {
		return netip.Addr{}, specErrorf("invalid IP address %q in %q: IPv6 zones are not supported; want an address without %%zone", shown, spec)
	}
	return a.Unmap(), nil
}

// parseContainerField parses "port[/proto]" or "start-end[/proto]", the
// container side of -p and the whole of --expose. what names the field and
// form is the grammar of spec, both for errors.
func parseContainerField(s, spec, what, form string) (PortRange, Proto, error) {
	ports, protoField, hasProto := strings.Cut(s, "/")
	if ports == "" {
		return PortRange{}, 0, specErrorf("no %s in %q: want %s", what, spec, form)
	}
	r, reason := parseRange(ports)
	if reason != "" {
		return PortRange{}, 0, specErrorf("invalid %s %q in %q: %s", what, ports, spec, reason)
	}
	proto := TCP
	if hasProto {
		var err error
		if proto, err = parseProto(protoField, spec); err != nil {
			return PortRange{}, 0, err
		}
	}
	return r, proto, nil
}

// ExposedPort is a container port declared with --expose: reachable from
// other containers on the network, not published on the host.
type ExposedPort struct {
	Port  uint16
	Proto Proto
}

// String returns the port as "9000/tcp", which ParseExpose parses back to
// the same ExposedPort.
func (e ExposedPort) String() string {
	return strconv.Itoa(int(e.Port)) + "/" + e.Proto.String()
}

// ParseExpose parses one value of Docker's --expose flag: a port or a range
// start-end, optionally followed by /tcp (the default) or /udp. It returns
// one ExposedPort per port, in ascending order. Every error wraps
// ErrInvalidSpec and quotes spec.
func ParseExpose(spec string) ([]ExposedPort, error) {
	if strings.Contains(spec, ":") {
		return nil, specErrorf("invalid port format for --expose %q: want %s with no host part; use -p to publish on the host", spec, exposeForm)
	}
	r, proto, err := parseContainerField(spec, spec, "port", exposeForm)
	if err != nil {
		return nil, err
	}
	out := make([]ExposedPort, r.Len())
	for i := range out {
		out[i] = ExposedPort{Port: r.Start + uint16(i), Proto: proto}
	}
	return out, nil
}

// ParsePortFilter parses the optional port argument of `switchyard port ls`,
// "80" or "80/udp", as `docker port CONTAINER 80/tcp` takes it. hasProto
// reports whether a protocol was written; when it was not, proto is TCP,
// Docker's default, and a caller may instead match every protocol. Ranges
// are not accepted. Every error wraps ErrInvalidSpec and quotes s.
func ParsePortFilter(s string) (port uint16, proto Proto, hasProto bool, err error) {
	portField, protoField, hasProto := strings.Cut(s, "/")
	n, perr := strconv.ParseUint(portField, 10, 16)
	if perr != nil || n == 0 {
		return 0, 0, false, specErrorf("invalid port %q in %q: want a single port 1-65535, optionally followed by /tcp or /udp", portField, s)
	}
	if hasProto {
		if proto, err = parseProto(protoField, s); err != nil {
			return 0, 0, false, err
		}
	}
	return uint16(n), proto, hasProto, nil
}

// FormatPortLine returns one line of `docker port` output for a bound host
// port, without a newline:
//
//	80/tcp -> 0.0.0.0:8080
//	53/udp -> [::]:5353
//
// hostIP is the address actually bound. An IPv4-mapped address is printed
// as IPv4. The zero Addr, meaning all addresses, prints as 0.0.0.0, the one
// line older Docker printed; to print Docker's current pair of lines for a
// wildcard binding, call FormatPortLine once with netip.IPv4Unspecified()
// and once with netip.IPv6Unspecified().
func FormatPortLine(containerPort uint16, p Proto, hostIP netip.Addr, hostPort uint16) string {
	if !hostIP.IsValid() {
		hostIP = netip.IPv4Unspecified()
	}
	return strconv.Itoa(int(containerPort)) + "/" + p.String() + " -> " +
		netip.AddrPortFrom(hostIP.Unmap(), hostPort).String()
}
