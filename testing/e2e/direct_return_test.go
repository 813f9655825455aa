package e2e_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// httpWho serves, on addr in ns, a page that says who asked: the
// client's address as the server sees it.
func httpWho(t *testing.T, ns interface {
	Listen(string) (net.Listener, error)
}, addr string) {
	t.Helper()
	l, err := ns.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.RemoteAddr))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// The return path: host B's own namespace (not a container, its VPC
// address 10.213.80.2, in no routed subnet) pings and curls a container
// on host A by its address, and the container sees B's real address; a
// process in host A's namespace that binds its VPC address instead of the
// host interface's does the same. The replies go back through A's host
// interface (not the masqueraded egress), and network inspect counts
// them.
func TestDirectRoutingReturnPath(t *testing.T) {
	a, b := newDirectHosts(t)
	a.d.MustRun("network", "create", "direct", "--subnet", directSubnetA, "--host-interface", "sy-direct", "--route", directSubnetB)
	ca, addrA := a.container(t, "direct", "ca")
	httpWho(t, ca, addrA+":8080")

	if out, err := b.ns.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", addrA); err != nil {
		t.Fatalf("ping from host B's namespace (%s) to container %s on host A: %v\n%s", directVPCB, addrA, err, out)
	}
	out, err := b.ns.Run("curl", "-sS", "--max-time", "10", "http://"+addrA+":8080/")
	if err != nil || !strings.HasPrefix(out, directVPCB+":") {
		t.Fatalf("curl from host B's namespace to container %s: %q (%v), want the container to see B's own address %s", addrA, out, err, directVPCB)
	}
	out, err = a.ns.Run("curl", "-sS", "--max-time", "10", "--interface", directVPCA, "http://"+addrA+":8080/")
	if err != nil || !strings.HasPrefix(out, directVPCA+":") {
		t.Fatalf("curl from host A's namespace bound to %s: %q (%v), want the container to see %s", directVPCA, out, err, directVPCA)
	}

	n := inspectNetwork(t, a.d, "direct")
	if r := n.ReturnPath; r == nil || r.Senders != 2 || r.Forwarded == 0 {
		t.Errorf("inspect's return path %+v, want the two senders and replies forwarded", r)
	}
	if text := a.d.MustRun("network", "inspect", "direct"); !strings.Contains(text, "Return path:") {
		t.Errorf("inspect text lacks the return path:\n%s", text)
	}
	if text := a.d.MustRun("stats"); !strings.Contains(text, "RETURN SENDERS") || !strings.Contains(text, "direct") {
		t.Errorf("stats lacks the return path:\n%s", text)
	}
}

// Published ports on a direct-routing network: host B's namespace reaches
// a container's published port on host A's VPC address and, at the same
// time, the container itself by address. The container sees B's real
// address both ways; the published port's connection, which the gateway
// opens from B's own address and port, stays the gateway's though B is
// also a sender of the return path.
func TestDirectRoutingPublishedPorts(t *testing.T) {
	a, b := newDirectHosts(t)
	a.d.MustRun("network", "create", "direct", "--subnet", directSubnetA, "--host-interface", "sy-direct", "--route", directSubnetB)
	ns := netnstest.New(t)
	var e api.Endpoint
	if err := json.Unmarshal([]byte(a.d.MustRun("connect", "direct", "--netns", ns.Path, "--name", "web", "-p", "18380:8080", "--format", "json")), &e); err != nil {
		t.Fatal(err)
	}
	addrA := e.Address.Addr().String()
	httpWho(t, ns, "0.0.0.0:8080")

	for i := range 3 {
		// Directly, by address: B becomes a sender of the return path.
		out, err := b.ns.Run("curl", "-sS", "--max-time", "10", "http://"+addrA+":8080/")
		if err != nil || !strings.HasPrefix(out, directVPCB+":") {
			t.Fatalf("round %d: curl %s:8080 from host B: %q (%v), want B's own address", i, addrA, out, err)
		}
		// Through the published port on A's VPC address.
		out, err = b.ns.Run("curl", "-sS", "--max-time", "10", "http://"+directVPCA+":18380/")
		if err != nil || !strings.HasPrefix(out, directVPCB+":") {
			t.Fatalf("round %d: curl the published port %s:18380 from host B: %q (%v), want B's own address", i, directVPCA, out, err)
		}
	}
	if r := inspectNetwork(t, a.d, "direct").ReturnPath; r == nil || r.Senders != 1 {
		t.Errorf("return path %+v, want host B as its one sender", r)
	}
}
