package proxy_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/switchyard-net/switchyard/proxy"
	"github.com/switchyard-net/switchyard/proxy/proxytest"
)

// fakeContainer starts, for each of ports, a TCP and a UDP server on the
// loopback that greet as "ctrPORT", and returns a loopback dialer that
// sends ctrIP:PORT to them.
func fakeContainer(t testing.TB, ports ...uint16) *proxytest.Loopback {
	t.Helper()
	tcp := map[uint16]netip.AddrPort{}
	udp := map[uint16]netip.AddrPort{}
	for _, p := range ports {
		name := "ctr" + strconv.Itoa(int(p))
		tcp[p] = serveTCP(t, "tcp4", "127.0.0.1:0", greeter(name))
		udp[p] = serveUDP(t, "udp4", "127.0.0.1:0", udpGreeter(name))
	}
	return &proxytest.Loopback{Redirect: redirect(tcp, udp)}
}

// occupy holds addr with a socket of this process, standing for another
// process's, until the test ends.
func occupy(t testing.TB, proto proxy.Proto, addr string) {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	fam := "4"
	if ap.Addr().Is6() {
		fam = "6"
	}
	if proto == proxy.TCP {
		l, err := net.ListenTCP("tcp"+fam, net.TCPAddrFromAddrPort(ap))
		if err != nil {
			t.Fatalf("occupy %s: %v", addr, err)
		}
		t.Cleanup(func() { l.Close() })
		return
	}
	c, err := net.ListenUDP("udp"+fam, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		t.Fatalf("occupy %s/udp: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
}

// formWant is one listener TestPublishForms expects.
type formWant struct {
	ip   string
	port uint16 // 0: any port of the ephemeral range
	ctr  uint16
}

// formCase is one -p form of TestPublishForms, without its protocol.
type formCase struct {
	spec   string
	occupy string // an address held by "another process" first
	want   []formWant
}

// TestPublishForms publishes every -p form, TCP and UDP, and talks to a
// real server through each listener with the loopback dialer: the
// listeners are the ones Docker would bind, each reaches the right
// container port, the dialer gets the client's address, and Unpublish lets
// go of the host port.
func TestPublishForms(t *testing.T) {
	leakCheck(t)
	eph, err := proxy.EphemeralRange()
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, proxy.Config{}) // the kernel's ephemeral range
	d := fakeContainer(t, 80, 81, 82)

	tests := []formCase{
		{spec: "80", want: []formWant{{"0.0.0.0", 0, 80}, {"::", 0, 80}}},
		{spec: "21080:80", want: []formWant{{"0.0.0.0", 21080, 80}, {"::", 21080, 80}}},
		{spec: "127.0.0.1:21081:80", want: []formWant{{"127.0.0.1", 21081, 80}}},
		{spec: "127.0.0.1::80", want: []formWant{{"127.0.0.1", 0, 80}}},
		{spec: "[::1]:21082:80", want: []formWant{{"::1", 21082, 80}}},
		{spec: "[::]::80", want: []formWant{{"::", 0, 80}}},
		{spec: "21000-21002:80-82", want: []formWant{
			{"0.0.0.0", 21000, 80}, {"::", 21000, 80},
			{"0.0.0.0", 21001, 81}, {"::", 21001, 81},
			{"0.0.0.0", 21002, 82}, {"::", 21002, 82},
		}},
		{spec: "21010-21020:80", occupy: "127.0.0.1:21010", want: []formWant{{"0.0.0.0", 21011, 80}, {"::", 21011, 80}}},
	}
	for _, proto := range []proxy.Proto{proxy.TCP, proxy.UDP} {
		for _, tt := range tests {
			spec := tt.spec + "/" + proto.String()
			t.Run(spec, func(t *testing.T) { testPublishForm(t, m, d, eph, proto, tt) })
		}
	}
}

// testPublishForm publishes tt for proto, checks every listener, and
// unpublishes it.
func testPublishForm(t *testing.T, m *proxy.Manager, d *proxytest.Loopback, eph proxy.PortRange, proto proxy.Proto, tt formCase) {
	spec := tt.spec + "/" + proto.String()
	if tt.occupy != "" {
		occupy(t, proto, tt.occupy)
	}
	mps, err := proxy.ParsePublish(spec)
	if err != nil {
		t.Fatal(err)
	}
	var got []proxy.Published
	for _, mp := range mps {
		pubs, err := m.Publish("web/a", mp, ctrIP, d, proxy.Options{})
		if err != nil {
			t.Fatalf("Publish(%s): %v", mp, err)
		}
		got = append(got, pubs...)
	}
	if len(got) != len(tt.want) {
		t.Fatalf("Publish(%s) bound %v, want %d listeners %v", spec, got, len(tt.want), tt.want)
	}
	for i, w := range tt.want {
		checkListener(t, got, i, w, proto, eph)
		checkRoundTrip(t, d, got[i])
	}
	if strings.HasPrefix(tt.spec, "[::]") && proto == proxy.TCP {
		// An explicit [::] is IPv6 only, as in Docker.
		v4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), got[0].HostPort)
		if c, err := net.DialTimeout("tcp", v4.String(), ioTimeout); err == nil {
			c.Close()
			t.Errorf("%s also answers on %s, want IPv6 only", spec, v4)
		}
	}

	for _, mp := range mps {
		if err := m.Unpublish("web/a", mp); err != nil {
			t.Errorf("Unpublish(%s): %v", mp, err)
		}
	}
	if l := m.List("web/a"); len(l) != 0 {
		t.Errorf("after Unpublish, List = %v, want nothing", l)
	}
	for _, p := range got {
		if err := canBind(proto, p.HostAddr()); err != nil {
			t.Errorf("after Unpublish, %s/%s is still held: %v", p.HostAddr(), proto, err)
		}
	}
}

// checkListener checks got[i] against w: address, ports (the same for
// both families of one container port) and its `docker port` line.
func checkListener(t *testing.T, got []proxy.Published, i int, w formWant, proto proxy.Proto, eph proxy.PortRange) {
	t.Helper()
	p := got[i]
	if p.HostIP != netip.MustParseAddr(w.ip) || p.ContainerPort != w.ctr || p.Proto != proto ||
		p.Owner != "web/a" || p.Target != ctrIP {
		t.Errorf("listener %d = %+v, want %s:%d -> %d/%s", i, p, w.ip, w.port, w.ctr, proto)
	}
	switch {
	case w.port != 0 && p.HostPort != w.port:
		t.Errorf("listener %d on port %d, want %d", i, p.HostPort, w.port)
	case w.port == 0 && (p.HostPort < eph.Start || p.HostPort > eph.End):
		t.Errorf("listener %d on port %d, want one in the ephemeral range %s", i, p.HostPort, eph)
	}
	if i > 0 && got[i-1].ContainerPort == p.ContainerPort && got[i-1].HostPort != p.HostPort {
		t.Errorf("the two families of %d got ports %d and %d, want the same", p.ContainerPort, got[i-1].HostPort, p.HostPort)
	}
	wantLine := fmt.Sprintf("%d/%s -> %s", w.ctr, proto, p.HostAddr())
	if p.String() != wantLine {
		t.Errorf("docker port line %q, want %q", p.String(), wantLine)
	}
}

// checkRoundTrip talks to p's container port through p and checks the
// dialer's record of it.
func checkRoundTrip(t *testing.T, d *proxytest.Loopback, p proxy.Published) {
	t.Helper()
	to := clientAddr(p)
	wantReply := fmt.Sprintf("ctr%d: hi", p.ContainerPort)
	var client netip.AddrPort
	var network string
	if p.Proto == proxy.TCP {
		network = "tcp"
		var reply string
		reply, client = tcpHello(t, to, netip.Addr{})
		if reply != wantReply {
			t.Errorf("via %s: reply %q, want %q", to, reply, wantReply)
		}
	} else {
		network = "udp"
		c := udpClient(t, to.Addr())
		reply, from := udpAsk(t, c, to, "hi")
		if reply != wantReply || from != to {
			t.Errorf("via %s: reply %q from %s, want %q from %s", to, reply, from, wantReply, to)
		}
		client = localUDP(c)
	}
	call := lastCall(t, d, network)
	if call.Src != client || call.Dst != p.TargetAddr() || call.Err != nil {
		t.Errorf("via %s: dialer got src %s dst %s (err %v), want src %s (the client) dst %s",
			to, call.Src, call.Dst, call.Err, client, p.TargetAddr())
	}
}

// TestPublishRangeTakesFirstFree: a host range with one container port
// takes its first port that neither this Manager nor anyone else holds,
// and says which ports it searched when none is left.
func TestPublishRangeTakesFirstFree(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80)
	occupy(t, proxy.TCP, fmt.Sprintf("127.0.0.1:%d", portRange+1)) // another process
	mp := mapping(t, fmt.Sprintf("127.0.0.1:%d-%d:80", portRange, portRange+3))

	var ports []uint16
	for i := range 3 {
		pubs, err := m.Publish("web/"+strconv.Itoa(i), mp, ctrIP, d, proxy.Options{})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		ports = append(ports, pubs[0].HostPort)
	}
	want := []uint16{portRange, portRange + 2, portRange + 3}
	if fmt.Sprint(ports) != fmt.Sprint(want) {
		t.Errorf("three publications of %s took ports %v, want %v", mp, ports, want)
	}
	_, err := m.Publish("web/x", mp, ctrIP, d, proxy.Options{})
	wantMsg := fmt.Sprintf("Bind for 127.0.0.1:%d-%d failed: all ports are allocated", portRange, portRange+3)
	if !errors.Is(err, proxy.ErrAllocated) || err.Error() != wantMsg {
		t.Errorf("fourth publication: %v, want %q wrapping ErrAllocated", err, wantMsg)
	}
	// Unpublishing the middle one frees its port for the next.
	if err := m.Unpublish("web/1", mp); err != nil {
		t.Fatal(err)
	}
	pubs, err := m.Publish("web/y", mp, ctrIP, d, proxy.Options{})
	if err != nil || pubs[0].HostPort != portRange+2 {
		t.Fatalf("after freeing %d: %v, %v; want that port", portRange+2, pubs, err)
	}
	checkRoundTrip(t, d, pubs[0])
}

// TestEphemeralPortsRotate: ephemeral ports come from Config.EphemeralRange
// in turn, so a port just released is not handed out again at once (as
// Docker's allocator does), and an exhausted range says which range.
func TestEphemeralPortsRotate(t *testing.T) {
	leakCheck(t)
	r := proxy.PortRange{Start: portLifetime, End: portLifetime + 2}
	m := newManager(t, proxy.Config{EphemeralRange: r})
	d := fakeContainer(t, 80)
	mp := mapping(t, "127.0.0.1::80")
	var ports []uint16
	for i := range 4 {
		pubs, err := m.Publish("web/a", mp, ctrIP, d, proxy.Options{})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		ports = append(ports, pubs[0].HostPort)
		checkRoundTrip(t, d, pubs[0])
		if err := m.Unpublish("web/a", mp); err != nil {
			t.Fatal(err)
		}
	}
	want := []uint16{r.Start, r.Start + 1, r.Start + 2, r.Start}
	if fmt.Sprint(ports) != fmt.Sprint(want) {
		t.Errorf("publish, unpublish, four times: ports %v, want %v", ports, want)
	}
	for range r.Len() {
		if _, err := m.Publish("web/a", mp, ctrIP, d, proxy.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Publish("web/a", mp, ctrIP, d, proxy.Options{})
	want2 := fmt.Sprintf("Bind for 127.0.0.1 failed: all ports are allocated (ephemeral range %s, net.ipv4.ip_local_port_range)", r)
	if !errors.Is(err, proxy.ErrAllocated) || err.Error() != want2 {
		t.Errorf("a full ephemeral range: %v, want %q", err, want2)
	}
}

// TestPortAlreadyAllocated: a host port this Manager has published is
// refused for an overlapping address, with Docker's message naming the
// address, and nothing else changes.
func TestPortAlreadyAllocated(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80, 81)
	p := portErrors
	first, err := m.Publish("web/a", mapping(t, fmt.Sprintf("%d:80", p)), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct{ spec, addr string }{
		{fmt.Sprintf("%d:81", p), fmt.Sprintf("0.0.0.0:%d", p)},
		{fmt.Sprintf("127.0.0.1:%d:81", p), fmt.Sprintf("127.0.0.1:%d", p)},
		{fmt.Sprintf("[::1]:%d:81", p), fmt.Sprintf("[::1]:%d", p)},
		{fmt.Sprintf("[::]:%d:81", p), fmt.Sprintf("[::]:%d", p)},
	}
	for _, r := range refused {
		pubs, err := m.Publish("web/b", mapping(t, r.spec), ctrIP, d, proxy.Options{})
		want := "Bind for " + r.addr + " failed: port is already allocated"
		if !errors.Is(err, proxy.ErrAllocated) || err.Error() != want {
			t.Errorf("Publish(%s) = %v, %v; want %q wrapping ErrAllocated", r.spec, pubs, err, want)
		}
	}
	// Another protocol, or another address where the first is specific,
	// does not conflict.
	if _, err := m.Publish("web/b", mapping(t, fmt.Sprintf("%d:81/udp", p)), ctrIP, d, proxy.Options{}); err != nil {
		t.Errorf("the same port over UDP: %v", err)
	}
	if _, err := m.Publish("web/b", mapping(t, fmt.Sprintf("127.0.0.1:%d:81", p+1)), ctrIP, d, proxy.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish("web/c", mapping(t, fmt.Sprintf("127.0.0.2:%d:81", p+1)), ctrIP, d, proxy.Options{}); err != nil {
		t.Errorf("127.0.0.2 next to 127.0.0.1 on one port: %v", err)
	}

	if got := m.List("web/a"); len(got) != 2 {
		t.Errorf("web/a has %v, want its two listeners", got)
	}
	for _, pub := range first {
		checkRoundTrip(t, d, pub)
	}
}

// TestAddressInUse: a host port held by another socket is refused with the
// kernel's message naming the address; a wildcard mapping whose IPv6 half
// fails leaves its IPv4 half unbound; other bindings keep working.
func TestAddressInUse(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80)
	p := portErrors + 10
	keep, err := m.Publish("web/keep", mapping(t, fmt.Sprintf("127.0.0.1:%d:80", p)), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keepUDP, err := m.Publish("web/keep", mapping(t, fmt.Sprintf("127.0.0.1:%d:80/udp", p)), ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}

	occupy(t, proxy.TCP, fmt.Sprintf("127.0.0.1:%d", p+1))
	occupy(t, proxy.TCP, fmt.Sprintf("[::]:%d", p+2))
	occupy(t, proxy.UDP, fmt.Sprintf("127.0.0.1:%d", p+3))
	tests := []struct{ spec, want string }{
		{fmt.Sprintf("127.0.0.1:%d:80", p+1), fmt.Sprintf("listen tcp4 127.0.0.1:%d: bind: address already in use", p+1)},
		{fmt.Sprintf("%d:80", p+1), fmt.Sprintf("listen tcp4 0.0.0.0:%d: bind: address already in use", p+1)},
		{fmt.Sprintf("%d:80", p+2), fmt.Sprintf("listen tcp6 [::]:%d: bind: address already in use", p+2)},
		{fmt.Sprintf("127.0.0.1:%d:80/udp", p+3), fmt.Sprintf("listen udp4 127.0.0.1:%d: bind: address already in use", p+3)},
	}
	for _, tt := range tests {
		pubs, err := m.Publish("web/b", mapping(t, tt.spec), ctrIP, d, proxy.Options{})
		if !errors.Is(err, proxy.ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) || err.Error() != tt.want {
			t.Errorf("Publish(%s) = %v, %v; want %q wrapping ErrAddrInUse and EADDRINUSE", tt.spec, pubs, err, tt.want)
		}
	}
	// The IPv4 half of the failed wildcard mapping was let go.
	if err := canBind(proxy.TCP, netip.MustParseAddrPort(fmt.Sprintf("0.0.0.0:%d", p+2))); err != nil {
		t.Errorf("a failed Publish left 0.0.0.0:%d bound: %v", p+2, err)
	}
	if got := m.List("web/b"); len(got) != 0 {
		t.Errorf("failed publications left %v", got)
	}
	if got := len(m.Stats().Bindings); got != 2 {
		t.Errorf("%d bindings after the failures, want the 2 from before", got)
	}
	checkRoundTrip(t, d, keep[0])
	checkRoundTrip(t, d, keepUDP[0])
}

// TestPrivilegedPort binds a port below net.ipv4.ip_unprivileged_port_start
// without CAP_NET_BIND_SERVICE and expects ErrPrivileged naming the sysctl.
// A process that has the capability (root) re-runs the test through
// setpriv with it dropped from the bounding and inheritable sets.
func TestPrivilegedPort(t *testing.T) {
	start, err := proxy.UnprivilegedPortStart()
	if err != nil {
		t.Fatal(err)
	}
	if start == 0 {
		t.Skip("skipping: every port is unprivileged here (net.ipv4.ip_unprivileged_port_start = 0)")
	}
	if hasCap(t, capNetBindService) {
		if os.Getenv("PROXY_TEST_NO_BIND_CAP") != "" {
			t.Skip("skipping: setpriv left CAP_NET_BIND_SERVICE in place")
		}
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skipf("skipping: the process has CAP_NET_BIND_SERVICE and util-linux's setpriv, needed to drop it, is missing: %v", err)
		}
		cmd := exec.Command(setpriv, "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service", "--",
			os.Args[0], "-test.run=^TestPrivilegedPort$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "PROXY_TEST_NO_BIND_CAP=1")
		out, err := cmd.CombinedOutput()
		switch {
		case !strings.Contains(string(out), "=== RUN   TestPrivilegedPort"):
			t.Skipf("skipping: setpriv could not drop CAP_NET_BIND_SERVICE here (it needs CAP_SETPCAP): %v: %s", err, out)
		case strings.Contains(string(out), "--- SKIP: TestPrivilegedPort"):
			t.Skipf("skipping: %s", out)
		case err != nil || !strings.Contains(string(out), "--- PASS: TestPrivilegedPort"):
			t.Fatalf("without CAP_NET_BIND_SERVICE: %v\n%s", err, out)
		}
		t.Logf("without CAP_NET_BIND_SERVICE:\n%s", out)
		return
	}

	leakCheck(t)
	m := newManager(t, proxy.Config{})
	port := start - 1
	spec := fmt.Sprintf("127.0.0.1:%d:80", port)
	_, err = m.Publish("web/a", mapping(t, spec), ctrIP, &proxytest.Loopback{}, proxy.Options{})
	want := fmt.Sprintf("listen tcp4 127.0.0.1:%d: bind: permission denied: port %d is below net.ipv4.ip_unprivileged_port_start (%d)", port, port, start)
	if !errors.Is(err, proxy.ErrPrivileged) || !errors.Is(err, syscall.EACCES) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Publish(%s): %v; want an error starting %q wrapping ErrPrivileged and EACCES", spec, err, want)
	}
	t.Logf("Publish(%s): %v", spec, err)
}

const capNetBindService = 10 // linux/capability.h

// hasCap reports whether the process has capability bit in its effective set.
func hasCap(t testing.TB, bit uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", v, err)
			}
			return caps&(1<<bit) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// TestPublishRejects checks the arguments Publish refuses before binding.
func TestPublishRejects(t *testing.T) {
	m := newManager(t, proxy.Config{})
	d := &proxytest.Loopback{}
	good := mapping(t, "127.0.0.1::80")
	tests := []struct {
		name   string
		owner  string
		mp     proxy.Mapping
		target netip.Addr
		d      proxy.Dialer
		want   string
	}{
		{"empty owner", "", good, ctrIP, d, "empty owner"},
		{"nil dialer", "web/a", good, ctrIP, nil, "nil Dialer"},
		{"no target", "web/a", good, netip.Addr{}, d, "invalid target"},
		{"container port 0", "web/a", proxy.Mapping{}, ctrIP, d, "container port 0"},
		{"reversed range", "web/a", proxy.Mapping{HostPort: proxy.PortRange{Start: 9, End: 8}, ContainerPort: 80}, ctrIP, d, "invalid host port range 9-8"},
		{"sctp", "web/a", proxy.Mapping{ContainerPort: 80, Proto: 7}, ctrIP, d, "invalid protocol"},
	}
	for _, tt := range tests {
		if _, err := m.Publish(tt.owner, tt.mp, tt.target, tt.d, proxy.Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if len(m.List("")) != 0 {
		t.Errorf("rejected publications bound %v", m.List(""))
	}
}

// TestUnpublishAndList: Unpublish takes the spec as given or with the port
// that was bound, UnpublishAll takes an owner's all, and List prints
// Docker's `docker port` lines in order.
func TestUnpublishAndList(t *testing.T) {
	leakCheck(t)
	m := newManager(t, proxy.Config{})
	d := fakeContainer(t, 80, 53)
	eph := mapping(t, "127.0.0.1::80")
	pubs, err := m.Publish("web/a", eph, ctrIP, d, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fixed := mapping(t, fmt.Sprintf("%d:53/udp", portUnpub))
	if _, err := m.Publish("web/a", fixed, ctrIP, d, proxy.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish("web/b", mapping(t, fmt.Sprintf("127.0.0.1:%d:80", portUnpub)), ctrIP, d, proxy.Options{}); err != nil {
		t.Fatal(err)
	}

	var lines []string
	for _, p := range m.List("web/a") {
		lines = append(lines, p.String())
	}
	want := []string{
		fmt.Sprintf("53/udp -> 0.0.0.0:%d", portUnpub),
		fmt.Sprintf("53/udp -> [::]:%d", portUnpub),
		fmt.Sprintf("80/tcp -> 127.0.0.1:%d", pubs[0].HostPort),
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("List(web/a):\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if n := len(m.List("")); n != 4 {
		t.Errorf("List(\"\") has %d entries, want 4", n)
	}

	// By the port that was bound.
	bound := eph
	bound.HostPort = proxy.PortRange{Start: pubs[0].HostPort, End: pubs[0].HostPort}
	if err := m.Unpublish("web/a", bound); err != nil {
		t.Errorf("Unpublish(%s), the bound form of %s: %v", bound, eph, err)
	}
	if err := m.Unpublish("web/a", eph); !errors.Is(err, proxy.ErrNotPublished) {
		t.Errorf("second Unpublish(%s): %v, want ErrNotPublished", eph, err)
	}
	// Another owner's mapping is not this owner's to remove.
	if err := m.Unpublish("web/a", mapping(t, fmt.Sprintf("127.0.0.1:%d:80", portUnpub))); !errors.Is(err, proxy.ErrNotPublished) {
		t.Errorf("Unpublish of web/b's mapping by web/a: %v, want ErrNotPublished", err)
	}
	m.UnpublishAll("web/a")
	if got := m.List("web/a"); len(got) != 0 {
		t.Errorf("after UnpublishAll, web/a has %v", got)
	}
	if got := m.List("web/b"); len(got) != 1 {
		t.Errorf("web/b has %v, want its one listener untouched", got)
	}
}
