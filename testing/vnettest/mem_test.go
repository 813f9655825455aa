package vnettest_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/testing/vnettest"
)

// A thousand hosts on one network fit in 200 MB of heap, and the first
// and the last still reach each other.
func TestThousandHostsFit(t *testing.T) {
	w := vnettest.New(t)
	lan := w.NewNetwork("big", "10.0.0.0/20")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	hosts := make([]*vnettest.Host, 1000)
	for i := range hosts {
		hosts[i] = lan.NewHost(fmt.Sprintf("h%d", i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("1000 hosts: %d MiB more heap in use, %d goroutines", grown>>20, runtime.NumGoroutine())
	if grown > 200<<20 {
		t.Fatalf("1000 hosts take %d MiB of heap, want under 200", grown>>20)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hosts[999].Ping(ctx, hosts[0].Addr()); err != nil {
		t.Fatalf("host 999 ping host 0: %v", err)
	}
}
