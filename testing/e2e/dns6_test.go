package e2e_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// aaaaRecords returns the AAAA addresses of r.
func aaaaRecords(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.AAAA); ok {
			out = append(out, a.AAAA.String())
		}
	}
	return out
}

// DNS on a dual-stack network: names and aliases have AAAA records and
// ip6.arpa PTR records, answered at the gateway's IPv6 address over UDP
// and TCP (miekg/dns and dig); glibc (getent ahosts) sees both families through the written
// resolv.conf, which names the gateway's two addresses; other names are
// forwarded to the host's resolver reached over IPv6 (here one in a test
// namespace at fd00:213::2), which sees the query from the host's IPv6
// address.
func TestDualStackDNS(t *testing.T) {
	var up *upstream
	w := newWorld(t, addIPv6, func(w *world) {
		up = startUpstream(t, w.inet, "["+inet6+"]")
		if err := os.WriteFile(w.d.ResolvConf, []byte("nameserver "+inet6+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	web, c := netnstest.New(t), netnstest.New(t)
	w.d.MustRun("network", "create", "dual", "--subnet", "10.251.0.0/24", "--subnet", "fd00:251::/64")
	w.d.MustRun("connect", "dual", "--netns", web.Path, "--name", "web", "--alias", "cache", "--ip6", "fd00:251::80")
	w.d.MustRun("connect", "dual", "--netns", c.Path, "--name", "c", "--write-resolv-conf")
	if b, err := os.ReadFile("/etc/netns/" + c.Name + "/resolv.conf"); err != nil || !strings.Contains(string(b), "nameserver 10.251.0.1\nnameserver fd00:251::1\n") {
		t.Errorf("written resolv.conf %q (%v), want both gateway addresses as nameservers", b, err)
	}

	for _, proto := range []string{"udp", "tcp"} {
		for _, name := range []string{"web", "cache", "cache.dual"} {
			if got := aaaaRecords(query(t, c, proto, "fd00:251::1", name, dns.TypeAAAA)); !slices.Equal(got, []string{"fd00:251::80"}) {
				t.Errorf("%s AAAA %s at fd00:251::1: %v, want fd00:251::80", proto, name, got)
			}
		}
		r := query(t, c, proto, "fd00:251::1", "0.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.5.2.0.0.0.d.f.ip6.arpa", dns.TypePTR)
		var ptrs []string
		for _, rr := range r.Answer {
			if p, ok := rr.(*dns.PTR); ok {
				ptrs = append(ptrs, p.Ptr)
			}
		}
		slices.Sort(ptrs)
		if !slices.Equal(ptrs, []string{"cache.dual.", "web.dual."}) {
			t.Errorf("%s PTR for fd00:251::80: %v, want the name and the alias", proto, ptrs)
		}
	}
	// dig, a real client, over IPv6 to the gateway.
	if out, err := c.Run("dig", "-6", "+short", "+time=3", "+tries=1", "@fd00:251::1", "AAAA", "web.dual"); err != nil || strings.TrimSpace(out) != "fd00:251::80" {
		t.Errorf("dig -6 @fd00:251::1 AAAA web.dual: %q (%v), want fd00:251::80", out, err)
	}
	if out, err := c.Run("dig", "-6", "+short", "+time=3", "+tries=1", "@fd00:251::1", "-x", "fd00:251::80"); err != nil || !strings.Contains(out, "cache.dual.") || !strings.Contains(out, "web.dual.") {
		t.Errorf("dig -6 -x fd00:251::80: %q (%v), want web.dual. and cache.dual.", out, err)
	}
	out, err := exec.Command("ip", "netns", "exec", c.Name, "getent", "ahosts", "cache").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fd00:251::80") || !strings.Contains(string(out), "10.251.0.2") {
		t.Errorf("getent ahosts cache from c: %v\n%s\nwant fd00:251::80 and 10.251.0.2", err, out)
	}

	// Forwarded over IPv6, asked at either gateway address.
	for _, server := range []string{"fd00:251::1", "10.251.0.1"} {
		if got := aRecords(query(t, c, "udp", server, "www.example.test", dns.TypeA)); !slices.Equal(got, []string{"192.0.2.10"}) {
			t.Errorf("www.example.test at %s: %v, want the IPv6 upstream's 192.0.2.10", server, got)
		}
	}
	if !containsString(up.asked(), "udp www.example.test.") {
		t.Errorf("the IPv6 upstream was not asked; it saw %q", up.asked())
	}
	if from := up.from(); len(from) == 0 || !strings.HasPrefix(from[0], "["+host6+"]:") {
		t.Errorf("the IPv6 upstream saw queries from %v, want the host's %s", from, host6)
	}
	for _, q := range up.asked() {
		if strings.Contains(q, "ip6.arpa") || strings.Contains(q, " cache.") || strings.Contains(q, " web.") {
			t.Errorf("an in-network name reached the upstream: %q", q)
		}
	}
}
