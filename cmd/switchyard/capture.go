package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func captureCommand() *cli.Command {
	return &cli.Command{
		Name:      "capture",
		Usage:     "write a pcap of an endpoint's frames (readable by tcpdump, tshark, Wireshark), without stopping traffic",
		ArgsUsage: "NETWORK/NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "file to write, - for standard output", Required: true},
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after this many frames", DefaultText: "until Ctrl-C"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "NETWORK/NAME -w FILE [--count N]"); err != nil {
				return err
			}
			network, name, err := splitEndpoint(c.Args().First())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			body, err := clientNoTimeout(c).Capture(ctx, network, name, c.Int("count"))
			if err != nil {
				return err
			}
			defer body.Close()
			out := io.Writer(os.Stdout)
			if path := c.String("write"); path != "-" {
				f, err := os.Create(path)
				if err != nil {
					return fmt.Errorf("capture file %s: %w", path, err)
				}
				defer f.Close()
				out = f
			}
			progress := newProgress(os.Stderr, c.String("write") != "-")
			n, err := io.Copy(io.MultiWriter(out, progress), body)
			progress.done(n)
			if err != nil && ctx.Err() == nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("capture of %s: %w", c.Args().First(), err)
			}
			return nil
		},
	}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress shows how much of a long transfer has arrived, on a terminal
// only, at most every 200 ms.
type progress struct {
	w     *os.File
	on    bool
	bytes int64
	last  time.Time
}

func newProgress(w *os.File, wanted bool) *progress {
	return &progress{w: w, on: wanted && isTerminal(w)}
}

func (p *progress) Write(b []byte) (int, error) {
	p.bytes += int64(len(b))
	if p.on && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\rcapturing: %s", human(uint64(p.bytes)))
	}
	return len(b), nil
}

func (p *progress) done(n int64) {
	if p.on {
		fmt.Fprintf(p.w, "\rcaptured %s\n", human(uint64(n)))
	}
}
