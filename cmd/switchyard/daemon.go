package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/cmd/internal/daemoncmd"
)

// daemonBinary is the daemon's executable, which `switchyard daemon`
// runs in its place.
const daemonBinary = "switchyardd"

// daemonCommand is `switchyard daemon`: it checks the flags (so that
// --help and mistakes are answered here) and execs switchyardd with the
// global flags and the daemon's flags that were given. The process
// stays the same (same PID), so a supervisor or a test that started
// `switchyard daemon` signals the daemon itself.
func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run the daemon (" + daemonBinary + ") in the foreground; state survives restarts",
		Flags: daemoncmd.Flags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("daemon: unexpected argument %q (see 'switchyard daemon --help')", c.Args().First()), 2)
			}
			if _, err := newLogger(c); err != nil {
				return cli.Exit(err.Error(), 2)
			}
			bin, err := findDaemon()
			if err != nil {
				return err
			}
			return syscall.Exec(bin, daemonArgs(c, bin), os.Environ())
		},
	}
}

// daemonArgs is the command line of switchyardd for c: the global flags,
// then each of the daemon's flags that was set.
func daemonArgs(c *cli.Context, bin string) []string {
	args := []string{bin, "--socket=" + c.String("socket"), "--log-level=" + c.String("log-level"), "--log-format=" + c.String("log-format")}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if c.IsSet(name) {
			args = append(args, fmt.Sprintf("--%s=%v", name, c.Value(name)))
		}
	}
	return args
}

// findDaemon looks for switchyardd next to this executable, then on PATH.
func findDaemon() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), daemonBinary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(daemonBinary)
	if err != nil {
		return "", errors.New("the daemon binary " + daemonBinary + " is neither next to switchyard nor on PATH: install it (go install ./cmd/... installs both) and try again")
	}
	return p, nil
}
