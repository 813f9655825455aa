package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// A daemon that may open no ICMP socket says so once, at warn level, not
// once per network at info level (in a new namespace ping_group_range is
// "1 0": no group may, whatever this machine's own setting).
func TestUnansweredPingsWarnOnce(t *testing.T) {
	requireRootlessTun(t)
	dir, err := os.MkdirTemp("", "switchyard-pingwarn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, clitest.Nobody, clitest.Nobody); err != nil {
		t.Fatal(err)
	}
	d := clitest.NewDaemon(t)
	d.Bin = clitest.PublicBinary(t)
	d.Socket = filepath.Join(dir, "run", "switchyard.sock")
	d.StateDir = filepath.Join(dir, "state")
	d.Wrap = append([]string{"nsenter", "--net=" + netnstest.New(t).Path}, clitest.NobodyPrefix(t)...)
	d.Start()
	d.MustRun("network", "create", "one", "--subnet", "10.246.3.0/24")
	d.MustRun("network", "create", "two", "--subnet", "10.246.4.0/24")
	var warns, infos int
	for _, line := range strings.Split(d.Log(), "\n") {
		if !strings.Contains(line, "ping_group_range") {
			continue
		}
		switch {
		case strings.Contains(line, "\tWARN\t"):
			warns++
		case strings.Contains(line, "\tINFO\t"):
			infos++
		}
	}
	if warns != 1 || infos != 0 {
		t.Errorf("%d warnings and %d info lines about ping_group_range for three networks, want one warning:\n%s", warns, infos, d.Log())
	}
}
