package rlimit

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

func TestTarget(t *testing.T) {
	const inf = unix.RLIM_INFINITY
	for _, tt := range []struct {
		soft, hard, nrOpen, want uint64
	}{
		{1024, 4096, 1 << 20, 4096},       // raised to the hard limit
		{1024, inf, 1 << 20, 1 << 20},     // "unlimited": capped at fs.nr_open
		{1024, 1 << 21, 1 << 20, 1 << 20}, // a hard limit above fs.nr_open
		{4095, 4096, 1 << 20, 4095},       // the Go runtime's raise, kept
		{4096, 4096, 1 << 20, 4096},       // nothing to do
		{1024, 4096, 0, 4096},             // fs.nr_open unknown
		{256, 256, 0, 256},                // soft = hard: the limit is the limit
	} {
		if got := target(tt.soft, tt.hard, tt.nrOpen); got != tt.want {
			t.Errorf("target(soft %d, hard %d, nr_open %d) = %d, want %d", tt.soft, tt.hard, tt.nrOpen, got, tt.want)
		}
	}
}

// Raise takes a lowered soft limit back up to the hard limit, and says so.
func TestRaise(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore RLIMIT_NOFILE %+v: %v", orig, err)
		}
	})
	want := target(0, orig.Max, readNrOpen())
	if want < 128 {
		t.Skipf("skipping: the hard open-file limit is %d, too low to lower the soft one below it", orig.Max)
	}
	low := unix.Rlimit{Cur: 64, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}

	core, logs := observer.New(zapcore.InfoLevel)
	got := Raise(zap.New(core))
	soft, hard, err := NoFile()
	if err != nil {
		t.Fatal(err)
	}
	if got != want || soft != want || hard != orig.Max {
		t.Errorf("after Raise: returned %d, soft %d, hard %d; want soft %d, hard %d", got, soft, hard, want, orig.Max)
	}
	if n := logs.FilterMessage("open-file limit").Len(); n != 1 {
		t.Errorf("%d info lines about the limit, want 1: %v", n, logs.All())
	}

	// A second Raise has nothing to do and changes nothing.
	if again := Raise(nil); again != want {
		t.Errorf("second Raise returned %d, want %d", again, want)
	}
}
