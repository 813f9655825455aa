package vnettest_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// natLab is a host a (and b) behind a NAT box, and two servers s1 and s2
// on the outside, each answering on ports 3478 and 3479 with the address
// they saw the datagram come from (as a STUN server does).
type natLab struct {
	box    *vnettest.NATBox
	a, b   *vnettest.Host
	s1, s2 *vnettest.Host
	srv    map[string]net.PacketConn // "s1:3478" → the server's socket
}

func newNATLab(t *testing.T, cfg vnettest.NATConfig) *natLab {
	t.Helper()
	w := vnettest.New(t)
	inet := w.NewNetwork("inet", "198.51.100.0/24")
	lan := w.NewNetwork("lan", "192.168.1.0/24")
	cfg.PublicAddr = "198.51.100.5"
	l := &natLab{box: w.NewNATBox("nat", lan, inet, cfg), srv: map[string]net.PacketConn{}}
	l.a, l.b = lan.NewHost("a"), lan.NewHost("b")
	l.s1, l.s2 = inet.NewHostAt("s1", "198.51.100.10"), inet.NewHostAt("s2", "198.51.100.20")
	for _, s := range []*vnettest.Host{l.s1, l.s2} {
		for _, port := range []int{3478, 3479} {
			c, err := s.ListenPacket("udp", fmt.Sprintf(":%d", port))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			l.srv[fmt.Sprintf("%s:%d", s.Name(), port)] = c
			go func() {
				buf := make([]byte, 1500)
				for {
					n, from, err := c.ReadFrom(buf)
					if err != nil {
						return
					}
					if string(buf[:n]) == "who am i" {
						c.WriteTo([]byte(from.String()), from)
					}
				}
			}()
		}
	}
	return l
}

// hostAddr returns the address of server "s1:3478".
func (l *natLab) addr(server string) *net.UDPAddr {
	name, port, _ := strings.Cut(server, ":")
	h := l.s1
	if name == "s2" {
		h = l.s2
	}
	var p int
	fmt.Sscan(port, &p)
	return &net.UDPAddr{IP: h.Addr().AsSlice(), Port: p}
}

// observed asks server what address c's datagrams come from.
func observed(t *testing.T, c net.PacketConn, to *net.UDPAddr) string {
	t.Helper()
	buf := make([]byte, 100)
	for try := 0; try < 20; try++ { // the first datagram may wait on ARP
		if _, err := c.WriteTo([]byte("who am i"), to); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, from, err := c.ReadFrom(buf)
		if err == nil && from.String() == to.String() {
			return string(buf[:n])
		}
	}
	t.Fatalf("no answer from %v", to)
	return ""
}

func listen(t *testing.T, h *vnettest.Host, port int) net.PacketConn {
	t.Helper()
	c, err := h.ListenPacket("udp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The mapping behaviour decides which remotes share an external port.
func TestNATMapping(t *testing.T) {
	for _, c := range []struct {
		b    vnettest.Behavior
		want string // which of s1:3478, s1:3479, s2:3478 see one port: "===" all, "==≠", "≠≠≠"
	}{
		{vnettest.EndpointIndependent, "==="},
		{vnettest.AddressDependent, "==≠"},
		{vnettest.AddressAndPortDependent, "≠≠≠"},
	} {
		t.Run(c.b.String(), func(t *testing.T) {
			l := newNATLab(t, vnettest.NATConfig{Mapping: c.b})
			sock := listen(t, l.a, 5000)
			m1, m2, m3 := observed(t, sock, l.addr("s1:3478")), observed(t, sock, l.addr("s1:3479")), observed(t, sock, l.addr("s2:3478"))
			for _, m := range []string{m1, m2, m3} {
				if !strings.HasPrefix(m, "198.51.100.5:") {
					t.Fatalf("server saw %s, want the NAT's public address 198.51.100.5", m)
				}
			}
			got := "≠≠≠"
			switch {
			case m1 == m2 && m2 == m3:
				got = "==="
			case m1 == m2 && m2 != m3:
				got = "==≠"
			case m1 != m2 && m2 != m3 && m1 != m3:
			default:
				got = "?"
			}
			if got != c.want {
				t.Fatalf("mappings %s %s %s: pattern %s, want %s", m1, m2, m3, got, c.want)
			}
			if c.b == vnettest.EndpointIndependent && m1 == "198.51.100.5:5000" {
				t.Fatalf("port preserved without PortPreservation: %s", m1)
			}
		})
	}
}

func TestNATPortPreservation(t *testing.T) {
	l := newNATLab(t, vnettest.NATConfig{PortPreservation: true})
	if m := observed(t, listen(t, l.a, 5000), l.addr("s1:3478")); m != "198.51.100.5:5000" {
		t.Fatalf("mapping %s, want the internal port kept: 198.51.100.5:5000", m)
	}
	// b's port 5000 is taken outside now: b gets another.
	if m := observed(t, listen(t, l.b, 5000), l.addr("s1:3478")); m == "198.51.100.5:5000" || !strings.HasPrefix(m, "198.51.100.5:") {
		t.Fatalf("b's mapping %s, want another port of 198.51.100.5", m)
	}
}

// The filtering behaviour decides which remotes may send in through a
// mapping a has made towards s1:3478.
func TestNATFiltering(t *testing.T) {
	for _, c := range []struct {
		b                    vnettest.Behavior
		otherPort, otherHost bool // s1:3479 and s2:3478 get through
	}{
		{vnettest.EndpointIndependent, true, true},
		{vnettest.AddressDependent, true, false},
		{vnettest.AddressAndPortDependent, false, false},
	} {
		t.Run(c.b.String(), func(t *testing.T) {
			l := newNATLab(t, vnettest.NATConfig{Filtering: c.b})
			sock := listen(t, l.a, 5000)
			mapped, err := netip.ParseAddrPort(observed(t, sock, l.addr("s1:3478")))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				server string
				pass   bool
			}{{"s1:3479", c.otherPort}, {"s2:3478", c.otherHost}} {
				filtered := l.box.Stats().Filtered
				if _, err := l.srv[s.server].WriteTo([]byte("hello from "+s.server), net.UDPAddrFromAddrPort(mapped)); err != nil {
					t.Fatal(err)
				}
				if !s.pass {
					waitFor(t, "the NAT to filter "+s.server, func() bool { return l.box.Stats().Filtered > filtered })
					continue
				}
				buf := make([]byte, 100)
				sock.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := sock.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "hello from "+s.server || from.String() != l.addr(s.server).String() {
					t.Fatalf("from %s: got %q from %v, %v", s.server, buf[:n], from, err)
				}
			}
		})
	}
}

// With hairpinning, a reaches b at b's external address, and b sees a's
// external address; without, the packet is dropped.
func TestNATHairpinning(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("hairpin=", on), func(t *testing.T) {
			l := newNATLab(t, vnettest.NATConfig{Hairpinning: on})
			sa, sb := listen(t, l.a, 5000), listen(t, l.b, 6000)
			aExt := observed(t, sa, l.addr("s1:3478"))
			bExt, _ := netip.ParseAddrPort(observed(t, sb, l.addr("s1:3478")))
			filtered := l.box.Stats().Filtered
			if _, err := sa.WriteTo([]byte("hairpin"), net.UDPAddrFromAddrPort(bExt)); err != nil {
				t.Fatal(err)
			}
			if !on {
				waitFor(t, "the NAT to drop the hairpin", func() bool { return l.box.Stats().Filtered > filtered })
				return
			}
			buf := make([]byte, 100)
			sb.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := sb.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "hairpin" || from.String() != aExt {
				t.Fatalf("b got %q from %v (%v), want \"hairpin\" from a's external %s", buf[:n], from, err, aExt)
			}
		})
	}
}

// TCP crosses the NAT too: an HTTP server outside sees the public address.
// ICMP does not: an echo request from inside never leaves with its
// private source address.
func TestNATTCPAndICMP(t *testing.T) {
	l := newNATLab(t, vnettest.NATConfig{Mapping: vnettest.AddressAndPortDependent, Filtering: vnettest.AddressAndPortDependent})
	serveRemoteAddr(t, l.s1, 80)
	if got := get(t, l.a.HTTPClient(), "http://s1/"); !strings.HasPrefix(got, "198.51.100.5:") {
		t.Fatalf("server saw %q, want the NAT's public address", got)
	}
	leg := l.box.Wire(l.s1.Network())
	before := leg.Stats(vnettest.Up).Dropped
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := l.a.Ping(ctx, l.s1.Addr()); err == nil {
		t.Fatal("a ping crossed the NAT")
	}
	if leg.Stats(vnettest.Up).Dropped == before {
		t.Fatal("the echo request was not dropped at the outside leg")
	}
}

func TestNATBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(w *vnettest.World)
		want string
	}{
		{"bad behaviour", func(w *vnettest.World) {
			w.NewNATBox("n", w.NewNetwork("a", "10.1.0.0/24"), w.NewNetwork("b", "10.2.0.0/24"), vnettest.NATConfig{Filtering: 7})
		}, `NAT box "n": behaviour 7: want EndpointIndependent, AddressDependent or AddressAndPortDependent`},
		{"one network", func(w *vnettest.World) {
			n := w.NewNetwork("a", "10.1.0.0/24")
			w.NewNATBox("n", n, n, vnettest.NATConfig{})
		}, `NAT box "n": want two different networks`},
		{"public address outside", func(w *vnettest.World) {
			w.NewNATBox("n", w.NewNetwork("a", "10.1.0.0/24"), w.NewNetwork("b", "10.2.0.0/24"), vnettest.NATConfig{PublicAddr: "10.1.0.9"})
		}, `NAT box "n": host "n@b": address 10.1.0.9 is outside network b`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			defer f.end()
			w := vnettest.New(f)
			if !try(func() { c.do(w) }) || !strings.Contains(f.errors(), c.want) {
				t.Fatalf("failure %q, want one containing %q", f.errors(), c.want)
			}
		})
	}
}

// Frames from inside and from outside cross the NAT box's translation
// (its parser and rewriter) without harm to the network.
func FuzzNATBox(f *testing.F) {
	w := vnettest.New(f)
	inet := w.NewNetwork("inet", "198.51.100.0/24")
	lan := w.NewNetwork("lan", "192.168.1.0/24")
	w.NewNATBox("nat", lan, inet, vnettest.NATConfig{Hairpinning: true, PublicAddr: "198.51.100.5"})
	a, _ := lan.NewHost("a"), lan.NewHost("b")
	s1, _ := inet.NewHost("s1"), inet.NewHost("s2")
	udp := func(src, dst [4]byte, dstMAC byte) []byte {
		fr := make([]byte, 14+20+8+4)
		copy(fr, []byte{0x02, 0x42, 0, 0, 0, dstMAC, 0x02, 0x42, src[0], src[1], src[2], src[3], 0x08, 0x00})
		ip := fr[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		ip[3] = byte(len(ip))
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		ip[20], ip[21], ip[22], ip[23], ip[25] = 0x13, 0x88, 0x0d, 0x96, 12
		return fr
	}
	f.Add(false, frameSeed(udp([4]byte{192, 168, 1, 2}, [4]byte{198, 51, 100, 2}, 1)))
	f.Add(true, frameSeed(udp([4]byte{198, 51, 100, 2}, [4]byte{198, 51, 100, 5}, 5)))
	f.Add(false, frameSeed(udp([4]byte{192, 168, 1, 2}, [4]byte{198, 51, 100, 5}, 1)))
	f.Fuzz(func(t *testing.T, outside bool, data []byte) {
		from := a
		if outside {
			from = s1
		}
		vnettest.FuzzFrames(t, from, data)
	})
}

// TestVirtualNATMappingTimeout: a NAT box's mapping that has sent
// nothing out for MappingTimeout, on the World's clock, lets nothing in
// any more, however much comes from outside; the next datagram out makes
// a new one.
func TestVirtualNATMappingTimeout(t *testing.T) {
	w := vnettest.New(t, vnettest.VirtualTime(), vnettest.Seed(2))
	inet := w.NewNetwork("inet", "198.51.100.0/24")
	lan := w.NewNetwork("lan", "192.168.1.0/24")
	box := w.NewNATBox("nat", lan, inet, vnettest.NATConfig{MappingTimeout: 2 * time.Minute})
	a, s := lan.NewHost("a"), inet.NewHost("s")
	ac, err := a.ListenPacket("udp", ":5000")
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	sc, err := s.ListenPacket("udp", ":3478")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// recv waits up to 10 virtual seconds for a datagram on c.
	recv := func(c net.PacketConn) (string, net.Addr, error) {
		c.SetReadDeadline(w.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		var n int
		var from net.Addr
		_, err := blockedRead(t, w, func() error {
			var err error
			n, from, err = c.ReadFrom(buf)
			return err
		})
		return string(buf[:n]), from, err
	}
	send := func(c net.PacketConn, msg string, to net.Addr) {
		if _, err := c.WriteTo([]byte(msg), to); err != nil {
			t.Fatal(err)
		}
	}
	send(ac, "out", &net.UDPAddr{IP: s.Addr().AsSlice(), Port: 3478})
	_, public, err := recv(sc)
	if err != nil {
		t.Fatalf("the first datagram out: %v", err)
	}
	w.Advance(time.Minute)
	send(sc, "in 1", public)
	if msg, _, err := recv(ac); err != nil || msg != "in 1" {
		t.Fatalf("a minute after the last datagram out: %q, %v; want it let in", msg, err)
	}
	w.Advance(110 * time.Second) // inbound traffic does not refresh the mapping
	send(sc, "in 2", public)
	if msg, _, err := recv(ac); !timeoutErr(err) {
		t.Fatalf("past the mapping timeout: got %q, %v; want nothing let in", msg, err)
	}
	if st := box.Stats(); st.Expired != 1 || st.Unmapped == 0 {
		t.Fatalf("stats %+v: want one mapping expired and the datagram unmapped", st)
	}
	send(ac, "out again", &net.UDPAddr{IP: s.Addr().AsSlice(), Port: 3478})
	if _, _, err := recv(sc); err != nil {
		t.Fatalf("the datagram out after the expiry: %v", err)
	}
	if st := box.Stats(); st.Mappings != 2 {
		t.Fatalf("stats %+v: want a second mapping", st)
	}
}

// A negative mapping timeout is refused, naming the box.
func TestNATBoxRefusesNegativeTimeout(t *testing.T) {
	f := newFake(t)
	defer f.end()
	w := vnettest.New(f)
	lan, inet := w.NewNetwork("lan", "10.0.0.0/24"), w.NewNetwork("inet", "203.0.113.0/24")
	if !try(func() { w.NewNATBox("home", lan, inet, vnettest.NATConfig{MappingTimeout: -time.Second}) }) {
		t.Fatal("NewNATBox took a negative mapping timeout")
	}
	if want := `NAT box "home": mapping timeout -1s: want 0 (never) or more`; !strings.Contains(f.errors(), want) {
		t.Fatalf("failure %q, want %q", f.errors(), want)
	}
}
