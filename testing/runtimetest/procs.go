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
// for its own daemon, and every descendant of one (a shim's container,
// in a mount namespace of its own); waits up to 10 s for them to go;
// and returns "PID COMM" of each it found.
func killMountNS(ns string) []string {
	self := os.Getpid()
	children := map[int][]int{}
	var roots []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if _, ppid, ok := parseStat(st); ok {
				children[ppid] = append(children[ppid], pid)
			}
		}
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && got == ns {
			roots = append(roots, pid)
		}
	}
	seen := map[int]bool{}
	var pids []int
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		pids = append(pids, pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, pid := range roots {
		walk(pid)
	}
	var found []string
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		found = append(found, fmt.Sprintf("%d %s", pid, strings.TrimSpace(string(comm))))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(pid, 0); err != nil {
				break
			}
			// A zombie is gone for our purposes: its parent reaps it.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				if state, _, ok := parseStat(st); ok && state == 'Z' {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return found
}

// parseStat returns the state and parent PID from a /proc/PID/stat
// line: "PID (COMM) STATE PPID ...", where COMM may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStat(stat []byte) (state byte, ppid int, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil || ppid < 0 {
		return 0, 0, false
	}
	return f[0][0], ppid, true
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
