package e2e_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/clitest"
)

// Without XDG_RUNTIME_DIR, a rootless user's socket falls back to
// $TMPDIR/switchyard-UID. If another user made that directory first (mode
// 0777) and serves a fake daemon in it, the CLI refuses to talk to it and
// the daemon refuses to listen there, each naming the directory.
func TestSocketDirectoryOfAnotherUserIsRefused(t *testing.T) {
	bin := clitest.PublicBinary(t)
	// A TMPDIR nobody can reach (t.TempDir's parent is private to root).
	tmp, err := os.MkdirTemp("", "switchyard-sockdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "switchyard-"+strconv.Itoa(clitest.Nobody))
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	// The other user's fake daemon.
	sock := filepath.Join(dir, "switchyard.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	fake := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[{"name":"FAKE-NETWORK"}]`))
	})}
	go fake.Serve(l)
	t.Cleanup(func() { fake.Close() })

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// As clitest.NobodyPrefix, but with no SWITCHYARD_SOCKET at all:
		// the default socket is what is tested.
		clitest.NobodyPrefix(t)
		full := []string{"setpriv", "--reuid=" + strconv.Itoa(clitest.Nobody), "--regid=" + strconv.Itoa(clitest.Nobody),
			"--clear-groups", "--inh-caps=-all", "env", "-u", "SWITCHYARD_SOCKET", "-u", "XDG_RUNTIME_DIR",
			"HOME=/tmp", "TMPDIR=" + tmp, bin}
		full = append(full, args...)
		out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
		return string(out), err
	}
	out, err := run("network", "ls")
	if err == nil || strings.Contains(out, "FAKE-NETWORK") || !strings.Contains(out, dir) || !strings.Contains(out, "not private to this user") {
		t.Errorf("network ls through another user's socket directory: %v\n%s\nwant a refusal naming %s", err, out, dir)
	}

	// The daemon, before anyone has put a socket there.
	fake.Close()
	os.Remove(sock)
	state := filepath.Join(tmp, "state-nobody")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, clitest.Nobody, clitest.Nobody); err != nil {
		t.Fatal(err)
	}
	out, err = run("daemon", "--state-dir", state)
	if err == nil || !strings.Contains(out, dir) || !strings.Contains(out, "not private to this user") {
		t.Errorf("a daemon listening in a 0777 socket directory: %v\n%s\nwant a refusal naming %s", err, out, dir)
	}
}
