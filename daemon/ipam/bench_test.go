package ipam_test

import (
	"fmt"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

// BenchmarkAllocateRelease measures a release and the allocation that reuses
// the hole, in a /64 holding 100 000 endpoints whose upper half has a hole
// every 100 addresses (about 500 runs).
func BenchmarkAllocateRelease(b *testing.B) {
	p := mustNew(b, ipam.Config{Subnet: prefix("fd00:1::/64")})
	for i := range 100_000 {
		if _, err := p.Allocate(fmt.Sprint("ep", i)); err != nil {
			b.Fatal(err)
		}
	}
	a := addr("fd00:1::2")
	for i := range 100_000 {
		if i >= 50_000 && i%100 == 50 {
			if err := p.Release(a); err != nil {
				b.Fatal(err)
			}
		}
		a = a.Next()
	}
	mid := addr("fd00:1::1000") // in the solid lower half: the lowest free once released
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := p.Release(mid); err != nil {
			b.Fatal(err)
		}
		if got, err := p.Allocate("ep"); err != nil || got != mid {
			b.Fatalf("Allocate = %s, %v; want %s", got, err, mid)
		}
	}
}
