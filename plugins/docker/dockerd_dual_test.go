package docker

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Docker 20.10 with a dual-stack Switchyard network (`docker network
// create --ipv6 --subnet 10.95.0.0/24 --subnet fd00:95::/64 -d switchyard
// --ipam-driver switchyard`): each container gets an address of each
// family, a default route of each (the IPv6 one from the gateway's Router
// Advertisements), reaches the other over IPv6, and its port
// published on [::1] answers from the host.
func TestDockerdDualStack(t *testing.T) {
	h := startPluginHarness(t)
	dk, img, client := h.dk, h.img, h.client
	ctx := context.Background()
	taps := map[string]bool{} // every TAP the test saw
	defer h.close(t, taps, []string{"rm", "-f", "dual1", "dual2", "dual3", "dual4"}, []string{"network", "rm", "dual"})

	dk.Docker("network", "create", "--ipv6", "-d", Name, "--ipam-driver", Name,
		"--subnet", "10.95.0.0/24", "--subnet", "fd00:95::/64", "-o", "name=dual", "dual")
	n, err := client.Network(ctx, "dual")
	if err != nil || n.Subnet.String() != "10.95.0.0/24" || n.Subnet6.String() != "fd00:95::/64" || n.Gateway6.String() != "fd00:95::1" {
		t.Fatalf("switchyard network dual: %+v, %v; want 10.95.0.0/24 and fd00:95::/64 via fd00:95::1", n, err)
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
		var r string
		waitFor(t, c+"'s IPv6 default route", func() bool {
			r = dk.Docker("exec", c, "ip", "-6", "route", "show", "default")
			return strings.Contains(r, "via "+gwLL)
		})
		// Docker configures the addresses itself, and the kernel forms a
		// SLAAC address beside them (docs/runtimes-docker.md, "IPv6
		// addresses"): shown, not checked.
		t.Logf("%s's IPv6 addresses after the gateway's advertisement:\n%s", c, dk.Docker("exec", c, "ip", "-6", "addr", "show", "eth0"))
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
	// The documented way to have only the static address: autoconf off
	// for eth0. Docker 27 and later apply it as they configure the
	// interface (moby/moby#47686); once the advertisement is in (its
	// default route) and no address is tentative, eth0 has fd00:95::4
	// and its link-local address only. Docker 20.10 to 26 apply it when
	// the container's task is created, after the interface is up: the
	// kernel's router solicitation, 1-2 s after the interface comes up,
	// usually comes later, but on a loaded machine the gateway's answer
	// can come first and a SLAAC address form (seen once in CI, with
	// Debian's 20.10). There the test checks what is certain: the
	// setting is applied, and the static address is there.
	dk.Docker("run", "-d", "--name", "dual4", "--network", "dual", "--sysctl", "net.ipv6.conf.eth0.autoconf=0", img, "sleep", "600")
	strict := dockerAppliesEndpointSysctls(dk.Docker("version", "--format", "{{.Server.Version}}"))
	var addr4 string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := dk.Docker("exec", "dual4", "ip", "-6", "route", "show", "default")
		addr4 = dk.Docker("exec", "dual4", "ip", "-6", "-o", "addr", "show", "eth0")
		if strings.Contains(r, "via "+gwLL) && !strings.Contains(addr4, "tentative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dual4: no RA default route, or addresses still tentative, after 15 s:\n%s\n%s", r, addr4)
		}
	}
	if v := strings.TrimSpace(dk.Docker("exec", "dual4", "cat", "/proc/sys/net/ipv6/conf/eth0/autoconf")); v != "0" {
		t.Errorf("dual4's eth0 autoconf is %q after --sysctl net.ipv6.conf.eth0.autoconf=0; want 0", v)
	}
	if !strings.Contains(addr4, "inet6 fd00:95::4/64") || !strings.Contains(addr4, "inet6 fe80::") {
		t.Errorf("dual4 with autoconf=0: %q; want fd00:95::4/64 and its link-local address", addr4)
	}
	switch n := strings.Count(addr4, "inet6 "); {
	case n == 2:
	case strict:
		t.Errorf("dual4 with autoconf=0: %q; want fd00:95::4/64 and its link-local address only", addr4)
	default:
		t.Logf("dual4 with autoconf=0 has a SLAAC address too: this Docker applied the setting after the advertisement (see the comment above):\n%s", addr4)
	}
	if eps, err := client.Endpoints(ctx, "dual"); err == nil {
		for _, e := range eps {
			taps[e.IfName] = true
		}
	}

	dk.Docker("rm", "-f", "dual1", "dual2", "dual3", "dual4")
	dk.Docker("network", "rm", "dual")
	nets, _ := client.Networks(ctx)
	eps, _ = client.Endpoints(ctx, "")
	if len(nets) != 0 || len(eps) != 0 {
		t.Errorf("after rm: networks %+v, endpoints %+v", nets, eps)
	}
}

// dockerAppliesEndpointSysctls reports whether a Docker server of version v
// ("20.10.24+dfsg1", "28.1.1") applies --sysctl settings for eth0 as it
// configures the interface (27.0 and later), rather than when the
// container's task is created, after the interface is up.
func dockerAppliesEndpointSysctls(v string) bool {
	major, _, _ := strings.Cut(strings.TrimSpace(v), ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 27
}

func TestDockerAppliesEndpointSysctls(t *testing.T) {
	for v, want := range map[string]bool{
		"20.10.24+dfsg1": false, "26.1.4": false, "27.0.1": true, "28.1.1\n": true, "": false, "dev": false,
	} {
		if got := dockerAppliesEndpointSysctls(v); got != want {
			t.Errorf("dockerAppliesEndpointSysctls(%q) = %v, want %v", v, got, want)
		}
	}
}
