// Command switchyard is the CLI of Switchyard: every command that talks
// to the daemon over its unix socket, `switchyard run`, and `switchyard
// daemon`, which execs the daemon binary, switchyardd (daemon.go). It
// only parses arguments and calls the API client or package run; no
// networking logic lives here. It does not link etcd's client: see
// cmd/switchyardd.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/daemoncmd"
	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/plugins/cni"
	"github.com/switchyard-net/switchyard/run"
	"github.com/switchyard-net/switchyard/tap"
)

func main() {
	// Run by a container runtime as its CNI plugin (installed as
	// /opt/cni/bin/switchyard): the CNI_* environment, not the command
	// line, says what to do, and the answer is CNI JSON.
	if os.Getenv("CNI_COMMAND") != "" {
		os.Exit(cni.Main(daemoncmd.DefaultSocket()))
	}
	// The same binary is started as the rootless TAP helper and as the
	// init of `switchyard run`, and as podman's netavark plugin.
	if asNetavarkPlugin() {
		os.Exit(runNetavarkPlugin())
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case tap.HelperArg:
			os.Exit(tap.RunHelper())
		case run.InitArg:
			os.Exit(run.Init())
		}
	}
	app := newApp()
	if err := app.Run(reorderArgs(app, os.Args)); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "switchyard: "+msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "switchyard: "+err.Error())
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "switchyard",
		Usage:   "userspace virtual switch and port proxy: Docker's bridge networking in one unprivileged process",
		Version: daemon.Version,
		Flags:   daemoncmd.GlobalFlags(),
		Commands: []*cli.Command{
			daemonCommand(),
			runCommand(),
			whoamiCommand(),
			networkCommand(),
			connectCommand(),
			disconnectCommand(),
			endpointCommand(),
			portCommand(),
			natCommand(),
			conntrackCommand(),
			captureCommand(),
			statsCommand(),
			tunnelCommand(),
			netavarkCommand(),
		},
		HideHelpCommand: true,
		// Values are repeated, not comma-separated, as in Docker's CLI;
		// a -p value may carry ",path=splice".
		DisableSliceFlagSeparator: true,
		EnableBashCompletion:      true,
		// main prints errors, once (errors.go).
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
	}
	prepareCommands(app.Commands)
	return app
}

// newQuietLogger is newLogger for commands that speak to a person in the
// foreground (run): warnings and errors only, unless --log-level is given.
func newQuietLogger(c *cli.Context) (*zap.Logger, error) {
	if !c.IsSet("log-level") {
		c.Set("log-level", "warn")
	}
	return newLogger(c)
}

// newLogger builds the process's logger from the global flags.
func newLogger(c *cli.Context) (*zap.Logger, error) { return daemoncmd.NewLogger(c) }
