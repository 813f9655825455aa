package nsenter_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/internal/nsenter"
)

// The caller's own namespace is refused by Foreign under any path that
// names it; Stat accepts it.
func TestForeignRefusesOwnNamespace(t *testing.T) {
	for _, p := range []string{"/proc/self/ns/net", "/proc/thread-self/ns/net", "/proc/" + strconv.Itoa(os.Getpid()) + "/ns/net"} {
		if _, err := nsenter.Stat(p); err != nil {
			t.Fatalf("Stat(%s): %v", p, err)
		}
		_, err := nsenter.Foreign(p)
		if !errors.Is(err, nsenter.ErrOwnNamespace) || !strings.Contains(err.Error(), p) {
			t.Errorf("Foreign(%s): %v, want ErrOwnNamespace naming the path", p, err)
		}
	}
}

// Files that are not network namespaces get an error naming them: other
// kinds of namespace, /proc files, ordinary files, missing paths.
func TestStatRefusesOtherFiles(t *testing.T) {
	file := t.TempDir() + "/plain"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/proc/self/ns/mnt", "/proc/self/ns/pid", "/proc/version", file, "/nonexistent/netns"} {
		_, err := nsenter.Stat(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Stat(%s): %v, want an error naming the path", p, err)
		}
	}
}
