// Package nsenter runs Go code inside another network namespace.
//
// A network namespace is a property of an OS thread. Do locks a goroutine
// to its thread, switches that thread into the target namespace, runs the
// function and switches back. Sockets and TAP file descriptors opened by the
// function belong to the target namespace for the rest of their life, on
// whatever thread later uses them.
//
// If switching back fails the thread is left locked, so that it exits with
// its goroutine instead of returning to the scheduler in the wrong
// namespace (the same rule as the CNI plugins' ns package).
//
// Do cannot enter a user namespace: a multi-threaded process may not
// setns(CLONE_NEWUSER). Rootless use goes through a helper process instead.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ID identifies a namespace: the device and inode of its nsfs file, which
// stay the same for every path that refers to it and change when a
// namespace is gone and a new one takes the path.
type ID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// nsGetNSType is NS_GET_NSTYPE (linux/nsfs.h: _IO(0xb7, 0x3)), which
// golang.org/x/sys/unix does not define: it returns the CLONE_NEW* type of
// a namespace file.
const nsGetNSType = 0xb703

// Stat returns the ID of the network namespace at path, and an error naming
// the path if it is missing, is not a namespace, or is a namespace of
// another kind (a mount or PID namespace).
func Stat(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ID{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	notNet := fmt.Errorf("network namespace %s: not a network namespace file (want a path like /var/run/netns/NAME or /proc/PID/ns/net)", path)
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return ID{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return ID{}, notNet
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return ID{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	kind, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err != nil {
		return ID{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	if kind != unix.CLONE_NEWNET {
		return ID{}, notNet
	}
	return ID{Dev: st.Dev, Ino: st.Ino}, nil
}

// ErrOwnNamespace is returned by Foreign for the caller's own network
// namespace.
var ErrOwnNamespace = errors.New("it is the daemon's own network namespace (the host's): a TAP there would be a host interface, not a container's")

// Foreign is Stat that also refuses the calling process's own network
// namespace, whatever path names it (/proc/self/ns/net, /proc/1/ns/net, a
// bind mount of it).
func Foreign(path string) (ID, error) {
	id, err := Stat(path)
	if err != nil {
		return ID{}, err
	}
	self, err := Current()
	if err != nil {
		return ID{}, err
	}
	if id == self {
		return ID{}, fmt.Errorf("network namespace %s: %w", path, ErrOwnNamespace)
	}
	return id, nil
}

// Current returns the ID of the calling process's network namespace.
func Current() (ID, error) { return Stat("/proc/self/ns/net") }

// Do runs fn with the calling goroutine's thread in the network namespace
// at path. fn must not start goroutines that expect to be in the namespace.
func Do(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("return from network namespace %s: %w (thread discarded)", path, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// PathOfPID returns the path of the network namespace of process pid, with
// an error naming the pid if it does not exist.
func PathOfPID(pid int) (string, error) {
	p := fmt.Sprintf("/proc/%d/ns/net", pid)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	return p, nil
}
