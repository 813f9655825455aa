package gateway_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/gateway"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/testing/porttest"
	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// fakeICMP is an in-memory double of the host's ICMP sockets
// (EgressConfig.ListenICMP): nothing leaves the process. Ping sockets
// answer each echo request with a reply, as a reachable destination
// would; a destination in noRoute fails the send as a host without a
// route does; raw sockets (when ping sockets are refused) answer
// requests to unreachable with a destination unreachable from router,
// quoting the request as the host sent it.
type fakeICMP struct {
	noPingSockets bool
	noRoute       map[netip.Addr]bool
	unreachable   map[netip.Addr]bool
	router        netip.Addr

	mu   sync.Mutex
	sent []netip.Addr // destinations of every request
}

func (f *fakeICMP) listen(network, _ string) (net.PacketConn, error) {
	raw := network == "ip4:icmp" || network == "ip6:ipv6-icmp"
	if !raw && f.noPingSockets {
		return nil, os.NewSyscallError("socket", syscall.EACCES)
	}
	return &fakeConn{f: f, raw: raw, v6: network == "udp6" || network == "ip6:ipv6-icmp", in: make(chan fakeMsg, 64), done: make(chan struct{})}, nil
}

func (f *fakeICMP) destinations() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.Addr(nil), f.sent...)
}

type fakeMsg struct {
	b    []byte
	from net.Addr
}

type fakeConn struct {
	f       *fakeICMP
	raw, v6 bool
	in      chan fakeMsg
	done    chan struct{}
	once    sync.Once
	id      uint16 // ping sockets: the identifier the "kernel" gives
}

var fakeIDs atomic.Uint32

func (c *fakeConn) WriteTo(b []byte, to net.Addr) (int, error) {
	var dst netip.Addr
	if c.raw {
		dst, _ = netip.AddrFromSlice(to.(*net.IPAddr).IP)
	} else {
		dst, _ = netip.AddrFromSlice(to.(*net.UDPAddr).IP)
	}
	dst = dst.Unmap()
	c.f.mu.Lock()
	c.f.sent = append(c.f.sent, dst)
	c.f.mu.Unlock()
	if c.f.noRoute[dst] {
		return 0, &net.OpError{Op: "write", Net: "ip", Err: os.NewSyscallError("sendto", syscall.ENETUNREACH)}
	}
	req := append([]byte(nil), b...)
	if !c.raw {
		if c.id == 0 {
			c.id = uint16(fakeIDs.Add(1)) + 4000
		}
		binary.BigEndian.PutUint16(req[4:6], c.id)
	}
	var m fakeMsg
	switch {
	case c.raw && c.f.unreachable[dst]:
		// Destination unreachable (address unreachable) from the router,
		// quoting the request as the host sent it.
		typ, code := byte(1), byte(3)
		var quote []byte
		if c.v6 {
			quote = make([]byte, header.IPv6MinimumSize+len(req))
			header.IPv6(quote).Encode(&header.IPv6Fields{PayloadLength: uint16(len(req)), TransportProtocol: 58, HopLimit: 64,
				SrcAddr: tcpip.AddrFrom16(netip.MustParseAddr("fd00:99::1").As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
			copy(quote[header.IPv6MinimumSize:], req)
		} else {
			typ, code = 3, 1
			quote = make([]byte, header.IPv4MinimumSize+len(req))
			header.IPv4(quote).Encode(&header.IPv4Fields{TotalLength: uint16(len(quote)), TTL: 64, Protocol: 1,
				SrcAddr: tcpip.AddrFrom4([4]byte{192, 0, 2, 1}), DstAddr: tcpip.AddrFrom4(dst.As4())})
		}
		msg := append([]byte{typ, code, 0, 0, 0, 0, 0, 0}, quote...)
		m = fakeMsg{msg, &net.IPAddr{IP: c.f.router.AsSlice()}}
	default:
		if c.v6 {
			req[0] = 129
		} else {
			req[0] = 0
		}
		if c.raw {
			m = fakeMsg{req, &net.IPAddr{IP: dst.AsSlice()}}
		} else {
			m = fakeMsg{req, &net.UDPAddr{IP: dst.AsSlice()}}
		}
	}
	select {
	case c.in <- m:
	default:
	}
	return len(b), nil
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case m := <-c.in:
		return copy(b, m.b), m.from, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeConn) Close() error                     { c.once.Do(func() { close(c.done) }); return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.IPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// newDual6 makes a dual-stack gateway (10.240.0.0/24, fd00:1::/64) whose
// pings leave through icmp, and an IPv6 host fd00:1::2 on it.
func newDual6(t *testing.T, cfg gateway.Config, icmp *fakeICMP) (*vswitch.Switch, *gateway.Gateway, *vnettest.Host) {
	t.Helper()
	log := zaptest.NewLogger(t)
	sw := vswitch.New(vswitch.Config{Name: "dual", Logger: log})
	t.Cleanup(func() { sw.Close() })
	cfg.Network, cfg.Logger = "dual", log
	cfg.Subnet, cfg.Addr = netip.MustParsePrefix("10.240.0.0/24"), netip.MustParseAddr("10.240.0.1")
	cfg.Subnet6, cfg.Addr6 = netip.MustParsePrefix("fd00:1::/64"), netip.MustParseAddr("fd00:1::1")
	cfg.MAC = vswitch.MAC{0x02, 0x42, 10, 240, 0, 1}
	if icmp != nil {
		cfg.Egress.ListenICMP = icmp.listen
	}
	gw, err := gateway.New(sw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	h, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: "c6", Addr: netip.MustParsePrefix("fd00:1::2/64"), Gateway: netip.MustParseAddr("fd00:1::1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return sw, gw, h
}

func pingWithin(h *vnettest.Host, dst string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := h.Ping(ctx, netip.MustParseAddr(dst))
	return err
}

// A ping -6 to an outside address leaves through the host's ICMPv6 socket
// and the destination's reply comes back, in both socket modes; a ping to
// the gateway itself stays in the netstack.
func TestPing6LeavesThroughHost(t *testing.T) {
	for _, mode := range []string{"ping socket", "raw socket"} {
		t.Run(mode, func(t *testing.T) {
			icmp := &fakeICMP{noPingSockets: mode == "raw socket"}
			_, gw, h := newDual6(t, gateway.Config{}, icmp)
			if err := pingWithin(h, "fd00:1::1", 5*time.Second); err != nil {
				t.Fatalf("ping the gateway: %v", err)
			}
			if d := icmp.destinations(); len(d) != 0 {
				t.Fatalf("a ping to the gateway left through the host to %v", d)
			}
			if err := pingWithin(h, "2001:db8::5", 5*time.Second); err != nil {
				t.Fatalf("ping an outside address: %v", err)
			}
			if d := icmp.destinations(); len(d) != 1 || d[0] != netip.MustParseAddr("2001:db8::5") {
				t.Fatalf("host sent requests to %v, want one to 2001:db8::5", d)
			}
			if st := gw.Stats(); st.ICMPEchoes != 1 || st.ICMPReplies != 1 {
				t.Errorf("echo counters %d/%d, want 1/1", st.ICMPEchoes, st.ICMPReplies)
			}
		})
	}
}

// The gateway never answers a ping -6 for an address it does not own: not
// on an internal network, not with ping egress off, not when no ICMPv6
// socket may be opened. The request is dropped and counted.
func TestPing6NotAnsweredByGateway(t *testing.T) {
	for name, c := range map[string]struct {
		cfg  gateway.Config
		icmp *fakeICMP
	}{
		"internal": {gateway.Config{Internal: true}, &fakeICMP{}},
		"noping":   {gateway.Config{Egress: gateway.EgressConfig{NoPing: true}}, &fakeICMP{}},
		"refused":  {gateway.Config{Refuse: func(netip.AddrPort) bool { return true }}, &fakeICMP{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, gw, h := newDual6(t, c.cfg, c.icmp)
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _, err := h.Ping(ctx, netip.MustParseAddr("2001:db8::5")); done <- err }()
			waitFor(t, "the request dropped", func() bool { return gw.Stats().ICMPDropped >= 1 })
			// The gateway's own reply to a later ping comes after any it
			// would have sent for the first.
			if err := pingWithin(h, "fd00:1::1", 5*time.Second); err != nil {
				t.Fatalf("ping the gateway: %v", err)
			}
			cancel()
			if err := <-done; !errors.Is(err, vnettest.ErrPingTimeout) {
				t.Fatalf("ping 2001:db8::5 ended with %v, want no answer", err)
			}
			if d := c.icmp.destinations(); len(d) != 0 {
				t.Errorf("requests left through the host to %v", d)
			}
		})
	}
}

// echo6Frame is an ICMPv6 echo request frame from src (MAC, address) to
// dst through the gateway.
func echo6Frame(srcMAC, gwMAC vswitch.MAC, src, dst netip.Addr, id, seq uint16) []byte {
	const n = 8 + 16
	b := make([]byte, 14+header.IPv6MinimumSize+n)
	copy(b[0:6], gwMAC[:])
	copy(b[6:12], srcMAC[:])
	b[12], b[13] = 0x86, 0xdd
	ip := header.IPv6(b[14:])
	s, d := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	ip.Encode(&header.IPv6Fields{PayloadLength: n, TransportProtocol: 58, HopLimit: 64, SrcAddr: s, DstAddr: d})
	m := ip.Payload()
	m[0] = 128
	binary.BigEndian.PutUint16(m[4:6], id)
	binary.BigEndian.PutUint16(m[6:8], seq)
	copy(m[8:], "switchyard ping6!")
	binary.BigEndian.PutUint16(m[2:4], ^checksum.Checksum(m, header.PseudoHeaderChecksum(58, s, d, n)))
	return b
}

// icmp6Errors returns the ICMPv6 errors among frames, checked.
func icmp6Errors(t *testing.T, frames []vswitch.Frame) []header.IPv6 {
	t.Helper()
	var out []header.IPv6
	for _, f := range frames {
		b := f.Data
		if len(b) < 14+header.IPv6MinimumSize+8 || b[12] != 0x86 || b[13] != 0xdd {
			continue
		}
		ip := header.IPv6(b[14:])
		if ip.NextHeader() != 58 || ip.Payload()[0] >= 128 {
			continue
		}
		m := header.ICMPv6(ip.Payload())
		if checksum.Checksum(m, header.PseudoHeaderChecksum(58, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(m)))) != 0xffff {
			t.Errorf("ICMPv6 error with a bad checksum")
		}
		out = append(out, ip)
	}
	return out
}

// A host without a route for the destination answers a ping -6 with a
// destination unreachable (no route) from the gateway at once, quoting the
// request; past UnreachablesPerSecond, errors are counted and not sent.
func TestPing6NoRouteIsUnreachableAndLimited(t *testing.T) {
	icmp := &fakeICMP{noRoute: map[netip.Addr]bool{netip.MustParseAddr("2001:db8::99"): true}}
	sw, gw, _ := newDual6(t, gateway.Config{}, icmp)
	c := porttest.New("c", 1500)
	if _, err := sw.Attach(c, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	cMAC, src, dst := vswitch.MAC{2, 0x42, 0, 0, 0, 9}, netip.MustParseAddr("fd00:1::9"), netip.MustParseAddr("2001:db8::99")
	c.Inject(echo6Frame(cMAC, gw.MAC(), src, dst, 77, 1))
	var errs []header.IPv6
	waitFor(t, "a destination unreachable", func() bool { errs = append(errs, icmp6Errors(t, c.Take())...); return len(errs) > 0 })
	ip := errs[0]
	m := header.ICMPv6(ip.Payload())
	if m.Type() != header.ICMPv6DstUnreachable || m.Code() != header.ICMPv6NetworkUnreachable {
		t.Errorf("type %d code %d, want destination unreachable / no route", m.Type(), m.Code())
	}
	if ip.SourceAddress().String() != "fd00:1::1" || ip.DestinationAddress().String() != src.String() {
		t.Errorf("error %s → %s, want from the gateway fd00:1::1 to %s", ip.SourceAddress(), ip.DestinationAddress(), src)
	}
	q := header.IPv6(m.Payload())
	if len(q) < header.IPv6MinimumSize+8 || q.DestinationAddress().String() != dst.String() || binary.BigEndian.Uint16(q[header.IPv6MinimumSize+4:]) != 77 {
		t.Errorf("the error does not quote the request to %s with identifier 77", dst)
	}
	// A burst: at most UnreachablesPerSecond in a second, the rest counted.
	const burst = gateway.UnreachablesPerSecond + 50
	for i := range burst {
		c.Inject(echo6Frame(cMAC, gw.MAC(), src, dst, 77, uint16(2+i)))
	}
	st := gw.Stats()
	if st.Unreachables+st.UnreachablesLimited != burst+1 || st.UnreachablesLimited == 0 || st.Unreachables > 2*gateway.UnreachablesPerSecond {
		t.Errorf("sent %d, limited %d unreachables for %d requests: want all counted, some limited", st.Unreachables, st.UnreachablesLimited, burst+1)
	}
	if got := len(icmp6Errors(t, c.Take())); int64(got) != st.Unreachables-1 {
		t.Errorf("the container got %d errors, the gateway counted %d sent", got, st.Unreachables-1)
	}
}

// With a raw socket the host sees the errors routers send about its
// requests; the gateway passes them to the container as about its own
// request: same type and code, from the router, quoting the container's
// address, destination and identifier.
func TestPing6RouterErrorPassedOn(t *testing.T) {
	router := netip.MustParseAddr("2001:db8:ff::1")
	dst := netip.MustParseAddr("2001:db8::42")
	icmp := &fakeICMP{noPingSockets: true, unreachable: map[netip.Addr]bool{dst: true}, router: router}
	sw, gw, _ := newDual6(t, gateway.Config{}, icmp)
	c := porttest.New("c", 1500)
	if _, err := sw.Attach(c, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	cMAC, src := vswitch.MAC{2, 0x42, 0, 0, 0, 9}, netip.MustParseAddr("fd00:1::9")
	c.Inject(echo6Frame(cMAC, gw.MAC(), src, dst, 4242, 7))
	var errs []header.IPv6
	waitFor(t, "the router's error", func() bool { errs = append(errs, icmp6Errors(t, c.Take())...); return len(errs) > 0 })
	ip := errs[0]
	m := header.ICMPv6(ip.Payload())
	if m.Type() != header.ICMPv6DstUnreachable || m.Code() != header.ICMPv6AddressUnreachable {
		t.Errorf("type %d code %d, want destination unreachable / address unreachable", m.Type(), m.Code())
	}
	if ip.SourceAddress().String() != router.String() || ip.DestinationAddress().String() != src.String() {
		t.Errorf("error %s → %s, want from the router %s to %s", ip.SourceAddress(), ip.DestinationAddress(), router, src)
	}
	q := header.IPv6(m.Payload())
	if len(q) < header.IPv6MinimumSize+8 || q.SourceAddress().String() != src.String() || q.DestinationAddress().String() != dst.String() ||
		binary.BigEndian.Uint16(q[header.IPv6MinimumSize+4:]) != 4242 || binary.BigEndian.Uint16(q[header.IPv6MinimumSize+6:]) != 7 {
		t.Errorf("the error quotes %x, want the container's request %s → %s id 4242 seq 7", []byte(q), src, dst)
	}
	if st := gw.Stats(); st.ICMPErrors != 1 || st.Unreachables != 1 {
		t.Errorf("ICMPErrors %d, Unreachables %d, want 1, 1", st.ICMPErrors, st.Unreachables)
	}
}

// An IPv6-only network's gateway forwards ping -6 the same way, and opens
// no IPv4 socket.
func TestPing6IPv6OnlyNetwork(t *testing.T) {
	var nets []string
	icmp := &fakeICMP{}
	listen := func(network, address string) (net.PacketConn, error) {
		nets = append(nets, network)
		return icmp.listen(network, address)
	}
	sw := vswitch.New(vswitch.Config{Name: "v6"})
	t.Cleanup(func() { sw.Close() })
	gw, err := gateway.New(sw, gateway.Config{Network: "v6", Subnet: netip.MustParsePrefix("fd00:6::/64"), Addr: netip.MustParseAddr("fd00:6::1"),
		MAC: vswitch.MAC{0x02, 0x42, 0, 0, 6, 1}, Egress: gateway.EgressConfig{ListenICMP: listen}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	h, err := vnettest.NewHost(sw, vnettest.HostConfig{Name: "c", Addr: netip.MustParsePrefix("fd00:6::2/64"), Gateway: netip.MustParseAddr("fd00:6::1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if err := pingWithin(h, "2001:db8::6", 5*time.Second); err != nil {
		t.Fatalf("ping -6 the outside from an IPv6-only network: %v", err)
	}
	for _, n := range nets {
		if n == "udp4" || n == "ip4:icmp" {
			t.Errorf("an IPv6-only gateway opened an IPv4 ICMP socket (%s)", n)
		}
	}
}

// echo6Fragments is an ICMPv6 echo request of n payload bytes from src
// to dst, in two fragments.
func echo6Fragments(srcMAC, gwMAC vswitch.MAC, src, dst netip.Addr, id uint16, n int) [][]byte {
	s, d := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	msg := make([]byte, 8+n)
	msg[0] = 128
	binary.BigEndian.PutUint16(msg[4:6], id)
	binary.BigEndian.PutUint16(msg[6:8], 1)
	for i := range n {
		msg[8+i] = byte(i)
	}
	binary.BigEndian.PutUint16(msg[2:4], ^checksum.Checksum(msg, header.PseudoHeaderChecksum(58, s, d, uint16(len(msg)))))
	split := (len(msg) / 2) &^ 7
	var out [][]byte
	for i, part := range [][]byte{msg[:split], msg[split:]} {
		b := make([]byte, 14+header.IPv6MinimumSize+8+len(part))
		copy(b[0:6], gwMAC[:])
		copy(b[6:12], srcMAC[:])
		b[12], b[13] = 0x86, 0xdd
		header.IPv6(b[14:]).Encode(&header.IPv6Fields{PayloadLength: uint16(8 + len(part)), TransportProtocol: 44, HopLimit: 64, SrcAddr: s, DstAddr: d})
		fh := b[14+header.IPv6MinimumSize:]
		fh[0] = 58
		offset := uint16(0)
		if i == 1 {
			offset = uint16(split)
		}
		binary.BigEndian.PutUint16(fh[2:4], offset|uint16(1-i)) // offset in bytes (a multiple of 8), M on the first
		binary.BigEndian.PutUint32(fh[4:8], 0x5a5a0000|uint32(id))
		copy(fh[8:], part)
		out = append(out, b)
	}
	return out
}

// A fragmented ping -6 to the outside is not answered by the gateway
// either: its first fragment is dropped, so the netstack never
// reassembles it; one to the gateway itself is reassembled and answered.
func TestPing6FragmentedNotAnsweredByGateway(t *testing.T) {
	icmp := &fakeICMP{}
	sw, gw, _ := newDual6(t, gateway.Config{}, icmp)
	c := porttest.New("c", 1500)
	if _, err := sw.Attach(c, vswitch.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	cMAC, src := vswitch.MAC{2, 0x42, 0, 0, 0, 9}, netip.MustParseAddr("fd00:1::9")
	if err := gw.PinNeighbor(src, cMAC); err != nil { // the port answers no neighbour solicitation
		t.Fatal(err)
	}
	replies := map[string]int{} // echo replies the container got, by source
	count := func() {
		for _, f := range c.Take() {
			b := f.Data
			if len(b) < 14+header.IPv6MinimumSize+8 || b[12] != 0x86 || b[13] != 0xdd {
				continue
			}
			ip := header.IPv6(b[14:])
			if p := ip.Payload(); ip.NextHeader() == 58 && p[0] == 129 {
				replies[ip.SourceAddress().String()]++
			}
		}
	}
	for _, fr := range echo6Fragments(cMAC, gw.MAC(), src, netip.MustParseAddr("2001:db8::5"), 31, 1000) {
		c.Inject(fr)
	}
	waitFor(t, "the first fragment dropped", func() bool { return gw.Stats().ICMPDropped == 1 })
	// The gateway's own address: reassembled and answered, after anything
	// the first ping would have drawn.
	for _, fr := range echo6Fragments(cMAC, gw.MAC(), src, netip.MustParseAddr("fd00:1::1"), 32, 1000) {
		c.Inject(fr)
	}
	waitFor(t, "the gateway's own reply", func() bool { count(); return replies["fd00:1::1"] == 1 })
	if n := replies["2001:db8::5"]; n != 0 {
		t.Errorf("the gateway answered a fragmented ping -6 to 2001:db8::5 %d times in its name", n)
	}
	if d := icmp.destinations(); len(d) != 0 {
		t.Errorf("a fragment left through the host to %v", d)
	}
}
