package soak_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// pingResult is what the victim's ping loop saw.
type pingResult struct {
	sent, received int
	err            error
}

func (p pingResult) lossPct() float64 {
	if p.sent == 0 {
		return 100
	}
	return 100 * float64(p.sent-p.received) / float64(p.sent)
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingLoop pings the gateway from the victim every 100 ms for d (ping's
// own deadline, so that it prints its summary; it is killed 15 s later
// if it has not stopped) and returns what came back.
func pingLoop(ctx context.Context, w *world, d time.Duration) pingResult {
	secs := int((d + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d+15*time.Second)
	defer cancel()
	return pingGateway(ctx, w, w.victim, "-w", strconv.Itoa(secs))
}

// pingGateway pings the gateway from ns every 100 ms (more arguments
// bound it) and returns ping's summary.
func pingGateway(ctx context.Context, w *world, ns *netnstest.NS, bound ...string) pingResult {
	args := append([]string{"-n", "-q", "-i", "0.1", "-W", "1"}, bound...)
	out, _ := ns.Command(ctx, "ping", append(args, w.gw.String())...).CombinedOutput()
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		return pingResult{err: fmt.Errorf("ping %s from %s printed no summary: %q", w.gw, ns.Name, out)}
	}
	sent, _ := strconv.Atoi(string(m[1]))
	recv, _ := strconv.Atoi(string(m[2]))
	return pingResult{sent: sent, received: recv}
}

// newcomerPings is how many pings a container connected after the
// attack sends to the gateway.
const newcomerPings = 20

// newcomer connects a new container once the attack is over (when the
// MAC flood may have filled the switch's table) and pings the gateway
// from it.
func newcomer(t *testing.T, w *world) pingResult {
	t.Helper()
	ns := netnstest.New(t)
	w.d.MustRun("connect", "soak", "--netns", ns.Path, "--name", "newcomer")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pingGateway(ctx, w, ns, "-c", strconv.Itoa(newcomerPings))
}

// httpResult is what the HTTP loop saw.
type httpResult struct {
	ok, failed, hijacked int
	other                int             // answers from neither server
	lat                  []time.Duration // of the answered requests
	firstErr             error
	hijackedBody         string
}

// httpInterval is the pause between two requests of the HTTP loop.
const httpInterval = 50 * time.Millisecond

// httpLoop asks the published port every httpInterval until ctx ends (at
// most limit times) and sorts the answers: the victim's, the attacker's
// (a hijack), or errors.
func httpLoop(ctx context.Context, w *world, limit int) *httpResult {
	c := w.client()
	r := &httpResult{lat: make([]time.Duration, 0, limit)}
	tk := time.NewTicker(httpInterval)
	defer tk.Stop()
	for i := 0; i < limit; i++ {
		select {
		case <-ctx.Done():
			return r
		case <-tk.C:
		}
		start := time.Now()
		body, err := ask(c)
		took := time.Since(start)
		r.add(body, err, took)
	}
	return r
}

func (r *httpResult) add(body string, err error, took time.Duration) {
	switch {
	case err != nil:
		r.failed++
		if r.firstErr == nil {
			r.firstErr = err
		}
	case body == victimID:
		r.ok++
		r.lat = append(r.lat, took)
	case body == attackID:
		r.hijacked++
		r.hijackedBody = body
	default:
		r.other++
		r.hijackedBody = body
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of the answered
// requests' latency, or 0 if none was answered.
func (r *httpResult) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// latency is percentile p for the report: "n/a" if nothing was answered.
func (r *httpResult) latency(p float64) string {
	if len(r.lat) == 0 {
		return "n/a"
	}
	return r.percentile(p).Round(100 * time.Microsecond).String()
}
