package e2e_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// Hairpin over IPv6: a container reaches published ports, its own and
// another's, through the gateway's IPv6 address and through the host's
// IPv6 address, masqueraded to the gateway's IPv6 address as IPv4 hairpin
// is to its IPv4 one; conntrack and nat ls show the IPv6 flow and rule.
func TestDualStackHairpin(t *testing.T) {
	w := newWorld(t, addIPv6)
	a, b := netnstest.New(t), netnstest.New(t)
	whoServer(t, b, "[::]:80")
	whoServer(t, a, "[::]:90")
	w.d.MustRun("network", "create", "web", "--subnet", "10.252.0.0/24", "--subnet", "fd00:252::/64")
	w.d.MustRun("connect", "web", "--netns", a.Path, "--name", "a", "-p", "18290:90")
	w.d.MustRun("connect", "web", "--netns", b.Path, "--name", "b", "-p", "18280:80")
	for _, addr := range []string{"[fd00:252::1]:18280", "[" + host6 + "]:18280", "[fd00:252::1]:18290", "[" + host6 + "]:18290"} {
		if got := askWho(t, a, addr); !strings.HasPrefix(got, "[fd00:252::1]:") {
			t.Errorf("a → %s: the server saw %q, want the gateway's IPv6 address (hairpin masquerade)", addr, got)
		}
	}
	if got := askWho(t, a, "10.252.0.1:18280"); !strings.Contains(got, "10.252.0.1") {
		t.Errorf("a → 10.252.0.1:18280: the server saw %q, want the gateway's IPv4 address", got)
	}
	ct := w.d.MustRun("conntrack", "ls")
	if !strings.Contains(ct, "fd00:252::2") || !strings.Contains(ct, "dport=18280") {
		t.Errorf("conntrack ls shows no IPv6 hairpin flow:\n%s", ct)
	}
	if rules := w.d.MustRun("nat", "ls", "web"); !strings.Contains(rules, "fd00:252::3") {
		t.Errorf("nat ls shows no IPv6 DNAT rule for b's port:\n%s", rules)
	}
}

// --icc=false on a dual-stack network: endpoints reach the gateway over
// both families but not each other, directly (ping -6, TCP) or through a
// published port at the gateway's or the host's IPv6 address.
func TestDualStackICCFalse(t *testing.T) {
	w := newWorld(t, addIPv6)
	a, b := netnstest.New(t), netnstest.New(t)
	whoServer(t, b, "[::]:80")
	w.d.MustRun("network", "create", "iso", "--subnet", "10.253.0.0/24", "--subnet", "fd00:253::/64", "--icc=false")
	w.d.MustRun("connect", "iso", "--netns", a.Path, "--name", "a")
	w.d.MustRun("connect", "iso", "--netns", b.Path, "--name", "b", "--ip6", "fd00:253::b", "-p", "18380:80")
	for _, gw := range []string{"10.253.0.1", "fd00:253::1"} {
		if err := a.Ping(gw, 1); err != nil {
			t.Fatalf("--icc=false must still allow the gateway %s: %v", gw, err)
		}
	}
	if out, ok, _ := ping6(a, "fd00:253::b", 1); ok {
		t.Errorf("--icc=false: a pinged b over IPv6:\n%s", out)
	}
	for _, addr := range []string{"[fd00:253::b]:80", "[fd00:253::1]:18380", "[" + host6 + "]:18380"} {
		if _, err := dialErr(a, addr, 3*time.Second); err == nil {
			t.Errorf("--icc=false: a reached b at %s", addr)
		}
	}
	// From outside the network, b's port is published as usual.
	if got := askWho(t, w.inet, "["+host6+"]:18380"); !strings.Contains(got, inet6) {
		t.Errorf("inet → b's published port over IPv6: the server saw %q, want %s", got, inet6)
	}
}
