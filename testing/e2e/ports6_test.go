package e2e_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// udpWhoServer answers each datagram in ns at addr with the address it
// came from.
func udpWhoServer(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	ns.ServeEachUDP(t, addr, func(from net.Addr, msg []byte) string { return fmt.Sprintf("%s said %s", from, msg) })
}

// Published ports bridge the families: -p on an IPv4-only endpoint
// listens on [::] too, and an IPv6 client reaches the container (from the
// gateway's IPv4 address: a client address of the other family cannot be
// kept), TCP and UDP; an IPv6-only endpoint is reached by an IPv4 client
// the same way. Clients of the container's own family keep their address.
// port ls prints the [::] listeners as docker port does.
func TestPublishedPortsAcrossFamilies(t *testing.T) {
	w := newWorld(t, addIPv6)
	c4, c6 := netnstest.New(t), netnstest.New(t)
	whoServer(t, c4, "0.0.0.0:80")
	udpWhoServer(t, c4, "0.0.0.0:53")
	whoServer(t, c6, "[::]:80")
	udpWhoServer(t, c6, "[::]:53")
	w.d.MustRun("network", "create", "v4only", "--subnet", "10.254.0.0/24")
	w.d.MustRun("network", "create", "v6only", "--subnet", "fd00:254::/64")
	w.d.MustRun("connect", "v4only", "--netns", c4.Path, "--name", "c4", "-p", "18480:80", "-p", "18453:53/udp")
	w.d.MustRun("connect", "v6only", "--netns", c6.Path, "--name", "c6", "-p", "18481:80", "-p", "[::]:18454:53/udp", "-p", "0.0.0.0:18454:53/udp")

	for _, c := range []struct{ dial, want string }{
		{"[" + host6 + "]:18480", "10.254.0.1:"}, // IPv6 client → IPv4 container
		{hostAddr + ":18480", inetAddr + ":"},    // same family: the client's address
		{hostAddr + ":18481", "[fd00:254::1]:"},  // IPv4 client → IPv6 container
		{"[" + host6 + "]:18481", "[" + inet6 + "]:"},
	} {
		if got := askWho(t, w.inet, c.dial); !strings.HasPrefix(got, c.want) {
			t.Errorf("inet → %s (tcp): the container saw %q, want %s…", c.dial, got, c.want)
		}
	}
	for _, c := range []struct{ dial, want string }{
		{"[" + host6 + "]:18453", "10.254.0.1:"},
		{hostAddr + ":18453", inetAddr + ":"},
		{hostAddr + ":18454", "[fd00:254::1]:"},
		{"[" + host6 + "]:18454", "[" + inet6 + "]:"},
	} {
		got, err := udpAsk(w.inet, c.dial, "hi")
		if err != nil || !strings.HasPrefix(got, c.want) || !strings.HasSuffix(got, "said hi") {
			t.Errorf("inet → %s (udp): %q (%v), want an answer from a client %s…", c.dial, got, err, c.want)
		}
	}
	ls := w.d.MustRun("port", "ls", "v4only/c4")
	for _, want := range []string{"80/tcp -> 0.0.0.0:18480", "80/tcp -> [::]:18480", "53/udp -> [::]:18453"} {
		if !strings.Contains(ls, want) {
			t.Errorf("port ls v4only/c4 lacks %q:\n%s", want, ls)
		}
	}
}
