// Package netnstest gives tests network namespaces of their own, removed
// in t.Cleanup. As root they are created with iproute2 exactly as a user
// would (`ip netns add`). As an ordinary user they are created the way a
// rootless runtime creates them (`unshare -Urn`): a small holder process
// in a new user and network namespace of its own (userns.go). A test is
// skipped, with the kernel's reason, only where the kernel refuses both.
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
	"errors"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// NS is a network namespace owned by one test.
type NS struct {
	t testing.TB
	// Name names the namespace for iproute2 (ip link ... netns NAME):
	// its name under /var/run/netns as root, its holder's PID in a user
	// namespace.
	Name string
	// Path is the namespace's file: /var/run/netns/NAME as root,
	// /proc/PID/ns/net of the holder process in a user namespace.
	Path    string
	deleted bool
	holder  *holder // without root: holds the namespace; nil as root
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
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skipf("skipping: util-linux's nsenter command is not installed (%v)", err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name := Prefix + hex.EncodeToString(rnd[:])
	var ns *NS
	if os.Geteuid() == 0 {
		ns = newNamed(t, name)
	} else {
		ns = newInUserNS(t, name)
	}
	ns.MustRun("ip", "link", "set", "lo", "up")
	return ns
}

// newNamed creates the namespace with ip netns add.
func newNamed(t testing.TB, name string) *NS {
	t.Helper()
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
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
	return ns
}

// Delete removes the namespace before the test ends (to test what happens
// to whoever used it); the cleanup then has nothing to do.
func Delete(n *NS) (string, error) {
	if n.holder != nil {
		if err := n.holder.stop(); err != nil {
			return "", err
		}
		n.deleted = true
		return "", nil
	}
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	if err == nil {
		n.deleted = true
	}
	return string(out), err
}

// Do runs fn inside the namespace (see nsenter.Do). In a user namespace
// (without root) the kernel refuses: a process with threads may not
// enter another user namespace, and without entering it, it may not enter
// the network namespace. Do then skips the test, saying so; call it only
// from the test's goroutine. (Listen, ListenPacket, Dial and Command work
// in either kind of namespace.)
func (n *NS) Do(fn func() error) error {
	n.t.Helper()
	err := nsenter.Do(n.Path, fn)
	if n.holder != nil && errors.Is(err, unix.EPERM) {
		n.t.Skipf("skipping: the kernel refuses to let this unprivileged, multi-threaded process enter namespace %s: %v", n.Name, err)
	}
	return err
}

// Command returns a command that runs inside the namespace (as root in it,
// in the test binary's user namespace).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	enter := []string{"--net=" + n.Path}
	if n.holder != nil {
		enter = []string{"--preserve-credentials", "--user=" + n.holder.userPath(), "--net=" + n.Path}
	}
	return exec.CommandContext(ctx, "nsenter", append(append(enter, "--", name), args...)...)
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

// Socket returns a new socket of the namespace (socket(2) with protocol
// 0; non-blocking), in either kind of namespace: a raw packet socket to
// write frames to an interface, say.
func (n *NS) Socket(domain, typ int) (*os.File, error) {
	if n.holder != nil {
		return n.holder.socket(domain, typ)
	}
	var f *os.File
	err := n.Do(func() error {
		fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket in %s: %w", n.Name, err)
		}
		f = os.NewFile(uintptr(fd), "netnstest-socket")
		return nil
	})
	return f, err
}

// Listen opens a TCP listener inside the namespace.
func (n *NS) Listen(addr string) (net.Listener, error) {
	if n.holder != nil {
		return n.holder.listen(addr)
	}
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// ListenPacket opens a UDP socket inside the namespace.
func (n *NS) ListenPacket(addr string) (net.PacketConn, error) {
	if n.holder != nil {
		return n.holder.listenPacket(addr)
	}
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
	if n.holder != nil {
		return n.holder.dial(ctx, network, addr)
	}
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

// Ifindex returns the index of interface ifname inside the namespace, as
// `ip -o link` reports it. (Not /sys/class/net: sysfs shows the
// namespace of whoever mounted it, which nsenter does not change.)
func (n *NS) Ifindex(ifname string) (int, error) {
	out, err := n.Run("ip", "-o", "link", "show", "dev", ifname)
	if err != nil {
		return 0, err
	}
	index, _, ok := strings.Cut(out, ":")
	i, err := strconv.Atoi(strings.TrimSpace(index))
	if !ok || err != nil {
		return 0, fmt.Errorf("in %s: ip -o link show dev %s: no index in %q", n.Name, ifname, out)
	}
	return i, nil
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
