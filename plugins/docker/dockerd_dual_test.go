package docker

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// Docker 20.10 with a dual-stack Switchyard network (`docker network
// create --ipv6 --subnet 10.95.0.0/24 --subnet fd00:95::/64 -d switchyard
// --ipam-driver switchyard`): each container gets an address of each
// family, a default route of each (the IPv6 one from the gateway's Router
// Advertisements), no IPv6 address but the one Docker's IPAM gave it (the
// advertisements carry no autonomous flag), reaches the other over IPv6,
// and its port published on [::1] answers from the host.
func TestDockerdDualStack(t *testing.T) {
	h := startPluginHarness(t)
	dk, img, client := h.dk, h.img, h.client
	ctx := context.Background()
	taps := map[string]bool{} // every TAP the test saw
	defer h.close(t, taps, []string{"rm", "-f", "dual1", "dual2", "dual3"}, []string{"network", "rm", "dual"})

	dk.Docker("network", "create", "--ipv6", "-d", Name, "--ipam-driver", Name,
		"--subnet", "10.95.0.0/24", "--subnet", "fd00:95::/64", "-o", "name=dual", "dual")
	n, err := client.Network(ctx, "dual")
	if err != nil || n.Subnet.String() != "10.95.0.0/24" || n.Subnet6.String() != "fd00:95::/64" || n.Gateway6.String() != "fd00:95::1" || n.SLAAC {
		t.Fatalf("switchyard network dual: %+v, %v; want 10.95.0.0/24 and fd00:95::/64 via fd00:95::1, SLAAC off", n, err)
	}
	gwLL := "fe80::" // the gateway's link-local address: fe80:: and its EUI-64
	if m, err := net.ParseMAC(n.GatewayMAC); err == nil {
		gwLL = netip.AddrFrom16([16]byte{0xfe, 0x80, 8: m[0] ^ 2, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]}).String()
	}
	serve := "mkdir -p /w && echo hello from $(hostname) > /w/index.html && exec httpd -f -p 80 -h /w"
	dk.Docker("run", "-d", "--name", "dual1", "--hostname", "dual1", "--network", "dual", "-p", "[::1]:18095:80", img, "sh", "-c", serve)
	dk.Docker("run", "-d", "--name", "dual2", "--hostname", "dual2", "--network", "dual", img, "sh", "-c", serve)
	eps, err := client.Endpoints(ctx, "dual")
	if err != nil || len(eps) != 2 {
		t.Fatalf("endpoints of dual: %+v, %v; want two", eps, err)
	}
	for _, e := range eps {
		taps[e.IfName] = true
		if !strings.HasPrefix(e.Address6.String(), "fd00:95::") || e.Gateway6.String() != "fd00:95::1" {
			t.Errorf("endpoint %s: IPv6 %s via %s, want an address of fd00:95::/64 via fd00:95::1", e.Name, e.Address6, e.Gateway6)
		}
	}

	for i, c := range []string{"dual1", "dual2"} {
		addr := dk.Docker("exec", c, "ip", "-o", "addr", "show", "eth0")
		want4, want6 := []string{"10.95.0.2/24", "10.95.0.3/24"}[i], []string{"fd00:95::2/64", "fd00:95::3/64"}[i]
		if !strings.Contains(addr, "inet "+want4) || !strings.Contains(addr, "inet6 "+want6) {
			t.Errorf("%s's eth0: %q; want %s and %s", c, addr, want4, want6)
		}
		// The default route comes from the gateway's Router
		// Advertisements, once the container's kernel has solicited one.
		// Once it is in, and no address is tentative, eth0 has Docker's
		// address and its link-local one only: the advertisement had no
		// autonomous flag, so the kernel formed no SLAAC address, whatever
		// Docker's version (20.10 applies a container's --sysctl too late
		// for autoconf=0 to stop one; docs/runtimes-docker.md).
		var r, addrs string
		waitFor(t, c+"'s IPv6 default route, its addresses settled", func() bool {
			r = dk.Docker("exec", c, "ip", "-6", "route", "show", "default")
			addrs = dk.Docker("exec", c, "ip", "-6", "-o", "addr", "show", "eth0")
			return strings.Contains(r, "via "+gwLL) && !strings.Contains(addrs, "tentative")
		})
		if strings.Count(addrs, "inet6 ") != 2 || !strings.Contains(addrs, "inet6 "+want6) || !strings.Contains(addrs, "inet6 fe80::") {
			t.Errorf("%s's IPv6 addresses after the gateway's advertisement: %q; want %s and its link-local address only", c, addrs, want6)
		}
	}
	if out, err := dk.TryDocker("exec", "dual2", "ping", "-6", "-c", "2", "-W", "2", "fd00:95::2"); err != nil {
		t.Errorf("dual2 pings dual1 over IPv6: %v\n%s", err, out)
	}
	if out, err := dk.TryDocker("exec", "dual2", "wget", "-q", "-O", "-", "http://[fd00:95::2]/"); err != nil || out != "hello from dual1\n" {
		t.Errorf("dual2 → http://[fd00:95::2]/: %q, %v", out, err)
	}
	if out, err := dk.TryDocker("exec", "dual2", "ping", "-6", "-c", "1", "-W", "2", "fd00:95::1"); err != nil {
		t.Errorf("dual2 pings the IPv6 gateway: %v\n%s", err, out)
	}
	var body string
	waitFor(t, "dual1 through [::1]:18095", func() bool { body, err = get("http://[::1]:18095/"); return err == nil })
	if body != "hello from dual1\n" {
		t.Errorf("[::1]:18095 answered %q", body)
	}

	// --ip6 chooses the IPv6 address, and the daemon binds the endpoint
	// to it (its traffic passes port security).
	dk.Docker("run", "-d", "--name", "dual3", "--network", "dual", "--ip6", "fd00:95::99", img, "sleep", "600")
	if addr := dk.Docker("exec", "dual3", "ip", "-6", "-o", "addr", "show", "eth0"); !strings.Contains(addr, "inet6 fd00:95::99/64") {
		t.Errorf("dual3 with --ip6: %q; want fd00:95::99/64", addr)
	}
	if out, err := dk.TryDocker("exec", "dual3", "ping", "-6", "-c", "1", "-W", "2", "fd00:95::2"); err != nil {
		t.Errorf("dual3 pings dual1 over IPv6: %v\n%s", err, out)
	}
	if eps, err := client.Endpoints(ctx, "dual"); err == nil {
		for _, e := range eps {
			taps[e.IfName] = true
		}
	}

	dk.Docker("rm", "-f", "dual1", "dual2", "dual3")
	dk.Docker("network", "rm", "dual")
	nets, _ := client.Networks(ctx)
	eps, _ = client.Endpoints(ctx, "")
	if len(nets) != 0 || len(eps) != 0 {
		t.Errorf("after rm: networks %+v, endpoints %+v", nets, eps)
	}
}
