// Command switchyardd is the Switchyard daemon: the control plane that
// owns the networks, serving the API on a unix socket. `switchyard
// daemon` execs it. It is a binary of its own, as dockerd is docker's,
// because it links etcd's Go client (gRPC) for `cluster` networks, which
// would slow every start of the CLI and of `switchyard run`
// (benchmarks/RESULTS.md, "Start-up").
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/daemoncmd"
	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/daemon/cluster"
	"github.com/switchyard-net/switchyard/daemon/cluster/etcdv3"
	"github.com/switchyard-net/switchyard/tap"
)

func main() {
	// The daemon starts its own binary as the rootless TAP helper.
	if len(os.Args) > 1 && os.Args[1] == tap.HelperArg {
		os.Exit(tap.RunHelper())
	}
	app := &cli.App{
		Name:            "switchyardd",
		Usage:           "the Switchyard daemon, in the foreground; state survives restarts",
		Version:         daemon.Version,
		Flags:           append(daemoncmd.GlobalFlags(), daemoncmd.Flags()...),
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("unexpected argument %q (see 'switchyardd --help')", c.Args().First()), 2)
			}
			return daemoncmd.Run(c, dialEtcd)
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "switchyardd: "+err.Error())
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func dialEtcd(ctx context.Context, d cluster.Dial, log *zap.Logger) (cluster.Backend, error) {
	return etcdv3.New(ctx, d, log)
}
