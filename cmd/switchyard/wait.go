package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// waitForNamespace waits until the namespace connect was asked for exists
// (a runtime may create it just after asking): the path, or /proc/PID.
// On a terminal it shows what it waits for and for how long.
func waitForNamespace(ctx context.Context, netns string, pid int, timeout time.Duration, tty io.Writer) error {
	path := netns
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/ns/net"
	}
	if path == "" || timeout <= 0 {
		return nil
	}
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	shown := false
	for {
		_, err := os.Stat(path)
		if err == nil {
			if shown {
				fmt.Fprintf(tty, "\rwaiting for %s: there after %.1fs\n", path, time.Since(start).Seconds())
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--wait: %w", err)
		}
		if time.Now().After(deadline) {
			if shown {
				fmt.Fprintln(tty)
			}
			return fmt.Errorf("--wait %s: namespace %s did not appear", timeout, path)
		}
		if tty != nil {
			fmt.Fprintf(tty, "\rwaiting for %s … %.1fs of %s", path, time.Since(start).Seconds(), timeout)
			shown = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
