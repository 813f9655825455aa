package netnstest_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nsenter"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A namespace is a namespace of its own, as root or not: its interfaces
// are not the host's, commands work inside it, and it is gone once
// deleted.
func TestNamespace(t *testing.T) {
	ns := newWithLink(t)
	if _, err := os.Stat("/sys/class/net/v0"); err == nil {
		t.Fatal("v0 appeared in the test's own namespace")
	}
	if out, err := netnstest.Delete(ns); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	if _, err := nsenter.Stat(ns.Path); err == nil {
		t.Errorf("%s still exists after Delete", ns.Path)
	}
}

// newWithLink returns a new namespace with 10.9.0.1/24 on v0, one end of
// a veth pair whose other end, v1, has no address.
func newWithLink(t *testing.T) *netnstest.NS {
	t.Helper()
	ns := netnstest.New(t)
	t.Logf("euid %d: namespace %s at %s", os.Geteuid(), ns.Name, ns.Path)
	host, err := nsenter.Current()
	if err != nil {
		t.Fatal(err)
	}
	id, err := nsenter.Stat(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	if id == host {
		t.Fatal("the namespace is the test's own")
	}
	ns.MustRun("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ns.MustRun("ip", "addr", "add", "10.9.0.1/24", "dev", "v0")
	ns.MustRun("ip", "link", "set", "v0", "up")
	ns.MustRun("ip", "link", "set", "v1", "up")
	if links := ns.MustRun("ip", "-brief", "link"); !strings.Contains(links, "v0") || !strings.Contains(links, "lo") {
		t.Fatalf("links in the namespace:\n%s", links)
	}
	return ns
}

// Sockets made by the package belong to the namespace, as root or not:
// TCP and UDP inside it, a refused port refused, and a connect to an
// address nobody answers for bounded by its context.
func TestSockets(t *testing.T) {
	ns := newWithLink(t)
	l, err := ns.Listen("10.9.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", "10.9.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	c.(interface{ CloseWrite() error }).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(c); string(got) != "ping" {
		t.Errorf("echo through the namespace: %q (%v), want ping", got, err)
	}
	c.Close()

	// A closed port in the namespace refuses.
	if c, err := ns.Dial(ctx, "tcp", "10.9.0.1:7001"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a closed port in the namespace: %v, want connection refused", err)
		if c != nil {
			c.Close()
		}
	}
	// Nothing on v0's link answers ARP for 10.9.0.2: a connect there
	// waits until the context ends.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	if c, err := ns.Dial(short, "tcp", "10.9.0.2:80"); err == nil {
		c.Close()
		t.Error("connected to an address nothing answers for")
	} else if took := time.Since(start); took < 150*time.Millisecond || took > 5*time.Second {
		t.Errorf("dial with a 200 ms deadline ended after %v (%v)", took, err)
	}

	// UDP.
	pc, err := ns.ListenPacket("10.9.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := ns.Dial(ctx, "udp", "10.9.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("datagram"))
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := pc.ReadFrom(buf); string(buf[:n]) != "datagram" {
		t.Errorf("UDP in the namespace: %q (%v)", buf[:n], err)
	}
}

// Two namespaces of one test can be wired together: an interface made in
// one moves into the other by its Name.
func TestNamespacesConnect(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	a.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.Name)
	a.MustRun("ip", "addr", "add", "10.9.1.1/24", "dev", "eth0")
	a.MustRun("ip", "link", "set", "eth0", "up")
	b.MustRun("ip", "addr", "add", "10.9.1.2/24", "dev", "eth0")
	b.MustRun("ip", "link", "set", "eth0", "up")
	sum, _ := netnstest.Transfer(t, a, b, "10.9.1.2:7000", 1<<20)
	t.Logf("1 MiB from %s to %s, sha256 %x", a.Name, b.Name, sum[:6])
}
