package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/internal/nsexec"
)

// --network container:NAME runs the command in the network namespace of
// a daemon endpoint, as Docker's container network mode does: no network
// of its own, nothing to connect or publish.
//
// The namespace may belong to another user namespace (a rootless
// runtime's, `unshare -Urn`), which a Go process cannot enter once it has
// threads; so the init is started in two stages:
//
//	run ── stage 1: started with the namespaces to join in its environment;
//	       │        internal/nsexec's constructor enters the owner's user
//	       │        namespace, then the network namespace, before Go starts
//	       └── stage 2: the usual init, started by stage 1 in new mount,
//	                    PID and UTS namespaces (stage 1 now has the
//	                    capabilities for that), then the command
//
// Stage 1 passes signals on and exits with stage 2's status; stage 2 dies
// with it (Pdeathsig), and with stage 2 the PID namespace.

// envStage marks the first stage of a container-mode init.
const envStage = "_SWITCHYARD_INIT_STAGE"

// findContainer asks the daemon for the endpoint NAME or NETWORK/NAME.
func (r *runner) findContainer(ctx context.Context) (api.Endpoint, error) {
	c := api.NewClient(r.cfg.Socket)
	want := r.mode.name
	network, name, qualified := strings.Cut(want, "/")
	if !qualified {
		name, network = want, ""
	}
	nets, err := c.Networks(ctx)
	if err != nil {
		return api.Endpoint{}, fmt.Errorf("--network container:%s needs a running daemon to find %s: %w", want, want, err)
	}
	var found []api.Endpoint
	for _, n := range nets {
		if network != "" && n.Name != network {
			continue
		}
		eps, err := c.Endpoints(ctx, n.Name)
		if err != nil {
			return api.Endpoint{}, err
		}
		for _, e := range eps {
			if e.Name == name {
				found = append(found, e)
			}
		}
	}
	switch {
	case len(found) == 0:
		return api.Endpoint{}, fmt.Errorf("--network container:%s: no endpoint %q (list them with `switchyard endpoint ls`)", want, want)
	case len(found) > 1:
		var keys []string
		for _, e := range found {
			keys = append(keys, e.Network+"/"+e.Name)
		}
		return api.Endpoint{}, fmt.Errorf("--network container:%s: several endpoints have that name (%s): say container:NETWORK/NAME",
			want, strings.Join(keys, ", "))
	case found[0].Kind == "vm":
		return api.Endpoint{}, fmt.Errorf("--network container:%s is a VM's TAP, with no namespace to share", want)
	}
	return found[0], nil
}

// containerInit prepares cmd (the init) to start in ep's network
// namespace, and in the user namespace that owns it when that is not
// ours. It returns files to close once the init has started.
func containerInit(cmd *exec.Cmd, ep api.Endpoint) ([]*os.File, error) {
	if !nsexec.Available() {
		return nil, errors.New("--network container: this binary cannot enter namespaces (built without cgo)")
	}
	netFile, err := os.Open(ep.NetNS)
	if err != nil {
		return nil, fmt.Errorf("--network container:%s/%s: open its namespace: %w", ep.Network, ep.Name, err)
	}
	files := []*os.File{netFile}
	env := []string{envStage + "=container", nsexec.EnvNet + "=/proc/self/fd/4"}
	userFD, err := unix.IoctlRetInt(int(netFile.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		netFile.Close()
		return nil, fmt.Errorf("--network container:%s/%s: find the user namespace that owns %s: %w", ep.Network, ep.Name, ep.NetNS, err)
	}
	userFile := os.NewFile(uintptr(userFD), "userns")
	if same, _ := sameFile(userFile, "/proc/self/ns/user"); same {
		userFile.Close()
		if os.Geteuid() != 0 {
			netFile.Close()
			return nil, fmt.Errorf("--network container:%s/%s: its namespace belongs to the host's user namespace, which only root may enter", ep.Network, ep.Name)
		}
	} else {
		files = append(files, userFile)
		env = append(env, nsexec.EnvUser+"=/proc/self/fd/5")
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, files...) // fds 4 (and 5), after the go-ahead pipe
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return files, nil
}

// sameFile reports whether f and the file at path are the same inode (the
// same namespace, for nsfs files).
func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// containerStage is stage 1: already in the endpoint's namespaces, it
// starts the real init in new mount, PID and UTS namespaces and passes its
// status back.
func containerStage() int {
	os.Unsetenv(envStage)
	unix.Close(4) // the namespace files: entered already
	unix.Close(5)
	goAhead := os.NewFile(3, "run-config")
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{goAhead}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard run: start the command's namespaces inside the container's: %v\n", err)
		return 126
	}
	goAhead.Close()
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// containerTimeout bounds the daemon lookup.
const containerTimeout = 5 * time.Second
