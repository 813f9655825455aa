package runtimetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DockerdBinary and DockerBinary are where Debian's docker.io package
// installs the daemon (20.10) and its client. The client is named by
// path: another docker in PATH (/usr/local/bin) may be a different one.
const (
	DockerdBinary = "/usr/sbin/dockerd"
	DockerBinary  = "/usr/bin/docker"
)

// DockerPluginSocketDir is where dockerd looks for plugin sockets
// (NAME.sock); Dockerd shows it DockerDaemon.PluginDir there.
const DockerPluginSocketDir = "/run/docker/plugins"

// DockerDaemon is a running dockerd of the test's own. It runs in a mount
// namespace of its own in which /run is an empty tmpfs (so it finds no
// system containerd and starts its managed one, and writes nothing to
// the machine's /run), DockerPluginSocketDir is PluginDir, and
// /etc/docker is SpecDir's parent (so it reads plugin spec files the
// test wrote and writes its key.json there).
//
// Containers' network namespace files live under ExecRoot in that
// mount namespace only: reach a container's namespace from the test
// through its PID (ContainerNetNS), or use `docker exec`.
type DockerDaemon struct {
	t   testing.TB
	cmd *exec.Cmd
	env []string
	// Dir holds everything below; it is removed when the test ends.
	Dir string
	// Socket is the API socket; Host is unix://Socket (DOCKER_HOST).
	Socket, Host string
	// DataRoot, ExecRoot and PIDFile are dockerd's --data-root,
	// --exec-root and --pidfile.
	DataRoot, ExecRoot, PIDFile string
	// PluginDir is the directory dockerd sees as /run/docker/plugins:
	// a plugin serving on PluginDir/NAME.sock is found as NAME.
	PluginDir string
	// SpecDir is the directory dockerd sees as /etc/docker/plugins,
	// for spec files (AddPluginSpec).
	SpecDir string
	// Log is dockerd's (and its containerd's) log file.
	Log string
	// PID is dockerd's process ID.
	PID int

	mntNS string // dockerd's mount namespace (readlink /proc/PID/ns/mnt)
	done  chan struct{}

	imageOnce sync.Once
	image     string
}

// Dockerd starts Debian's dockerd 20.10 for the test: with
// --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false
// --bridge=none (it changes nothing in any network namespace but its
// containers'), the vfs storage driver, the cgroupfs cgroup driver, its
// own data root, exec root, pidfile and API socket under a temporary
// directory, and the containerd dockerd manages (started by dockerd,
// with its state under the data and exec roots, stopped with it). It
// waits until the API answers. opts.NetNS runs it in that network
// namespace; opts.DockerPlugins get spec files; opts.Env is added to its
// environment.
//
// When the test ends every container is removed, dockerd stopped by PID
// (SIGTERM, then SIGKILL after 30 s) and waited for, any process left
// in its mount namespace (a container shim) killed and reported as an
// error, and the directory removed. It skips the test if dockerd, the
// docker client or unshare is not installed, or it does not run as root.
func Dockerd(t testing.TB, opts Opts) *DockerDaemon {
	t.Helper()
	bin := lookTool(t, DockerdBinary, "docker.io")
	lookTool(t, DockerBinary, "docker.io")
	lookTool(t, "/usr/bin/unshare", "util-linux")
	requireRoot(t, "dockerd")
	if st, err := os.Stat("/etc/docker"); err != nil || !st.IsDir() {
		t.Fatalf("dockerd's /etc/docker is missing (%v): Debian's docker.io package makes it", err)
	}
	// A short directory name: dockerd's and containerd's sockets live
	// under it, and a unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "rtdocker-")
	if err != nil {
		t.Fatal(err)
	}
	register(dir)
	d := &DockerDaemon{
		t: t, Dir: dir,
		Socket:    filepath.Join(dir, "docker.sock"),
		DataRoot:  filepath.Join(dir, "data"),
		ExecRoot:  filepath.Join(dir, "exec"),
		PIDFile:   filepath.Join(dir, "dockerd.pid"),
		PluginDir: filepath.Join(dir, "plugins"),
		SpecDir:   filepath.Join(dir, "etc-docker", "plugins"),
		Log:       filepath.Join(dir, "dockerd.log"),
		done:      make(chan struct{}),
	}
	d.Host = "unix://" + d.Socket
	d.env = append(os.Environ(), "DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+filepath.Join(dir, "client"))
	t.Cleanup(d.cleanup)
	for _, p := range []string{d.DataRoot, d.ExecRoot, d.PluginDir, d.SpecDir, filepath.Join(dir, "client")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, sock := range opts.DockerPlugins {
		d.AddPluginSpec(name, sock)
	}
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(d.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	// The mount namespace: /run empty, then the plugin directories.
	script := `set -e
mount -n -t tmpfs -o mode=0755 runtimetest-run /run
mkdir -p ` + DockerPluginSocketDir + `
mount -n --bind "$1" ` + DockerPluginSocketDir + `
mount -n --bind "$2" /etc/docker
shift 2
exec "$@"`
	args := []string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
		d.PluginDir, filepath.Dir(d.SpecDir),
		bin,
		"--host", d.Host, "--data-root", d.DataRoot, "--exec-root", d.ExecRoot, "--pidfile", d.PIDFile,
		"--config-file", config, "--storage-driver", "vfs", "--exec-opt", "native.cgroupdriver=cgroupfs",
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
		"--userland-proxy=false", "--log-level", "info",
	}
	name, args := inNetNS(opts.NetNS, "unshare", args)
	d.cmd = exec.Command(name, args...)
	d.cmd.Env = append(os.Environ(), opts.Env...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		close(d.done)
		t.Fatalf("start dockerd: %v", err)
	}
	d.PID = d.cmd.Process.Pid
	go func() { d.cmd.Wait(); close(d.done) }()
	d.waitReady()
	return d
}

// waitReady waits until the API answers /_ping, failing the test (with
// dockerd's log) if dockerd exits first or takes over a minute.
func (d *DockerDaemon) waitReady() {
	t := d.t
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket)
		},
	}}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := hc.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("/_ping: %s", resp.Status)
		}
		select {
		case <-d.done:
			t.Fatalf("dockerd exited (%v) before answering: log:\n%s", d.cmd.ProcessState, readTail(d.Log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not answering on %s after a minute: %v; log:\n%s", d.Socket, err, readTail(d.Log))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.PID))
	if err != nil {
		t.Fatalf("dockerd's mount namespace: %v", err)
	}
	d.mntNS = ns
}

// AddPluginSpec writes the spec file that makes dockerd find plugin
// name at the unix socket sock (for a plugin whose socket is not in
// PluginDir). Dockerd reads spec files when a plugin is first used, so
// this may be called while it runs.
func (d *DockerDaemon) AddPluginSpec(name, sock string) {
	d.t.Helper()
	p := filepath.Join(d.SpecDir, name+".spec")
	if err := os.WriteFile(p, []byte("unix://"+sock+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// Command returns the docker client command line (Debian's client,
// DOCKER_HOST this dockerd, its own client configuration directory).
func (d *DockerDaemon) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(DockerBinary, args...)
	cmd.Env = d.env
	return cmd
}

// Docker runs the docker client with args and returns its standard
// output, failing the test with both output streams on error.
func (d *DockerDaemon) Docker(args ...string) string {
	d.t.Helper()
	out, err := d.TryDocker(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// TryDocker is Docker returning the error (for a command expected to
// fail) instead of failing the test.
func (d *DockerDaemon) TryDocker(args ...string) (string, error) {
	return runBounded(d.Command(args...))
}

// ImportImage imports a root filesystem tarball (Tarball) as image ref,
// with /bin/sh as its command.
func (d *DockerDaemon) ImportImage(tarball, ref string) {
	d.t.Helper()
	d.Docker("import", "--change", `CMD ["/bin/sh"]`, tarball, ref)
}

// BusyboxImage returns the reference of an image made from Rootfs,
// importing it the first time it is asked for.
func (d *DockerDaemon) BusyboxImage() string {
	d.t.Helper()
	d.imageOnce.Do(func() {
		ref := "runtimetest/busybox:latest"
		d.ImportImage(Tarball(d.t, Rootfs(d.t)), ref)
		d.image = ref
	})
	if d.image == "" {
		d.t.Fatal("the busybox image failed to import earlier")
	}
	return d.image
}

// ContainerNetNS returns the path of a running container's network
// namespace as seen from the test (/proc/PID/ns/net).
func (d *DockerDaemon) ContainerNetNS(container string) string {
	d.t.Helper()
	pid := strings.TrimSpace(d.Docker("inspect", "--format", "{{.State.Pid}}", container))
	if pid == "" || pid == "0" {
		d.t.Fatalf("container %s is not running (pid %q)", container, pid)
	}
	return "/proc/" + pid + "/ns/net"
}

func (d *DockerDaemon) cleanup() {
	t := d.t
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.done:
			t.Errorf("dockerd exited before the test ended (%v); log:\n%s", d.cmd.ProcessState, readTail(d.Log))
		default:
			if out, err := d.TryDocker("ps", "--all", "--quiet"); err != nil {
				t.Errorf("cleanup: %v", err)
			} else if ids := strings.Fields(out); len(ids) > 0 {
				if _, err := d.TryDocker(append([]string{"rm", "--force", "--volumes"}, ids...)...); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				t.Errorf("dockerd (pid %d) still running 30 s after SIGTERM; killing it", d.PID)
				d.cmd.Process.Kill()
				<-d.done
			}
		}
		if d.mntNS != "" {
			if left := killMountNS(d.mntNS); len(left) > 0 {
				t.Errorf("processes left in dockerd's mount namespace, killed: %v", left)
			}
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", readTail(d.Log))
		}
	}
	if err := removeTree(d.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
