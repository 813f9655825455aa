package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// formatFlag is --format on every command that prints something.
var formatFlag = &cli.StringFlag{Name: "format", Usage: "table or json", Value: "table"}

// output writes v as indented JSON with --format json, or calls table
// otherwise.
func output(c *cli.Context, v any, table func(w io.Writer)) error {
	switch c.String("format") {
	case "json":
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	return cli.Exit(fmt.Sprintf("invalid --format %q: want table or json", c.String("format")), 2)
}

// client returns an API client for the global --socket and a context
// bounded so that a stuck daemon does not hang the CLI.
func client(c *cli.Context) (*api.Client, context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	return api.NewClient(c.String("socket")), ctx, cancel
}

// clientNoTimeout is client for streams that last as long as the user
// wants (capture): only the command's own context bounds them.
func clientNoTimeout(c *cli.Context) *api.Client { return api.NewClient(c.String("socket")) }

// needArgs fails with a usage line unless c has exactly n arguments.
func needArgs(c *cli.Context, n int, usage string) error {
	if c.NArg() != n {
		return cli.Exit(fmt.Sprintf("usage: switchyard %s %s", commandPath(c), usage), 2)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// human formats a byte count with a binary unit.
func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func dropSummary(s api.PortStats) string {
	total := s.RXDrops + s.TXDrops
	if total == 0 {
		return "0"
	}
	var parts []string
	for reason, n := range s.DropsBy {
		parts = append(parts, fmt.Sprintf("%s=%d", reason, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ","))
}

// commandPath is the command's full path, like "network create" (the
// root command, named after the program, left out).
func commandPath(c *cli.Context) string {
	var parts []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			parts = append([]string{l.Command.Name}, parts...)
		}
	}
	return strings.Join(parts, " ")
}
