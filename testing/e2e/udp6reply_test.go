package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// UDP over IPv6 to a container's static address, as iperf3 -u -6 and many
// DNS and QUIC clients do it: b's server answers from an unconnected
// socket bound to [::], so the kernel picks the source of each reply; a's
// client has a connected socket, which drops replies from any address but
// the one it sent to. b has exactly its static address (plus link-local)
// once the gateway's Router Advertisements have been processed: no SLAAC
// address beside it to be picked as the source.
func TestDualStackUDPRepliesFromStaticAddress(t *testing.T) {
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "udp6", "--subnet", "10.246.0.0/24", "--subnet", "fd00:246::/64")
	d.MustRun("connect", "udp6", "--netns", nsA.Path, "--name", "a")
	d.MustRun("connect", "udp6", "--netns", nsB.Path, "--name", "b", "--ip6", "fd00:246::b")

	// The RA has reached b (its RA default route) and no address of b's
	// is tentative any more: a SLAAC address, if b formed one, would now
	// be preferred.
	waitRAApplied(t, nsB, "eth0")
	out := nsB.MustRun("ip", "-6", "-o", "addr", "show", "dev", "eth0")
	var global, link []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		if strings.Contains(line, "scope link") {
			link = append(link, f[3])
		} else {
			global = append(global, f[3])
		}
	}
	if len(global) != 1 || global[0] != "fd00:246::b/64" || len(link) != 1 {
		t.Errorf("b's eth0 has IPv6 addresses %v and link-local %v, want exactly fd00:246::b/64 and one link-local:\n%s", global, link, out)
	}

	srv, err := nsB.ListenPacket("[::]:7246")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // echo, answering from whatever source the kernel picks
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { srv.Close(); wg.Wait() })

	// Where do the replies come from? An unconnected socket in a sees.
	probe, err := nsA.ListenPacket("[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	from, err := echoFrom(probe, "[fd00:246::b]:7246")
	if err != nil {
		t.Fatalf("echo from an unconnected socket in a: %v", err)
	}
	if got := netip.MustParseAddrPort(from.String()).Addr(); got != netip.MustParseAddr("fd00:246::b") {
		t.Errorf("b answered from %s, want its static fd00:246::b", got)
	}

	// The connected client, as iperf3 -u and DNS resolvers have it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := nsA.Dial(ctx, "udp6", "[fd00:246::b]:7246")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		msg := fmt.Sprintf("datagram %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("connected UDP socket in a: no reply to %q from fd00:246::b: %v", msg, err)
		}
		if string(buf[:n]) != msg {
			t.Fatalf("reply %q to %q", buf[:n], msg)
		}
	}
}

// waitRAApplied waits until ifname in ns has a default route from a
// Router Advertisement and no tentative address (duplicate address
// detection of every address it formed is over).
func waitRAApplied(t *testing.T, ns *netnstest.NS, ifname string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := ns.MustRun("ip", "-6", "route", "show", "default", "proto", "ra", "dev", ifname)
		tent := ns.MustRun("ip", "-6", "addr", "show", "dev", ifname, "tentative")
		if strings.TrimSpace(r) != "" && strings.TrimSpace(tent) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no RA default route, or addresses still tentative, after 15 s:\n%s\n%s", ifname, r, tent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// echoFrom sends one datagram from the unconnected c to addr, retrying a
// few times, and returns the source of the echo.
func echoFrom(c net.PacketConn, addr string) (net.Addr, error) {
	dst, err := net.ResolveUDPAddr("udp6", addr)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 64)
	for range 3 {
		if _, err := c.WriteTo([]byte("where from"), dst); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := c.ReadFrom(buf)
		if err == nil && string(buf[:n]) == "where from" {
			return from, nil
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no echo from %s in 3 tries", addr)
}
