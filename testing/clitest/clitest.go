// Package clitest runs the real switchyard binary in tests: it builds it
// once per test binary, starts daemons on private sockets and state
// directories, runs CLI commands against them and kills them (politely or
// with SIGKILL) to test restarts. Every process it starts is stopped, by
// PID, when the test ends.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Main runs a test binary's tests and then removes the switchyard binary
// Binary built for them: call it from TestMain, as
// os.Exit(clitest.Main(m)), or wrap m with it for goleak.VerifyTestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

// Cleaning wraps m so that its Run is Main's (for goleak.VerifyTestMain,
// which runs the tests itself).
func Cleaning(m interface{ Run() int }) interface{ Run() int } { return mainRunner{m} }

type mainRunner struct{ m interface{ Run() int } }

func (r mainRunner) Run() int { return Main(r.m) }

// Binary builds ./cmd/switchyard and, next to it, ./cmd/switchyardd (once
// per test process) and returns the path of switchyard. The package's TestMain removes it with Main.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchyard")
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		// Both binaries in one directory: `switchyard daemon` execs the
		// switchyardd next to it.
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/switchyard", "./cmd/switchyardd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/switchyard ./cmd/switchyardd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("clitest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Daemon is a switchyard daemon process owned by a test.
type Daemon struct {
	t        testing.TB
	Bin      string
	Socket   string
	StateDir string
	LogPath  string
	// Wrap, if set, is prepended to the daemon's command line (for
	// example nsenter --net=PATH to run it in another namespace).
	Wrap  []string
	Extra []string // extra daemon flags
	// ResolvConf is the daemon's --resolv-conf: the upstream resolvers
	// its DNS servers forward to. NewDaemon makes it a file with none, so
	// that no test query ever leaves for the machine's real resolvers; a
	// test that forwards writes its own resolver's address into it.
	ResolvConf string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// NewDaemon prepares a daemon with a fresh socket and state directory. Call
// Start to run it.
func NewDaemon(t testing.TB) *Daemon {
	t.Helper()
	dir := t.TempDir()
	d := &Daemon{
		t:        t,
		Bin:      Binary(t),
		Socket:   filepath.Join(dir, "run", "switchyard.sock"),
		StateDir: filepath.Join(dir, "state"),
		LogPath:  filepath.Join(dir, "daemon.log"),
	}
	d.ResolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(d.ResolvConf, []byte("# no upstream resolvers: names outside the networks are refused\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(d.LogPath); err == nil {
				t.Logf("daemon log:\n%s", b)
			}
		}
	})
	return d
}

// Start runs the daemon and waits until it answers on its socket.
func (d *Daemon) Start() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		d.t.Fatal("clitest: daemon already running")
	}
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	args := append([]string{d.Bin, "--socket", d.Socket, "--log-level", "debug", "daemon", "--state-dir", d.StateDir,
		"--resolv-conf", d.ResolvConf}, d.Extra...)
	args = append(append([]string(nil), d.Wrap...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		d.t.Fatalf("start daemon: %v", err)
	}
	logf.Close()
	d.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := d.run(5*time.Second, "network", "ls"); code == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(d.LogPath)
	d.t.Fatalf("daemon did not answer on %s within 20s; log:\n%s", d.Socket, log)
}

// Kill9 kills the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill9() {
	d.signal(syscall.SIGKILL)
}

// Stop stops the daemon with SIGTERM (SIGKILL after 10 s), if running.
func (d *Daemon) Stop() {
	d.signal(syscall.SIGTERM)
}

func (d *Daemon) signal(sig syscall.Signal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// PID returns the daemon's process ID, or 0 if it is not running.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Result is the outcome of one CLI command.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
}

func (r Result) String() string {
	return fmt.Sprintf("switchyard %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Run runs the CLI against the daemon and returns what it printed and its
// exit code.
func (d *Daemon) Run(args ...string) Result {
	d.t.Helper()
	out, errOut, code := d.run(2*time.Minute, args...)
	return Result{Args: args, Stdout: out, Stderr: errOut, Code: code}
}

// MustRun is Run that fails the test unless the command exits 0.
func (d *Daemon) MustRun(args ...string) string {
	d.t.Helper()
	r := d.Run(args...)
	if r.Code != 0 {
		d.t.Fatal(r)
	}
	return r.Stdout
}

func (d *Daemon) run(timeout time.Duration, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Bin, append([]string{"--socket", d.Socket}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			errOut.WriteString(err.Error())
		}
	}
	return out.String(), errOut.String(), code
}

// PublicBinary returns a copy of the switchyard binary, with switchyardd
// next to it, in a directory any user can read, for tests that run it as an unprivileged user.
func PublicBinary(t testing.TB) string {
	t.Helper()
	src := Binary(t)
	dir, err := os.MkdirTemp("", "switchyard-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"switchyard", "switchyardd"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(src), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "switchyard")
}

// Nobody is the uid and gid tests use for unprivileged runs.
const Nobody = 65534

// AsNobody returns a command that runs name as the unprivileged user
// nobody (through setpriv), or skips the test if that is not possible.
func AsNobody(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	full := append(NobodyPrefix(t), name)
	full = append(full, args...)
	return exec.Command(full[0], full[1:]...)
}

// NobodyPrefix is the command-line prefix that runs what follows as the
// user nobody, with no capabilities (for Daemon.Wrap). It skips the test
// if that is not possible. SWITCHYARD_SOCKET points at a socket in the
// test's own directory that nothing serves, so that a command without
// --socket never reaches a daemon the test did not start (one on the
// machine's default socket, say); --socket still wins.
func NobodyPrefix(t testing.TB) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to switch to the user nobody")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("skipping: setpriv not installed: %v", err)
	}
	return []string{"setpriv", fmt.Sprintf("--reuid=%d", Nobody), fmt.Sprintf("--regid=%d", Nobody), "--clear-groups", "--inh-caps=-all",
		"env", "HOME=/tmp", "XDG_RUNTIME_DIR=", "SWITCHYARD_SOCKET=" + filepath.Join(t.TempDir(), "none.sock")}
}
