package e2e_test

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// whoServers starts, in ns, a TCP server on each port that answers with
// the address it saw the client at, and a UDP server on each udp port that
// does the same.
func whoServers(t *testing.T, ns *netnstest.NS, tcp []int, udp []int) {
	t.Helper()
	for _, p := range tcp {
		whoServer(t, ns, fmt.Sprintf("0.0.0.0:%d", p))
	}
	for _, p := range udp {
		ns.ServeEachUDP(t, fmt.Sprintf("0.0.0.0:%d", p), func(from net.Addr, msg []byte) string { return from.String() + " " + string(msg) })
	}
}

func bindings(t *testing.T, w *world, endpoint string) []api.PortBinding {
	t.Helper()
	var bs []api.PortBinding
	if err := json.Unmarshal([]byte(w.d.MustRun("port", "ls", endpoint, "--format", "json")), &bs); err != nil {
		t.Fatal(err)
	}
	return bs
}

// Every -p form, TCP and UDP, through the daemon to servers in a
// container namespace; clients in the "internet" namespace (a real remote
// address) and on the host's loopback.
func TestPublishForms(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	whoServers(t, c, []int{80, 81, 82, 83}, []int{53})
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	out := w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c",
		"-p", "18080:80", // hostPort:containerPort
		"-p", "80", // containerPort: ephemeral host port
		"-p", hostAddr+":18081:81", // ip:hostPort:containerPort
		"-p", "127.0.0.1::82", // ip::containerPort
		"-p", "18082-18083:82-83", // equal ranges
		"-p", "18090-18095:80", // any free port in a host range
		"-p", "18053:53/udp",
		"-p", "[::1]:18086:80", "-p", "[::]::81")
	for _, want := range []string{"80/tcp -> 0.0.0.0:18080", "81/tcp -> " + hostAddr + ":18081", "82/tcp -> 0.0.0.0:18082",
		"83/tcp -> 0.0.0.0:18083", "80/tcp -> 0.0.0.0:18090", "53/udp -> 0.0.0.0:18053", "80/tcp -> [::1]:18086"} {
		if !strings.Contains(out, want) {
			t.Errorf("connect output lacks %q:\n%s", want, out)
		}
	}
	bs := bindings(t, w, "web/c")
	remote := func(port uint16) string { return fmt.Sprintf("%s:%d", hostAddr, port) }
	for _, b := range bs {
		if b.Proto != "tcp" {
			continue
		}
		from, addr := w.inet, remote(b.HostPort)
		switch {
		case b.HostIP.String() == "127.0.0.1":
			from, addr = w.host, fmt.Sprintf("127.0.0.1:%d", b.HostPort)
		case b.HostIP.String() == "::1" || b.HostIP.String() == "::":
			from, addr = w.host, fmt.Sprintf("[::1]:%d", b.HostPort)
		}
		got := askWho(t, from, addr)
		if got == "" {
			t.Errorf("%s: no answer at %s", b.Docker, addr)
		}
	}
	reply, err := udpAsk(w.inet, remote(18053), "hello")
	if err != nil || !strings.HasSuffix(reply, " hello") {
		t.Errorf("UDP through 18053: %q, %v", reply, err)
	}
	if got := w.d.MustRun("port", "ls", "web/c", "83/tcp"); got != "0.0.0.0:18083\n[::]:18083\n" {
		t.Errorf("port ls web/c 83/tcp = %q, want Docker's two lines for 0.0.0.0 and [::]", got)
	}
}

// The container sees the client's real address and port, for TCP and UDP;
// source=gateway shows the gateway instead, path=splice the container's
// own address.
func TestPublishedPortSourceAddress(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	whoServers(t, c, []int{80}, []int{53})
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c",
		"-p", "18080:80", "-p", "18081:80,source=gateway", "-p", "18082:80,path=splice", "-p", "18053:53/udp")

	// A client with a fixed source port, so the exact address can be checked.
	var conn net.Conn
	err := w.inet.Do(func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(inetAddr), Port: 45678}, Timeout: 5 * time.Second}
		conn, err = d.Dial("tcp", hostAddr+":18080")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	seen, _ := io.ReadAll(conn)
	conn.Close()
	if string(seen) != inetAddr+":45678" {
		t.Errorf("the container saw the client as %q, want %s:45678", seen, inetAddr)
	}
	if got := askWho(t, w.inet, hostAddr+":18081"); !strings.HasPrefix(got, "10.240.0.1:") {
		t.Errorf("with source=gateway the container saw %q, want the gateway", got)
	}
	if got := askWho(t, w.inet, hostAddr+":18082"); !strings.HasPrefix(got, "10.240.0.2:") {
		t.Errorf("with path=splice the container saw %q, want its own address", got)
	}
	reply, err := udpAsk(w.inet, hostAddr+":18053", "x")
	if err != nil || !strings.HasPrefix(reply, inetAddr+":") {
		t.Errorf("UDP: the container saw %q (err %v), want the client %s", reply, err, inetAddr)
	}
}

// Half-close through a published port (the client shuts its write side
// and still gets the whole reply) on both paths, and a reset, not a hang,
// when the container refuses.
func TestPublishedPortHalfCloseAndReset(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	l, err := c.Listen("0.0.0.0:80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // reads everything, then answers with its SHA-256 and 1 MiB
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				h := sha256.New()
				io.Copy(h, s)
				s.Write(h.Sum(nil))
				s.Write(make([]byte, 1<<20))
			}()
		}
	}()
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", "18080:80", "-p", "18081:80,path=splice", "-p", "18089:89")
	for _, port := range []string{"18080", "18081"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := w.inet.Dial(ctx, "tcp", hostAddr+":"+port)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		req := make([]byte, 3<<20)
		crand.Read(req)
		want := sha256.Sum256(req)
		conn.Write(req)
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || len(got) != 32+1<<20 || string(got[:32]) != string(want[:]) {
			t.Errorf("port %s: after half-close got %d bytes (err %v), want the digest and 1 MiB", port, len(got), err)
		}
	}
	// Nothing listens on the container's port 89.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := w.inet.Dial(ctx, "tcp", hostAddr+":18089")
	if err == nil {
		// The reset may also come before connect() returns (the proxy
		// accepts, is refused and resets within the handshake's RTT).
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if !errors.Is(err, syscall.ECONNRESET) || time.Since(start) > 3*time.Second {
		t.Errorf("refused container port: read error %v after %v, want connection reset at once", err, time.Since(start))
	}
}

// Ports added and removed on a running endpoint while another port
// carries a transfer: the transfer is not disturbed, the added ports work.
func TestHotAddRemovePorts(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	whoServers(t, c, []int{81}, nil)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", "18080:80")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a 200 MB transfer through 18080 meanwhile
		defer wg.Done()
		netnstest.Transfer(t, w.inet, c, "0.0.0.0:80", 200*mb, hostAddr+":18080")
	}()
	for i := 0; i < 10; i++ {
		port := fmt.Sprint(18100 + i)
		w.d.MustRun("port", "add", "web/c", port+":81")
		if got := askWho(t, w.inet, hostAddr+":"+port); !strings.HasPrefix(got, inetAddr) {
			t.Errorf("hot-added %s answered %q", port, got)
		}
		w.d.MustRun("port", "rm", "web/c", port+":81")
		if _, err := dialErr(w.inet, hostAddr+":"+port, 2*time.Second); err == nil {
			t.Errorf("port %s still answers after port rm", port)
		}
	}
	wg.Wait()
}

// 1,000 published ports from one process, and what they cost.
func TestThousandPublishedPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: binds 2,000 sockets")
	}
	w := newWorld(t)
	c := netnstest.New(t)
	whoServers(t, c, []int{80}, nil)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c")
	before := rssKiB(t, w.d.PID())
	start := time.Now()
	w.d.MustRun("port", "add", "web/c", "21000-21999:80-1079")
	took := time.Since(start)
	after := rssKiB(t, w.d.PID())
	bs := bindings(t, w, "web/c")
	if len(bs) != 2000 { // 0.0.0.0 and [::] for each
		t.Fatalf("%d host sockets bound, want 2000", len(bs))
	}
	// Container port 80 is behind host port 21000.
	if got := askWho(t, w.inet, hostAddr+":21000"); !strings.HasPrefix(got, inetAddr) {
		t.Errorf("port 21000 answered %q", got)
	}
	t.Logf("1,000 ports published in %v; daemon RSS %d KiB → %d KiB (+%.1f KiB per port)",
		took, before, after, float64(after-before)/1000)
	if after-before > 100*1024 {
		t.Errorf("1,000 ports cost %d KiB of RSS, want well under 100 MiB", after-before)
	}
}

// Hairpin: a container reaches published ports through the gateway
// address and through a host address, its own and another container's.
func TestHairpin(t *testing.T) {
	w := newWorld(t)
	a, b := netnstest.New(t), netnstest.New(t)
	whoServers(t, b, []int{80}, nil)
	whoServers(t, a, []int{90}, nil)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", a.Path, "--name", "a", "-p", "18090:90")
	w.d.MustRun("connect", "web", "--netns", b.Path, "--name", "b", "-p", "18080:80")
	for _, addr := range []string{"10.240.0.1:18080", hostAddr + ":18080", "10.240.0.1:18090", hostAddr + ":18090"} {
		if got := askWho(t, a, addr); !strings.HasPrefix(got, "10.240.0.1:") {
			t.Errorf("a → %s: the server saw %q, want the gateway (hairpin masquerade)", addr, got)
		}
	}
	if !strings.Contains(w.d.MustRun("conntrack", "ls"), "dport=18080") {
		t.Error("conntrack ls shows no hairpinned connection")
	}
	if !strings.Contains(w.d.MustRun("nat", "ls", "web"), "--to-destination 10.240.0.3:80") {
		t.Error("nat ls shows no DNAT rule for b's port")
	}
}

// Bad port input: each malformed spec gets its error naming it; a port
// another process holds gets "address already in use" naming the
// address; nothing else changes and the other ports keep working.
func TestBadPortInput(t *testing.T) {
	w := newWorld(t)
	c, c2 := netnstest.New(t), netnstest.New(t)
	whoServers(t, c, []int{80}, nil)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("network", "create", "priv", "--subnet", "10.241.0.0/24", "--internal")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", "18080:80")
	busy, err := w.host.Listen("0.0.0.0:18099") // another process's socket
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before := bindings(t, w, "web/c")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"port", "add", "web/c", "8080:80:90:1"}, `invalid port spec "8080:80:90:1"`},
		{[]string{"port", "add", "web/c", "99999:80"}, `"99999"`},
		{[]string{"port", "add", "web/c", "18000-18010:80-85"}, "invalid ranges specified for container and host Ports"},
		{[]string{"port", "add", "web/c", "80/sctp"}, `invalid proto "sctp"`},
		{[]string{"port", "add", "web/c", "1.2.3:80:80"}, `"1.2.3"`},
		{[]string{"port", "add", "web/c", "18081:80,path=warp"}, `"path=warp"`},
		{[]string{"port", "add", "web/c", "18081:80,path=splice,source=client"}, "source=client"},
		{[]string{"port", "add", "web/c", "18080:80"}, "18080:80"},
		{[]string{"port", "add", "web/c", "18090:81"}, ""}, // fine: checked below
		{[]string{"port", "add", "web/c", "18080:81"}, "0.0.0.0:18080"},
		{[]string{"port", "add", "web/c", "18099:80"}, "0.0.0.0:18099: bind: address already in use"},
		{[]string{"port", "add", "web/nobody", "18091:80"}, `"nobody"`},
		{[]string{"port", "rm", "web/c", "18092:80"}, "18092:80"},
		{[]string{"port", "add", "webc", "18091:80"}, `"webc"`},
		{[]string{"connect", "priv", "--netns", c2.Path, "-p", "18093:80"}, "internal"},
		{[]string{"connect", "web", "--netns", c2.Path, "-p", "18099:80"}, "address already in use"},
	} {
		r := w.d.Run(tc.args...)
		if tc.want == "" {
			if r.Code != 0 {
				t.Errorf("%v", r)
			}
			w.d.MustRun("port", "rm", "web/c", "18090:81")
			continue
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code == 0 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("want a non-zero exit and one line containing %q; got %s", tc.want, r)
		}
	}
	after := bindings(t, w, "web/c")
	if len(after) != len(before) {
		t.Errorf("bindings changed: %d → %d", len(before), len(after))
	}
	if got := askWho(t, w.inet, hostAddr+":18080"); !strings.HasPrefix(got, inetAddr) {
		t.Errorf("18080 broken after bad input: %q", got)
	}
	// The refused connect left nothing behind in c2.
	if out, err := c2.Run("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("a refused connect left eth0 in c2:\n%s", out)
	}
}

// Published ports come back after kill -9, on the same host ports,
// ephemeral ones included.
func TestPortsSurviveRestart(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	whoServers(t, c, []int{80}, nil)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", "18080:80", "-p", "80")
	before := w.d.MustRun("port", "ls", "web/c")
	w.d.Kill9()
	w.d.Start()
	if after := w.d.MustRun("port", "ls", "web/c"); after != before {
		t.Fatalf("ports after restart:\n%s\nbefore:\n%s", after, before)
	}
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		addr := line[strings.LastIndex(line, " ")+1:]
		if strings.HasPrefix(addr, "[::]") {
			continue
		}
		port := addr[strings.LastIndex(addr, ":")+1:]
		if got := askWho(t, w.inet, hostAddr+":"+port); !strings.HasPrefix(got, inetAddr) {
			t.Errorf("after restart %s answered %q", port, got)
		}
	}
}

// A reset crosses a published port on the default (netstack) path both
// ways: the container's read fails with ECONNRESET when the client resets,
// and the client's when the container resets, as behind docker-proxy's
// kernel sockets, rather than either seeing a clean end of stream.
func TestResetsCrossPublishedPort(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	l, err := c.Listen("0.0.0.0:84")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ends := make(chan error, 1)
	go func() {
		s, err := l.Accept()
		if err != nil {
			ends <- err
			return
		}
		defer s.Close()
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(s, make([]byte, 5)); err != nil {
			ends <- fmt.Errorf("reading the greeting: %w", err)
			return
		}
		_, err = s.Read(make([]byte, 1))
		ends <- err
	}()
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", "127.0.0.1:18084:84")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := w.host.Dial(ctx, "tcp", "127.0.0.1:18084") // the daemon's host namespace
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "hello") // the reset may overtake it: either read must see the reset
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
	select {
	case err := <-ends:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the container read %v after the client's reset, want ECONNRESET", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the container saw nothing of the client's reset")
	}

	// The other way: the container resets after the greeting.
	go func() {
		s, err := l.Accept()
		if err != nil {
			return
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadFull(s, make([]byte, 5))
		s.(*net.TCPConn).SetLinger(0)
		s.Close()
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	conn, err = w.host.Dial(ctx2, "tcp", "127.0.0.1:18084")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "hello")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client read %v after the container's reset, want ECONNRESET", err)
	}
}

// Ports on ephemeral host ports (IP::PORT and a bare container port) can
// still be removed by the spec they were published with after a restart:
// port rm then closes their listeners.
func TestEphemeralPortsRemovableAfterRestart(t *testing.T) {
	w := newWorld(t)
	c := netnstest.New(t)
	whoServers(t, c, []int{80, 81}, nil)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", hostAddr+"::80", "-p", "81")
	before := w.d.MustRun("port", "ls", "web/c")
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		if addr := line[strings.LastIndex(line, " ")+1:]; !strings.HasPrefix(addr, "[::]") {
			addrs = append(addrs, strings.Replace(addr, "0.0.0.0", hostAddr, 1))
		}
	}
	if len(addrs) != 2 {
		t.Fatalf("port ls before the restart:\n%s", before)
	}
	w.d.Kill9()
	w.d.Start()
	w.d.MustRun("port", "rm", "web/c", hostAddr+"::80")
	w.d.MustRun("port", "rm", "web/c", "81")
	if after := strings.TrimSpace(w.d.MustRun("port", "ls", "web/c")); after != "" {
		t.Errorf("port ls after removing both:\n%s", after)
	}
	for _, a := range addrs {
		if _, err := dialErr(w.inet, a, 5*time.Second); err == nil {
			t.Errorf("%s still answers after port rm", a)
		}
	}
}
