// Package privdir checks that the directory holding the daemon's API
// socket is private to the user, the way ssh-agent and tmux check theirs.
//
// Without XDG_RUNTIME_DIR a rootless daemon falls back to a directory
// under /tmp, whose name any local user can take first. If that user owns
// the directory, or may write to it, they can swap the socket and serve a
// fake daemon to every CLI call, or receive the daemon's own socket. So
// the daemon uses a directory only if it is a real directory (not a
// symlink) owned by the daemon's user and writable by no one else, and the
// CLI talks to a socket only in a directory owned by itself or root that
// no one else may write to.
package privdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotPrivate is wrapped by every refusal.
var ErrNotPrivate = errors.New("not private to this user")

// Ensure makes dir (mode 0700, parents as needed) if it does not exist,
// and checks that it is a directory of the calling user's that no other
// user may write to. Errors name dir and say what is wrong.
func Ensure(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	return check(dir, false)
}

// CheckSocket checks the directory of a socket a client is about to
// trust: owned by the calling user or root (or anyone, when the caller is
// root), writable by no one else.
func CheckSocket(path string) error { return check(filepath.Dir(path), true) }

func check(dir string, rootOK bool) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	if st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("socket directory %s is a symlink: %w", dir, ErrNotPrivate)
	}
	if !st.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory: %w", dir, ErrNotPrivate)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("socket directory %s: cannot read its owner", dir)
	}
	me := uint32(os.Geteuid())
	// A client run by root may talk to any user's daemon: root's own
	// default socket is in root's /run, which no fallback can take.
	if sys.Uid != me && !(rootOK && (sys.Uid == 0 || me == 0)) {
		return fmt.Errorf("socket directory %s belongs to uid %d, not to this user (uid %d): %w; remove it, or set XDG_RUNTIME_DIR or --socket to a directory of your own",
			dir, sys.Uid, me, ErrNotPrivate)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("socket directory %s has mode %04o, writable by other users: %w; want 0700 (chmod 700 %s)",
			dir, perm, ErrNotPrivate, dir)
	}
	return nil
}
