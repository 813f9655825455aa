// Package run is `switchyard run`: a command in a network of its own,
// with egress, DNS and published ports, without a daemon and without root
// — Switchyard's answer to `pasta CMD` and `slirp4netns`, with Docker's -p
// syntax.
//
//	switchyard run (the caller's user)             init (PID 1 of new namespaces)
//	  starts init in new user, net, mount and PID namespaces ─────┐
//	  builds the network in-process:                              │ waits on fd 3
//	    daemon.Daemon (ephemeral state, no socket)                │
//	    network "run", gateway, switch                            │
//	    connect --pid init ─── TAP request on fd 4 ───────────────► makes the TAP (rootless)
//	    publish -p ports on the host                              │
//	  writes the go-ahead on fd 3 ─────────────────────────────► bind resolv.conf, start CMD
//	  forwards Ctrl-C, waits                                       forwards signals, reaps
//	  tears everything down, exits with CMD's status  ◄────────── exits with CMD's status
//
// Run by an ordinary user, the init itself makes the TAP when the
// in-process daemon connects it (tap.ServeHelper on fd 4), so no helper
// process is started; run by root, the parent opens the TAP from inside
// the new network namespace.
//
// With --name and a running daemon, the network part is asked of the daemon
// instead (connect --pid, disconnect at the end), so that `switchyard port
// add/ls` work on the command.
package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/tap"
)

// Config is one `switchyard run`.
type Config struct {
	// Network is a CIDR for the run's own network, the name of a daemon
	// network (with a daemon), or a mode: "none", "host",
	// "container:NAME". Empty: a network of its own on the next free
	// private range.
	Network string
	// Publish holds -p specs.
	Publish []string
	// Expose lists ports (9000, 9000-9010/udp) that PublishAll (-P)
	// publishes on ephemeral host ports. A run has no image whose EXPOSE
	// Docker's -P would read: the ports are given here.
	Expose     []string
	PublishAll bool
	// Name registers the run with the daemon at Socket, if one answers.
	Name   string
	Socket string
	// DNS is the resolver the command's resolv.conf names; zero: the
	// host's resolvers.
	DNS netip.Addr
	// ResolvConf names the host's resolvers for the network's DNS server
	// (daemon.Config.ResolvConf); without a daemon only.
	ResolvConf string
	// HostLoopback lets the command reach the host's 127.0.0.1 at
	// 169.254.1.2.
	HostLoopback bool
	// Cmd and Args are the command.
	Cmd  string
	Args []string
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Stdout and Stderr receive run's own messages (not the command's).
	Stderr *os.File
}

// ErrTunMode is returned when /dev/net/tun cannot be opened by an
// unprivileged user.
var ErrTunMode = errors.New("/dev/net/tun not usable")

// Run runs the command and returns its exit status. An error means the
// command could not be started; the status is then meaningless.
func Run(ctx context.Context, cfg Config) (int, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	mode, err := parseNetwork(cfg.Network)
	if err != nil {
		return 0, err
	}
	if err := checkPublish(cfg, mode); err != nil {
		return 0, err
	}
	if mode.kind == modeHost {
		return runHost(ctx, cfg)
	}
	if mode.kind != modeNone && mode.kind != modeContainer && os.Geteuid() != 0 {
		if err := checkTun(); err != nil {
			return 0, err
		}
	}

	r := &runner{cfg: cfg, mode: mode, log: cfg.Logger.Named("run"), start: time.Now()}
	defer r.cleanup()
	if mode.kind == modeContainer {
		lctx, cancel := context.WithTimeout(ctx, containerTimeout)
		ep, err := r.findContainer(lctx)
		cancel()
		if err != nil {
			return 0, err
		}
		r.container, r.dns, r.name = &ep, ep.DNS, ep.Name
	}
	if err := r.startInit(); err != nil {
		return 0, err
	}
	r.mark("init started")
	if err := r.connect(ctx); err != nil {
		r.abort()
		return 0, err
	}
	r.mark("connected")
	if err := r.goAhead(); err != nil {
		r.abort()
		return 0, err
	}
	r.mark("go-ahead")
	return r.wait(ctx), nil
}

// checkPublish checks -p, -P and --expose against the network mode.
func checkPublish(cfg Config, mode networkMode) error {
	if cfg.PublishAll && len(cfg.Expose) == 0 {
		return errors.New("-P publishes the ports given with --expose, and there are none: add --expose PORT[-PORT][/PROTO], or publish with -p")
	}
	if len(cfg.Publish) == 0 && !cfg.PublishAll {
		return nil
	}
	switch mode.kind {
	case modeHost:
		fmt.Fprintln(cfg.Stderr, "switchyard run: --network host: the command uses the host's network itself; -p and -P are ignored")
	case modeContainer:
		return fmt.Errorf("--network %s shares that endpoint's network: publish its ports with `switchyard port add NETWORK/NAME SPEC`, not -p or -P", cfg.Network)
	}
	return nil
}

// mark logs how long the run has taken to reach a stage (debug level).
func (r *runner) mark(stage string) {
	r.log.Debug("start-up", zap.String("stage", stage), zap.Duration("since_start", time.Since(r.start)))
}

// checkTun explains the one host setting rootless TAPs need.
func checkTun() error {
	var st unix.Stat_t
	if err := unix.Stat("/dev/net/tun", &st); err != nil {
		return fmt.Errorf("%w: %v (load the tun module: modprobe tun)", ErrTunMode, err)
	}
	if st.Mode&0o006 != 0o006 {
		return fmt.Errorf("%w: /dev/net/tun is mode %04o, so an unprivileged user cannot open it; Debian, Ubuntu and Fedora ship it 0666 "+
			"(the kernel still requires CAP_NET_ADMIN in the namespace): sudo chmod 0666 /dev/net/tun", ErrTunMode, st.Mode&0o777)
	}
	return nil
}

type modeKind int

const (
	modeOwn       modeKind = iota // a network of its own (optionally on a CIDR)
	modeDaemonNet                 // a daemon network by name
	modeNone                      // loopback only
	modeHost                      // the host's network
	modeContainer                 // another endpoint's namespace
)

type networkMode struct {
	kind   modeKind
	subnet netip.Prefix
	name   string
}

func parseNetwork(s string) (networkMode, error) {
	switch {
	case s == "":
		return networkMode{kind: modeOwn}, nil
	case s == "none":
		return networkMode{kind: modeNone}, nil
	case s == "host":
		return networkMode{kind: modeHost}, nil
	case strings.HasPrefix(s, "container:"):
		name := strings.TrimPrefix(s, "container:")
		if name == "" {
			return networkMode{}, fmt.Errorf("invalid --network %q: want container:NETWORK/NAME", s)
		}
		return networkMode{kind: modeContainer, name: name}, nil
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err == nil:
		return networkMode{kind: modeOwn, subnet: p}, nil
	case strings.Contains(s, "/"):
		// Network names have no '/': this was meant as a CIDR.
		_, why, _ := strings.Cut(err.Error(), "): ") // after netip.ParsePrefix("…")
		return networkMode{}, fmt.Errorf("invalid --network %q: not a CIDR prefix (%s); want one like 10.5.0.0/24, or a network's name, none, host or container:NAME", s, why)
	}
	return networkMode{kind: modeDaemonNet, name: s}, nil
}

type runner struct {
	cfg  Config
	mode networkMode
	log  *zap.Logger

	init   *exec.Cmd
	goPipe *os.File // write end of the init's fd 3
	// helper is our end of the init's fd 4, on which a rootless init
	// creates the TAP (tap.ServeHelper) instead of a helper process.
	helper           *os.File
	helperRegistered bool
	start            time.Time // for the start-up timings logged at debug level
	dir              string    // ephemeral state
	d                *daemon.Daemon
	client           *api.Client
	network          string
	name             string
	dns              netip.Addr // the network's DNS server
	// container is the endpoint whose namespace the command shares
	// (--network container:NAME).
	container *api.Endpoint
}

// startInit starts the init in its namespaces; it waits on fd 3.
func (r *runner) startInit() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if err := r.resolveCmd(self); err != nil {
		return err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	r.goPipe = wr
	cmd := exec.Command(self, append([]string{InitArg, r.cfg.Cmd}, r.cfg.Args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{rd}
	if r.container != nil {
		files, err := containerInit(cmd, *r.container)
		if err != nil {
			wr.Close()
			return err
		}
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
	} else {
		if os.Geteuid() != 0 {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				wr.Close()
				return fmt.Errorf("socketpair for the init: %w", err)
			}
			r.helper = os.NewFile(uintptr(fds[0]), "init-helper")
			child := os.NewFile(uintptr(fds[1]), "init-helper-child")
			defer child.Close()
			cmd.ExtraFiles = append(cmd.ExtraFiles, child) // fd 4
			cmd.Env = append(os.Environ(), envHelper+"=4")
		}
		attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET,
			Pdeathsig: syscall.SIGKILL}
		if os.Geteuid() != 0 {
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		}
		cmd.SysProcAttr = attr
	}
	if err := cmd.Start(); err != nil {
		wr.Close()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("create the command's namespaces: %w (unprivileged user namespaces must be allowed: sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)", err)
		}
		return fmt.Errorf("start the command's init: %w", err)
	}
	r.init = cmd
	return nil
}

// resolveCmd lets "switchyard" name this very binary (useful with `go run`
// and in the README's examples).
func (r *runner) resolveCmd(self string) error {
	if r.cfg.Cmd == "" {
		return errors.New("no command: switchyard run [flags] -- CMD [ARGS...]")
	}
	if r.cfg.Cmd == "switchyard" {
		if _, err := exec.LookPath("switchyard"); err != nil {
			r.cfg.Cmd = self
		}
	}
	return nil
}

// connect builds (or asks the daemon for) the network and attaches the
// init's namespace to it.
func (r *runner) connect(ctx context.Context) error {
	if r.mode.kind == modeNone || r.mode.kind == modeContainer {
		return nil
	}
	r.name = r.cfg.Name
	if r.name == "" {
		r.name = fmt.Sprintf("run%d", os.Getpid())
	}
	if r.cfg.Name != "" || r.mode.kind == modeDaemonNet || r.mode.kind == modeContainer {
		c := api.NewClient(r.cfg.Socket)
		vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Version(vctx)
		cancel()
		switch {
		case err == nil:
			r.client = c
		case r.mode.kind == modeDaemonNet || r.mode.kind == modeContainer:
			return fmt.Errorf("--network %s needs a running daemon: %w", r.cfg.Network, err)
		default:
			r.log.Debug("no daemon: running alone", zap.Error(err))
		}
	}
	if r.client != nil {
		return r.connectDaemon(ctx)
	}
	return r.connectAlone(ctx)
}

func (r *runner) connectDaemon(ctx context.Context) error {
	switch r.mode.kind {
	case modeDaemonNet:
		r.network = r.mode.name
	default:
		if r.mode.subnet.IsValid() {
			return fmt.Errorf("--network %s: with a daemon, give the name of one of its networks", r.mode.subnet)
		}
		r.network = daemon.DefaultNetwork
	}
	ep, err := r.client.Connect(ctx, r.network, r.endpoint())
	if err != nil {
		return fmt.Errorf("connect to the daemon's network %s: %w", r.network, err)
	}
	r.dns = ep.DNS
	r.showPorts(ep)
	return nil
}

// showPorts says where -P published the exposed ports: on ephemeral host
// ports, which the user cannot know otherwise.
func (r *runner) showPorts(ep api.Endpoint) {
	if !r.cfg.PublishAll {
		return
	}
	for _, p := range ep.Ports {
		fmt.Fprintf(r.cfg.Stderr, "switchyard run: %s\n", p.Docker)
	}
}

func (r *runner) connectAlone(ctx context.Context) error {
	dir, err := os.MkdirTemp(runtimeDir(), "switchyard-run-")
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	r.dir = dir
	d, err := daemon.New(daemon.Config{StateDir: dir, Logger: r.cfg.Logger, Offload: true, NoDefaultNetwork: true, Ephemeral: true,
		ResolvConf: r.cfg.ResolvConf})
	if err != nil {
		return err
	}
	r.d = d
	r.mark("daemon")
	r.network = "run"
	req := api.NetworkCreate{Name: r.network, HostLoopback: r.cfg.HostLoopback}
	if r.mode.subnet.IsValid() {
		req.Subnet = r.mode.subnet.String()
	}
	if _, err := d.CreateNetwork(ctx, req); err != nil {
		return err
	}
	r.mark("network")
	if r.helper != nil {
		// The init makes the TAP: no helper process to start.
		tap.RegisterHelper(fmt.Sprintf("/proc/%d/ns/net", r.init.Process.Pid), r.helper)
		r.helperRegistered = true
	}
	ep, err := d.Connect(ctx, r.network, r.endpoint())
	if err != nil {
		return err
	}
	r.dns = ep.DNS
	r.showPorts(ep)
	return nil
}

// endpoint is the request that connects the init's namespace.
func (r *runner) endpoint() api.EndpointCreate {
	return api.EndpointCreate{PID: r.init.Process.Pid, Name: r.name, IfName: "eth0",
		Publish: r.cfg.Publish, Expose: r.cfg.Expose, PublishAll: r.cfg.PublishAll}
}

// runtimeDir is where ephemeral state goes: $XDG_RUNTIME_DIR (tmpfs,
// private) if set.
func runtimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// goAhead tells the init the network is ready.
func (r *runner) goAhead() error {
	// A namespace of its own has its loopback down until someone brings
	// it up; Docker does, for --network none too.
	cfg := initConfig{Hostname: r.name, LoopbackUp: r.mode.kind != modeContainer}
	if cfg.Hostname == "" {
		cfg.Hostname = "switchyard-run"
	}
	if r.mode.kind != modeNone {
		path, err := r.writeResolvConf()
		if err != nil {
			return err
		}
		cfg.ResolvConf = path
	}
	b, _ := json.Marshal(cfg)
	_, err := r.goPipe.Write(b)
	r.goPipe.Close()
	r.goPipe = nil
	return err
}

// writeResolvConf writes the command's resolv.conf: --dns, or the
// network's DNS server at the gateway (which answers the network's names
// and forwards the rest to the host's resolvers), with the host's search
// domains and options.
func (r *runner) writeResolvConf() (string, error) {
	var lines []string
	switch {
	case r.cfg.DNS.IsValid():
		lines = append(lines, "nameserver "+r.cfg.DNS.String())
	case r.dns.IsValid():
		lines = append(lines, "nameserver "+r.dns.String())
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && (f[0] == "search" || f[0] == "options") {
				lines = append(lines, l)
			}
		}
	}
	dir := r.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp(runtimeDir(), "switchyard-run-"); err != nil {
			return "", err
		}
		r.dir = dir
	}
	path := filepath.Join(dir, "resolv.conf")
	return path, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// stopTimeout is how long the command gets to exit after the first
// signal before the whole run is killed (Docker's stop timeout).
const stopTimeout = 10 * time.Second

// wait waits for the command, passing Ctrl-C and termination on, and
// returns its status. A terminal's Ctrl-C reaches the command itself (it
// is in the same foreground process group); a signal sent to run alone is
// passed on. If the command has not exited stopTimeout after the first
// signal, or a second signal comes, the init is killed, and with it every
// process of the run.
func (r *runner) wait(ctx context.Context) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan int, 1)
	go func() {
		r.init.Wait()
		done <- r.init.ProcessState.ExitCode()
	}()
	var deadline <-chan time.Time
	signalled := false
	for {
		select {
		case <-deadline:
			r.init.Process.Kill()
			deadline = nil
		case code := <-done:
			if code < 0 { // the init itself was killed
				if ws, ok := r.init.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return 1
			}
			return code
		case s := <-sigs:
			if signalled {
				r.init.Process.Kill()
				continue
			}
			signalled = true
			r.init.Process.Signal(s)
			deadline = time.After(stopTimeout)
		case <-ctx.Done():
			r.init.Process.Signal(syscall.SIGTERM)
			select {
			case code := <-done:
				return code
			case <-time.After(10 * time.Second):
				r.init.Process.Kill()
				return <-done
			}
		}
	}
}

// abort stops an init that never got the go-ahead.
func (r *runner) abort() {
	if r.goPipe != nil {
		r.goPipe.Close() // EOF: the init exits
		r.goPipe = nil
	}
	if r.init != nil {
		done := make(chan struct{})
		go func() { r.init.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			r.init.Process.Kill()
			<-done
		}
	}
}

// cleanup disconnects and removes everything the run made.
func (r *runner) cleanup() {
	if r.client != nil && r.network != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.client.Disconnect(ctx, r.network, r.name); err != nil && !errors.Is(err, api.ErrNotFound) {
			r.log.Warn("disconnecting from the daemon", zap.Error(err))
		}
		cancel()
	}
	if r.d != nil {
		if r.network != "" {
			r.d.Disconnect(context.Background(), r.network, r.name)
		}
		r.d.Close()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
	if r.helperRegistered {
		tap.UnregisterHelper(fmt.Sprintf("/proc/%d/ns/net", r.init.Process.Pid))
	} else if r.helper != nil {
		r.helper.Close()
	}
}

// runHost runs the command in the host's network, with nothing to set up.
func runHost(ctx context.Context, cfg Config) (int, error) {
	path, err := exec.LookPath(cfg.Cmd)
	if err != nil {
		return 127, err
	}
	cmd := exec.CommandContext(ctx, path, cfg.Args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 126, err
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}
