package e2e_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
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
}
