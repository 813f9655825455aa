package run

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/tap"
)

// The init of `switchyard run`: the first process of the command's PID
// namespace (and user, network and mount namespaces). It waits until the
// parent has connected the network, puts the network's resolv.conf in
// place in its own mount namespace, then starts the command, passes it
// the signals it receives (Ctrl-C included), reaps whatever is orphaned
// onto it, and exits with the command's status. When it exits the kernel
// kills every process left in the PID namespace, so nothing the command
// started outlives it.

// InitArg is argv[1] of the init process; binaries dispatch it to Init.
const InitArg = "__switchyard-init"

// envHelper names the init's fd on which it serves TAP requests
// (tap.ServeHelper) for its rootless parent.
const envHelper = "_SWITCHYARD_INIT_HELPER"

// initConfig is what the parent tells the init, on fd 3, once the
// network is ready. Closing fd 3 without sending it aborts the run.
type initConfig struct {
	// ResolvConf, if set, is a file to bind-mount over /etc/resolv.conf.
	ResolvConf string `json:"resolv_conf,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
	// LoopbackUp brings lo up in the init's network namespace.
	LoopbackUp bool `json:"loopback_up,omitempty"`
}

// Init is the main of the init process: argv is InitArg, the command and
// its arguments. It returns the exit status.
func Init() int {
	if os.Getenv(envStage) == "container" {
		return containerStage()
	}
	if os.Getenv(envHelper) != "" {
		// A rootless run's parent creates our TAP through us.
		os.Unsetenv(envHelper)
		syscall.CloseOnExec(4)
		go tap.ServeHelper(os.NewFile(4, "init-helper"))
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "switchyard init: no command")
		return 127
	}
	cfgBytes, err := io.ReadAll(os.NewFile(3, "run-config"))
	if err != nil || len(cfgBytes) == 0 {
		return 1 // the parent gave up before the network was ready
	}
	var cfg initConfig
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard init: %v\n", err)
		return 1
	}
	if err := prepare(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard init: %v\n", err)
		return 1
	}
	path, err := exec.LookPath(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchyard run: %v\n", err)
		return 127
	}
	cmd := exec.Command(path, os.Args[3:]...)
	cmd.Args[0] = os.Args[2]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard run: %v\n", err)
		return 126
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	return reap(cmd.Process.Pid)
}

// prepare puts the run's files in place in the init's own mount
// namespace, which nobody else sees.
func prepare(cfg initConfig) error {
	if cfg.ResolvConf != "" {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		if err := unix.Mount(cfg.ResolvConf, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over /etc/resolv.conf: %w", cfg.ResolvConf, err)
		}
	}
	if cfg.LoopbackUp {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find the loopback interface: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring the loopback interface up: %w", err)
		}
	}
	if cfg.Hostname != "" {
		// Only inside a UTS namespace of our own; a failure is harmless.
		unix.Sethostname([]byte(cfg.Hostname))
	}
	return nil
}

// reap waits for every child, as an init must, until the command (pid)
// has exited, and returns its status as a shell would.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1
		}
		if p != pid {
			continue // an orphan reparented to us
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
	}
}
