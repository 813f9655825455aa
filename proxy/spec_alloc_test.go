package proxy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLocalPortRange(t *testing.T) {
	good := []struct {
		s    string
		want PortRange
	}{
		{"32768\t60999\n", PortRange{32768, 60999}},
		{"1024 65535", PortRange{1024, 65535}},
		{"  10   20  \n", PortRange{10, 20}},
		{"40000\t40000\n", PortRange{40000, 40000}},
		{"01024 02048", PortRange{1024, 2048}},
	}
	for _, tt := range good {
		got, err := parseLocalPortRange(tt.s)
		if err != nil {
			t.Errorf("parseLocalPortRange(%q): %v", tt.s, err)
			continue
		}
		if got != tt.want {
			t.Errorf("parseLocalPortRange(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}

	bad := []struct{ s, want string }{
		{"", "want two ports"},
		{"32768\n", "want two ports"},
		{"1 2 3", "want two ports"},
		{"60999 32768", "start 60999 is greater than end 32768"},
		{"0 100", `invalid port "0"`},
		{"100 70000", `invalid port "70000"`},
		{"a b", `invalid port "a"`},
		{"-1 5", `invalid port "-1"`},
	}
	for _, tt := range bad {
		got, err := parseLocalPortRange(tt.s)
		if err == nil {
			t.Errorf("parseLocalPortRange(%q) = %v, want error containing %q", tt.s, got, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseLocalPortRange(%q): error %q, want it to contain %q", tt.s, err, tt.want)
		}
	}
}

func TestParseUnprivilegedPortStart(t *testing.T) {
	good := map[string]uint16{"1024\n": 1024, "0\n": 0, "80": 80, " 65535 \n": 65535}
	for s, want := range good {
		got, err := parseUnprivilegedPortStart(s)
		if err != nil || got != want {
			t.Errorf("parseUnprivilegedPortStart(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "\n", "65536", "-1", "1024 2048", "x"} {
		if got, err := parseUnprivilegedPortStart(s); err == nil {
			t.Errorf("parseUnprivilegedPortStart(%q) = %d, want an error", s, got)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "knob")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadEphemeralRange(t *testing.T) {
	got, err := readEphemeralRange(writeFile(t, "32768\t60999\n"))
	if err != nil || got != (PortRange{32768, 60999}) {
		t.Errorf("readEphemeralRange = %v, %v; want 32768-60999", got, err)
	}

	p := writeFile(t, "60999\t32768\n")
	if _, err := readEphemeralRange(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("readEphemeralRange of a reversed range: error %v, want one naming %s", err, p)
	}

	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := readEphemeralRange(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readEphemeralRange of a missing file: error %v, want fs.ErrNotExist", err)
	}
}

func TestReadUnprivilegedPortStart(t *testing.T) {
	if got, err := readUnprivilegedPortStart(writeFile(t, "80\n")); err != nil || got != 80 {
		t.Errorf("readUnprivilegedPortStart = %d, %v; want 80", got, err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if got, err := readUnprivilegedPortStart(missing); err != nil || got != 1024 {
		t.Errorf("readUnprivilegedPortStart of a missing file = %d, %v; want 1024 (pre-4.11 kernels)", got, err)
	}
	p := writeFile(t, "many\n")
	if _, err := readUnprivilegedPortStart(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("readUnprivilegedPortStart of garbage: error %v, want one naming %s", err, p)
	}
}

// TestKernelKnobs reads the real files when this kernel has them. It only
// checks that the values parse and are sane; it changes nothing.
func TestKernelKnobs(t *testing.T) {
	if _, err := os.Stat(localPortRangePath); err != nil {
		t.Skipf("no %s here: %v", localPortRangePath, err)
	}
	r, err := EphemeralRange()
	if err != nil {
		t.Fatal(err)
	}
	if r.Start == 0 || r.Start > r.End {
		t.Errorf("EphemeralRange() = %v, want 1 <= start <= end", r)
	}
	if _, err := UnprivilegedPortStart(); err != nil {
		t.Errorf("UnprivilegedPortStart(): %v", err)
	}
}
