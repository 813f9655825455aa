package runtimetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ContainerdBinary and CtrBinary are where Debian's containerd package
// (1.6 in Debian 12) installs the daemon and its client.
const (
	ContainerdBinary = "/usr/bin/containerd"
	CtrBinary        = "/usr/bin/ctr"
)

// ContainerdDaemon is a running containerd of the test's own: its root,
// state, temporary directory, gRPC and ttrpc sockets and configuration
// all under a temporary directory; debug and metrics listeners off. It
// runs in a mount namespace of its own whose /run is an empty tmpfs:
// containerd 1.6 keeps its shims' sockets, runc's state and ctr's FIFOs
// under /run/containerd whatever its configuration says.
//
// ctr's --cni reads CNI configurations from /etc/cni/net.d and plugins
// from /opt/cni/bin, paths it cannot be told. Ctr therefore runs ctr in
// a mount namespace made from containerd's (so the two share /run) in
// which /etc/cni/net.d is CNIConfDir,
// /opt/cni/bin is CNIBinDir (links to the plugins of Opts.CNIPluginDirs,
// then of /usr/lib/cni), and /var/lib/cni (CNI's result cache) is a
// directory of the fixture's, when the machine has one. The daemon's
// own CRI plugin is configured with the same two directories.
type ContainerdDaemon struct {
	t     testing.TB
	cmd   *exec.Cmd
	opts  Opts
	done  chan struct{}
	mntNS string // containerd's mount namespace (readlink /proc/PID/ns/mnt)
	// Dir holds everything below; it is removed when the test ends.
	Dir string
	// Address is the gRPC socket (ctr -a).
	Address string
	// Root, State and Config are containerd's root and state
	// directories and its configuration file.
	Root, State, Config string
	// CNIConfDir is Opts.CNIConfDir, or a directory of the fixture's.
	CNIConfDir string
	// CNIBinDir holds a link to each CNI plugin, found in
	// Opts.CNIPluginDirs then /usr/lib/cni, refreshed before each ctr
	// command.
	CNIBinDir string
	// Log is containerd's log file.
	Log string
	// PID is containerd's process ID.
	PID int
}

// Containerd starts Debian's containerd for the test (see
// ContainerdDaemon) and waits until it answers. opts.NetNS runs it, and every
// ctr command, in that network namespace; opts.Env is added to the
// environment of both.
//
// When the test ends every task is killed and every container removed,
// in every containerd namespace; containerd is stopped by PID (SIGTERM,
// SIGKILL after 30 s) and waited for; any process left in its mount
// namespace (a shim) is killed and reported as an error; anything mounted under its directory
// is unmounted and the directory removed. It skips the test if
// containerd, ctr or unshare is not installed or it does not run as
// root.
func Containerd(t testing.TB, opts Opts) *ContainerdDaemon {
	t.Helper()
	bin := lookTool(t, ContainerdBinary, "containerd")
	lookTool(t, CtrBinary, "containerd")
	lookTool(t, "/usr/bin/unshare", "util-linux")
	requireRoot(t, "containerd")
	if st, err := os.Stat("/etc/cni/net.d"); err != nil || !st.IsDir() {
		t.Fatalf("/etc/cni/net.d, which ctr --cni reads and the fixture mounts its own directory over, is missing (%v): Debian's podman package makes it", err)
	}
	// Short: the sockets live here (a unix socket path has at most 107
	// bytes, and the shims' sockets are named after the address).
	dir, err := os.MkdirTemp("", "rtctrd-")
	if err != nil {
		t.Fatal(err)
	}
	register(dir)
	c := &ContainerdDaemon{
		t: t, opts: opts, Dir: dir, done: make(chan struct{}),
		Address:    filepath.Join(dir, "c.sock"),
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Config:     filepath.Join(dir, "config.toml"),
		CNIConfDir: opts.CNIConfDir,
		CNIBinDir:  filepath.Join(dir, "opt", "cni", "bin"),
		Log:        filepath.Join(dir, "containerd.log"),
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = filepath.Join(dir, "net.d")
	}
	t.Cleanup(c.cleanup)
	for _, d := range []string{c.Root, c.State, c.CNIConfDir, c.CNIBinDir, filepath.Join(dir, "tmp"), filepath.Join(dir, "var-lib-cni"), filepath.Join(dir, "opt", "containerd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.refreshCNIBin(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Config, []byte(c.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// A mount namespace whose /run is an empty tmpfs: the shims'
	// sockets (/run/containerd/s), runc's state (/run/containerd/runc)
	// and ctr's FIFOs (/run/containerd/fifo) are at fixed paths there.
	args := []string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`set -e
mount -n -t tmpfs -o mode=0755 runtimetest-run /run
exec "$@"`, "sh", bin, "--config", c.Config, "--log-level", "info"}
	name, args := inNetNS(opts.NetNS, "unshare", args)
	c.cmd = exec.Command(name, args...)
	c.cmd.Env = append(os.Environ(), opts.Env...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		close(c.done)
		t.Fatalf("start containerd: %v", err)
	}
	c.PID = c.cmd.Process.Pid
	go func() { c.cmd.Wait(); close(c.done) }()
	c.waitReady()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", c.PID))
	if err != nil {
		t.Fatalf("containerd's mount namespace: %v", err)
	}
	c.mntNS = ns
	return c
}

// config is containerd's whole configuration.
func (c *ContainerdDaemon) config() string {
	q := strconv.Quote
	return fmt.Sprintf(`version = 2
root = %s
state = %s
temp = %s

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %s
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %s
      conf_dir = %s
`, q(c.Root), q(c.State), q(filepath.Join(c.Dir, "tmp")), q(c.Address), q(c.Address+".ttrpc"),
		q(filepath.Join(c.Dir, "opt", "containerd")), q(c.CNIBinDir), q(c.CNIConfDir))
}

// refreshCNIBin makes CNIBinDir hold one link per plugin name, to the
// first of the search directories that has it.
func (c *ContainerdDaemon) refreshCNIBin() error {
	old, err := os.ReadDir(c.CNIBinDir)
	if err != nil {
		return err
	}
	for _, e := range old {
		if err := os.Remove(filepath.Join(c.CNIBinDir, e.Name())); err != nil {
			return err
		}
	}
	for _, d := range c.opts.cniPluginDirs() {
		entries, err := os.ReadDir(d)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("CNI plugin directory: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			err := os.Symlink(filepath.Join(d, e.Name()), filepath.Join(c.CNIBinDir, e.Name()))
			if err != nil && !os.IsExist(err) {
				return err
			}
		}
	}
	return nil
}

// waitReady waits until `ctr version` gets the server's version,
// failing the test (with containerd's log) if containerd exits first or
// takes over a minute.
func (c *ContainerdDaemon) waitReady() {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command(CtrBinary, "--address", c.Address, "--connect-timeout", "2s", "version").CombinedOutput()
		if err == nil && strings.Contains(string(out), "Server:") {
			return
		}
		select {
		case <-c.done:
			t.Fatalf("containerd exited (%v) before answering: log:\n%s", c.cmd.ProcessState, readTail(c.Log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not answering on %s after a minute: %v: %s; log:\n%s", c.Address, err, out, readTail(c.Log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Command returns the command line `ctr --address ADDRESS args...` in
// its mount namespace (see ContainerdDaemon) and in Opts.NetNS. A container
// run with `ctr run --rootfs DIR ID CMD...` (Rootfs; ctr cannot import
// a bare root filesystem tarball as an image) has no PATH: name its
// programs by path (/bin/sh) or pass --env PATH=/bin.
func (c *ContainerdDaemon) Command(args ...string) *exec.Cmd {
	script := `set -e
mount -n --bind "$1" /etc/cni/net.d
mount -n --bind "$2" /opt
if [ -d /var/lib/cni ]; then mount -n --bind "$3" /var/lib/cni; fi
shift 3
exec "$@"`
	enter := []string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", c.PID)}
	if c.opts.NetNS != "" {
		enter = append(enter, "--net="+c.opts.NetNS)
	}
	full := append(append(enter, "--", "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
		c.CNIConfDir, filepath.Join(c.Dir, "opt"), filepath.Join(c.Dir, "var-lib-cni"),
		CtrBinary, "--address", c.Address), args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Env = append(os.Environ(), c.opts.Env...)
	return cmd
}

// TryCtr runs ctr with args and returns its standard output; the error
// carries the command line and both output streams.
func (c *ContainerdDaemon) TryCtr(args ...string) (string, error) {
	if err := c.refreshCNIBin(); err != nil {
		return "", err
	}
	return runBounded(c.Command(args...))
}

// Ctr is TryCtr that fails the test, with ctr's output, on error.
func (c *ContainerdDaemon) Ctr(args ...string) string {
	c.t.Helper()
	out, err := c.TryCtr(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *ContainerdDaemon) cleanup() {
	t := c.t
	if c.cmd != nil && c.cmd.Process != nil {
		select {
		case <-c.done:
			t.Errorf("containerd exited before the test ended (%v); log:\n%s", c.cmd.ProcessState, readTail(c.Log))
		default:
			c.removeAll()
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(30 * time.Second):
				t.Errorf("containerd (pid %d) still running 30 s after SIGTERM; killing it", c.PID)
				c.cmd.Process.Kill()
				<-c.done
			}
		}
		if c.mntNS != "" {
			if left := killMountNS(c.mntNS); len(left) > 0 {
				t.Errorf("processes left in containerd's mount namespace (shims), killed: %v", left)
			}
		}
		if t.Failed() {
			t.Logf("containerd log:\n%s", readTail(c.Log))
		}
	}
	if err := removeTree(c.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// removeAll kills every task and removes every container, in every
// namespace.
func (c *ContainerdDaemon) removeAll() {
	t := c.t
	out, err := c.TryCtr("namespaces", "list", "--quiet")
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, ns := range strings.Fields(out) {
		tasks, err := c.TryCtr("--namespace", ns, "tasks", "list", "--quiet")
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, id := range strings.Fields(tasks) {
			c.TryCtr("--namespace", ns, "tasks", "kill", "--signal", "SIGKILL", id)
			if _, err := c.TryCtr("--namespace", ns, "tasks", "delete", "--force", id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		ctrs, err := c.TryCtr("--namespace", ns, "containers", "list", "--quiet")
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, id := range strings.Fields(ctrs) {
			if _, err := c.TryCtr("--namespace", ns, "containers", "delete", id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
}
