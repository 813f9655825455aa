package proxy_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/proxy"
)

// memSample is what one published port costs, measured from outside.
type memSample struct {
	rss, heap, stack uint64 // bytes: VmRSS, HeapInuse, StackInuse
	goroutines       int
	fds              int
}

func sampleMem(t testing.TB) memSample {
	t.Helper()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			s.rss = kb << 10
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(ents)
	}
	return s
}

// TestThousandPorts publishes 1,000 ephemeral TCP ports (-p 80, so 2,000
// listeners: 0.0.0.0 and [::] each), talks through a sample of them, and
// logs what they cost. One goroutine per listener and nothing else is
// allowed; memory per port is bounded loosely (the numbers are in the log).
func TestThousandPorts(t *testing.T) {
	leakCheck(t)
	const n = 1000
	m := newManager(t, proxy.Config{Logger: zap.NewNop()}) // 2,000 log lines would drown the test log
	d := fakeContainer(t, 80)
	spec := mapping(t, "80")

	before := sampleMem(t)
	start := time.Now()
	pubs := make([][]proxy.Published, n)
	listeners := 0
	for i := range pubs {
		p, err := m.Publish(fmt.Sprintf("scale/%d", i), spec, ctrIP, d, proxy.Options{})
		if err != nil {
			t.Fatalf("port %d of %d: %v", i+1, n, err)
		}
		pubs[i] = p
		listeners += len(p)
	}
	publishTook := time.Since(start)
	after := sampleMem(t)

	perPort := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n / 1024 }
	t.Logf("%d ports, %d listeners, published in %v (%.0f µs/port)", n, listeners, publishTook.Round(time.Millisecond),
		float64(publishTook.Microseconds())/n)
	t.Logf("cost per port: RSS %.1f KiB, heap %.1f KiB, goroutine stacks %.1f KiB, %.1f goroutines, %.1f fds",
		perPort(after.rss, before.rss), perPort(after.heap, before.heap), perPort(after.stack, before.stack),
		float64(after.goroutines-before.goroutines)/n, float64(after.fds-before.fds)/n)
	t.Logf("totals for %d ports: RSS +%.1f MiB (%.1f MiB in all), heap +%.1f MiB", n,
		float64(after.rss-before.rss)/(1<<20), float64(after.rss)/(1<<20), float64(after.heap-before.heap)/(1<<20))

	if got := after.goroutines - before.goroutines; got != listeners {
		t.Errorf("%d goroutines for %d listeners, want one each", got, listeners)
	}
	// Loose bounds, about ten times what was measured when this was
	// written, to catch a per-port buffer or goroutine creeping in.
	if kib := perPort(after.heap, before.heap) + perPort(after.stack, before.stack); kib > 64 {
		t.Errorf("heap and stacks grew %.1f KiB per port, want well under 64", kib)
	}
	if kib := perPort(after.rss, before.rss); kib > 128 {
		t.Errorf("RSS grew %.1f KiB per port, want well under 128", kib)
	}

	for i := 0; i < n; i += 50 {
		for _, p := range pubs[i] {
			checkRoundTrip(t, d, p)
		}
	}
	if st := m.Stats(); len(st.Bindings) != listeners || st.TCP.Total != uint64(2*n/50) {
		t.Errorf("stats: %d bindings, %d connections; want %d and %d", len(st.Bindings), st.TCP.Total, listeners, 2*n/50)
	}

	start = time.Now()
	for i := range n {
		if err := m.Unpublish(fmt.Sprintf("scale/%d", i), spec); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("unpublished in %v", time.Since(start).Round(time.Millisecond))
	if err := waitGoroutines(before.goroutines, ioTimeout); err != nil {
		t.Error(err)
	}
}
