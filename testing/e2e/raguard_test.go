package e2e_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// Issue 10, untrusted containers over IPv6: RA guard and ND spoofing on
// real TAPs, against a real kernel as the victim.

// IPv6 next-header values the attack frames use.
const (
	nhHopByHop = 0
	nhDestOpts = 60
	nhFragment = 44
	nhICMPv6   = 58
)

var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// frame6 builds an Ethernet frame holding an IPv6 packet from srcIP to
// dstIP whose payload is exts (extension headers, each with its next-header
// byte already set) then upper; first is the IPv6 header's next header.
func frame6(src, dst net.HardwareAddr, srcIP, dstIP netip.Addr, first uint8, exts [][]byte, upper []byte) []byte {
	var pl []byte
	for _, e := range exts {
		pl = append(pl, e...)
	}
	pl = append(pl, upper...)
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+len(pl))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: linkAddr(src), DstAddr: linkAddr(dst), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(len(pl)), TransportProtocol: tcpip.TransportProtocolNumber(first), HopLimit: 255,
		SrcAddr: tcpip.AddrFrom16(srcIP.As16()), DstAddr: tcpip.AddrFrom16(dstIP.As16())})
	copy(ip.Payload(), pl)
	return b
}

// padOpts is a hop-by-hop or destination-options header of 8 bytes
// (PadN only) whose next header is next.
func padOpts(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

// fragHdr is a fragment header at byte offset off (a multiple of 8).
func fragHdr(next uint8, off int, more bool) []byte {
	v := uint16(off)
	if more {
		v |= 1
	}
	b := []byte{next, 0, 0, 0, 0x5a, 0x5a, 0, 0x66}
	binary.BigEndian.PutUint16(b[2:], v)
	return b
}

// routerAdvert is an ICMPv6 router advertisement from srcIP (a link-local
// address at src) to all nodes: default router for 1800 s, with the
// on-link, autonomous prefix and src's link-layer address. Its checksum is
// right, so a kernel that receives it acts on it.
func routerAdvert(src net.HardwareAddr, srcIP netip.Addr, prefix netip.Prefix) []byte {
	m := make([]byte, header.ICMPv6HeaderSize+12+8+32)
	icmp := header.ICMPv6(m)
	icmp.SetType(header.ICMPv6RouterAdvert)
	body := m[header.ICMPv6HeaderSize:]
	body[0] = 64                               // current hop limit
	binary.BigEndian.PutUint16(body[2:], 1800) // router lifetime
	opt := body[12:]
	opt[0], opt[1] = 1, 1 // source link-layer address
	copy(opt[2:8], src)
	pio := opt[8:]
	pio[0], pio[1], pio[2], pio[3] = 3, 4, byte(prefix.Bits()), 0xc0 // prefix information: on-link, autonomous
	binary.BigEndian.PutUint32(pio[4:], 86400)
	binary.BigEndian.PutUint32(pio[8:], 14400)
	a := prefix.Addr().As16()
	copy(pio[16:], a[:])
	return checksum6(m, srcIP, netip.MustParseAddr("ff02::1"))
}

// neighborAdvert is an unsolicited advertisement with the override flag:
// "target is at ll", from srcIP.
func neighborAdvert(srcIP, dstIP, target netip.Addr, ll net.HardwareAddr) []byte {
	m := make([]byte, header.ICMPv6NeighborAdvertMinimumSize+8)
	header.ICMPv6(m).SetType(header.ICMPv6NeighborAdvert)
	na := header.NDPNeighborAdvert(m[header.ICMPv6HeaderSize:])
	na.SetOverrideFlag(true)
	na.SetTargetAddress(tcpip.AddrFrom16(target.As16()))
	opt := na.Options()
	opt[0], opt[1] = 2, 1 // target link-layer address
	copy(opt[2:8], ll)
	return checksum6(m, srcIP, dstIP)
}

// neighborSolicit asks for target from srcIP, claiming ll as the sender's
// link-layer address.
func neighborSolicit(srcIP, target netip.Addr, ll net.HardwareAddr) []byte {
	m := make([]byte, header.ICMPv6NeighborSolicitMinimumSize+8)
	header.ICMPv6(m).SetType(header.ICMPv6NeighborSolicit)
	ns := header.NDPNeighborSolicit(m[header.ICMPv6HeaderSize:])
	ns.SetTargetAddress(tcpip.AddrFrom16(target.As16()))
	opt := ns.Options()
	opt[0], opt[1] = 1, 1
	copy(opt[2:8], ll)
	return checksum6(m, srcIP, solicitedNodeOf(target))
}

func checksum6(m []byte, src, dst netip.Addr) []byte {
	icmp := header.ICMPv6(m)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp,
		Src: tcpip.AddrFrom16(src.As16()), Dst: tcpip.AddrFrom16(dst.As16())}))
	return m
}

func solicitedNodeOf(a netip.Addr) netip.Addr {
	s := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: s[13], 14: s[14], 15: s[15]})
}

func multicastMAC(a netip.Addr) net.HardwareAddr {
	s := a.As16()
	return net.HardwareAddr{0x33, 0x33, s[12], s[13], s[14], s[15]}
}

// linkLocal is the EUI-64 link-local address a kernel forms from m.
func linkLocal(m net.HardwareAddr) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: m[0] ^ 2, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]})
}

// raAttack is what a rogue router sends: one RA per evasion, each with a
// prefix of its own (fd66:N::/64), so a victim's routes say which got
// through. The fragmented RA is two frames.
type raAttack struct {
	name   string
	prefix string
	frames [][]byte
}

func raAttacks(src net.HardwareAddr) []raAttack {
	ll := linkLocal(src)
	all := netip.MustParseAddr("ff02::1")
	ra := func(n string) []byte { return routerAdvert(src, ll, netip.MustParsePrefix(n)) }
	nine := [][]byte{padOpts(nhDestOpts)}
	for i := range 9 {
		next := uint8(nhDestOpts)
		if i == 8 {
			next = nhICMPv6
		}
		nine = append(nine, padOpts(next))
	}
	// RFC 7113's fragment trick: the first fragment ends after a
	// destination-options header, the ICMPv6 header is in the second.
	frag := ra("fd66:4::/64")
	first := frame6(src, allNodesMAC, ll, all, nhFragment, [][]byte{fragHdr(nhDestOpts, 0, true), padOpts(nhICMPv6)}, nil)
	second := frame6(src, allNodesMAC, ll, all, nhFragment, [][]byte{fragHdr(nhDestOpts, 8, false)}, frag)
	tagged := func(f []byte) []byte {
		b := append([]byte(nil), f[:12]...)
		return append(append(b, 0x81, 0x00, 0x00, 0x00), f[12:]...) // VLAN 0, priority-tagged
	}
	return []raAttack{
		{"plain", "fd66:1::/64", [][]byte{frame6(src, allNodesMAC, ll, all, nhICMPv6, nil, ra("fd66:1::/64"))}},
		{"behind hop-by-hop", "fd66:2::/64", [][]byte{frame6(src, allNodesMAC, ll, all, nhHopByHop, [][]byte{padOpts(nhICMPv6)}, ra("fd66:2::/64"))}},
		{"behind hop-by-hop and nine destination options", "fd66:3::/64", [][]byte{frame6(src, allNodesMAC, ll, all, nhHopByHop, nine, ra("fd66:3::/64"))}},
		{"split after its extension headers", "fd66:4::/64", [][]byte{first, second}},
		{"vlan-tagged", "fd66:5::/64", [][]byte{tagged(frame6(src, allNodesMAC, ll, all, nhICMPv6, nil, ra("fd66:5::/64")))}},
	}
}

// waitRun runs cmd in ns until its output contains want, for up to 15 s,
// and returns the output.
func waitRun(t *testing.T, ns *netnstest.NS, want string, cmd ...string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := ns.MustRun(cmd[0], cmd[1:]...)
		if strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s lacks %q after 15 s:\n%s", strings.Join(cmd, " "), ns.Name, want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The same frames, sent over a plain veth with no switch between, do
// change a kernel's routes and neighbour table: the frames are right, so
// when the switch's test below sees no change, the switch stopped them.
func TestRAGuardFramesWorkWithoutTheSwitch(t *testing.T) {
	attacker, victim := netnstest.New(t), netnstest.New(t)
	victim.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=2", "net.ipv6.conf.all.accept_ra=2")
	src := net.HardwareAddr{0x02, 0x66, 0, 0, 0, 1}
	attacker.MustRun("ip", "link", "add", "c0", "address", src.String(), "type", "veth", "peer", "name", "c1", "netns", victim.Name)
	attacker.MustRun("ip", "link", "set", "c0", "up")
	victim.MustRun("ip", "link", "set", "c1", "up")
	gw := netip.MustParseAddr("fd00:249::1")
	gwMAC := "02:00:00:00:00:fe"
	victim.MustRun("ip", "-6", "neigh", "replace", gw.String(), "lladdr", gwMAC, "dev", "c1", "nud", "stale")
	for deadline := time.Now().Add(15 * time.Second); ; {
		out := victim.MustRun("ip", "-6", "addr", "show", "dev", "c1")
		if strings.Contains(out, "scope link") && !strings.Contains(out, "tentative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c1's link-local address is not ready after 15 s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	attacks := raAttacks(src)
	for _, a := range attacks[:2] {
		sendRaw(t, attacker, "c0", a.frames...)
		waitRun(t, victim, a.prefix, "ip", "-6", "route", "show", "dev", "c1")
	}
	waitRun(t, victim, "default via "+linkLocal(src).String(), "ip", "-6", "route", "show", "dev", "c1")
	sendRaw(t, attacker, "c0", frame6(src, allNodesMAC, linkLocal(src), netip.MustParseAddr("ff02::1"), nhICMPv6, nil,
		neighborAdvert(linkLocal(src), netip.MustParseAddr("ff02::1"), gw, src)))
	waitRun(t, victim, "lladdr "+src.String(), "ip", "-6", "neigh", "show", gw.String(), "dev", "c1")
}

// A container sends router advertisements, plain and with RFC 7113's
// evasions (extension headers, the ICMPv6 header pushed into a second
// fragment, a VLAN tag), and neighbour advertisements and solicitations
// that claim the gateway's addresses and the victim's. The switch drops
// and counts every one; the victim, a kernel accepting RAs, keeps its
// routes, addresses and neighbour entries; the victim's published port
// still reaches the victim, not the attacker who claims its address.
func TestRAGuardAndNDSpoofing(t *testing.T) {
	w := newWorld(t)
	d := w.d
	attacker, victim := netnstest.New(t), netnstest.New(t)
	victim.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=2", "net.ipv6.conf.all.accept_ra=2")
	nameServer6(t, victim, "victim")
	nameServer6(t, attacker, "attacker")
	d.MustRun("network", "create", "web", "--subnet", "10.249.0.0/24", "--subnet", "fd00:249::/64")
	d.MustRun("connect", "web", "--netns", victim.Path, "--name", "victim", "-p", "[::1]:18249:80")
	d.MustRun("connect", "web", "--netns", attacker.Path, "--name", "attacker")
	ev, ea := endpointNamed(t, d, "web", "victim"), endpointNamed(t, d, "web", "attacker")
	var gwMAC net.HardwareAddr
	for _, n := range networks(t, d) {
		if n.Name == "web" {
			gwMAC = mustMAC(t, n.GatewayMAC)
		}
	}
	gw, gwLL := ev.Gateway6, linkLocal(gwMAC)
	src := mustMAC(t, ea.MAC)
	victimIP := ev.Address6.Addr()

	// The victim takes RAs: the gateway's made its default route. It has
	// neighbour entries for both gateway addresses.
	waitRun(t, victim, "default via "+gwLL.String(), "ip", "-6", "route", "show", "dev", "eth0")
	for _, a := range []string{gw.String(), gwLL.String() + "%eth0"} {
		if err := victim.Ping(a, 1); err != nil {
			t.Fatalf("victim pings %s: %v", a, err)
		}
	}
	if got, err := answer(w.host, "[::1]:18249"); got != "victim" {
		t.Fatalf("before the attack [::1]:18249 answered %q (%v), want victim", got, err)
	}
	// The attacker claims the victim's address for its own server.
	attacker.MustRun("ip", "-6", "addr", "add", victimIP.String()+"/128", "dev", "lo")

	var frames [][]byte
	for _, a := range raAttacks(src) {
		frames = append(frames, a.frames...)
	}
	own, all := ea.Address6.Addr(), netip.MustParseAddr("ff02::1")
	frames = append(frames,
		// "The gateway is at my MAC", to all nodes: would move the
		// victim's traffic for the gateway to the attacker.
		frame6(src, allNodesMAC, own, all, nhICMPv6, nil, neighborAdvert(own, all, gw, src)),
		frame6(src, allNodesMAC, own, all, nhICMPv6, nil, neighborAdvert(own, all, gwLL, src)),
		// "The victim is at my MAC", to the gateway: would take the
		// victim's published port.
		frame6(src, gwMAC, own, gw, nhICMPv6, nil, neighborAdvert(own, gw, victimIP, src)),
		// A solicitation from the attacker's own address whose source
		// link-layer option is the gateway's MAC.
		frame6(src, multicastMAC(solicitedNodeOf(victimIP)), own, solicitedNodeOf(victimIP), nhICMPv6, nil,
			neighborSolicit(own, victimIP, gwMAC)),
	)
	sendRaw(t, attacker, ea.IfName, frames...)
	// Four RAs (the fragmented one's first fragment), the tagged one, and
	// the four ND messages; the fragmented RA's second fragment passes
	// (nothing can be reassembled without the first).
	waitDrops(t, d, "web", "attacker", map[string]uint64{"ra_guard": 4, "ethertype": 1, "spoofed_nd": 4})
	// Frames from one port reach the victim in order: once the victim
	// answers a ping from the attacker, it has seen whatever got through.
	if err := attacker.Ping(victimIP.String(), 1); err != nil {
		t.Fatalf("attacker pings the victim: %v", err)
	}

	routes := victim.MustRun("ip", "-6", "route", "show")
	addrs := victim.MustRun("ip", "-6", "addr", "show")
	if strings.Contains(routes, "fd66:") || strings.Contains(routes, linkLocal(src).String()) || strings.Contains(addrs, "fd66:") {
		t.Errorf("the attacker's RAs reached the victim:\n%s\n%s", routes, addrs)
	}
	if !strings.Contains(routes, "default via "+gwLL.String()) {
		t.Errorf("the victim lost the gateway's default route:\n%s", routes)
	}
	for _, a := range []string{gw.String(), gwLL.String()} {
		if n := victim.MustRun("ip", "-6", "neigh", "show", a, "dev", "eth0"); !strings.Contains(n, "lladdr "+gwMAC.String()) {
			t.Errorf("the victim's neighbour entry for %s: %q, want lladdr %s", a, n, gwMAC)
		}
	}
	if n := victim.MustRun("ip", "-6", "neigh", "show", own.String(), "dev", "eth0"); strings.Contains(n, gwMAC.String()) {
		t.Errorf("the victim believes the attacker's address is at the gateway's MAC: %q", n)
	}
	if got, err := answer(w.host, "[::1]:18249"); got != "victim" {
		t.Errorf("after the attack [::1]:18249 answered %q (%v), want victim", got, err)
	}
	if err := victim.Ping(gw.String(), 1); err != nil {
		t.Errorf("victim pings the gateway after the attack: %v", err)
	}
	if dv := endpointNamed(t, d, "web", "victim").Stats.DropsBy; dv["ra_guard"]+dv["spoofed_nd"]+dv["spoofed_ip"] != 0 {
		t.Errorf("the victim's own traffic was dropped: %v", dv)
	}
}

// nameServer6 listens on [::]:80 in ns and answers every connection with
// name.
func nameServer6(t *testing.T, ns *netnstest.NS, name string) {
	t.Helper()
	ns.ServeEach(t, "[::]:80", func(net.Conn) string { return name })
}
