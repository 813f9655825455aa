package runtimetest

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BusyboxPaths are where Debian's busybox-static installs its binary
// (/bin is a link to /usr/bin on merged-/usr systems).
var BusyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// Applets are the busybox applets the tests rely on; Rootfs fails the
// test if the installed busybox lacks one. Every other applet busybox
// lists is linked too.
var Applets = []string{
	"sh", "ip", "ifconfig", "route", "nc", "httpd", "wget", "ping", "sleep",
	"cat", "echo", "hostname", "udhcpc", "ls", "mkdir", "ps", "kill", "true",
	"false", "env", "id", "grep", "seq", "printf", "test", "nslookup",
	"netstat", "arp", "sed", "head", "tail", "tr", "wc", "uname", "mount",
}

// Rootfs returns a directory holding a minimal root filesystem made of
// the static busybox binary: /bin/busybox, a link in /bin for each of
// its applets, /etc/passwd, /etc/group, /etc/hosts, empty
// /etc/resolv.conf and /etc/hostname (mount points the runtimes bind
// over), /www/index.html (for `httpd -h /www`), and the empty /tmp,
// /proc, /sys, /dev, /run, /root and /var directories. It suits
// `podman run --rootfs DIR`, `ctr run --rootfs DIR` and (through
// Tarball) `docker import`. The directory is removed when the test ends.
//
// The test is skipped only if busybox is not installed; a busybox that
// is dynamically linked (Debian's `busybox` instead of `busybox-static`)
// fails it, since it would not run inside a tree without a libc.
func Rootfs(t testing.TB) string {
	t.Helper()
	bb := busyboxPath(t)
	if err := checkStatic(bb); err != nil {
		t.Fatalf("%v: install Debian's busybox-static (it replaces busybox), as .ci/run does", err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := buildRootfs(bb, dir); err != nil {
		t.Fatalf("rootfs from %s: %v", bb, err)
	}
	return dir
}

func busyboxPath(t testing.TB) string {
	t.Helper()
	for _, p := range BusyboxPaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("skipping: busybox is not installed at %s (Debian package busybox-static; .ci/run installs it)", strings.Join(BusyboxPaths, " or "))
	return ""
}

// checkStatic returns an error unless the ELF file at path is statically
// linked: no program interpreter and no shared libraries needed.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s as ELF: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (has a program interpreter); a static busybox is needed", path)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("read %s's dynamic section: %w", path, err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v; a static busybox is needed", path, libs)
	}
	return nil
}

func buildRootfs(busybox, dir string) error {
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "run", "root", "var/tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(dir, d), 0o777|os.ModeSticky); err != nil {
			return err
		}
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", busybox, err)
	}
	have := map[string]bool{}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		have[a] = true
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	var missing []string
	for _, a := range Applets {
		if !have[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks applets %v", busybox, missing)
	}
	files := map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":       "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"etc/resolv.conf": "",
		"etc/hostname":    "",
		"www/index.html":  "switchyard runtimetest\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// Tarball writes the tree at dir (a Rootfs) into an uncompressed tar
// file, owned by root, as `docker import` and `ctr images import` read
// it, and returns the file's path. The file is removed when the test
// ends.
func Tarball(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := writeTar(dir, path); err != nil {
		t.Fatalf("tarball of %s: %v", dir, err)
	}
	return path
}

func writeTar(dir, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
