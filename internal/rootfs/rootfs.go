// Package rootfs reads and writes a file inside another process's root
// directory (its /proc/PID/root) without ever leaving that root.
//
// The daemon may run as root while the directory tree belongs to a
// container, so every path component is untrusted: a container can make
// /etc/resolv.conf a symlink to /etc/shadow, and an ordinary open of
// /proc/PID/root/etc/resolv.conf resolves an absolute symlink against the
// daemon's root, not the container's. Every open here goes through
// openat2(2) with RESOLVE_IN_ROOT (".." and absolute paths stay inside the
// root), RESOLVE_NO_SYMLINKS (a symlink anywhere in the path is refused
// rather than followed) and RESOLVE_NO_MAGICLINKS, and only regular files
// are read or written.
//
// Why not os.Root: it refuses escapes but follows symlinks that stay
// inside the root, and has no mode that refuses every symlink; a
// container's file that is a symlink at all is one this package will not
// touch. openat2 needs Linux 5.6; on older kernels every call fails with
// ErrUnsupported rather than falling back to an unsafe open.
package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned where the kernel has no openat2(2).
var ErrUnsupported = errors.New("the kernel has no openat2 (Linux 5.6 or newer is needed to write inside a container's root safely)")

// ErrNotRegular is returned for a path that exists but is not a regular
// file (a directory, a device, a FIFO).
var ErrNotRegular = errors.New("not a regular file")

// ErrSymlink is returned for a path with a symlink in it.
var ErrSymlink = errors.New("the path has a symlink in it, which is not followed inside a container's root")

const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Previous is what a file held before Replace wrote it, so that Restore
// can put it back.
type Previous struct {
	// Existed is false if Replace created the file.
	Existed bool `json:"existed"`
	// Data is the file's content before Replace.
	Data []byte `json:"data,omitempty"`
	// Mode is the file's permission bits before Replace.
	Mode os.FileMode `json:"mode,omitempty"`
}

// Replace sets the content of name (a path relative to root, such as
// "etc/resolv.conf") inside the directory tree root (such as
// "/proc/1234/root") to data, creating it with perm if it does not exist,
// and returns what it held before. The directory that holds name must
// exist. Errors name root and name.
func Replace(root, name string, data []byte, perm os.FileMode) (Previous, error) {
	rootFD, err := openRoot(root)
	if err != nil {
		return Previous{}, err
	}
	defer unix.Close(rootFD)

	var prev Previous
	f, err := openIn(rootFD, root, name, unix.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, err = openIn(rootFD, root, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, perm)
		if err != nil {
			return Previous{}, err
		}
	case err != nil:
		return Previous{}, err
	default:
		prev.Existed = true
	}
	defer f.Close()
	if prev.Existed {
		st, err := f.Stat()
		if err != nil {
			return Previous{}, fmt.Errorf("%s in %s: %w", name, root, err)
		}
		prev.Mode = st.Mode().Perm()
		if prev.Data, err = io.ReadAll(io.LimitReader(f, 1<<20)); err != nil {
			return Previous{}, fmt.Errorf("read %s in %s: %w", name, root, err)
		}
	}
	if err := rewrite(f, data); err != nil {
		return Previous{}, fmt.Errorf("write %s in %s: %w", name, root, err)
	}
	return prev, nil
}

// Restore puts back what Replace found: the old content, or no file at
// all if Replace created it. Like Replace it never follows a symlink; a
// file the container has since replaced by something else is left alone.
func Restore(root, name string, prev Previous) error {
	rootFD, err := openRoot(root)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	f, err := openIn(rootFD, root, name, unix.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // gone already
		}
		return err
	}
	defer f.Close()
	if !prev.Existed {
		// Truncate rather than unlink: unlinkat has no RESOLVE_* flags,
		// and an empty resolv.conf means "the defaults" to every libc.
		return f.Truncate(0)
	}
	if err := rewrite(f, prev.Data); err != nil {
		return fmt.Errorf("restore %s in %s: %w", name, root, err)
	}
	return nil
}

// openRoot opens root as a directory to resolve in. root itself may be a
// magic link such as /proc/PID/root: it is the daemon's own choice, not
// the container's.
func openRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("root directory %s: %w", root, err)
	}
	return fd, nil
}

// openIn opens name below rootFD with openat2's resolve flags, and only
// if it is a regular file: it is first opened O_PATH and inspected, so a
// device or FIFO the container put there is never opened for I/O, then
// opened for real and checked to be the same file.
func openIn(rootFD int, root, name string, flags int, perm os.FileMode) (*os.File, error) {
	var want unix.Stat_t
	if flags&unix.O_CREAT == 0 {
		pathFD, err := openat2(rootFD, root, name, unix.O_PATH, 0)
		if err != nil {
			return nil, err
		}
		err = regular(pathFD, root, name, &want)
		unix.Close(pathFD)
		if err != nil {
			return nil, err
		}
	}
	fd, err := openat2(rootFD, root, name, flags|unix.O_NONBLOCK, perm)
	if err != nil {
		return nil, err
	}
	var got unix.Stat_t
	if err := regular(fd, root, name, &got); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if flags&unix.O_CREAT == 0 && (got.Dev != want.Dev || got.Ino != want.Ino) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s in %s changed while it was being opened", name, root)
	}
	return os.NewFile(uintptr(fd), root+"/"+name), nil
}

func openat2(rootFD int, root, name string, flags int, perm os.FileMode) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Mode:    uint64(perm.Perm()),
		Resolve: resolve,
	}
	fd, err := unix.Openat2(rootFD, name, &how)
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ENOSYS):
		return -1, ErrUnsupported
	case errors.Is(err, unix.ELOOP):
		return -1, fmt.Errorf("%s in %s: %w", name, root, ErrSymlink)
	case errors.Is(err, unix.EXDEV):
		return -1, fmt.Errorf("%s in %s: the path leaves the root", name, root)
	default:
		return -1, fmt.Errorf("%s in %s: %w", name, root, err)
	}
}

// regular fills st for fd and fails unless it is a regular file.
func regular(fd int, root, name string, st *unix.Stat_t) error {
	if err := unix.Fstat(fd, st); err != nil {
		return fmt.Errorf("%s in %s: %w", name, root, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFLNK: // O_PATH|O_NOFOLLOW opens a final symlink itself
		return fmt.Errorf("%s in %s: %w", name, root, ErrSymlink)
	default:
		return fmt.Errorf("%s in %s: %w", name, root, ErrNotRegular)
	}
}

// rewrite replaces f's content with data in place: the file may be a bind
// mount (as container runtimes mount resolv.conf), which cannot be renamed
// over.
func rewrite(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return nil
}
