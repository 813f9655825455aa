package netnstest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Namespaces for an ordinary user. Without root, `ip netns add` is
// refused, but the kernel lets any user create a user namespace and, as
// root inside it, network namespaces (where it allows unprivileged user
// namespaces at all). The test binary makes one user namespace, the first
// time a test asks, and in it one network namespace per NS, each held by a
// holder process: the test binary itself, started again.
//
//	test binary ─── user namespace holder (CLONE_NEWUSER; uid 0 inside, mapped to the user)
//	     │
//	     └─ nsenter --user ─► namespace holder (unshare(CLONE_NEWNET) on its main thread)
//	           socketpair (SOCK_SEQPACKET): "socket(AF_INET, SOCK_STREAM)" →
//	                                        ← the socket's fd (SCM_RIGHTS)
//
// Holders live until the test closes their socketpair (or the test binary
// exits, which closes it too). Since every namespace of the binary belongs
// to the one user namespace, commands in one (nsenter, a single-threaded C
// program, may enter a user namespace) can move interfaces into another,
// as ip link ... netns NAME does. Sockets are what tests need in a
// namespace most: a socket belongs to the namespace it was created in,
// whoever binds, listens or connects it later, so a holder only creates
// sockets and passes them back. Running Go code inside it (Do) is what the
// kernel refuses: a process with threads may not enter another user
// namespace.
//
// Holders are served from this package's init, which runs before the test
// binary's TestMain: any test binary that imports netnstest is its own
// holder, with no change to its main.

// holderEnv marks a process started as a holder: holdUser or holdNet.
const holderEnv = "_SWITCHYARD_NETNSTEST_HOLDER"

const (
	holdUser = "user"
	holdNet  = "net"
)

func init() {
	switch os.Getenv(holderEnv) {
	case "":
		return
	case holdUser:
		os.Exit(serveSockets(os.NewFile(3, "netnstest-holder")))
	case holdNet:
		// The main goroutine runs on the main thread during init; keep it
		// there, and give that thread, whose namespace /proc/PID/ns/net
		// shows, a new network namespace. Sockets are made on it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			fmt.Fprintf(os.Stderr, "netnstest holder: unshare a network namespace: %v\n", err)
			os.Exit(1)
		}
		os.Exit(serveSockets(os.NewFile(3, "netnstest-holder")))
	}
}

// serveSockets answers socket requests on conn until it reaches end of
// file: each request is two little-endian int32 (domain, type), each
// answer an int32 errno, with the socket attached when it is 0.
func serveSockets(conn *os.File) int {
	var req [8]byte
	for {
		n, err := conn.Read(req[:])
		if n == 0 || err != nil {
			return 0 // the test is done with the namespace
		}
		if n != len(req) {
			fmt.Fprintf(os.Stderr, "netnstest holder: request of %d bytes, want %d\n", n, len(req))
			return 1
		}
		domain := int(int32(binary.LittleEndian.Uint32(req[0:4])))
		typ := int(int32(binary.LittleEndian.Uint32(req[4:8])))
		var reply [4]byte
		var oob []byte
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			var errno unix.Errno
			if !errors.As(err, &errno) {
				errno = unix.EINVAL
			}
			binary.LittleEndian.PutUint32(reply[:], uint32(errno))
			fd = -1
		} else {
			oob = unix.UnixRights(fd)
		}
		err = unix.Sendmsg(int(conn.Fd()), reply[:], oob, nil, 0)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "netnstest holder: answer: %v\n", err)
			return 1
		}
	}
}

// holder is the test's side of a holder process.
type holder struct {
	cmd  *exec.Cmd
	mu   sync.Mutex // one exchange at a time; guards conn
	conn *os.File   // nil once stopped
}

// rootOnly, if set, is why this test binary's namespace tests need root.
var rootOnly string

// RootOnly makes New skip, without root, saying why: for test binaries
// whose code under test enters namespaces itself (setns), which the kernel
// refuses a process that is neither root nor single-threaded. Call it from
// TestMain, before the tests run.
func RootOnly(why string) { rootOnly = why }

// userNS is the test binary's user namespace, made the first time a test
// needs one; its holder lives as long as the binary.
var userNS struct {
	once sync.Once
	h    *holder
	err  error
}

// newInUserNS creates a network namespace in the binary's user namespace,
// held by a holder process, and stops the holder when the test ends. It
// skips the test if the kernel refuses an unprivileged user namespace.
func newInUserNS(t testing.TB, name string) *NS {
	t.Helper()
	if rootOnly != "" {
		t.Skipf("skipping: needs root: %s", rootOnly)
	}
	userNS.once.Do(func() {
		userNS.h, userNS.err = startHolder(holdUser, func(self string) *exec.Cmd {
			cmd := exec.Command(self)
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags:  syscall.CLONE_NEWUSER,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
			}
			return cmd
		})
	})
	if err := userNS.err; errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL) {
		t.Skipf("skipping: the kernel refused this ordinary user a user namespace (for its network namespaces), "+
			"as kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0 or an LSM policy do: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	user := userNS.h.userPath()
	h, err := startHolder(holdNet, func(self string) *exec.Cmd {
		return exec.Command("nsenter", "--preserve-credentials", "--user="+user, "--", self)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the holder's namespace: its first answer comes after the
	// unshare.
	f, err := h.socket(unix.AF_INET, unix.SOCK_DGRAM)
	if err != nil {
		h.stop()
		t.Fatalf("namespace holder: %v", err)
	}
	f.Close()
	pid := h.cmd.Process.Pid
	ns := &NS{t: t, Name: strconv.Itoa(pid), Path: fmt.Sprintf("/proc/%d/ns/net", pid), holder: h}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("namespace %s: %v", ns.Name, err)
		}
	})
	return ns
}

// startHolder starts the test binary again, through the command command
// makes of its path, as a holder of kind what.
func startHolder(what string, command func(self string) *exec.Cmd) (*holder, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for the namespace holder: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair for the namespace holder: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "netnstest-parent")
	child := os.NewFile(uintptr(fds[1]), "netnstest-child")
	defer child.Close()
	cmd := command(self)
	cmd.Env = append(os.Environ(), holderEnv+"="+what)
	cmd.ExtraFiles = []*os.File{child} // fd 3
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("start a %s namespace holder: %w", what, err)
	}
	return &holder{cmd: cmd, conn: parent}, nil
}

// userPath is the file of the holder's user namespace (for a namespace
// holder, the binary's user namespace).
func (h *holder) userPath() string { return fmt.Sprintf("/proc/%d/ns/user", h.cmd.Process.Pid) }

// stop ends the holder (closing its socket ends its loop) and waits for
// it; the namespace goes with it unless something else holds it. It may be
// called more than once.
func (h *holder) stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return nil
	}
	h.conn.Close()
	h.conn = nil
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("namespace holder %d: %w", h.cmd.Process.Pid, err)
		}
		return nil
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
		return fmt.Errorf("namespace holder %d did not exit within 10 s of its socket closing; killed", h.cmd.Process.Pid)
	}
}

// socket returns a new socket of the holder's network namespace.
func (h *holder) socket(domain, typ int) (*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return nil, errors.New("the namespace is deleted")
	}
	var req [8]byte
	binary.LittleEndian.PutUint32(req[0:4], uint32(domain))
	binary.LittleEndian.PutUint32(req[4:8], uint32(typ))
	if _, err := h.conn.Write(req[:]); err != nil {
		return nil, fmt.Errorf("ask the namespace holder for a socket: %w", err)
	}
	var reply [4]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(h.conn.Fd()), reply[:], oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n != len(reply) {
		return nil, fmt.Errorf("the namespace holder's answer (%d bytes): %v", n, err)
	}
	if errno := unix.Errno(binary.LittleEndian.Uint32(reply[:])); errno != 0 {
		return nil, fmt.Errorf("socket in the namespace: %w", errno)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("the namespace holder sent no socket: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("the namespace holder sent no socket: %v", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), "netnstest-socket"), nil // non-blocking: uses the poller
}

// sockaddr parses addr ("10.0.0.2:80", "[::1]:80", ":80") for a socket
// of network (tcp, tcp4, tcp6, udp, udp4, udp6), and returns the domain,
// the socket type and the address.
func sockaddr(network, addr string) (int, int, unix.Sockaddr, error) {
	var typ int
	switch strings.TrimRight(network, "46") {
	case "tcp":
		typ = unix.SOCK_STREAM
	case "udp":
		typ = unix.SOCK_DGRAM
	default:
		return 0, 0, nil, fmt.Errorf("network %q: want tcp or udp", network)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0, nil, err
	}
	if host == "" {
		host = "0.0.0.0"
		if strings.HasSuffix(network, "6") {
			host = "::"
		}
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("address %q: want an IP address and a port: %w", addr, err)
	}
	if ap.Addr().Is4() {
		return unix.AF_INET, typ, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}, nil
	}
	return unix.AF_INET6, typ, &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}, nil
}

// bound returns a socket of the namespace bound to addr.
func (h *holder) bound(network, addr string) (*os.File, error) {
	domain, typ, sa, err := sockaddr(network, addr)
	if err != nil {
		return nil, err
	}
	f, err := h.socket(domain, typ)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		f.Close()
		return nil, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		f.Close()
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	return f, nil
}

func (h *holder) listen(addr string) (net.Listener, error) {
	f, err := h.bound("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer f.Close()
	if err := unix.Listen(int(f.Fd()), unix.SOMAXCONN); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return net.FileListener(f)
}

func (h *holder) listenPacket(addr string) (net.PacketConn, error) {
	f, err := h.bound("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s/udp: %w", addr, err)
	}
	defer f.Close()
	return net.FilePacketConn(f)
}

// dial connects a socket of the namespace to addr: at once for UDP, and
// for TCP by waiting, through the poller, until the handshake ends or ctx
// does.
func (h *holder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	domain, typ, sa, err := sockaddr(network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	f, err := h.socket(domain, typ)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer f.Close()
	if err := connect(ctx, f, sa); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return net.FileConn(f)
}

func connect(ctx context.Context, f *os.File, sa unix.Sockaddr) error {
	err := unix.Connect(int(f.Fd()), sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var soErr error
	werr := rc.Write(func(fd uintptr) bool {
		// As Go's net package does: a pending handshake reads as no
		// error yet and no peer; wait for the socket to become writable
		// again until it has one or an error.
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			soErr = err
		case v == int(unix.EINPROGRESS), v == int(unix.EALREADY), v == int(unix.EINTR):
			return false
		case v != 0:
			soErr = unix.Errno(v)
		default:
			if _, err := unix.Getpeername(int(fd)); err != nil {
				return false // not connected yet
			}
		}
		return true
	})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	f.SetWriteDeadline(time.Time{})
	return soErr
}
