package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// This file reads the two kernel settings that decide how host ports are
// chosen and who may bind them. The /proc/sys/net files show the settings
// of the network namespace of the thread that opens them.

const (
	localPortRangePath        = "/proc/sys/net/ipv4/ip_local_port_range"
	unprivilegedPortStartPath = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
)

// defaultUnprivilegedPortStart is the first port that needs no privilege on
// kernels older than 4.11, which have no ip_unprivileged_port_start file.
const defaultUnprivilegedPortStart = 1024

// EphemeralRange returns the range from which the kernel picks local ports
// for sockets bound to port 0, read from
// /proc/sys/net/ipv4/ip_local_port_range. The same range applies to IPv6.
// A mapping with a zero HostPort is given a port from this range.
func EphemeralRange() (PortRange, error) {
	return readEphemeralRange(localPortRangePath)
}

func readEphemeralRange(path string) (PortRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PortRange{}, fmt.Errorf("read ephemeral port range: %w", err)
	}
	r, err := parseLocalPortRange(string(b))
	if err != nil {
		return PortRange{}, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// parseLocalPortRange parses the contents of ip_local_port_range: two
// decimal ports separated by whitespace, the first not greater than the
// second, as in "32768\t60999\n".
func parseLocalPortRange(s string) (PortRange, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("invalid local port range %q: want two ports separated by whitespace, like \"32768 60999\"", s)
	}
	var ports [2]uint16
	for i, field := range f {
		n, err := strconv.ParseUint(field, 10, 16)
		if err != nil || n == 0 {
			return PortRange{}, fmt.Errorf("invalid port %q in local port range %q: want 1-65535", field, s)
		}
		ports[i] = uint16(n)
	}
	if ports[0] > ports[1] {
		return PortRange{}, fmt.Errorf("invalid local port range %q: start %d is greater than end %d", s, ports[0], ports[1])
	}
	return PortRange{Start: ports[0], End: ports[1]}, nil
}

// UnprivilegedPortStart returns the lowest port that a process without
// CAP_NET_BIND_SERVICE may bind, read from
// /proc/sys/net/ipv4/ip_unprivileged_port_start. 0 means every port is
// unprivileged. When the file does not exist, as on kernels before 4.11,
// it returns the fixed boundary of those kernels, 1024.
func UnprivilegedPortStart() (uint16, error) {
	return readUnprivilegedPortStart(unprivilegedPortStartPath)
}

func readUnprivilegedPortStart(path string) (uint16, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return defaultUnprivilegedPortStart, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read unprivileged port start: %w", err)
	}
	p, err := parseUnprivilegedPortStart(string(b))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// parseUnprivilegedPortStart parses the contents of
// ip_unprivileged_port_start: one decimal number 0-65535 with optional
// surrounding whitespace.
func parseUnprivilegedPortStart(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid unprivileged port start %q: want one number 0-65535", s)
	}
	return uint16(n), nil
}
