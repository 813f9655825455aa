// Command startup measures how long a command takes from being started to
// serving its first HTTP request on a published port: the set-up time of
// a rootless network (namespaces, TAP or tap-less device, port
// forwarding) plus the server's own start. It runs the command -n times,
// each time polling 127.0.0.1:PORT every millisecond until an HTTP GET
// succeeds, then stops the command's process group (SIGINT, then SIGKILL
// after 5 s) and waits until the port is free again.
//
//	startup -port 18300 -n 20 -- switchyard run -p 18300:80 -- switchyard whoami
//
// It prints one line: name, runs, min, median, p90 and max in
// milliseconds. Every run is bounded by -timeout; a run that never serves
// is an error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 0, "the host port the command publishes (127.0.0.1)")
	n := flag.Int("n", 10, "runs")
	timeout := flag.Duration("timeout", 10*time.Second, "give up on a run after this long")
	name := flag.String("name", "", "label for the output line")
	flag.Parse()
	if *port == 0 || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: startup -port PORT [-n RUNS] [-name LABEL] -- CMD [ARGS...]")
		os.Exit(2)
	}
	if *name == "" {
		*name = flag.Arg(0)
	}
	var ms []float64
	for i := 0; i < *n; i++ {
		d, err := once(flag.Args(), *port, *timeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "startup %s: run %d: %v\n", *name, i+1, err)
			os.Exit(1)
		}
		ms = append(ms, float64(d.Microseconds())/1000)
	}
	slices.Sort(ms)
	pct := func(p float64) float64 { return ms[int(p*float64(len(ms)-1)+0.5)] }
	fmt.Printf("%-28s runs=%d min=%.1fms median=%.1fms p90=%.1fms max=%.1fms\n", *name, len(ms), ms[0], pct(0.5), pct(0.9), ms[len(ms)-1])
}

// once starts the command and times it to the first served request.
func once(argv []string, port int, timeout time.Duration) (time.Duration, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitFree(addr, 5*time.Second); err != nil {
		return 0, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = nil, nil
	client := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer stop(cmd, exited)
	for {
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("no answer on %s within %v", addr, timeout)
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("the command exited (%v) before serving", cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			resp, err := client.Get("http://" + addr + "/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return time.Since(start), nil
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// stop ends the command's process group: SIGINT as a terminal's Ctrl-C,
// SIGKILL if it has not exited after 5 s.
func stop(cmd *exec.Cmd, exited chan struct{}) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// waitFree waits until nothing listens on addr (the previous run's
// forwarder has let go of it).
func waitFree(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(deadline) {
			return errors.New(addr + " is still served by a previous run")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
