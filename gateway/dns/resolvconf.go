package dns

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// ReadResolvConf reads the host's resolver configuration (resolv.conf(5),
// usually /etc/resolv.conf): the nameservers, as upstreams on port 53 in
// the file's order without repeats, and the search domains (the last
// "search" or "domain" line wins, as in glibc). Comments ('#' or ';') and
// other keywords (options, sortlist) are ignored.
//
// Loopback nameservers (127.0.0.53 of systemd-resolved, 127.0.1.1 of
// NetworkManager's dnsmasq, ::1) are kept, unlike Docker, which must leave
// them out because a container's namespace cannot reach them: this
// package forwards from the daemon's own sockets, in the host's namespace,
// where they answer. 0.0.0.0 is left out.
//
// A nameserver line without a valid address is an error naming the file
// and the line, so that it is not silently skipped.
func ReadResolvConf(path string) (upstreams []netip.AddrPort, search []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read resolver configuration: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexAny(text, "#;"); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				return nil, nil, fmt.Errorf("%s:%d: nameserver without an address (want \"nameserver IP\")", path, line)
			}
			a, perr := netip.ParseAddr(fields[1])
			if perr != nil {
				return nil, nil, fmt.Errorf("%s:%d: nameserver %q is not an IP address", path, line, fields[1])
			}
			a = a.Unmap()
			if a.IsUnspecified() {
				continue
			}
			if up := netip.AddrPortFrom(a, Port); !slices.Contains(upstreams, up) {
				upstreams = append(upstreams, up)
			}
		case "search", "domain":
			search = search[:0]
			for _, d := range fields[1:] {
				if d = strings.TrimSuffix(d, "."); d != "" {
					search = append(search, d)
				}
			}
			if fields[0] == "domain" && len(search) > 1 {
				search = search[:1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return upstreams, search, nil
}
