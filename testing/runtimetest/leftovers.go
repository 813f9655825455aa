package runtimetest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// fixtureDirs are the directories of every fixture this process made.
var fixtureDirs struct {
	sync.Mutex
	dirs []string
}

// register records a fixture's directory for Leftovers.
func register(dir string) {
	fixtureDirs.Lock()
	fixtureDirs.dirs = append(fixtureDirs.dirs, dir)
	fixtureDirs.Unlock()
}

// Leftovers returns, as "PID COMMAND-LINE", every running process whose
// command line names the directory of a fixture this test binary made:
// a daemon, shim or conmon that outlived its test. Call it from
// TestMain after m.Run, when every fixture has been cleaned up, and fail
// if it returns any. Processes of other test binaries' fixtures are not
// counted.
func Leftovers() []string {
	fixtureDirs.Lock()
	dirs := append([]string(nil), fixtureDirs.dirs...)
	fixtureDirs.Unlock()
	if len(dirs) == 0 {
		return nil
	}
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if namesDir(args, dirs) {
			left = append(left, fmt.Sprintf("%d %s", pid, strings.Join(args, " ")))
		}
	}
	return left
}

// namesDir reports whether a command line names one of dirs or a path
// below one, in an argument of its own or after a "=" or ":" (--root=DIR,
// k8s-file:DIR/log). A directory whose name is a prefix of another's
// does not count.
func namesDir(args, dirs []string) bool {
	for _, a := range args {
		for _, d := range dirs {
			i := strings.Index(a, d)
			if i < 0 || (i > 0 && a[i-1] != '=' && a[i-1] != ':') {
				continue
			}
			if rest := a[i+len(d):]; rest == "" || rest[0] == '/' {
				return true
			}
		}
	}
	return false
}
