// Package rlimit raises the process's limit on open files (RLIMIT_NOFILE)
// and reports it, so that the daemon can size what it accepts to what it
// may open (package proxy derives its connection limits from NoFile).
//
// The Go runtime already raises the soft limit at start, to one below the
// hard limit, and puts the original soft limit back in the processes it
// starts (programs that use select(2) need a small one). Raise keeps that
// arrangement where the runtime did its work, and finishes it where it
// could not: when the hard limit is above what the kernel accepts
// (fs.nr_open; "unlimited" is), the runtime's raise fails and the soft
// limit stays where the login shell left it, often 1024.
package rlimit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// nrOpenPath is fs.nr_open: the most file descriptors the kernel lets a
// process have, whatever its hard limit says.
const nrOpenPath = "/proc/sys/fs/nr_open"

// NoFile returns the process's soft and hard RLIMIT_NOFILE.
func NoFile() (soft, hard uint64, err error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	return l.Cur, l.Max, nil
}

// Raise raises the soft RLIMIT_NOFILE to the hard limit (to fs.nr_open if
// the hard limit is higher) and returns the soft limit in force after it.
// It logs the limit at info level, and a failure at warn level: a daemon
// that cannot raise its limit still runs, with smaller defaults. A nil log
// logs nothing.
//
// A soft limit already within one of the target is left alone: that is
// the Go runtime's own raise, and changing it would stop the runtime from
// giving child processes their original limit back.
func Raise(log *zap.Logger) uint64 {
	if log == nil {
		log = zap.NewNop()
	}
	soft, hard, err := NoFile()
	if err != nil {
		log.Warn("cannot read the open-file limit", zap.Error(err))
		return 0
	}
	want := target(soft, hard, readNrOpen())
	if want > soft {
		l := unix.Rlimit{Cur: want, Max: hard}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
			log.Warn("cannot raise the open-file limit", zap.Uint64("soft", soft), zap.Uint64("hard", hard),
				zap.Uint64("wanted", want), zap.Error(err))
			return soft
		}
		soft = want
	}
	log.Info("open-file limit", zap.Uint64("soft", soft), zap.Uint64("hard", hard))
	return soft
}

// target returns the soft limit Raise sets, given the current soft and
// hard limits and fs.nr_open (0 if unknown): the hard limit, capped at
// nr_open, unless soft is already within one of it (or above it).
func target(soft, hard, nrOpen uint64) uint64 {
	want := hard
	if nrOpen > 0 && want > nrOpen {
		want = nrOpen
	}
	if soft+1 >= want {
		return soft
	}
	return want
}

// readNrOpen returns fs.nr_open, or 0 if it cannot be read.
func readNrOpen() uint64 {
	b, err := os.ReadFile(nrOpenPath)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
