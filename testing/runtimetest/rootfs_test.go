package runtimetest_test

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestRootfsRunsInChroot(t *testing.T) {
	dir := runtimetest.Rootfs(t)
	for _, a := range runtimetest.Applets {
		if target, err := os.Readlink(filepath.Join(dir, "bin", a)); err != nil || target != "busybox" {
			t.Errorf("/bin/%s: link to %q, %v; want a link to busybox", a, target, err)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/hosts", "www/index.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping the chroot half: chroot needs root")
	}
	out, err := exec.Command("chroot", dir, "/bin/sh", "-c", "echo ok-$((6*7)) $(id -un)").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok-42 root" {
		t.Fatalf("sh in the rootfs printed %q, %v; want \"ok-42 root\"", out, err)
	}
}

func TestTarballHoldsTheTree(t *testing.T) {
	dir := runtimetest.Rootfs(t)
	f, err := os.Open(runtimetest.Tarball(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]*tar.Header{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		seen[h.Name] = h
	}
	bb, err := os.Stat(filepath.Join(dir, "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if h := seen["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != bb.Size() || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox in tarball: %+v; want an executable file of %d bytes", h, bb.Size())
	}
	if h := seen["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh in tarball: %+v; want a link to busybox", h)
	}
	if h := seen["tmp/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o1777 != 0o1777 {
		t.Errorf("tmp/ in tarball: %+v; want a sticky world-writable directory", h)
	}
}
