package e2e_test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/clitest"
)

// The switchyard binary with CNI_COMMAND set answers only in CNI's terms:
// a version list, or error JSON on stdout and exit status 1, never a
// usage screen or a panic, whatever the input.
func TestBinarySpeaksCNI(t *testing.T) {
	bin := clitest.Binary(t)
	env := []string{"CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/sytest-none", "CNI_IFNAME=eth0", "CNI_PATH=/nonexistent"}
	for _, c := range []struct {
		command, stdin string
		code           int // 0: success
		msg            string
	}{
		{"VERSION", `{"cniVersion":"1.1.0"}`, 0, ""},
		{"ADD", `{not json`, 6, ""},
		{"ADD", `{"cniVersion":"1.1.0","name":"n","type":"switchyard","subnet":"nonsense"}`, 7, `subnet "nonsense"`},
		{"ADD", `{"cniVersion":"9.9.9","name":"n","type":"switchyard"}`, 1, ""},
		{"FROB", `{"cniVersion":"1.1.0","name":"n","type":"switchyard"}`, 4, "FROB"},
		{"STATUS", `{"cniVersion":"1.1.0","name":"n","type":"switchyard","socket":"/nonexistent/sy.sock"}`, 50, "/nonexistent/sy.sock"},
	} {
		cmd := exec.Command(bin, "--help") // arguments are not read in CNI mode
		cmd.Env = append(append([]string{"CNI_COMMAND=" + c.command}, env...), "PATH=/usr/bin:/bin")
		cmd.Stdin = strings.NewReader(c.stdin)
		out, err := cmd.Output()
		if c.code == 0 {
			if err != nil || !strings.Contains(string(out), "supportedVersions") {
				t.Errorf("%s: %v, %s", c.command, err, out)
			}
			continue
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s %s: exit %v, want status 1", c.command, c.stdin, err)
		}
		var e struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		}
		if err := json.Unmarshal(out, &e); err != nil || e.Code != c.code || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%s %s: printed %s; want CNI error %d naming %q", c.command, c.stdin, out, c.code, c.msg)
		}
	}
}
