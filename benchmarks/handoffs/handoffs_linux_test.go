//go:build linux

package handoffs_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/benchmarks/handoffs"
	"github.com/switchyard-net/switchyard/gateway"
	"github.com/switchyard-net/switchyard/internal/evloop"
	"github.com/switchyard-net/switchyard/proxy"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/switch/stackport"
	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
	"github.com/switchyard-net/switchyard/tunnel"
)

// The paths measured. Every container is a network namespace with a TAP
// on a switch in this process, and its server is socat echoing in that
// namespace, so the only goroutines that wake are the forwarder's and the
// test's client (labelled with this file's functions and left out of the
// count):
//
//	port:   client ─► 127.0.0.1:P (proxy) ─► gateway netstack ─► switch ─► TAP ─► ns C (socat)
//	l2:     client in ns A ─► TAP A ─► switch ─► TAP B ─► ns B (socat)
//	tunnel: client in ns A ─► TAP A ─► switch 1 ─► tunnel ═UDP 127.0.0.1═► tunnel ─► switch 2 ─► TAP B ─► ns B
//	egress: client in ns C ─► TAP ─► switch ─► gateway netstack ─► host socket ─► 127.0.0.1 (an echo goroutine of the test)
//	port-udp: as port, with 1-byte UDP datagrams (socat UDP-LISTEN … PIPE)
//	*-loop: as the path named, with each switch's TAPs (and tunnel) read
//	        by an evloop of the switch's own, as the daemon does
//
// Each round trip is one byte out and one byte back on one TCP
// connection, as benchmarks/rr's "rr" mode.

var rounds = flag.Int("handoffs.rounds", 2000, "round trips traced per path")

// budgets are the most wake-ups per round trip each path may take (the
// counts recorded in benchmarks/RESULTS.md, plus room for a stray timer
// or GC wake-up); a change that adds a hand-off fails the test.
var budgets = map[string]float64{
	"port":   4.3,
	"l2":     2.5,
	"tunnel": 4.5,
	"egress": 4.3,
	// UDP has no TCP processor goroutine: the proxy's client reader and
	// the TAP reader, which also sends the reply to the client (the
	// gateway's connection pushes it; there is no flow reader to wake).
	"port-udp": 2.3,
	// The same paths with the switch's TAPs read by an evloop, as the
	// daemon does: the answer on the other TAP (or the next request) is
	// read while the loop still spins. The test spins 1 ms, not the
	// daemon's 100 µs, so that the count shows the structure, not the
	// turn-around of a traced in-process client (with 50 µs the loop
	// catches the answer and parks before the next request: 1.0).
	"l2-loop":   0.3,
	"port-loop": 3.3,
	// Each side's TAP and tunnel socket read by that side's loop
	// (tunnel.Config.Loop): the datagram that answers a frame a loop
	// sent into the tunnel is read while it spins. Both "hosts" are in
	// this process, and at most GOMAXPROCS-1 (here one) of its loops
	// spin at once, so only one side catches its answers, whichever
	// took the spinner place first: measured 1.52-2.01 (1.07-1.38 when
	// both spun and held both Ps; 4.00 with a reader per TAP and per
	// tunnel; 3.96 with the TAPs in the loop but not the tunnel).
	"tunnel-loop": 2.5,
}

// clientPrefix starts the labels of the test's own goroutines (the
// client), which are not counted.
const clientPrefix = "benchmarks/handoffs_test."

// nsenterPrefix labels the locked thread netnstest.NS.Dial makes each
// client socket on, inside the client's namespace: the client's too
// (none of the paths measured makes sockets in a namespace).
const nsenterPrefix = "internal/nsenter."

func TestHandoffsPerRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: creates network namespaces and TAP devices")
	}
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skipf("skipping: socat (the echo server) is not installed: %v", err)
	}
	for _, path := range []struct {
		name  string
		setup func(t testing.TB) func(context.Context) (net.Conn, error)
	}{
		{"port", publishedPort},
		{"l2", l2},
		{"tunnel", tunnelPath},
		{"egress", egress},
		{"port-udp", publishedUDPPort},
		{"l2-loop", looped(l2)},
		{"port-loop", looped(publishedPort)},
		{"tunnel-loop", looped(tunnelPath)},
	} {
		t.Run(path.name, func(t *testing.T) {
			dial := path.setup(t)
			c := connect(t, dial)
			res, err := handoffs.Count(func() error { return rr(c, *rounds) })
			if err != nil {
				t.Fatal(err)
			}
			per := float64(res.Total(clientPrefix)) / float64(*rounds)
			t.Logf("%s: %.2f wake-ups per round trip (%d round trips; the client's own excluded), %.2f P starts (thread wake-ups, the client's included)\nper round trip, by goroutine:\n%s",
				path.name, per, *rounds, float64(res.ProcStarts)/float64(*rounds), res.Table(*rounds))
			if per > budgets[path.name] {
				t.Errorf("%s: %.2f wake-ups per round trip, budget %.1f", path.name, per, budgets[path.name])
			}
		})
	}
}

// rr runs n 1-byte round trips on c.
func rr(c net.Conn, n int) error {
	b := []byte{'a'}
	for i := range n {
		if _, err := c.Write(b); err != nil {
			return fmt.Errorf("round trip %d: write: %w", i, err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return fmt.Errorf("round trip %d: read: %w", i, err)
		}
	}
	return nil
}

// connect dials until a round trip succeeds (the echo server may still be
// starting), then warms the path up.
func connect(t testing.TB, dial func(context.Context) (net.Conn, error)) net.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := dial(ctx)
		cancel()
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if err = rr(c, 1); err == nil {
				c.SetDeadline(time.Now().Add(2 * time.Minute))
				if err = rr(c, 500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no round trip through the path: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echo starts socat echoing on TCP port 5202 in ns.
func echo(t testing.TB, ns *netnstest.NS) { echoOn(t, ns, "TCP-LISTEN:5202,reuseaddr,fork") }

// echoOn starts socat echoing what arrives on the socat address listen,
// in ns.
func echoOn(t testing.TB, ns *netnstest.NS, listen string) {
	t.Helper()
	stop, err := startGroup(ns.Command(context.Background(), "socat", listen, "PIPE"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

// startGroup starts cmd in a process group of its own and returns what
// stops the whole group: socat's fork option leaves a child per peer,
// and a UDP peer's child never ends by itself (killing socat alone left
// them running, one per test run).
func startGroup(cmd *exec.Cmd) (stop func(), err error) {
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		cmd.Wait()
	}, nil
}

func mac(last byte) vswitch.MAC { return vswitch.MAC{0x02, 0x42, 10, 77, 0, last} }

// container makes a namespace with eth0, a TAP with offloads at addr, on
// sw.
func container(t testing.TB, sw *vswitch.Switch, addr string, gw netip.Addr) *netnstest.NS {
	t.Helper()
	ns := netnstest.New(t)
	p := netip.MustParsePrefix(addr)
	port, err := tap.Open(tap.Config{
		NetNS: ns.Path, Name: "eth0", PortName: ns.Name, MAC: mac(p.Addr().As4()[3]),
		Addrs: []netip.Prefix{p}, Gateway: gw, Offload: true, Configure: true, Loop: loops[sw],
	})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("skipping: the kernel refused a TAP device: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Remove() })
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func newSwitch(t testing.TB, name string) *vswitch.Switch {
	sw := vswitch.New(vswitch.Config{Name: name})
	t.Cleanup(func() { sw.Close() })
	if loopSpin >= 0 {
		l, err := evloop.New(evloop.Config{Spin: loopSpin, BufLen: tap.LoopBufLen, Yield: stackport.DeliveredSince(), Contention: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() }) // after the switch's ports (cleanups run last first)
		loops[sw] = l
	}
	return sw
}

// loopSpin, when not negative, makes newSwitch give each switch an evloop
// spinning that long that container's TAPs join, as the daemon does (0 is
// its --spin=0); negative gives each TAP a reader goroutine. looped sets
// it for a path.
var (
	loopSpin time.Duration = readers
	loops                  = map[*vswitch.Switch]*evloop.Loop{}
)

// readers is loopSpin's value for a reader goroutine per TAP.
const readers = -1

func looped(setup func(t testing.TB) func(context.Context) (net.Conn, error)) func(t testing.TB) func(context.Context) (net.Conn, error) {
	return func(t testing.TB) func(context.Context) (net.Conn, error) {
		loopSpin = time.Millisecond
		defer func() { loopSpin = readers }()
		return setup(t)
	}
}

func publishedPort(t testing.TB) func(context.Context) (net.Conn, error) {
	return published(t, "tcp", func(t testing.TB, ns *netnstest.NS) { echoOn(t, ns, "TCP-LISTEN:5202,reuseaddr,fork") })
}

func publishedUDPPort(t testing.TB) func(context.Context) (net.Conn, error) {
	return published(t, "udp", func(t testing.TB, ns *netnstest.NS) { echoOn(t, ns, "UDP-LISTEN:5202,reuseaddr,fork") })
}

// publishedPortGoEcho is publishedPort with goEcho as the container's
// server.
func publishedPortGoEcho(t testing.TB) func(context.Context) (net.Conn, error) {
	return published(t, "tcp", goEcho)
}

// goEcho serves TCP port 5202 in ns from goroutines of this process as
// benchmarks/rr's server does: a goroutine per connection echoes what
// arrives and, after echoing the byte 'X', closes, so that TIME_WAIT
// lands on the server. It is for connection rates, where socat's fork
// would cost a process per connection.
func goEcho(t testing.TB, ns *netnstest.NS) {
	t.Helper()
	ln, err := ns.Listen("0.0.0.0:5202")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil || buf[n-1] == 'X' {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
}

// published publishes port 5202/proto of a container through the
// gateway's netstack on 127.0.0.1; serve starts the container's echo
// server on 5202.
func published(t testing.TB, proto string, serve func(testing.TB, *netnstest.NS)) func(context.Context) (net.Conn, error) {
	sw := newSwitch(t, "port")
	gw, err := gateway.New(sw, gateway.Config{
		Network: "port", Subnet: netip.MustParsePrefix("10.77.0.0/24"), Addr: netip.MustParseAddr("10.77.0.1"),
		MAC: mac(1), Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	ns := container(t, sw, "10.77.0.2/24", netip.MustParseAddr("10.77.0.1"))
	serve(t, ns)
	m := proxy.NewManager(proxy.Config{Logger: zap.NewNop()})
	t.Cleanup(func() { m.Close() })
	mps, err := proxy.ParsePublish("127.0.0.1::5202/" + proto)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := m.Publish("bench/c", mps[0], netip.MustParseAddr("10.77.0.2"), gw.Dialer(true), proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	to := pubs[0].HostAddr().String()
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, proto, to)
	}
}

func l2(t testing.TB) func(context.Context) (net.Conn, error) {
	sw := newSwitch(t, "l2")
	a := container(t, sw, "10.77.0.2/24", netip.Addr{})
	b := container(t, sw, "10.77.0.3/24", netip.Addr{})
	echo(t, b)
	return func(ctx context.Context) (net.Conn, error) { return a.Dial(ctx, "tcp", "10.77.0.3:5202") }
}

func tunnelPath(t testing.TB) func(context.Context) (net.Conn, error) {
	sw1, sw2 := newSwitch(t, "t1"), newSwitch(t, "t2")
	tun := func(sw *vswitch.Switch) *tunnel.Port {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := tunnel.New(tunnel.Config{Name: "tunnel", Mode: tunnel.ModeVXLAN, VNI: 42, Conn: conn, Logger: zap.NewNop(), Loop: loops[sw]})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sw.Attach(p, vswitch.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t1, t2 := tun(sw1), tun(sw2)
	if err := t1.AddPeer(t2.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if err := t2.AddPeer(t1.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	a := container(t, sw1, "10.77.0.2/24", netip.Addr{})
	b := container(t, sw2, "10.77.0.3/24", netip.Addr{})
	echo(t, b)
	return func(ctx context.Context) (net.Conn, error) { return a.Dial(ctx, "tcp", "10.77.0.3:5202") }
}

func egress(t testing.TB) func(context.Context) (net.Conn, error) {
	sw := newSwitch(t, "egress")
	hostLo := netip.MustParseAddr("10.78.0.254")
	gw, err := gateway.New(sw, gateway.Config{
		Network: "egress", Subnet: netip.MustParsePrefix("10.77.0.0/24"), Addr: netip.MustParseAddr("10.77.0.1"),
		MAC: mac(1), HostLoopback: hostLo, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	ns := container(t, sw, "10.77.0.2/24", netip.MustParseAddr("10.77.0.1"))
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go echoLoopback(l)
	to := netip.AddrPortFrom(hostLo, uint16(l.Addr().(*net.TCPAddr).Port)).String()
	return func(ctx context.Context) (net.Conn, error) { return ns.Dial(ctx, "tcp", to) }
}

// echoLoopback echoes every connection l accepts until l is closed.
func echoLoopback(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

var conns = flag.Int("handoffs.conns", 300, "connections traced per path")

// connBudgets are the most wake-ups per connection (connect, a 1-byte
// echo, close) each path may take.
var connBudgets = map[string]float64{
	"port": 16,
	"l2":   9.5,
	// Read by a loop spinning 1 ms (see budgets).
	"l2-loop":   2,
	"port-loop": 11,
}

func TestHandoffsPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: creates network namespaces and TAP devices")
	}
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skipf("skipping: socat (the echo server) is not installed: %v", err)
	}
	for _, path := range []struct {
		name  string
		setup func(t testing.TB) func(context.Context) (net.Conn, error)
	}{
		{"port", publishedPort},
		{"l2", l2},
		{"l2-loop", looped(l2)},
		{"port-loop", looped(publishedPort)},
	} {
		t.Run(path.name, func(t *testing.T) {
			dial := path.setup(t)
			connect(t, dial).Close()
			for range 50 { // warm up: listeners, neighbour entries, pools
				if err := crr(dial); err != nil {
					t.Fatal(err)
				}
			}
			res, err := handoffs.Count(func() error {
				for range *conns {
					if err := crr(dial); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			per := float64(res.Total(clientPrefix, nsenterPrefix)) / float64(*conns)
			t.Logf("%s: %.2f wake-ups per connection (%d connections; the client's own excluded), %.2f P starts\nper connection, by goroutine:\n%s",
				path.name, per, *conns, float64(res.ProcStarts)/float64(*conns), res.Table(*conns))
			if per > connBudgets[path.name] {
				t.Errorf("%s: %.2f wake-ups per connection, budget %.0f", path.name, per, connBudgets[path.name])
			}
		})
	}
}

// crr connects, echoes one byte and closes, as benchmarks/rr's "crr"
// mode.
func crr(dial func(context.Context) (net.Conn, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return rr(c, 1)
}

// BenchmarkPortDownload reads b.N × 64 KiB from a container through the
// published-port path (container → TAP → switch → gateway netstack →
// relay → client): the direction in which the gateway's netstack takes
// every frame from a TAP's reader, so it shows what delivering those
// frames inline costs or saves in bulk. cpu-ms/MiB is the whole
// process's (forwarder and client).
func BenchmarkPortDownload(b *testing.B) {
	if _, err := exec.LookPath("socat"); err != nil {
		b.Skipf("skipping: socat is not installed: %v", err)
	}
	sw := vswitch.New(vswitch.Config{Name: "bulk"})
	defer sw.Close()
	gw, err := gateway.New(sw, gateway.Config{
		Network: "bulk", Subnet: netip.MustParsePrefix("10.77.0.0/24"), Addr: netip.MustParseAddr("10.77.0.1"),
		MAC: mac(1), Logger: zap.NewNop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	ns := netnstest.New(b)
	port, err := tap.Open(tap.Config{
		NetNS: ns.Path, Name: "eth0", PortName: ns.Name, MAC: mac(2),
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/24")}, Gateway: netip.MustParseAddr("10.77.0.1"),
		Offload: true, Configure: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer port.Remove()
	if _, err := sw.Attach(port, vswitch.AttachOptions{}); err != nil {
		b.Fatal(err)
	}
	stopSrc, err := startGroup(ns.Command(context.Background(), "socat", "TCP-LISTEN:5203,reuseaddr,fork", "SYSTEM:cat /dev/zero"))
	if err != nil {
		b.Fatal(err)
	}
	defer stopSrc()
	m := proxy.NewManager(proxy.Config{Logger: zap.NewNop()})
	defer m.Close()
	mps, _ := proxy.ParsePublish("127.0.0.1::5203")
	pubs, err := m.Publish("bench/c", mps[0], netip.MustParseAddr("10.77.0.2"), gw.Dialer(true), proxy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var c net.Conn
	buf := make([]byte, 64<<10)
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err = net.Dial("tcp", pubs[0].HostAddr().String())
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err = io.ReadFull(c, buf); err == nil {
				break
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			b.Fatalf("no data through the path: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(float64(b.N)*float64(len(buf))/(1<<20)), "cpu-ms/MiB")
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPortUDPRR is the port-udp path's 1-byte round trips on the
// wall clock: a client on 127.0.0.1 → the proxy's UDP binding → the
// gateway netstack → switch → TAP → socat echoing in the container's
// namespace, and back. One op is one round trip; cpu-µs/rr is the
// process's CPU time (all goroutines, the client's included) per round
// trip.
func BenchmarkPortUDPRR(b *testing.B) {
	if _, err := exec.LookPath("socat"); err != nil {
		b.Skipf("skipping: socat (the echo server) is not installed: %v", err)
	}
	benchRR(b, connect(b, publishedUDPPort(b)))
}

// BenchmarkRR is each TCP path's 1-byte round trips, as BenchmarkPortUDPRR
// measures them, with each switch's TAPs read by an evloop spinning the
// daemon's default window (daemon.DefaultSpin, 100 µs), as the daemon
// runs, by an evloop that never spins (-spin0, the daemon's --spin=0),
// or by a reader goroutine per TAP (-readers). cpu-µs/rr is the
// number to drive down on a machine where entering the kernel is dear
// (benchmarks/RESULTS.md, "A second kind of VM"): it is this process's
// CPU, socat's (the container's server) is not in it.
//
//	go test ./benchmarks/handoffs/ -run XXX -bench RR -benchtime 20000x -count 3
func BenchmarkRR(b *testing.B) {
	if _, err := exec.LookPath("socat"); err != nil {
		b.Skipf("skipping: socat (the echo server) is not installed: %v", err)
	}
	for _, path := range []struct {
		name  string
		setup func(testing.TB) func(context.Context) (net.Conn, error)
		spin  time.Duration // loopSpin
	}{
		{"port", publishedPort, 100 * time.Microsecond},
		{"port-spin0", publishedPort, 0},
		{"port-readers", publishedPort, readers},
		{"l2", l2, 100 * time.Microsecond},
		{"l2-spin0", l2, 0},
		{"l2-readers", l2, readers},
	} {
		b.Run(path.name, func(b *testing.B) {
			loopSpin = path.spin
			dial := path.setup(b)
			loopSpin = readers
			benchRR(b, connect(b, dial))
		})
	}
}

// BenchmarkCRR is benchmarks/rr's "crr" through a published port's
// default path, the network's TAP read by a loop as the daemon does:
// each op opens a connection to 127.0.0.1, sends 'X', reads it back and
// waits for the server to close (goEcho, as rr's server). The container's
// server is goroutines of this process in the container's namespace, so
// cpu-µs/conn is the proxy's, the path's, the client's and that server's
// CPU per connection.
//
//	go test ./benchmarks/handoffs/ -run XXX -bench CRR -benchtime 4000x -count 6
func BenchmarkCRR(b *testing.B) {
	loopSpin = 100 * time.Microsecond
	dial := publishedPortGoEcho(b)
	loopSpin = readers
	connect(b, dial).Close()
	buf := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	for i := range b.N {
		if err := crrOnce(dial, buf); err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
	}
	elapsed := time.Since(t0)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "conn/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/conn")
}

// crrOnce is one connection of BenchmarkCRR.
func crrOnce(dial func(context.Context) (net.Conn, error), buf []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := dial(ctx)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'X'}); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return err
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		return fmt.Errorf("after the echo: %d bytes, %v; want the server's end of stream", n, err)
	}
	return nil
}

// benchRR runs b.N 1-byte round trips on c and reports them per second
// and the process's CPU time per round trip.
func benchRR(b *testing.B, c net.Conn) {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	if err := rr(c, b.N); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(t0)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rr/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/rr")
}
