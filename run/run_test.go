package run_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/testing/clitest"
)

// switchyard returns `switchyard run args...`, run as the test's own user.
// When ctx ends it is stopped as a person stops it, with Ctrl-C (SIGINT),
// so that it tears down what it made; SIGKILL comes only 10 s later.
func switchyard(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, clitest.Binary(t), append([]string{"run"}, args...)...)
	cmd.Dir = "/"
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// --network none: the command has lo, and lo is up, as Docker leaves it.
func TestNetworkNoneLoopbackUp(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipping: needs ip (iproute2): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := switchyard(t, ctx, "--network", "none", "--", "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("run --network none: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], ": lo: <LOOPBACK,UP") {
		t.Fatalf("run --network none: want lo alone and up, got:\n%s", out)
	}
}

// -P publishes the --expose'd ports on ephemeral host ports and says
// which: the host reaches the command's server there.
func TestPublishAllExposed(t *testing.T) {
	if os.Geteuid() != 0 {
		var st unix.Stat_t
		if err := unix.Stat("/dev/net/tun", &st); err != nil || st.Mode&0o006 != 0o006 {
			t.Skip("skipping: an unprivileged run needs /dev/net/tun mode 0666")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := switchyard(t, ctx, "-P", "--expose", "8000", "--", "switchyard", "whoami", "--listen", ":8000")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	published := regexp.MustCompile(`8000/tcp -> 0\.0\.0\.0:(\d+)`)
	var seen bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(stderr, &seen))
	port := ""
	for port == "" && sc.Scan() {
		if m := published.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("run -P did not say where 8000/tcp is published:\n%s", seen.String())
	}
	go io.Copy(io.Discard, stderr)
	c := http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%s/", port)
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "you are") {
				t.Fatalf("GET %s: %q, want whoami's answer", url, b)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
