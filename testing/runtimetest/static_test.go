package runtimetest_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

func TestCheckStaticRefusesDynamicBinaries(t *testing.T) {
	checked := 0
	for _, p := range []string{"/bin/sh", "/usr/bin/env"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		checked++
		err := runtimetest.CheckStatic(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("CheckStatic(%s) = %v; want an error naming it (Debian links it dynamically)", p, err)
		}
	}
	if err := runtimetest.CheckStatic("/nonexistent/busybox"); err == nil {
		t.Error("CheckStatic of a missing file: no error")
	}
	if checked == 0 {
		t.Fatal("neither /bin/sh nor /usr/bin/env exists to check")
	}
}

func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{"/tmp/a", `/tmp/a\040b`, `\`, `\04`, `\999`, `/x\134y`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := runtimetest.UnescapeMount(s)
		if !strings.Contains(s, `\`) && got != s {
			t.Fatalf("UnescapeMount(%q) = %q; a string without escapes must come back as it is", s, got)
		}
		if len(got) > len(s) {
			t.Fatalf("UnescapeMount(%q) = %q: longer than its input", s, got)
		}
	})
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/a":          "/tmp/a",
		`/tmp/a\040b`:     "/tmp/a b",
		`/tmp/a\011b\134`: "/tmp/a\tb\\",
		`/tmp/\04`:        `/tmp/\04`,
		`/tmp/\999`:       `/tmp/\999`,
	} {
		if got := runtimetest.UnescapeMount(in); got != want {
			t.Errorf("UnescapeMount(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestNamesDir(t *testing.T) {
	dirs := []string{"/tmp/rtctrd-12"}
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"shim", "-address", "/tmp/rtctrd-12/c.sock"}, true},
		{[]string{"conmon", "--runtime-arg", "--root=/tmp/rtctrd-12/oci"}, true},
		{[]string{"conmon", "-l", "k8s-file:/tmp/rtctrd-12/ctr.log"}, true},
		{[]string{"x", "/tmp/rtctrd-12"}, true},
		{[]string{"shim", "-address", "/tmp/rtctrd-123/c.sock"}, false},
		{[]string{"x", "/other/tmp/rtctrd-12/y"}, false},
		{[]string{"sleep", "600"}, false},
	} {
		if got := runtimetest.NamesDir(c.args, dirs); got != c.want {
			t.Errorf("NamesDir(%q, %q) = %v; want %v", c.args, dirs, got, c.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	for in, want := range map[string]struct {
		state byte
		ppid  int
		ok    bool
	}{
		"42 (sleep) S 7 42 42 0 -1":         {'S', 7, true},
		"42 (a) b) c) Z 1 42 42 0 -1":       {'Z', 1, true},
		"42 (containerd-shim) R 4418 9 9 0": {'R', 4418, true},
		"42 (x) S":                          {0, 0, false},
		"42 sleep S 7":                      {0, 0, false},
		"42 (x) SS 7":                       {0, 0, false},
		"42 (x) S -3":                       {0, 0, false},
	} {
		s, p, ok := runtimetest.ParseStat([]byte(in))
		if s != want.state || p != want.ppid || ok != want.ok {
			t.Errorf("ParseStat(%q) = %q, %d, %v; want %q, %d, %v", in, s, p, ok, want.state, want.ppid, want.ok)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	for _, s := range []string{"42 (sleep) S 7 42", "1 (a) b) Z 0", "", ")", "x (y) S z", "42 (x) S -3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		state, ppid, ok := runtimetest.ParseStat(b)
		if !ok {
			if state != 0 || ppid != 0 {
				t.Fatalf("ParseStat(%q) failed but returned %q, %d", b, state, ppid)
			}
			return
		}
		if ppid < 0 || bytes.IndexByte(b, state) < 0 || !bytes.Contains(b, []byte(strconv.Itoa(ppid))) {
			t.Fatalf("ParseStat(%q) = %q, %d: not from its input", b, state, ppid)
		}
	})
}
