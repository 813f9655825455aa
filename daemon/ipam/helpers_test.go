package ipam_test

import (
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/ipam"
)

var (
	addr   = netip.MustParseAddr
	prefix = netip.MustParsePrefix
)

// mustNew returns a pool for cfg or fails the test.
func mustNew(t testing.TB, cfg ipam.Config) *ipam.Pool {
	t.Helper()
	p, err := ipam.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return p
}

// mustAllocate allocates for owner and fails the test unless it gets want.
func mustAllocate(t testing.TB, p *ipam.Pool, owner, want string) {
	t.Helper()
	got, err := p.Allocate(owner)
	if err != nil {
		t.Fatalf("Allocate(%q): %v, want %s", owner, err, want)
	}
	if got != addr(want) {
		t.Fatalf("Allocate(%q) = %s, want %s", owner, got, want)
	}
}

// checkErr fails the test unless err wraps want (when want is not nil) and
// its message contains every one of subs.
func checkErr(t testing.TB, what string, err, want error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one wrapping %v and naming %q", what, want, subs)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("%s: error %q does not wrap %q", what, err, want)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q does not mention %q", what, err, s)
		}
	}
}

// allocatedBytes returns how many bytes of heap f allocated.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
