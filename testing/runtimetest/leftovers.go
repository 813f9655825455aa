package runtimetest

import (
	"bytes"
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
		cmdline := string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))
		for _, d := range dirs {
			if strings.Contains(cmdline, d) {
				left = append(left, fmt.Sprintf("%d %s", pid, cmdline))
				break
			}
		}
	}
	return left
}
