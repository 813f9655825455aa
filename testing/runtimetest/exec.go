package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CommandTimeout bounds every command a fixture runs for a test: a
// runtime that hangs fails the test with what it printed instead of
// hanging the test binary.
const CommandTimeout = 3 * time.Minute

// lookTool returns the path of a runtime's program, preferring the path
// Debian's package installs it at (want), and skips the test, naming the
// package, when it is not installed. Only absence skips: a tool that is
// there but fails fails the test.
func lookTool(t testing.TB, want, pkg string) string {
	t.Helper()
	if st, err := os.Stat(want); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return want
	}
	base := want[strings.LastIndexByte(want, '/')+1:]
	p, err := exec.LookPath(base)
	if err != nil {
		t.Skipf("skipping: %s is not installed (Debian package %s; .ci/run installs it): %v", want, pkg, err)
	}
	return p
}

// runCmd runs cmd, bounded by CommandTimeout, and returns its standard
// output. On failure the error names the command line and carries both
// its output streams.
func runCmd(cmd *exec.Cmd) (string, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\nstdout: %s\nstderr: %s",
			strings.Join(cmd.Args, " "), err, bytes.TrimSpace(stdout.Bytes()), bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// runBounded runs c (not yet started) as runCmd does, killing it if it
// runs longer than CommandTimeout.
func runBounded(c *exec.Cmd) (string, error) {
	if c.Err != nil {
		return "", c.Err
	}
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	cc := exec.CommandContext(ctx, c.Path)
	cc.Args, cc.Env, cc.Dir, cc.Stdin, cc.Stdout, cc.Stderr = c.Args, c.Env, c.Dir, c.Stdin, c.Stdout, c.Stderr
	cc.SysProcAttr = c.SysProcAttr
	cc.WaitDelay = 5 * time.Second
	out, err := runCmd(cc)
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (killed after %v)", err, CommandTimeout)
	}
	return out, err
}

// requireRoot skips the test unless it runs as root: the rootful
// runtimes refuse anything else.
func requireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: %s fixtures run the runtime as root (uid %d here)", what, os.Geteuid())
	}
}

// removeTree unmounts everything mounted at or below dir (deepest
// first, lazily), then removes dir.
func removeTree(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, mp := range mounts {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// inNetNS wraps a command line so that it runs in the network namespace
// at path (through util-linux's nsenter), or returns it as it is when
// path is empty.
func inNetNS(path, name string, args []string) (string, []string) {
	if path == "" {
		return name, args
	}
	return "nsenter", append([]string{"--net=" + path, "--", name}, args...)
}
