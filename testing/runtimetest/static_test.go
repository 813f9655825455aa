package runtimetest_test

import (
	"os"
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
