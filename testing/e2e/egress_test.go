package e2e_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// world is a test topology for egress: the daemon runs in host, a
// namespace joined by a veth to inet, which plays the internet.
//
//	container ns ──TAP── [daemon in host 10.213.200.1] ──veth── inet 10.213.200.2
//	                                  route 10.213.203.0/24 via inet, which drops it
type world struct {
	host, inet *netnstest.NS
	d          *clitest.Daemon
}

const (
	inetAddr  = "10.213.200.2"
	hostAddr  = "10.213.200.1"
	blackhole = "10.213.203.5"  // routed into inet, which does not forward: SYNs vanish
	noRoute   = "10.213.201.9"  // no route in host at all
	absent    = "10.213.200.99" // on the veth's subnet, nobody answers ARP
)

// newWorld builds the topology and starts the daemon in host; before
// runs first, for settings the daemon reads at start.
func newWorld(t *testing.T, before ...func(*world)) *world {
	t.Helper()
	w := &world{host: netnstest.New(t), inet: netnstest.New(t)}
	w.host.MustRun("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", w.inet.Name)
	w.host.MustRun("ip", "addr", "add", hostAddr+"/24", "dev", "veth0")
	w.host.MustRun("ip", "link", "set", "veth0", "up")
	w.inet.MustRun("ip", "addr", "add", inetAddr+"/24", "dev", "veth1")
	w.inet.MustRun("ip", "link", "set", "veth1", "up")
	// inet must not forward: blackholed SYNs vanish there (InAddrErrors)
	// instead of bouncing as unreachables. A new namespace inherits the
	// machine's IPv4 forwarding setting, which is not the test's to know.
	w.inet.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
	w.host.MustRun("ip", "route", "add", "10.213.203.0/24", "via", inetAddr)
	w.d = clitest.NewDaemon(t)
	w.d.Wrap = []string{"nsenter", "--net=" + w.host.Path}
	for _, f := range before {
		f(w)
	}
	w.d.Start()
	return w
}

// whoServer listens in ns and answers each connection with the address it
// came from.
func whoServer(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	ns.ServeEach(t, addr, func(c net.Conn) string { return c.RemoteAddr().String() })
}

func askWho(t *testing.T, from *netnstest.NS, addr string) string {
	t.Helper()
	return from.Ask(t, addr)
}

// dialErr connects from ns to addr and returns how long it took and the
// error (nil on success).
func dialErr(ns *netnstest.NS, addr string, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	c, err := ns.Dial(ctx, "tcp", addr)
	if c != nil {
		c.Close()
	}
	return time.Since(start), err
}

// Egress TCP, UDP and ping from a container to "the internet", as the
// host: the servers see the host's address.
func TestEgressToTheInternet(t *testing.T) {
	w := newWorld(t)
	a := netnstest.New(t)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", a.Path, "--name", "a")

	whoServer(t, w.inet, inetAddr+":8000")
	if got := askWho(t, a, inetAddr+":8000"); !strings.HasPrefix(got, hostAddr+":") {
		t.Errorf("the internet saw the container as %q, want the host %s (masquerade)", got, hostAddr)
	}
	sum, took := netnstest.Transfer(t, a, w.inet, inetAddr+":8001", 50*mb)
	t.Logf("egress 50 MB in %v (%.2f Gbit/s), sha256 %x", took, 400/took.Seconds()/1000, sum[:6])

	// UDP echo.
	udpWhoServer(t, w.inet, inetAddr+":5300")
	reply, err := udpAsk(a, inetAddr+":5300", "hi")
	if err != nil || !strings.HasPrefix(reply, hostAddr+":") || !strings.HasSuffix(reply, "said hi") {
		t.Errorf("UDP reply %q (err %v), want the host's address and the echo", reply, err)
	}

	// Ping: answered by the real destination, not by the gateway.
	if err := a.Ping(inetAddr, 2); err != nil {
		t.Errorf("ping the internet: %v", err)
	}
	if err := a.Ping(absent, 1); err == nil {
		t.Error("an address nobody has answered ping: the gateway is lying")
	}
	if !strings.Contains(w.d.MustRun("network", "inspect", "web"), "Egress:") {
		t.Error("network inspect shows no egress counters")
	}
}

// A container that connects again from the same source port to a server
// that closed the last connection first gets through at once, as behind
// Docker's NAT. The gateway's side of the last connection sent the first
// FIN and sits in TIME_WAIT, where gVisor drops a new SYN; with its
// default 60 s of TIME_WAIT the container's SYNs went unanswered
// (benchmarks/RESULTS.md, "Egress connections"). Now TIME_WAIT ends
// before the SYN's first retransmission.
func TestEgressSourcePortReusedAfterServerClosed(t *testing.T) {
	w := newWorld(t)
	a := netnstest.New(t)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", a.Path, "--name", "a")
	whoServer(t, w.inet, inetAddr+":8002") // answers, then closes first
	const port = 40123
	for i := range 2 {
		start := time.Now()
		got, err := askFromPort(a, inetAddr+":8002", port, 5*time.Second)
		if err != nil || !strings.HasPrefix(got, hostAddr+":") {
			t.Fatalf("connection %d from port %d: %q, %v after %v; want the server's answer", i+1, port, got, err, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("connection %d from port %d: answered after %v", i+1, port, time.Since(start).Round(time.Millisecond))
	}
}

// askFromPort connects from ns, from local port port, to addr and reads
// the server's answer until it closes. The port may still be in use for a
// moment after the last connection (its last ACK on the way): the bind is
// retried until timeout.
func askFromPort(ns *netnstest.NS, addr string, port int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		var c net.Conn
		err := ns.Do(func() (err error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{Port: port}, Deadline: deadline}
			c, err = d.Dial("tcp", addr)
			return err
		})
		if errors.Is(err, syscall.EADDRINUSE) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(deadline)
		b, err := io.ReadAll(c)
		return string(b), err
	}
}

// inAddrErrors returns how many packets ns dropped because they were for
// an address it does not have and it does not forward (Ip InAddrErrors).
func inAddrErrors(t *testing.T, ns *netnstest.NS) int64 {
	t.Helper()
	var names, values []string
	for _, l := range strings.Split(ns.MustRun("cat", "/proc/net/snmp"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "Ip:" {
			if names == nil {
				names = f
			} else {
				values = f
			}
		}
	}
	for i, n := range names {
		if n == "InAddrErrors" && i < len(values) {
			v, err := strconv.ParseInt(values[i], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no Ip InAddrErrors in %s's /proc/net/snmp", ns.Name)
	return 0
}

// udpAsk sends msg from a UDP socket in ns and returns the reply.
func udpAsk(ns *netnstest.NS, addr, msg string) (string, error) {
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.Dial("udp", addr); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for i := 0; i < 10; i++ {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		if !isTimeout(err) {
			return "", err
		}
	}
	return "", errors.New("no reply")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Failures come back as the right thing, at once: RST for a refused port,
// ICMP unreachable for a host the host cannot reach, ICMP port unreachable
// for a closed UDP port; and a blackholed destination does not hold up
// other flows.
func TestEgressFailures(t *testing.T) {
	w := newWorld(t)
	a := netnstest.New(t)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", a.Path, "--name", "a")
	whoServer(t, w.inet, inetAddr+":8000")

	took, err := dialErr(a, inetAddr+":9", 5*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) || took > 2*time.Second {
		t.Errorf("closed port: %v after %v, want connection refused at once", err, took)
	}
	took, err = dialErr(a, noRoute+":80", 5*time.Second)
	if !errors.Is(err, syscall.EHOSTUNREACH) || took > 2*time.Second {
		t.Errorf("no route: %v after %v, want no route to host at once", err, took)
	}

	// Blackholed SYNs: the connect hangs (until the gateway's dial
	// timeout), while other flows go on. The other flow starts once inet
	// has dropped the gateway's SYN, so the blackholed one is pending.
	dropped := inAddrErrors(t, w.inet)
	done := make(chan error, 1)
	go func() {
		_, err := dialErr(a, blackhole+":80", 30*time.Second)
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); inAddrErrors(t, w.inet) == dropped; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no SYN for the blackholed address reached inet within 10 s")
		}
	}
	if got := askWho(t, a, inetAddr+":8000"); !strings.HasPrefix(got, hostAddr) {
		t.Errorf("a flow during the blackholed one got %q", got)
	}
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("blackholed connect ended with %v, want host unreachable after the dial timeout", err)
		}
	case <-time.After(25 * time.Second):
		t.Error("blackholed connect still pending after 25 s: the dial timeout did not end it")
	}

	// UDP to a closed port: Linux reports the ICMP port unreachable on the
	// connected socket.
	var c net.Conn
	if err := a.Do(func() (err error) { c, err = net.Dial("udp", inetAddr+":5999"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rerr error
	for i := 0; i < 10; i++ {
		c.Write([]byte("anyone?"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, rerr = c.Read(make([]byte, 64)); !isTimeout(rerr) {
			break
		}
	}
	if !errors.Is(rerr, syscall.ECONNREFUSED) {
		t.Errorf("UDP to a closed port: read error %v, want connection refused", rerr)
	}
}

// --host-loopback makes the host's 127.0.0.1 reachable at 169.254.1.2;
// without it, it is not reachable at all.
func TestHostLoopback(t *testing.T) {
	w := newWorld(t)
	a, b := netnstest.New(t), netnstest.New(t)
	whoServer(t, w.host, "127.0.0.1:7070")
	w.d.MustRun("network", "create", "lo", "--subnet", "10.241.0.0/24", "--host-loopback")
	w.d.MustRun("network", "create", "nolo", "--subnet", "10.242.0.0/24")
	w.d.MustRun("connect", "lo", "--netns", a.Path, "--name", "a")
	w.d.MustRun("connect", "nolo", "--netns", b.Path, "--name", "b")
	if got := askWho(t, a, "169.254.1.2:7070"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("through --host-loopback the host server saw %q, want a 127.0.0.1 client", got)
	}
	if err := a.Ping("169.254.1.2", 1); err != nil {
		t.Errorf("ping the host loopback address: %v", err)
	}
	if _, err := dialErr(b, "169.254.1.2:7070", 5*time.Second); err == nil {
		t.Error("a network without --host-loopback reached the host's loopback")
	}
	if r := w.d.Run("network", "create", "x", "--subnet", "10.243.0.0/24", "--host-loopback-addr", "10.243.0.9", "--host-loopback"); r.Code == 0 {
		t.Error("a host-loopback address inside the subnet was accepted")
	}
}

// --internal: no default route, no egress; the gateway still answers.
func TestInternalNetwork(t *testing.T) {
	w := newWorld(t)
	a := netnstest.New(t)
	whoServer(t, w.inet, inetAddr+":8000")
	w.d.MustRun("network", "create", "priv", "--subnet", "10.244.0.0/24", "--internal")
	w.d.MustRun("connect", "priv", "--netns", a.Path, "--name", "a")
	if r := a.MustRun("ip", "route", "show", "default"); strings.TrimSpace(r) != "" {
		t.Errorf("internal network endpoint has a default route: %q", r)
	}
	a.MustRun("ip", "route", "add", "default", "via", "10.244.0.1") // even if the container adds one
	if _, err := dialErr(a, inetAddr+":8000", 5*time.Second); err == nil {
		t.Error("an internal network reached the internet")
	}
	if err := a.Ping(inetAddr, 1); err == nil {
		t.Error("an internal network pinged the internet")
	}
	if err := a.Ping("10.244.0.1", 1); err != nil {
		t.Errorf("ping the gateway of an internal network: %v", err)
	}
}
