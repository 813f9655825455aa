// Command switchyard is the CLI of Switchyard: the daemon itself
// (`switchyard daemon`) and every command that talks to it over its unix
// socket. It only parses arguments and calls package daemon or the API
// client; no networking logic lives here.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/daemon"
	"github.com/switchyard-net/switchyard/run"
	"github.com/switchyard-net/switchyard/tap"
)

func main() {
	// The same binary is started as the rootless TAP helper and as the
	// init of `switchyard run`.
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
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "socket",
				Usage:   "the daemon's API socket",
				EnvVars: []string{"SWITCHYARD_SOCKET"},
				Value:   defaultSocket(),
			},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
			&cli.StringFlag{Name: "log-format", Usage: "console (human-readable) or json", Value: "console"},
		},
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

// defaultSocket is /run/switchyard/switchyard.sock for root and
// $XDG_RUNTIME_DIR/switchyard/switchyard.sock for anyone else.
func defaultSocket() string {
	if os.Geteuid() == 0 {
		return "/run/switchyard/switchyard.sock"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "switchyard", "switchyard.sock")
	}
	return filepath.Join(os.TempDir(), "switchyard-"+strconv.Itoa(os.Geteuid()), "switchyard.sock")
}

// defaultStateDir is /var/lib/switchyard for root and
// $XDG_DATA_HOME/switchyard (~/.local/share/switchyard) for anyone else.
func defaultStateDir() string {
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

// newQuietLogger is newLogger for commands that speak to a person in the
// foreground (run): warnings and errors only, unless --log-level is given.
func newQuietLogger(c *cli.Context) (*zap.Logger, error) {
	if !c.IsSet("log-level") {
		c.Set("log-level", "warn")
	}
	return newLogger(c)
}

// newLogger builds the process's logger from the global flags.
func newLogger(c *cli.Context) (*zap.Logger, error) {
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
