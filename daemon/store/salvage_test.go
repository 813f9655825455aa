package store_test

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard-net/switchyard/daemon/store"
)

// seeded makes a state directory with two networks and three endpoints.
func seeded(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"web", "db"} {
		if err := s.PutNetwork(store.Network{Name: name, Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(i), 0}), 24)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := s.PutEndpoint(store.Endpoint{Network: "web", Name: name, NetNS: "/run/netns/" + name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mustOpen opens dir and fails the test on an error (a panic fails it by
// itself).
func mustOpen(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatalf("Open of a damaged state file: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func asideFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "state.db.corrupt-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A file of random bytes is moved aside, said so, and the daemon's store
// starts empty and works.
func TestRandomFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(rand.N(256))
	}
	if err := os.WriteFile(filepath.Join(dir, "state.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir)
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "moved to") {
		t.Fatalf("warnings %q, want one saying where the corrupt file went", w)
	}
	if a := asideFiles(t, dir); len(a) != 1 {
		t.Fatalf("files moved aside: %v", a)
	}
	if err := s.PutNetwork(store.Network{Name: "fresh"}); err != nil {
		t.Fatal(err)
	}
	if ns, err := s.Networks(); err != nil || len(ns) != 1 {
		t.Fatalf("networks after starting afresh: %v, %v", ns, err)
	}
}

// An empty state.db is not one bbolt wrote: moved aside and said so,
// rather than silently treated as a new database.
func TestEmptyFileIsReported(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir)
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "empty") {
		t.Fatalf("warnings %q, want one about the empty file", w)
	}
}

// One record that does not decode is skipped with a warning naming it;
// the others are kept, and so is the bad record (in quarantine).
func TestBadRecordIsSkipped(t *testing.T) {
	dir := seeded(t)
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("endpoints")).Put([]byte("web/b"), []byte(`{"network": 7`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir)
	w := s.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], `"web/b"`) {
		t.Fatalf("warnings %q, want one naming web/b", w)
	}
	es, err := s.Endpoints()
	if err != nil || len(es) != 2 || es[0].Name != "a" || es[1].Name != "c" {
		t.Fatalf("endpoints %+v, %v; want a and c kept", es, err)
	}
	if ns, err := s.Networks(); err != nil || len(ns) != 2 {
		t.Fatalf("networks %+v, %v; want both kept", ns, err)
	}
	if len(asideFiles(t, dir)) != 0 {
		t.Error("a file with one bad record was moved aside")
	}
}

// Whatever bytes overwrite part of a valid state file, Open never panics
// and never fails: it keeps what it can read or starts afresh.
func FuzzOpenDamaged(f *testing.F) {
	f.Add(uint32(4096*2), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint32(4096*3+16), []byte("garbage in the middle of a page"))
	f.Add(uint32(16), []byte{0, 0, 0, 0})
	f.Add(uint32(4096+20), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(uint32(4096*4), make([]byte, 4096))
	f.Fuzz(func(t *testing.T, off uint32, junk []byte) {
		dir := seeded(t)
		path := filepath.Join(dir, "state.db")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		off %= uint32(len(b))
		copy(b[off:], junk)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := mustOpen(t, dir)
		if _, err := s.Networks(); err != nil {
			t.Fatalf("Networks after Open: %v", err)
		}
		if _, err := s.Endpoints(); err != nil {
			t.Fatalf("Endpoints after Open: %v", err)
		}
		if err := s.PutNetwork(store.Network{Name: "after"}); err != nil {
			t.Fatalf("PutNetwork after Open: %v", err)
		}
	})
}
