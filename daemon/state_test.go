package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A state file of random bytes does not stop (or panic) the daemon: it
// starts with empty state and says, at warn level, where the old file went.
func TestCorruptStateFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	junk := []byte(strings.Repeat("not a bbolt file ", 1000))
	if err := os.WriteFile(filepath.Join(dir, "state.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	d, err := New(Config{StateDir: dir, Logger: zap.New(core), NoDefaultNetwork: true,
		HostPrefixes: func() ([]netip.Prefix, error) { return nil, nil }})
	if err != nil {
		t.Fatalf("the daemon refused a corrupt state file: %v", err)
	}
	defer d.Close()
	if got := logs.FilterMessageSnippet("moved to").Len(); got != 1 {
		t.Fatalf("warnings %v, want one saying where the corrupt file went", logs.All())
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "state.db.corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("files moved aside: %v", aside)
	}
}
