package e2e_test

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A dual-stack network through the CLI: two namespaces get an address and
// a default route of each family, ping the gateway's two addresses and
// each other over IPv6 (neighbour discovery through the switch's port
// security), move TCP over IPv6, and resolve each other's AAAA.
func TestDualStackNetwork(t *testing.T) {
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "dual", "--subnet", "10.241.0.0/24", "--subnet", "fd00:241::/64")
	d.MustRun("connect", "dual", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "dual", "--netns", nsB.Path, "--name", "b", "--ip6", "fd00:241::b")
	es := endpoints(t, d, "dual")
	want := map[string][2]string{"a": {"10.241.0.2/24", "fd00:241::2/64"}, "b": {"10.241.0.3/24", "fd00:241::b/64"}}
	for _, e := range es {
		if w := want[e.Name]; e.Address.String() != w[0] || e.Address6.String() != w[1] || e.Gateway6.String() != "fd00:241::1" {
			t.Errorf("endpoint %s: %s %s gw6 %s, want %s %s gw6 fd00:241::1", e.Name, e.Address, e.Address6, e.Gateway6, w[0], w[1])
		}
	}
	if r := nsA.MustRun("ip", "-6", "route", "show", "default"); !strings.Contains(r, "via fd00:241::1 dev eth0") {
		t.Errorf("IPv6 default route in a: %q", r)
	}
	for _, dst := range []string{"10.241.0.1", "fd00:241::1", "fd00:241::b"} {
		if err := nsA.Ping(dst, 2); err != nil {
			t.Fatalf("ping %s from a: %v", dst, err)
		}
	}
	netnstest.Transfer(t, nsA, nsB, "[fd00:241::b]:7000", 4*mb)
	r := query(t, nsA, "udp", "10.241.0.1", "b.", dns.TypeAAAA)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "fd00:241::b") {
		t.Errorf("AAAA b from the gateway's DNS: %v, want fd00:241::b", r.Answer)
	}
}

// The gateway's Router Advertisements configure a kernel by SLAAC: an
// endpoint connected with --dhcp gets no static IPv6 address, and its
// namespace (accept_ra=2) forms its EUI-64 address in the prefix and
// takes the gateway's link-local address as default router; rdisc6 shows
// the prefix and the RDNSS; the SLAAC address passes port security and
// reaches the gateway; the IPv6 DNS server answers; a DHCPv6 client gets
// the address IPAM holds for the endpoint, the one DNS gives.
func TestDualStackSLAAC(t *testing.T) {
	if _, err := exec.LookPath("rdisc6"); err != nil {
		t.Skip("skipping: rdisc6 (Debian's ndisc6) is not installed")
	}
	ns := netnstest.New(t)
	ns.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=2", "net.ipv6.conf.all.accept_ra=2")
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "slaac", "--subnet", "10.242.0.0/24", "--subnet", "fd00:242::/64")
	d.MustRun("connect", "slaac", "--netns", ns.Path, "--name", "a", "--dhcp", "--mac", "02:42:0a:f2:00:09")
	slaac := "fd00:242::42:aff:fef2:9"
	line := waitAddr6(t, ns, "eth0", func(l string) bool { return strings.Contains(l, " "+slaac+"/64") }, "the SLAAC address "+slaac)
	if !strings.Contains(line, "dynamic") {
		t.Errorf("%s is not the kernel's SLAAC address: %q", slaac, line)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := ns.MustRun("ip", "-6", "route", "show", "default")
		if strings.Contains(r, "proto ra") && strings.Contains(r, "via fe80::42:aff:fef2:1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no RA default route after 15 s:\n%s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a := ns.MustRun("ip", "-6", "-o", "addr", "show", "dev", "eth0"); strings.Contains(a, "fd00:242::2/") {
		t.Errorf("--dhcp configured the IPAM address on eth0 itself; it is its DHCPv6 client's to ask for:\n%s", a)
	}
	out := ns.MustRun("rdisc6", "-1", "-w", "2000", "eth0")
	for _, want := range []string{"fd00:242::/64", "Recursive DNS server", "fd00:242::1", "from fe80::42:aff:fef2:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("rdisc6 eth0 lacks %q:\n%s", want, out)
		}
	}
	if _, err := ns.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", slaac, "fd00:242::1"); err != nil {
		t.Errorf("ping the gateway from the SLAAC address: %v", err)
	}
	r := query(t, ns, "udp", "fd00:242::1", "a.", dns.TypeAAAA)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "fd00:242::2") {
		t.Errorf("AAAA a from the IPv6 DNS server: %v, want fd00:242::2", r.Answer)
	}
	c := startDhclient6(t, ns, "eth0", "request dhcp6.name-servers;\n", "-D", "LL")
	if env := c.event("BOUND6"); env["new_ip6_address"] != "fd00:242::2" {
		t.Errorf("dhclient -6 got %q, want the endpoint's fd00:242::2", env["new_ip6_address"])
	}
	waitAddr6(t, ns, "eth0", func(l string) bool { return strings.Contains(l, " fd00:242::2/") }, "the DHCPv6 address fd00:242::2")
	if _, err := ns.Run("ping", "-c", "1", "-W", "2", "-I", "fd00:242::2", "fd00:242::1"); err != nil {
		t.Errorf("ping the gateway from the DHCPv6 address: %v", err)
	}
	c.release()
}

// A published port of a dual-stack endpoint: -p 18180:80 listens on
// 0.0.0.0 and [::]; an IPv6 client reaches the container over IPv6 and
// keeps its address, an IPv4 client over IPv4 keeps its own.
func TestDualStackPublishedPort(t *testing.T) {
	w := newWorld(t)
	w.host.MustRun("ip", "addr", "add", "fd00:213::1/64", "dev", "veth0", "nodad")
	w.inet.MustRun("ip", "addr", "add", "fd00:213::2/64", "dev", "veth1", "nodad")
	c := netnstest.New(t)
	whoServer(t, c, "[::]:80")
	w.d.MustRun("network", "create", "web", "--subnet", "10.243.0.0/24", "--subnet", "fd00:243::/64")
	out := w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c", "-p", "18180:80")
	for _, want := range []string{"80/tcp -> 0.0.0.0:18180", "80/tcp -> [::]:18180"} {
		if !strings.Contains(out, want) {
			t.Errorf("connect output lacks %q:\n%s", want, out)
		}
	}
	if got := askWho(t, w.inet, "[fd00:213::1]:18180"); !strings.Contains(got, "fd00:213::2") {
		t.Errorf("the container saw the IPv6 client as %q, want fd00:213::2", got)
	}
	if got := askWho(t, w.inet, hostAddr+":18180"); !strings.Contains(got, inetAddr) {
		t.Errorf("the container saw the IPv4 client as %q, want %s", got, inetAddr)
	}
	if got := askWho(t, w.host, "[::1]:18180"); got == "" {
		t.Error("no answer at [::1]:18180")
	}
}

// spoofedNA is an unsolicited neighbour advertisement from src's MAC
// claiming target for src's MAC, to all nodes.
func spoofedNA(src net.HardwareAddr, from, target netip.Addr) []byte {
	icmpLen := header.ICMPv6NeighborAdvertMinimumSize + 8 // + target link-layer address option
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+icmpLen)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: linkAddr(src), DstAddr: tcpip.LinkAddress([]byte{0x33, 0x33, 0, 0, 0, 1}),
		Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	all := netip.MustParseAddr("ff02::1")
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(icmpLen), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 255,
		SrcAddr: tcpip.AddrFrom16(from.As16()), DstAddr: tcpip.AddrFrom16(all.As16())})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6NeighborAdvert)
	na := header.NDPNeighborAdvert(icmp.MessageBody())
	na.SetOverrideFlag(true)
	na.SetTargetAddress(tcpip.AddrFrom16(target.As16()))
	header.NDPOptions(na.Options()).Serialize(header.NDPOptionsSerializer{header.NDPTargetLinkLayerAddressOption(linkAddr(src))})
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()}))
	return b
}

// Port security covers a dual-stack endpoint's IPv6 address as its IPv4
// one: a container that advertises another's IPv6 address (ND) or sends
// from it has those frames dropped and counted, and the victim's
// published port still reaches the victim over IPv6.
func TestDualStackNDSpoofingDropped(t *testing.T) {
	w := newWorld(t)
	d := w.d
	a, b := netnstest.New(t), netnstest.New(t)
	nameServer6(t, b, "b")
	d.MustRun("network", "create", "web", "--subnet", "10.246.0.0/24", "--subnet", "fd00:246::/64")
	d.MustRun("connect", "web", "--netns", a.Path, "--name", "a")
	d.MustRun("connect", "web", "--netns", b.Path, "--name", "b", "-p", "[::1]:18246:80")
	ea, eb := endpointNamed(t, d, "web", "a"), endpointNamed(t, d, "web", "b")
	aMAC := mustMAC(t, ea.MAC)
	victim := eb.Address6.Addr()
	gwMAC := mustMAC(t, networks(t, d)[0].GatewayMAC)
	// a's own IPv6 traffic (its address, its ND) passes.
	if err := a.Ping(victim.String(), 2); err != nil {
		t.Fatalf("a pings b over IPv6: %v", err)
	}
	if got := endpointNamed(t, d, "web", "a").Stats.DropsBy; got["spoofed_nd"]+got["spoofed_ip"] != 0 {
		t.Fatalf("a's own traffic dropped as spoofed: %v", got)
	}
	sendRaw(t, a, ea.IfName, spoofedNA(aMAC, ea.Address6.Addr(), victim), spoofedUDP6(aMAC, gwMAC, victim, eb.Gateway6))
	waitDrops(t, d, "web", "a", map[string]uint64{"spoofed_nd": 1, "spoofed_ip": 1})
	if got, err := answer(w.host, "[::1]:18246"); err != nil || got != "b" {
		t.Errorf("b's published port answered %q, %v; want b", got, err)
	}
}

// spoofedUDP6 is an IPv6 UDP datagram to dst (at dstMAC) from srcIP, sent
// from src's MAC.
func spoofedUDP6(src, dstMAC net.HardwareAddr, srcIP, dst netip.Addr) []byte {
	const n = header.UDPMinimumSize + 4
	b := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+n)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: linkAddr(src), DstAddr: linkAddr(dstMAC), Type: header.IPv6ProtocolNumber})
	ip := header.IPv6(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv6Fields{PayloadLength: n, TransportProtocol: header.UDPProtocolNumber, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16(srcIP.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
	header.UDP(ip.Payload()).Encode(&header.UDPFields{SrcPort: 5353, DstPort: 9, Length: n})
	return b
}

// Egress over IPv6: a dual-stack container's TCP connection and ping to
// an IPv6 address outside leave from the host's IPv6 address, as its IPv4
// ones leave from the host's IPv4 address.
func TestDualStackEgress(t *testing.T) {
	w := newWorld(t)
	w.host.MustRun("ip", "addr", "add", "fd00:213::1/64", "dev", "veth0", "nodad")
	w.inet.MustRun("ip", "addr", "add", "fd00:213::2/64", "dev", "veth1", "nodad")
	whoServer(t, w.inet, "[::]:8080")
	c := netnstest.New(t)
	w.d.MustRun("network", "create", "web", "--subnet", "10.247.0.0/24", "--subnet", "fd00:247::/64")
	w.d.MustRun("connect", "web", "--netns", c.Path, "--name", "c")
	if got := askWho(t, c, "[fd00:213::2]:8080"); !strings.Contains(got, "fd00:213::1") {
		t.Errorf("the outside saw the container's IPv6 connection from %q, want the host's fd00:213::1", got)
	}
	if got := askWho(t, c, inetAddr+":8080"); !strings.Contains(got, hostAddr) {
		t.Errorf("the outside saw the container's IPv4 connection from %q, want the host's %s", got, hostAddr)
	}
	if err := c.Ping("fd00:213::2", 2); err != nil {
		t.Errorf("ping -6 the outside: %v", err)
	}
}
