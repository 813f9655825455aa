// Package daemoncmd is the daemon's command line, shared by the binaries
// that run it: switchyardd, which wires etcd's client for `cluster`
// networks, and the CLI's `switchyard daemon`, which execs switchyardd.
// It holds the global flags and the logger set-up that both binaries
// use. It does not import etcd's client (the daemon's Cluster hook is
// passed in), so the CLI may import it without linking gRPC.
package daemoncmd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/api"
	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/plugins/docker"
)

// ClusterFunc connects to etcd for a `cluster` network (daemon.Config.Cluster).
type ClusterFunc func(ctx context.Context, dial cluster.Dial, log *zap.Logger) (cluster.Backend, error)

// GlobalFlags are the flags every command of both binaries takes.
func GlobalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "socket",
			Usage:   "the daemon's API socket",
			EnvVars: []string{"SWITCHYARD_SOCKET"},
			Value:   DefaultSocket(),
		},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		&cli.StringFlag{Name: "log-format", Usage: "console (human-readable) or json", Value: "console"},
	}
}

// Flags are the daemon's own flags.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "state-dir", Usage: "where the state file lives", Value: DefaultStateDir()},
		&cli.BoolFlag{Name: "offload", Usage: "open TAPs with TSO and checksum offload (IFF_VNET_HDR)", Value: true},
		&cli.DurationFlag{Name: "spin", Usage: "how long a network's loop, which reads its TAPs and its tunnel's socket, keeps polling after a frame before it sleeps: while traffic flows, no wake-up per hop, at the cost of a busy core; 0 sleeps at once, a negative value gives every TAP and tunnel a reader goroutine of its own", Value: daemon.DefaultSpin},
		&cli.StringFlag{Name: "resolv-conf", Usage: "the host's resolvers, to which the networks' DNS servers forward", DefaultText: "/etc/resolv.conf"},
		&cli.StringFlag{Name: "debug-socket", Usage: "serve Go's pprof profiles on this unix socket (mode 0600; read with curl --unix-socket PATH http://x/debug/pprof/)"},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100); containers cannot reach it"},
		&cli.IntFlag{Name: "max-conns", Usage: "most connections and UDP flows all published ports hold at once; 0: from the open-file limit, -1: no limit"},
		&cli.IntFlag{Name: "max-conns-per-port", Usage: "most connections one published port holds at once; 0: half of --max-conns, -1: no limit"},
		&cli.StringFlag{Name: "masquerade-ports", Usage: "source ports FIRST-LAST that hairpin connections between containers are masqueraded to", DefaultText: "61000-65535"},
		&cli.IntFlag{Name: "masquerade-share", Usage: "most of those ports one container address holds toward one published port; 0: a quarter of the range"},
		&cli.BoolFlag{Name: "ipv6", Usage: "give the default network an IPv6 /64 too, when it is created (Docker's daemon option ipv6)"},
		&cli.StringFlag{Name: "ipv6-pool", Usage: "the prefix networks created with --ipv6 take their /64s from", DefaultText: "a unique local /48 derived from the daemon's ID"},
		&cli.BoolFlag{Name: "docker-plugin", Usage: "also serve Docker's network and IPAM driver `switchyard` (docker network create -d switchyard --ipam-driver switchyard)"},
		&cli.StringFlag{Name: "docker-plugin-socket", Usage: "the Docker plugin's socket, where dockerd looks for plugins", Value: docker.DefaultSocket},
	}
}

// Run runs the daemon in the foreground until SIGINT or SIGTERM, with
// the global flags and Flags of c; clusterFn may be nil (no `cluster`
// networks).
func Run(c *cli.Context, clusterFn ClusterFunc) error {
	log, err := NewLogger(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	defer log.Sync()
	// The metrics socket is opened first, so that the daemon
	// knows to keep containers' flows away from it.
	var own []netip.AddrPort
	metricsL, err := listenMetrics(c.String("metrics"))
	if err != nil {
		return err
	}
	if metricsL != nil {
		defer metricsL.Close()
		own = append(own, netip.MustParseAddrPort(metricsL.Addr().String()))
	}
	masq, err := ParsePortRange(c.String("masquerade-ports"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	var pool6 netip.Prefix
	if s := c.String("ipv6-pool"); s != "" {
		if pool6, err = netip.ParsePrefix(s); err != nil {
			return cli.Exit(fmt.Sprintf("invalid --ipv6-pool %q: want an IPv6 prefix of /64 or shorter, like fd00:1::/48", s), 2)
		}
	}
	spin := c.Duration("spin")
	if spin == 0 {
		spin = daemon.NoSpin
	}
	cfg := daemon.Config{
		DefaultIPv6:        c.Bool("ipv6"),
		IPv6Pool:           pool6,
		MasqPorts:          masq,
		MasqPortsPerSource: c.Int("masquerade-share"),
		StateDir:           c.String("state-dir"),
		Socket:             c.String("socket"),
		Logger:             log,
		Offload:            c.Bool("offload"),
		Spin:               spin,
		ResolvConf:         c.String("resolv-conf"),
		OwnListeners:       own,
		MaxConns:           c.Int("max-conns"),
		MaxConnsPerPort:    c.Int("max-conns-per-port"),
		// Root in the host's namespace, or refuse host interfaces.
		Rootless: os.Geteuid() != 0,
	}
	if clusterFn != nil {
		cfg.Cluster = func(ctx context.Context, d cluster.Dial) (cluster.Backend, error) { return clusterFn(ctx, d, log) }
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := c.String("debug-socket"); path != "" {
		if err := serveDebug(ctx, path, log); err != nil {
			d.Close()
			return err
		}
	}
	if metricsL != nil {
		serveMetrics(ctx, metricsL, d, log)
	}
	if c.Bool("docker-plugin") {
		// The plugin is a client of the daemon's own API socket, as any
		// other client: it imports the API and nothing below it.
		l, err := docker.Listen(c.String("docker-plugin-socket"))
		if err != nil {
			d.Close()
			return err
		}
		p := docker.New(api.NewClient(cfg.Socket), log)
		go func() {
			if err := p.Serve(ctx, l); err != nil {
				log.Error("docker plugin", zap.Error(err))
			}
		}()
	}
	serveErr := d.Serve(ctx)
	log.Info("shutting down")
	if err := d.Close(); err != nil {
		log.Warn("closing state", zap.Error(err))
	}
	return serveErr
}

// NewLogger builds the process's logger from the global flags.
func NewLogger(c *cli.Context) (*zap.Logger, error) {
	level, err := zap.ParseAtomicLevel(c.String("log-level"))
	if err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	var cfg zap.Config
	switch c.String("log-format") {
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
		cfg.Development = false
	case "json":
		cfg = zap.NewProductionConfig()
	default:
		return nil, fmt.Errorf("invalid --log-format %q: want console or json", c.String("log-format"))
	}
	cfg.Level = level
	cfg.DisableCaller = true
	return cfg.Build()
}

// DefaultSocket is /run/switchyard/switchyard.sock for root and
// $XDG_RUNTIME_DIR/switchyard/switchyard.sock for anyone else.
func DefaultSocket() string {
	if os.Geteuid() == 0 {
		return "/run/switchyard/switchyard.sock"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "switchyard", "switchyard.sock")
	}
	return filepath.Join(os.TempDir(), "switchyard-"+strconv.Itoa(os.Geteuid()), "switchyard.sock")
}

// DefaultStateDir is /var/lib/switchyard for root and
// $XDG_DATA_HOME/switchyard (~/.local/share/switchyard) for anyone else.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/switchyard"
	}
	if dir := os.Getenv("XDG_DATA_HOME"); dir != "" {
		return filepath.Join(dir, "switchyard")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "switchyard")
	}
	return filepath.Join(os.TempDir(), "switchyard-"+strconv.Itoa(os.Geteuid()), "state")
}

// ParsePortRange parses --masquerade-ports, FIRST-LAST ("" for the
// default, the zero range).
func ParsePortRange(s string) ([2]uint16, error) {
	if s == "" {
		return [2]uint16{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(a, 10, 16)
	last, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil || first == 0 || first > last {
		return [2]uint16{}, fmt.Errorf("invalid --masquerade-ports %q: want FIRST-LAST, two ports with 1 <= FIRST <= LAST <= 65535, like 61000-65535", s)
	}
	return [2]uint16{uint16(first), uint16(last)}, nil
}
