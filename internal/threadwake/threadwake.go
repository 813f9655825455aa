//go:build linux

// Package threadwake counts how often the threads of this process went
// to sleep and were woken again, for tests that check that a path wakes
// no thread it should not: the voluntary context switches of each thread
// (/proc/self/task/*/status), which the kernel counts whenever a thread
// blocks. Go's runtime has no such count of its own (its execution
// tracer counts goroutines, not the threads under them).
package threadwake

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// counts are voluntary context switches by thread id.
type counts map[string]uint64

// snapshot returns the counts of the process's threads other than skip
// (the caller's own thread, usually) and other than the runtime's
// monitor thread (sysmon), told by where it sleeps: it is the one thread
// of a Go process that sleeps in nanosleep (the others wait on futexes
// or in epoll_wait). Caught awake, it is counted.
func snapshot(skip int) (counts, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("threadwake: %w", err)
	}
	c := make(counts)
	for _, task := range tasks {
		dir := "/proc/self/task/" + task.Name()
		if task.Name() == strconv.Itoa(skip) {
			continue
		}
		if w, _ := os.ReadFile(dir + "/wchan"); strings.Contains(string(w), "nanosleep") {
			continue
		}
		b, err := os.ReadFile(dir + "/status")
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				c[task.Name()], _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return c, nil
}

// since returns how many more switches the threads counted in both
// before and c made.
func (c counts) since(before counts) uint64 {
	var n uint64
	for tid, a := range c {
		if b, ok := before[tid]; ok {
			n += a - b
		}
	}
	return n
}

// During runs fn on a thread of its own (the goroutine locked to it) and
// returns how many times the process's other threads, the monitor thread
// aside, slept and were woken while fn ran. fn's own thread is left out:
// it is the test's client, which blocks or spins as it likes.
func During(fn func() error) (uint64, error) {
	type result struct {
		n   uint64
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		me := unix.Gettid()
		before, err := snapshot(me)
		if err == nil {
			err = fn()
		}
		if err != nil {
			res <- result{err: err}
			return
		}
		after, err := snapshot(me)
		res <- result{after.since(before), err}
	}()
	r := <-res
	return r.n, r.err
}
