package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/run"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command in a network of its own (egress, DNS, published ports), without a daemon or root",
		ArgsUsage: "[flags] -- CMD [ARGS...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "network", Usage: "a CIDR for the command's network, a daemon network's name, none, host, or container:[NETWORK/]NAME (share an endpoint's namespace)"},
			&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port, Docker's -p syntax (repeatable)"},
			&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish every --expose'd port on an ephemeral host port"},
			&cli.StringSliceFlag{Name: "expose", Usage: "expose a port or range for -P, like 9000 or 9000-9010/udp (repeatable)"},
			&cli.StringFlag{Name: "name", Usage: "register with the running daemon under this name (switchyard port add/ls then work on it)"},
			&cli.StringFlag{Name: "dns", Usage: "the resolver the command uses", DefaultText: "the network's DNS server at the gateway, which forwards to the host's"},
			&cli.StringFlag{Name: "resolv-conf", Usage: "the host's resolvers, to which the network's DNS server forwards", DefaultText: "/etc/resolv.conf"},
			&cli.BoolFlag{Name: "host-loopback", Usage: "let the command reach the host's 127.0.0.1 at 169.254.1.2"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("usage: switchyard run [--network CIDR|NAME|none|host|container:NAME] [-p SPEC]... [-P --expose PORT]... [--name NAME] [--dns IP] [--host-loopback] -- CMD [ARGS...]", 2)
			}
			cfg := run.Config{
				Network: c.String("network"), Publish: c.StringSlice("publish"), Name: c.String("name"),
				Expose: c.StringSlice("expose"), PublishAll: c.Bool("publish-all"),
				Socket: c.String("socket"), HostLoopback: c.Bool("host-loopback"), ResolvConf: c.String("resolv-conf"),
				Cmd: c.Args().First(), Args: c.Args().Tail(),
			}
			if s := c.String("dns"); s != "" {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return cli.Exit(fmt.Sprintf("invalid --dns %q: want an IP address", s), 2)
				}
				cfg.DNS = a
			}
			log, err := newQuietLogger(c)
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			defer log.Sync()
			cfg.Logger = log
			code, err := run.Run(c.Context, cfg)
			if err != nil {
				return err
			}
			return cli.Exit("", code)
		},
	}
}

// whoamiCommand is a tiny HTTP server for trying Switchyard out with
// nothing installed: it answers every request with where it runs and who
// it sees connecting — the real client address, through published ports.
func whoamiCommand() *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "serve HTTP, answering with the server's and the client's addresses (a demo server)",
		Flags: []cli.Flag{&cli.StringFlag{Name: "listen", Usage: "address to listen on", Value: ":80"}},
		Action: func(c *cli.Context) error {
			l, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "whoami: listening on %s\n", l.Addr())
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				host, _ := os.Hostname()
				fmt.Fprintf(w, "hello from %s (%s)\nyou are %s\n", host, interfaces(), r.RemoteAddr)
			})}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			go func() { <-sigs; srv.Close() }()
			if err := srv.Serve(l); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
}

// interfaces lists this namespace's non-loopback addresses.
func interfaces() string {
	addrs, _ := net.InterfaceAddrs()
	var out []string
	for _, a := range addrs {
		// Both families, but not link-local addresses: every IPv6
		// interface has one, and they name no network.
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			out = append(out, ipn.String())
		}
	}
	return fmt.Sprint(out)
}
