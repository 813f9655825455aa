package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// Port security (issue 11 items 2 and 3) on real TAPs in namespaces.

// nameServer listens on port 80 in ns and answers every connection with
// name.
func nameServer(t *testing.T, ns *netnstest.NS, name string) {
	t.Helper()
	ns.ServeEach(t, "0.0.0.0:80", func(net.Conn) string { return name })
}

// answer connects from ns to addr and returns what the server said, or
// the error.
func answer(ns *netnstest.NS, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// sendRaw writes whole Ethernet frames out of ifname in ns through an
// AF_PACKET socket, as a container with CAP_NET_RAW can.
func sendRaw(t *testing.T, ns *netnstest.NS, ifname string, frames ...[]byte) {
	t.Helper()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				return fmt.Errorf("send %d bytes: %w", len(f), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw frames from %s in %s: %v", ifname, ns.Name, err)
	}
}

func linkAddr(m net.HardwareAddr) tcpip.LinkAddress { return tcpip.LinkAddress(m) }

// spoofedARP is "who-has gw tell victim" from src's MAC.
func spoofedARP(src net.HardwareAddr, victim, gw netip.Addr) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: linkAddr(src), DstAddr: header.EthernetBroadcastAddress,
		Type: header.ARPProtocolNumber})
	a := header.ARP(b[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), src)
	v, g := victim.As4(), gw.As4()
	copy(a.ProtocolAddressSender(), v[:])
	copy(a.ProtocolAddressTarget(), g[:])
	return b
}

// spoofedUDP is a UDP datagram to dst (at dstMAC) from srcIP, sent from
// src's MAC.
func spoofedUDP(src, dstMAC net.HardwareAddr, srcIP, dst netip.Addr) []byte {
	const n = header.IPv4MinimumSize + header.UDPMinimumSize + 4
	b := make([]byte, header.EthernetMinimumSize+n)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: linkAddr(src), DstAddr: linkAddr(dstMAC),
		Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: n, TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(srcIP.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.UDP(ip[header.IPv4MinimumSize:]).Encode(&header.UDPFields{SrcPort: 5353, DstPort: 9, Length: header.UDPMinimumSize + 4})
	return b
}

func endpointNamed(t *testing.T, d *clitest.Daemon, network, name string) api.Endpoint {
	t.Helper()
	for _, e := range endpoints(t, d, network) {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("endpoint %s/%s not listed", network, name)
	return api.Endpoint{}
}

// waitDrops waits up to 10 s for the endpoint's port to have counted at
// least want drops for each reason.
func waitDrops(t *testing.T, d *clitest.Daemon, network, name string, want map[string]uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := endpointNamed(t, d, network, name).Stats.DropsBy
		ok := true
		for r, n := range want {
			ok = ok && got[r] >= n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s drops %v after 10 s, want at least %v", network, name, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Issue 11 item 2: container d sends one ARP request "who-has <gateway>
// tell <e>" and one IP packet from e's address to the gateway, and claims
// e's address on its loopback so that whatever reaches it for e is
// answered by its own server. e's published port (from outside, and
// hairpinned from inside on icc=true) must still reach e, and d's port
// must count the drops.
func TestSpoofingDoesNotHijackPublishedPort(t *testing.T) {
	for _, icc := range []bool{true, false} {
		t.Run(fmt.Sprintf("icc=%v", icc), func(t *testing.T) {
			w := newWorld(t)
			e, d := netnstest.New(t), netnstest.New(t)
			nameServer(t, e, "e")
			nameServer(t, d, "d")
			create := []string{"network", "create", "web", "--subnet", "10.240.0.0/24"}
			if !icc {
				create = append(create, "--icc=false")
			}
			w.d.MustRun(create...)
			w.d.MustRun("connect", "web", "--netns", e.Path, "--name", "e", "-p", "18080:80")
			w.d.MustRun("connect", "web", "--netns", d.Path, "--name", "d")
			published := hostAddr + ":18080"
			if got, err := answer(w.inet, published); got != "e" {
				t.Fatalf("before the attack %s answered %q (%v), want e", published, got, err)
			}

			ep, dp := endpointNamed(t, w.d, "web", "e"), endpointNamed(t, w.d, "web", "d")
			gw := dp.Gateway
			var gwMAC net.HardwareAddr
			for _, n := range networks(t, w.d) {
				if n.Name == "web" {
					gwMAC = mustMAC(t, n.GatewayMAC)
				}
			}
			victim := ep.Address.Addr()
			d.MustRun("ip", "addr", "add", victim.String()+"/32", "dev", "lo")
			dMAC := mustMAC(t, dp.MAC)
			sendRaw(t, d, dp.IfName, spoofedARP(dMAC, victim, gw), spoofedUDP(dMAC, gwMAC, victim, gw))
			// Both frames were refused by the switch, so the gateway
			// never saw them.
			waitDrops(t, w.d, "web", "d", map[string]uint64{"spoofed_arp": 1, "spoofed_ip": 1})

			if got, err := answer(w.inet, published); got != "e" {
				t.Errorf("after the attack %s answered %q (%v), want e", published, got, err)
			}
			if icc {
				hairpin := fmt.Sprintf("%s:18080", gw)
				if got, err := answer(d, hairpin); got != "e" {
					t.Errorf("hairpin to %s from d answered %q (%v), want e", hairpin, got, err)
				}
			}
			if ed := endpointNamed(t, w.d, "web", "e").Stats.DropsBy; ed["spoofed_arp"]+ed["spoofed_ip"]+ed["spoofed"] != 0 {
				t.Errorf("e's own traffic was dropped as spoofed: %v", ed)
			}
		})
	}
}

// Issue 11 item 3: one container sends from 30,000 random source MACs; a
// container connected afterwards reaches the gateway and the flooder with
// no loss. A bound port refuses the foreign MACs outright; with
// --mac-spoofing it may have DefaultPortMACs of them (8) in the table.
func TestMACFloodDoesNotBlackholeNewcomer(t *testing.T) {
	for _, c := range []struct {
		name   string
		flags  []string
		reason string
		learnt int
	}{
		{"bound", nil, "spoofed", 0},
		{"mac-spoofing", []string{"--mac-spoofing"}, "learn_limit", 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			flooder, late := netnstest.New(t), netnstest.New(t)
			w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
			w.d.MustRun(append([]string{"connect", "web", "--netns", flooder.Path, "--name", "flooder"}, c.flags...)...)
			fp := endpointNamed(t, w.d, "web", "flooder")
			var gwMAC net.HardwareAddr
			for _, n := range networks(t, w.d) {
				if n.Name == "web" {
					gwMAC = mustMAC(t, n.GatewayMAC)
				}
			}
			// In chunks smaller than the TAP's queue, each waited for on
			// the port's counters, so that every frame reaches the switch.
			const flood, chunk = 30000, 250
			for sent := 0; sent < flood; sent += chunk {
				frames := make([][]byte, 0, chunk)
				for i := sent; i < sent+chunk; i++ {
					src := net.HardwareAddr{0x02, 0xf1, 0, byte(i >> 16), byte(i >> 8), byte(i)}
					frames = append(frames, spoofedUDP(src, gwMAC, fp.Address.Addr(), fp.Gateway))
				}
				sendRaw(t, flooder, fp.IfName, frames...)
				waitDrops(t, w.d, "web", "flooder", map[string]uint64{c.reason: uint64(sent + chunk - c.learnt)})
			}
			for _, n := range networks(t, w.d) {
				if n.Name == "web" && n.FDBEntries > 2+c.learnt {
					t.Errorf("%d MACs in the table after the flood, want at most %d", n.FDBEntries, 2+c.learnt)
				}
			}

			w.d.MustRun("connect", "web", "--netns", late.Path, "--name", "late")
			if err := late.Ping(fp.Gateway.String(), 10); err != nil {
				t.Fatalf("a container connected after the flood cannot ping the gateway: %v", err)
			}
			if err := late.Ping(fp.Address.Addr().String(), 5); err != nil {
				t.Fatalf("a container connected after the flood cannot ping the flooder: %v", err)
			}
		})
	}
}

// --allowed-address lets an endpoint send from more addresses (a router);
// every other source is still dropped. Frames from one port are handled in
// order, so once the refused frame is counted the allowed one has passed.
func TestAllowedAddress(t *testing.T) {
	w := newWorld(t)
	r := netnstest.New(t)
	w.d.MustRun("network", "create", "web", "--subnet", "10.240.0.0/24")
	w.d.MustRun("connect", "web", "--netns", r.Path, "--name", "router",
		"--allowed-address", "10.99.0.0/24", "--allowed-address", "10.98.0.7", "--mac-spoofing")
	ep := endpointNamed(t, w.d, "web", "router")
	if got := strings.Join(ep.AllowedAddresses, ","); got != "10.99.0.0/24,10.98.0.7/32" || !ep.MACSpoofing {
		t.Fatalf("endpoint shows allowed %q, mac_spoofing %v", got, ep.MACSpoofing)
	}
	var gwMAC net.HardwareAddr
	for _, n := range networks(t, w.d) {
		if n.Name == "web" {
			gwMAC = mustMAC(t, n.GatewayMAC)
		}
	}
	m := mustMAC(t, ep.MAC)
	sendRaw(t, r, ep.IfName,
		spoofedUDP(m, gwMAC, netip.MustParseAddr("10.99.0.5"), ep.Gateway),
		spoofedUDP(m, gwMAC, netip.MustParseAddr("10.98.0.7"), ep.Gateway),
		spoofedUDP(m, gwMAC, netip.MustParseAddr("10.98.0.8"), ep.Gateway))
	waitDrops(t, w.d, "web", "router", map[string]uint64{"spoofed_ip": 1})
	if d := endpointNamed(t, w.d, "web", "router").Stats.DropsBy["spoofed_ip"]; d != 1 {
		t.Errorf("spoofed_ip drops = %d, want 1 (only 10.98.0.8)", d)
	}
	if res := w.d.Run("connect", "web", "--netns", netnstest.New(t).Path, "--allowed-address", "10.1.0.0/33"); res.Code == 0 ||
		!strings.Contains(res.Stderr, "10.1.0.0/33") {
		t.Errorf("a bad --allowed-address was accepted or not named: %+v", res)
	}
}
