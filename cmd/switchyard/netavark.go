package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/cmd/internal/daemoncmd"
	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/plugins/netavark"
)

// netavarkName is the name the binary answers to as a netavark plugin:
// podman runs it from netavark's plugin directory as the network's
// driver (`podman network create -d switchyard-netavark`).
const netavarkName = "switchyard-netavark"

// asNetavarkPlugin reports whether the binary was started as the plugin,
// by its name.
func asNetavarkPlugin() bool { return filepath.Base(os.Args[0]) == netavarkName }

// runNetavarkPlugin is the plugin started by its name: netavark passes
// no flags, so the socket is SWITCHYARD_SOCKET's or the default one (a
// network's "socket" option overrides both).
func runNetavarkPlugin() int {
	socket := os.Getenv("SWITCHYARD_SOCKET")
	if socket == "" {
		socket = daemoncmd.DefaultSocket()
	}
	p := &netavark.Plugin{Socket: socket, Version: daemon.Version}
	return p.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout)
}

// netavarkCommand is the plugin as a command, for trying it by hand:
// `switchyard netavark-plugin setup /run/netns/x < input.json`.
func netavarkCommand() *cli.Command {
	return &cli.Command{
		Name:            "netavark-plugin",
		Usage:           "act as podman's netavark plugin (create, setup NETNS, teardown NETNS, info; JSON on stdin and stdout)",
		ArgsUsage:       "create | setup NETNS | teardown NETNS | info",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			// Flags are not parsed (the plugin's arguments are its own),
			// but --help still shows the help.
			if a := c.Args().First(); c.NArg() == 1 && (a == "--help" || a == "-h") {
				return cli.ShowSubcommandHelp(c)
			}
			log, err := newQuietLogger(c)
			if err != nil {
				return err
			}
			defer log.Sync()
			p := &netavark.Plugin{Socket: c.String("socket"), Version: daemon.Version, Log: log.Named("netavark")}
			if code := p.Run(c.Context, c.Args().Slice(), c.App.Reader, c.App.Writer); code != 0 {
				// The error is on stdout, as JSON: nothing more to print.
				return cli.Exit("", code)
			}
			return nil
		},
	}
}
