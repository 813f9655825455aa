package runtimetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// PodmanBinary is where Debian's podman package installs podman (4.3.1
// in Debian 12).
const PodmanBinary = "/usr/bin/podman"

// PodmanRuntime is a podman isolated from the machine's own: its storage, run
// state, temporary files, locks, events log and CNI network
// configurations all live in a temporary directory, and it reads only
// the containers.conf and storage.conf it was given.
type PodmanRuntime struct {
	t   testing.TB
	bin string
	env []string
	// NetNS is Opts.NetNS: every podman command runs in it.
	NetNS string
	// Dir holds everything below; it is removed when the test ends.
	Dir string
	// Root, RunRoot and TmpDir are podman's --root, --runroot and
	// --tmpdir.
	Root, RunRoot, TmpDir string
	// NetworkConfigDir is where podman reads and writes CNI network
	// configurations (conflists), Opts.CNIConfDir if it was given.
	NetworkConfigDir string
	// ContainersConf and StorageConf are the configuration files podman
	// reads (through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF).
	ContainersConf, StorageConf string
}

// Podman returns a podman of the test's own (see PodmanRuntime), using the
// CNI network backend with the plugins in opts.CNIPluginDirs and then
// the reference plugins, the cgroupfs cgroup manager, file events and
// locks, the vfs storage driver, and default ulimits nofile and nproc of
// 1024. When the test ends every container, pod and network it made is
// removed, anything mounted under its directory unmounted, and the
// directory removed. It skips the test if podman is not installed or
// the test does not run as root.
func Podman(t testing.TB, opts Opts) *PodmanRuntime {
	t.Helper()
	bin := lookTool(t, PodmanBinary, "podman")
	requireRoot(t, "podman")
	dir, err := os.MkdirTemp("", "runtimetest-podman-")
	if err != nil {
		t.Fatal(err)
	}
	register(dir)
	p := &PodmanRuntime{
		t: t, bin: bin, NetNS: opts.NetNS, Dir: dir,
		Root:             filepath.Join(dir, "root"),
		RunRoot:          filepath.Join(dir, "runroot"),
		TmpDir:           filepath.Join(dir, "tmp"),
		NetworkConfigDir: opts.CNIConfDir,
		ContainersConf:   filepath.Join(dir, "containers.conf"),
		StorageConf:      filepath.Join(dir, "storage.conf"),
	}
	if p.NetworkConfigDir == "" {
		p.NetworkConfigDir = filepath.Join(dir, "net.d")
	}
	t.Cleanup(p.cleanup)
	for _, d := range []string{p.Root, p.RunRoot, p.TmpDir, p.NetworkConfigDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p.ContainersConf, []byte(p.containersConf(opts)), 0o644); err != nil {
		t.Fatal(err)
	}
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %s\ngraphroot = %s\n",
		strconv.Quote(p.RunRoot), strconv.Quote(p.Root))
	if err := os.WriteFile(p.StorageConf, []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = append(append(os.Environ(),
		"CONTAINERS_CONF="+p.ContainersConf,
		"CONTAINERS_STORAGE_CONF="+p.StorageConf,
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"TMPDIR="+p.TmpDir,
		"XDG_RUNTIME_DIR="+p.TmpDir,
	), opts.Env...)
	if err := os.WriteFile(filepath.Join(dir, "registries.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// containersConf is the only containers.conf podman reads.
func (p *PodmanRuntime) containersConf(opts Opts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[containers]\n")
	// Without them runc fails to set RLIMIT_NOFILE to podman's default
	// (the machine's hard limit) in some sandboxes: fixed, low limits.
	fmt.Fprintf(&b, "default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n")
	fmt.Fprintf(&b, "\n[engine]\n")
	fmt.Fprintf(&b, "cgroup_manager = \"cgroupfs\"\n")
	// runc, not crun: Debian 12's crun 1.8 refuses hybrid cgroup v1/v2
	// hierarchies, which some machines (this project's CI) have. runc
	// keeps its state in its default /run/runc/ID, removed with the
	// container: podman 4.3 does not pass --runtime-flag on to the
	// exit command that cleans a container up, so moving it would
	// leave runc's state behind.
	fmt.Fprintf(&b, "runtime = \"runc\"\n")
	fmt.Fprintf(&b, "events_logger = \"file\"\n")
	fmt.Fprintf(&b, "events_logfile_path = %s\n", strconv.Quote(filepath.Join(p.TmpDir, "events.log")))
	fmt.Fprintf(&b, "lock_type = \"file\"\n")
	fmt.Fprintf(&b, "tmp_dir = %s\n", strconv.Quote(p.TmpDir))
	fmt.Fprintf(&b, "static_dir = %s\n", strconv.Quote(filepath.Join(p.Root, "libpod")))
	fmt.Fprintf(&b, "volume_path = %s\n", strconv.Quote(filepath.Join(p.Root, "volumes")))
	fmt.Fprintf(&b, "\n[network]\n")
	fmt.Fprintf(&b, "network_backend = \"cni\"\n")
	fmt.Fprintf(&b, "cni_plugin_dirs = [")
	for i, d := range opts.cniPluginDirs() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(d))
	}
	fmt.Fprintf(&b, "]\n")
	fmt.Fprintf(&b, "network_config_dir = %s\n", strconv.Quote(p.NetworkConfigDir))
	return b.String()
}

// Command returns the command line `podman GLOBAL-FLAGS args...`, run in
// NetNS if set, for a test that wants to start it itself (in the
// background, with its own stdin).
func (p *PodmanRuntime) Command(args ...string) *exec.Cmd {
	full := append([]string{
		"--root", p.Root, "--runroot", p.RunRoot, "--tmpdir", p.TmpDir,
		"--storage-driver", "vfs", "--network-config-dir", p.NetworkConfigDir,
		"--cgroup-manager", "cgroupfs", "--events-backend", "file",
	}, args...)
	name, full := inNetNS(p.NetNS, p.bin, full)
	cmd := exec.Command(name, full...)
	cmd.Env = p.env
	return cmd
}

// Run runs podman with args and returns its standard output; the error
// carries the command line and both output streams.
func (p *PodmanRuntime) Run(args ...string) (string, error) {
	return runBounded(p.Command(args...))
}

// MustRun is Run that fails the test, with podman's output, on error.
func (p *PodmanRuntime) MustRun(args ...string) string {
	p.t.Helper()
	out, err := p.Run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// cleanup removes every container, pod and network the fixture's podman
// knows, then its directory.
func (p *PodmanRuntime) cleanup() {
	t := p.t
	if _, err := os.Stat(p.Root); err == nil {
		for _, args := range [][]string{
			{"rm", "--all", "--force", "--time", "0"},
			{"pod", "rm", "--all", "--force", "--time", "0"},
		} {
			if _, err := p.Run(args...); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if out, err := p.Run("network", "ls", "--format", "{{.Name}}"); err != nil {
			t.Errorf("cleanup: %v", err)
		} else {
			for _, n := range strings.Fields(out) {
				if n == "podman" { // the built-in default, never written
					continue
				}
				if _, err := p.Run("network", "rm", "--force", n); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	}
	if err := removeTree(p.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
