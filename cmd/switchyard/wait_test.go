package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// connect --wait: returns once the path appears, showing progress on a
// terminal meanwhile; fails naming the path when it never does.
func TestWaitForNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ns")
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(path, nil, 0o644)
	}()
	var tty bytes.Buffer
	if err := waitForNamespace(context.Background(), path, 0, 5*time.Second, &tty); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tty.String(), "waiting for "+path) || !strings.Contains(tty.String(), "there after") {
		t.Errorf("progress shown: %q", tty.String())
	}

	tty.Reset()
	err := waitForNamespace(context.Background(), path+"-never", 0, 200*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), path+"-never") || !strings.Contains(err.Error(), "did not appear") {
		t.Errorf("error %v, want one naming the path", err)
	}
	// Without --wait nothing is waited for.
	if err := waitForNamespace(context.Background(), path+"-never", 0, 0, nil); err != nil {
		t.Errorf("no --wait: %v", err)
	}
}
