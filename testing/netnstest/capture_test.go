package netnstest_test

import (
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// Tshark captures what the traffic it is given sends, inside the
// namespace only: a ping of the namespace's own loopback, request and
// reply, with the fields asked for.
func TestTshark(t *testing.T) {
	ns := netnstest.New(t)
	ns.MustRun("ip", "addr", "add", "10.9.1.1/32", "dev", "lo")
	out := ns.Tshark(t, netnstest.Capture{Iface: "lo", Filter: "icmp and host 10.9.1.1", Count: 2,
		Fields: []string{"ip.src", "ip.dst", "icmp.type"}}, func() { ns.Ping("10.9.1.1", 1) })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"10.9.1.1 10.9.1.1 8", "10.9.1.1 10.9.1.1 0"}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Errorf("tshark printed %q, want %q", lines, want)
	}
}
