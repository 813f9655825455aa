package e2e_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// IPv6 addresses of the egress world (world, egress_test.go): the veth
// between host and inet carries fd00:213::/64 besides IPv4. host has no
// other IPv6 route: it is a host without IPv6 connectivity beyond inet.
const (
	host6    = "fd00:213::1"
	inet6    = "fd00:213::2"
	absent6  = "fd00:213::99" // on the veth's prefix, nobody answers ND
	noRoute6 = "fd00:2199::9" // no route in host at all
)

func addIPv6(w *world) {
	w.host.MustRun("ip", "addr", "add", host6+"/64", "dev", "veth0", "nodad")
	w.inet.MustRun("ip", "addr", "add", inet6+"/64", "dev", "veth1", "nodad")
}

// snmp6 returns counter name of ns's /proc/net/snmp6.
func snmp6(t *testing.T, ns *netnstest.NS, name string) int64 {
	t.Helper()
	for _, l := range strings.Split(ns.MustRun("cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in %s's /proc/net/snmp6", name, ns.Name)
	return 0
}

// ping6 runs one ping -6 from ns and returns its output, whether it was
// answered, and how long it took.
func ping6(ns *netnstest.NS, addr string, wait int) (string, bool, time.Duration) {
	start := time.Now()
	out, err := ns.Run("ping", "-6", "-n", "-c", "1", "-W", strconv.Itoa(wait), addr)
	return out, err == nil, time.Since(start)
}

// ping -6 from a container leaves through the host's ICMPv6 sockets, with
// either kind of socket the daemon may open (raw, as root; an unprivileged
// ping socket where net.ipv4.ping_group_range allows): the real
// destination answers it (its kernel counts the echo), an address nobody
// has goes unanswered, and a destination the host has no route to fails
// at once with "destination unreachable" instead of a timeout; the host
// kernel's own "address unreachable" for a neighbour that never answers
// reaches the container too (read from the raw socket, or from the ping
// socket's error queue).
func TestDualStackPing6Egress(t *testing.T) {
	for _, mode := range []string{"raw socket", "ping socket"} {
		t.Run(strings.ReplaceAll(mode, " ", "_"), func(t *testing.T) {
			w := newWorld(t, addIPv6, func(w *world) {
				if mode == "ping socket" { // the daemon's namespace's own setting
					w.host.MustRun("sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
				} else {
					w.host.MustRun("sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
				}
			})
			c := netnstest.New(t)
			w.d.MustRun("network", "create", "web", "--subnet", "10.248.0.0/24", "--subnet", "fd00:248::/64")
			w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c")
			if !strings.Contains(w.d.Log(), mode+" (IPv6)") {
				t.Errorf("the daemon's log does not say it sends IPv6 pings from a %s", mode)
			}

			echoes := snmp6(t, w.inet, "Icmp6InEchos")
			if out, ok, _ := ping6(c, inet6, 3); !ok {
				t.Fatalf("ping -6 %s: %s", inet6, out)
			}
			if got := snmp6(t, w.inet, "Icmp6InEchos"); got <= echoes {
				t.Errorf("inet received no echo request (Icmp6InEchos %d → %d): something else answered the ping", echoes, got)
			}

			out, ok, took := ping6(c, noRoute6, 5)
			if ok || !strings.Contains(out, "Destination unreachable") || took > 3*time.Second {
				t.Errorf("ping -6 %s (no route in the host): answered %v after %v, want destination unreachable at once:\n%s", noRoute6, ok, took, out)
			}

			out, ok, _ = ping6(c, absent6, 6)
			if ok {
				t.Errorf("ping -6 %s, an address nobody has, was answered:\n%s", absent6, out)
			}
			if !strings.Contains(out, "Address unreachable") {
				t.Errorf("ping -6 %s: the host's address unreachable did not reach the container:\n%s", absent6, out)
			}
			inspect := w.d.MustRun("network", "inspect", "web")
			if !strings.Contains(inspect, "unreachables") {
				t.Errorf("network inspect shows no unreachables:\n%s", inspect)
			}
		})
	}
}

// IPv6 TCP and UDP egress work and fail as IPv4's do, at once: curl -6
// reaches the outside as the host; a refused port is a reset, a
// destination the host has no route to an unreachable, a closed UDP port
// a port unreachable.
func TestDualStackEgressFailures(t *testing.T) {
	w := newWorld(t, addIPv6)
	c := netnstest.New(t)
	w.d.MustRun("network", "create", "web", "--subnet", "10.249.0.0/24", "--subnet", "fd00:249::/64")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c")
	// curl -6, a real client: it reaches the outside as the host, and
	// fails at once where the host has no route.
	l, err := w.inet.Listen("[" + inet6 + "]:8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, r.RemoteAddr) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	if out, err := c.Run("curl", "-6", "-sS", "--max-time", "5", "http://["+inet6+"]:8080/"); err != nil || !strings.HasPrefix(out, "["+host6+"]:") {
		t.Errorf("curl -6 from the container: %q (%v), want the host's %s as the client", out, err, host6)
	}
	start := time.Now()
	if out, err := c.Run("curl", "-6", "-sS", "--max-time", "5", "http://["+noRoute6+"]/"); err == nil || time.Since(start) > 3*time.Second ||
		!strings.Contains(out, "Failed to connect") {
		t.Errorf("curl -6 to an address the host has no route to: %v after %v: %s; want no route at once", err, time.Since(start), out)
	}
	took, err := dialErr(c, "["+inet6+"]:9", 5*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) || took > 2*time.Second {
		t.Errorf("closed IPv6 port: %v after %v, want connection refused at once", err, took)
	}
	took, err = dialErr(c, "["+noRoute6+"]:80", 5*time.Second)
	if !(errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)) || took > 2*time.Second {
		t.Errorf("IPv6 destination without a route: %v after %v, want unreachable at once", err, took)
	}
	// UDP to a closed port, and to an address the host has no route to:
	// both answered with port unreachable, which Linux reports to an
	// ordinary connected socket (a no-route error it would not).
	for _, dst := range []string{"[" + inet6 + "]:5999", "[" + noRoute6 + "]:53"} {
		var uc net.Conn
		if err := c.Do(func() (err error) { uc, err = net.Dial("udp", dst); return err }); err != nil {
			t.Fatal(err)
		}
		defer uc.Close()
		var rerr error
		for i := 0; i < 10; i++ {
			uc.Write([]byte("anyone?"))
			uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, rerr = uc.Read(make([]byte, 64)); !isTimeout(rerr) {
				break
			}
		}
		if !errors.Is(rerr, syscall.ECONNREFUSED) {
			t.Errorf("UDP to %s: read error %v, want connection refused", dst, rerr)
		}
	}
}

// --internal holds for IPv6: no egress, and no ping -6 to the outside is
// answered (by the destination or by the gateway), while the gateway's
// own IPv6 address answers.
func TestDualStackInternal(t *testing.T) {
	w := newWorld(t, addIPv6)
	whoServer(t, w.inet, "["+inet6+"]:8000")
	c := netnstest.New(t)
	w.d.MustRun("network", "create", "priv", "--subnet", "10.250.0.0/24", "--subnet", "fd00:250::/64", "--internal")
	w.d.MustRun("connect", "priv", "--netns", c.Path, "--name", "c")
	c.MustRun("ip", "-6", "route", "replace", "default", "via", "fd00:250::1") // even if the container adds one
	if err := c.Ping("fd00:250::1", 1); err != nil {
		t.Fatalf("ping the internal network's IPv6 gateway: %v", err)
	}
	echoes := snmp6(t, w.inet, "Icmp6InEchos")
	for _, dst := range []string{inet6, "2001:db8::1"} {
		if out, ok, _ := ping6(c, dst, 1); ok {
			t.Errorf("an internal network's ping -6 %s was answered:\n%s", dst, out)
		}
	}
	if got := snmp6(t, w.inet, "Icmp6InEchos"); got != echoes {
		t.Errorf("inet received %d echo requests from an internal network", got-echoes)
	}
	if _, err := dialErr(c, "["+inet6+"]:8000", 5*time.Second); err == nil {
		t.Error("an internal network reached the outside over IPv6")
	}
}
