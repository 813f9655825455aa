package privdir_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/internal/privdir"
)

func TestEnsureMakesAPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "switchyard")
	if err := privdir.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("made %v, %v; want a 0700 directory", st, err)
	}
	if err := privdir.Ensure(dir); err != nil {
		t.Fatalf("a second Ensure of our own directory: %v", err)
	}
	if err := privdir.CheckSocket(filepath.Join(dir, "switchyard.sock")); err != nil {
		t.Fatalf("CheckSocket in our own directory: %v", err)
	}
}

// A directory others may write to is refused by the daemon and the client:
// another user could swap the socket in it.
func TestWritableByOthersIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Ensure":      privdir.Ensure(dir),
		"CheckSocket": privdir.CheckSocket(filepath.Join(dir, "switchyard.sock")),
	} {
		if !errors.Is(err, privdir.ErrNotPrivate) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "0777") {
			t.Errorf("%s of a 0777 directory: %v, want ErrNotPrivate naming it and its mode", name, err)
		}
	}
}

// A directory of another user's is refused by the daemon; the client
// accepts root's (a root daemon's /run/switchyard) but no one else's.
func TestAnotherUsersDirectoryIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	other := 0 // an ordinary user's test: root is "another user"
	if os.Geteuid() == 0 {
		other = 65534
	}
	if err := os.Chown(dir, other, other); err != nil {
		// As an ordinary user, chown to root fails: use a directory
		// root made instead.
		dir = "/"
	}
	if err := privdir.Ensure(dir); !errors.Is(err, privdir.ErrNotPrivate) || !strings.Contains(err.Error(), "belongs to uid") {
		t.Errorf("Ensure of a directory of uid %d: %v, want ErrNotPrivate saying whose it is", other, err)
	}
	// The client accepts root's directory, and root accepts any user's
	// (a rootless daemon's); an ordinary user's client refuses another
	// ordinary user's, which the e2e test TestSocketDirectoryOfAnotherUserIsRefused
	// checks as the user nobody.
	if err := privdir.CheckSocket(filepath.Join(dir, "switchyard.sock")); err != nil {
		t.Errorf("CheckSocket in uid %d's directory, as uid %d: %v, want it accepted", other, os.Geteuid(), err)
	}
}

func TestSymlinkIsRefused(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := privdir.Ensure(link); !errors.Is(err, privdir.ErrNotPrivate) {
		t.Errorf("Ensure of a symlink: %v, want ErrNotPrivate", err)
	}
}
