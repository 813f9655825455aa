package soak_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// usage is what the daemon holds at one moment.
type usage struct {
	rssKB      int
	fds        int
	goroutines int
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %.1f MiB, %d fds, %d goroutines", float64(u.rssKB)/1024, u.fds, u.goroutines)
}

// probe reads the daemon's RSS and open files from /proc and its
// goroutines from its pprof socket.
type probe struct {
	pid    int
	client *http.Client
}

func newProbe(pid int, debugSocket string) *probe {
	return &probe{pid: pid, client: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", debugSocket)
			},
		},
	}}
}

func (p *probe) read() (usage, error) {
	var u usage
	var err error
	if u.rssKB, err = p.rss(); err != nil {
		return u, err
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
	if err != nil {
		return u, err
	}
	u.fds = len(ents)
	u.goroutines, err = p.goroutines()
	return u, err
}

// rss returns the daemon's resident set in KiB (VmRSS).
func (p *probe) rss() (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", p.pid)
}

// goroutines reads the first line of the daemon's goroutine profile,
// "goroutine profile: total N".
func (p *probe) goroutines() (int, error) {
	resp, err := p.client.Get("http://debug/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, fmt.Errorf("daemon's goroutine profile: %w", err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("daemon's goroutine profile: %w", err)
	}
	n, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("daemon's goroutine profile starts %q, want \"goroutine profile: total N\"", line)
	}
	return strconv.Atoi(n)
}

// peakRSS samples the daemon's RSS every 200 ms until ctx ends and
// returns the highest, in KiB.
func (p *probe) peakRSS(ctx context.Context) int {
	peak := 0
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		if kb, err := p.rss(); err == nil {
			peak = max(peak, kb)
		}
		select {
		case <-ctx.Done():
			return peak
		case <-tk.C:
		}
	}
}

// settle polls every second, for at most within, until the daemon holds
// no more files and goroutines than base, and returns the last reading
// and how long it took.
func (p *probe) settle(base usage, within time.Duration) (usage, time.Duration, error) {
	start := time.Now()
	for {
		u, err := p.read()
		if err != nil {
			return u, time.Since(start), err
		}
		if (u.fds <= base.fds && u.goroutines <= base.goroutines) || time.Since(start) > within {
			return u, time.Since(start), nil
		}
		time.Sleep(time.Second)
	}
}
