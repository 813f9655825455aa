package rootfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/switchyard-net/switchyard/internal/rootfs"
)

// tree makes a container root with an etc directory, and a host file
// outside it that no call may touch.
func tree(t *testing.T) (root, victim string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	victim = filepath.Join(dir, "host-file")
	if err := os.WriteFile(victim, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(victim)
		if err != nil || string(b) != "host secret\n" {
			t.Errorf("the host file outside the root was changed: %q, %v", b, err)
		}
	})
	return root, victim
}

func TestReplaceAndRestore(t *testing.T) {
	root, _ := tree(t)
	file := filepath.Join(root, "etc", "resolv.conf")
	if err := os.WriteFile(file, []byte("nameserver 192.0.2.53\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	prev, err := rootfs.Replace(root, "etc/resolv.conf", []byte("nameserver 10.1.0.1\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if !prev.Existed || string(prev.Data) != "nameserver 192.0.2.53\n" || prev.Mode != 0o640 {
		t.Fatalf("previous %+v, want the old content and mode 0640", prev)
	}
	if b, _ := os.ReadFile(file); string(b) != "nameserver 10.1.0.1\n" {
		t.Fatalf("after Replace the file holds %q", b)
	}
	if err := rootfs.Restore(root, "etc/resolv.conf", prev); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); string(b) != "nameserver 192.0.2.53\n" {
		t.Fatalf("after Restore the file holds %q", b)
	}
}

func TestReplaceCreatesAndRestoreEmpties(t *testing.T) {
	root, _ := tree(t)
	prev, err := rootfs.Replace(root, "etc/resolv.conf", []byte("nameserver 10.1.0.1\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Existed {
		t.Fatalf("previous %+v for a file that did not exist", prev)
	}
	file := filepath.Join(root, "etc", "resolv.conf")
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("created file: %v, %v", st, err)
	}
	if err := rootfs.Restore(root, "etc/resolv.conf", prev); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || len(b) != 0 {
		t.Fatalf("after Restore of a created file: %q, %v", b, err)
	}
}

// A container's symlink is never followed, wherever it points and
// wherever in the path it stands.
func TestSymlinksAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(root, victim string) error
	}{
		{"absolute symlink to a host file", func(root, victim string) error {
			return os.Symlink(victim, filepath.Join(root, "etc", "resolv.conf"))
		}},
		{"relative symlink climbing out", func(root, victim string) error {
			return os.Symlink("../../host-file", filepath.Join(root, "etc", "resolv.conf"))
		}},
		{"symlink inside the root", func(root, victim string) error {
			if err := os.WriteFile(filepath.Join(root, "etc", "real"), nil, 0o644); err != nil {
				return err
			}
			return os.Symlink("real", filepath.Join(root, "etc", "resolv.conf"))
		}},
		{"directory symlink", func(root, victim string) error {
			if err := os.RemoveAll(filepath.Join(root, "etc")); err != nil {
				return err
			}
			return os.Symlink(filepath.Dir(victim), filepath.Join(root, "etc"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, victim := tree(t)
			if err := tc.make(root, victim); err != nil {
				t.Fatal(err)
			}
			_, err := rootfs.Replace(root, "etc/resolv.conf", []byte("pwned\n"), 0o644)
			if !errors.Is(err, rootfs.ErrSymlink) {
				t.Fatalf("Replace through a symlink: %v, want ErrSymlink", err)
			}
			if err := rootfs.Restore(root, "etc/resolv.conf", rootfs.Previous{Existed: true, Data: []byte("pwned\n")}); !errors.Is(err, rootfs.ErrSymlink) {
				t.Fatalf("Restore through a symlink: %v, want ErrSymlink", err)
			}
		})
	}
}

// ".." and absolute names resolve inside the root, as they would for the
// container itself.
func TestDotDotStaysInRoot(t *testing.T) {
	root, _ := tree(t)
	if _, err := rootfs.Replace(root, "../../host-file", []byte("inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "host-file")); err != nil || string(b) != "inside\n" {
		t.Fatalf("../../host-file did not land inside the root: %q, %v", b, err)
	}
}

// A FIFO or a directory is not opened for I/O (a FIFO would block a
// writer, a device could do anything).
func TestOnlyRegularFiles(t *testing.T) {
	root, _ := tree(t)
	if err := syscall.Mkfifo(filepath.Join(root, "etc", "resolv.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rootfs.Replace(root, "etc/resolv.conf", []byte("x"), 0o644); !errors.Is(err, rootfs.ErrNotRegular) {
		t.Fatalf("Replace of a FIFO: %v, want ErrNotRegular", err)
	}
	if _, err := rootfs.Replace(root, "etc", []byte("x"), 0o644); !errors.Is(err, rootfs.ErrNotRegular) {
		t.Fatalf("Replace of a directory: %v, want ErrNotRegular", err)
	}
}

func TestMissingRoot(t *testing.T) {
	_, err := rootfs.Replace(filepath.Join(t.TempDir(), "nope"), "etc/resolv.conf", nil, 0o644)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Replace in a missing root: %v", err)
	}
}
