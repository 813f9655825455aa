package netnstest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Capture says what Tshark captures.
type Capture struct {
	// Iface is the interface in the namespace to capture on.
	Iface string
	// Filter is the capture filter (pcap syntax), like "icmp".
	Filter string
	// Count is how many packets to capture before tshark exits.
	Count int
	// Fields are the tshark fields printed for each packet, separated by
	// spaces, like "ip.src" and "ip.dst".
	Fields []string
	// Decode, if set, is a tshark decode-as rule (-d), like
	// "udp.port==4789,vxlan".
	Decode string
	// Every is how often traffic runs while tshark waits for its
	// packets; 0 means 500ms.
	Every time.Duration
	// Outer prints only a field's first occurrence in a packet: the
	// outer header's, where a tunnel carries a second header of the same
	// protocol (tshark prints "outer,inner" otherwise).
	Outer bool
}

// Tshark runs tshark on c.Iface in namespace n until it has c.Count
// packets (giving up after 45 seconds), calling traffic every c.Every
// until then (tshark takes a while to start, so traffic repeats), and
// returns tshark's output: a line a packet, its fields space-separated.
// It fails the test if tshark fails or times out.
func (n *NS) Tshark(t testing.TB, c Capture, traffic func()) string {
	t.Helper()
	every := c.Every
	if every == 0 {
		every = 500 * time.Millisecond
	}
	args := []string{"-n", "-l", "-i", c.Iface, "-c", strconv.Itoa(c.Count), "-a", "duration:45", "-f", c.Filter}
	if c.Decode != "" {
		args = append(args, "-d", c.Decode)
	}
	args = append(args, "-T", "fields")
	if c.Outer {
		args = append(args, "-E", "occurrence=f")
	}
	for _, f := range c.Fields {
		args = append(args, "-e", f)
	}
	args = append(args, "-E", "separator= ")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := n.Command(ctx, "tshark", args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("tshark: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tshark on %s in %s: %v (got %q; %s)", c.Iface, n.Name, err, stdout.String(), stderr.String())
			}
			return stdout.String()
		case <-tick.C:
			traffic()
		}
	}
}
