package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without switchyardd next to the executable or on PATH, `switchyard
// daemon` says how to install it; with one on PATH, it is found.
func TestFindDaemon(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	if _, err := findDaemon(); err == nil || !strings.Contains(err.Error(), "go install ./cmd/...") {
		t.Fatalf("err %v, want one saying how to install switchyardd", err)
	}
	bin := filepath.Join(dir, daemonBinary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findDaemon(); err != nil || got != bin {
		t.Fatalf("findDaemon() = %q, %v; want %s", got, err, bin)
	}
}
