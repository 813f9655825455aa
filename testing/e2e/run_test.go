package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"

	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// requireRootlessTun skips unless an unprivileged user can open TAPs.
func requireRootlessTun(t *testing.T) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/dev/net/tun", &st); err != nil {
		t.Skipf("skipping: no /dev/net/tun: %v", err)
	}
	if st.Mode&0o006 != 0o006 {
		t.Skipf("skipping: /dev/net/tun is mode %04o; rootless TAPs need 0666, as Debian, Ubuntu and Fedora ship it (.ci/run sets it)", st.Mode&0o777)
	}
}

// startRun starts `switchyard run args...` as nobody and returns it with
// its combined output.
func startRun(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	requireRootlessTun(t)
	bin := clitest.PublicBinary(t)
	cmd := clitest.AsNobody(t, bin, append([]string{"run"}, args...)...)
	cmd.Dir = "/"
	// A process group of its own, as a shell's foreground job has, so
	// that a test can send "Ctrl-C" as a terminal does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

func httpGet(url string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	c := http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), err
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("switchyard run still running after %v", within)
		return -1
	}
}

// strays counts processes of user nobody still running the test binary
// copy or the commands the tests start.
func strays(t *testing.T, marker string) int {
	t.Helper()
	out, _ := exec.Command("ps", "-u", fmt.Sprint(clitest.Nobody), "-o", "args=").Output()
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, marker) {
			n++
		}
	}
	return n
}

// As an ordinary user: run publishes a port of a server in its own network,
// the host reaches it at localhost, and the command's exit status comes
// back through.
func TestRunServesAndPassesExitCode(t *testing.T) {
	bin := clitest.PublicBinary(t)
	script := fmt.Sprintf("%s whoami --listen :80 & sleep 4; kill $!; exit 7", bin)
	port := freePort(t) // not a fixed one: other test runs share the host
	cmd, out := startRun(t, "-p", fmt.Sprintf("%d:80", port), "--", "sh", "-c", script)
	body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Second)
	if err != nil || !strings.Contains(body, "you are 172.") {
		t.Fatalf("GET localhost:%d → %q, %v\nrun output:\n%s", port, body, err, out)
	}
	if code := waitExit(t, cmd, 15*time.Second); code != 7 {
		t.Fatalf("switchyard run exited %d, want the command's 7\n%s", code, out)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("the published port is still open after run exited")
	}
}

// Ctrl-C reaches the command, run exits with its status, and nothing it
// started is left: no process, no port.
func TestRunCtrlCTearsDown(t *testing.T) {
	bin := clitest.PublicBinary(t)
	marker := "sleep 4242"
	// The command leaves a background process behind: the PID namespace
	// must take it down with the init.
	port := freePort(t)
	cmd, out := startRun(t, "-p", fmt.Sprintf("%d:80", port), "--", "sh", "-c", fmt.Sprintf("sleep 4242 & %s whoami --listen :80", bin))
	if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port), 4*time.Second); err != nil {
		t.Fatalf("the command never served: %v\n%s", err, out)
	}
	if strays(t, marker) == 0 {
		t.Fatalf("the background process did not start\n%s", out)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // Ctrl-C: the terminal signals the foreground process group
	code := waitExit(t, cmd, 15*time.Second)
	if code != 130 {
		t.Errorf("exit status after Ctrl-C %d, want the shell's 130\n%s", code, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strays(t, marker) > 0 || strays(t, "__switchyard-init") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes left after Ctrl-C:\n%s", psNobody())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("the published port is still open after Ctrl-C")
	}
}

func psNobody() string {
	out, _ := exec.Command("ps", "-u", fmt.Sprint(clitest.Nobody), "-o", "pid,args").CombinedOutput()
	return string(out)
}

// The command reaches the host's loopback with --host-loopback, on a
// subnet of the caller's choice.
func TestRunEgressToHostLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from the host\n")
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	cmd, out := startRun(t, "--network", "10.213.77.0/24", "--host-loopback", "--",
		"bash", "-c", fmt.Sprintf("ip -4 -brief addr show eth0; exec 3<>/dev/tcp/169.254.1.2/%d && cat <&3", port))
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out.String(), "10.213.77.") || !strings.Contains(out.String(), "hello from the host") {
		t.Fatalf("want an address in 10.213.77.0/24 and the host's greeting; got:\n%s", out)
	}
}

// --network none: loopback only.
func TestRunNetworkNone(t *testing.T) {
	cmd, out := startRun(t, "--network", "none", "--", "ip", "-brief", "link")
	if code := waitExit(t, cmd, 15*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "lo ") {
		t.Fatalf("--network none shows interfaces:\n%s", out)
	}
}

// A command that does not exist: run says so and exits 127, like a shell.
func TestRunMissingCommand(t *testing.T) {
	cmd, out := startRun(t, "--", "no-such-command-sy")
	if code := waitExit(t, cmd, 15*time.Second); code != 127 || !strings.Contains(out.String(), "no-such-command-sy") {
		t.Fatalf("exit %d, output %q: want 127 and the command named", code, out)
	}
}

// A signal to run alone (not the command's process group) is passed on;
// a command that ignores it is killed after the stop timeout, with
// everything it started.
func TestRunKillsIgnoringCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: waits for the 10 s stop timeout")
	}
	cmd, out := startRun(t, "--", "sh", "-c", "trap '' INT TERM; echo ready; sleep 4243")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, cmd, 20*time.Second)
	if strays(t, "sleep 4243") > 0 {
		t.Fatalf("a command ignoring SIGTERM outlived run:\n%s", psNobody())
	}
}

// The command's resolver is its network's DNS server at the gateway,
// which knows the command by its --name.
func TestRunResolvesItsOwnName(t *testing.T) {
	cmd, out := startRun(t, "--network", "10.213.78.0/24", "--name", "web", "--resolv-conf", "/dev/null", "--",
		"sh", "-c", "cat /etc/resolv.conf; getent ahostsv4 web | head -1")
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out.String(), "nameserver 10.213.78.1") {
		t.Errorf("resolv.conf does not name the gateway 10.213.78.1:\n%s", out)
	}
	if !strings.Contains(out.String(), "10.213.78.2 ") {
		t.Errorf("web did not resolve to the command's own 10.213.78.2:\n%s", out)
	}
}

// --network container:NAME (as root, with a daemon): the command shares an
// endpoint's namespace: its interface, its address, its loopback.
func TestRunContainerMode(t *testing.T) {
	ns := netnstest.New(t)
	d := clitest.NewDaemon(t)
	d.Start()
	d.MustRun("network", "create", "app", "--subnet", "10.213.79.0/24")
	d.MustRun("connect", "app", "--netns", ns.Path, "--name", "web")
	ns.ServeEach(t, "127.0.0.1:8080", func(net.Conn) string { return "hello from web's loopback\n" })
	cmd := exec.Command(d.Bin, "--socket", d.Socket, "run", "--network", "container:web", "--",
		"bash", "-c", "ip -4 -brief addr show eth0; cat /etc/resolv.conf; exec 3<>/dev/tcp/127.0.0.1/8080 && cat <&3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run --network container:web: %v\n%s", err, out)
	}
	for _, want := range []string{"10.213.79.2/24", "nameserver 10.213.79.1", "hello from web's loopback"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Bad names and -p are refused, naming the input.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "container:nosuch"}, `no endpoint "nosuch"`},
		{[]string{"--network", "container:web", "-p", "8080:80"}, "switchyard port add"},
	} {
		args := append(append([]string{"--socket", d.Socket, "run"}, c.args...), "--", "true")
		out, err := exec.Command(d.Bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("run %v: %v, want an error containing %q:\n%s", c.args, err, c.want, out)
		}
	}
	if eps := endpoints(t, d, "app"); len(eps) != 1 {
		t.Errorf("after the runs, app has %d endpoints, want web alone", len(eps))
	}
}
