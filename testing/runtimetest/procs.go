package runtimetest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// killMountNS kills (SIGKILL) every process in mount namespace ns (as
// /proc/PID/ns/mnt names it), which must be a namespace a fixture made
// for its own daemon, waits up to 10 s for them to go, and returns
// "PID COMM" of each it found.
func killMountNS(ns string) []string {
	return killWhere(func(pid int) bool {
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		return err == nil && got == ns
	})
}

// killCmdlineWith kills (SIGKILL) every process whose command line has
// an argument equal to arg, which must be unique to one fixture (its own
// socket path, say), waits for them to go, and returns "PID COMM" of
// each it found.
func killCmdlineWith(arg string) []string {
	return killWhere(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return false
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				return true
			}
		}
		return false
	})
}

func killWhere(match func(pid int) bool) []string {
	self := os.Getpid()
	var found []string
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !match(pid) {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		found = append(found, fmt.Sprintf("%d %s", pid, strings.TrimSpace(string(comm))))
		pids = append(pids, pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(pid, 0); err != nil {
				break
			}
			// A zombie is gone for our purposes: its parent reaps it.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && zombie(st) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return found
}

// zombie reports whether a /proc/PID/stat line is a zombie's (state Z,
// the field after the parenthesised command name).
func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// readTail returns the last 8 KiB of a log file, for a failure message.
func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > 8<<10 {
		b = append([]byte("...\n"), b[len(b)-8<<10:]...)
	}
	return string(b)
}
