// Package netnstest gives tests network namespaces of their own: created
// with iproute2 exactly as a user would (`ip netns add`), removed in
// t.Cleanup, and skipped cleanly, with the kernel's reason, where the
// machine refuses to create them (no root, no CAP_SYS_ADMIN).
//
// Tests never touch the host's own interfaces: everything they create lives
// in namespaces made here, and traffic goes only to addresses inside them.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// NS is a network namespace owned by one test.
type NS struct {
	t       testing.TB
	Name    string
	Path    string
	deleted bool
}

// Prefix starts the name of every namespace this package creates, so a
// leftover one is recognisable.
const Prefix = "sytest-"

// New creates a namespace, with its loopback up, and removes it when the
// test ends. It skips the test if the kernel refuses.
func New(t testing.TB) *NS {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipping: iproute2's ip command is not installed (%v)", err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name := Prefix + hex.EncodeToString(rnd[:])
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if os.Geteuid() != 0 || strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
			t.Skipf("skipping: the kernel refused to create a network namespace (needs CAP_SYS_ADMIN): %s", msg)
		}
		t.Fatalf("ip netns add %s: %v: %s", name, err, msg)
	}
	ns := &NS{t: t, Name: name, Path: "/var/run/netns/" + name}
	t.Cleanup(func() {
		if ns.deleted {
			return
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
		// Per-namespace files `ip netns exec` mounts (resolv.conf written
		// by connect --write-resolv-conf), if anything left them.
		os.RemoveAll("/etc/netns/" + name)
	})
	ns.MustRun("ip", "link", "set", "lo", "up")
	return ns
}

// Delete removes the namespace before the test ends (to test what happens
// to whoever used it); the cleanup then has nothing to do.
func Delete(n *NS) (string, error) {
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	if err == nil {
		n.deleted = true
	}
	return string(out), err
}

// Do runs fn inside the namespace (see nsenter.Do).
func (n *NS) Do(fn func() error) error { return nsenter.Do(n.Path, fn) }

// Command returns a command that runs inside the namespace.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(name string, args ...string) string {
	n.t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// Listen opens a TCP listener inside the namespace.
func (n *NS) Listen(addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// ListenPacket opens a UDP socket inside the namespace.
func (n *NS) ListenPacket(addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() (err error) {
		c, err = net.ListenPacket("udp", addr)
		return err
	})
	return c, err
}

// Dial opens a TCP connection from inside the namespace. The connection
// attempt is made in the namespace; the returned conn can be used anywhere.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Addrs returns the IPv4 and IPv6 addresses of interface ifname inside the
// namespace, as `ip -brief addr` reports them.
func (n *NS) Addrs(ifname string) ([]netip.Prefix, error) {
	out, err := n.Run("ip", "-brief", "addr", "show", "dev", ifname)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(out)
	var ps []netip.Prefix
	for _, f := range fields[min(2, len(fields)):] {
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// Ping pings addr from inside the namespace, count times, and reports
// whether every echo was answered.
func (n *NS) Ping(addr string, count int) error {
	_, err := n.Run("ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2", addr)
	return err
}

// Transfer sends n pseudo-random bytes over TCP from namespace c to a
// server in namespace s listening on addr, and fails the test unless the
// server received exactly what was sent (SHA-256 of both ends). It returns
// the digest and how long the transfer took. If dial is given the client
// connects there instead of addr (a published port leading to addr).
func Transfer(t testing.TB, c, s *NS, addr string, n int64, dial ...string) ([32]byte, time.Duration) {
	t.Helper()
	target := addr
	if len(dial) > 0 {
		target = dial[0]
	}
	l, err := s.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan [32]byte, 1)
	go func() {
		defer close(got)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Minute))
		h := sha256.New()
		io.Copy(h, conn)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := c.Dial(ctx, "tcp", target)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", target, c.Name, err)
	}
	defer conn.Close()
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(mrand.New(mrand.NewSource(n)), n), h)
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	if _, err := io.Copy(conn, src); err != nil {
		t.Fatalf("send %d bytes to %s: %v", n, addr, err)
	}
	conn.(*net.TCPConn).CloseWrite()
	var want [32]byte
	copy(want[:], h.Sum(nil))
	select {
	case sum, ok := <-got:
		if !ok || sum != want {
			t.Fatalf("server at %s received sha256 %x, client sent %x", addr, sum, want)
		}
	case <-ctx.Done():
		t.Fatalf("transfer to %s timed out", addr)
	}
	return want, time.Since(start)
}
