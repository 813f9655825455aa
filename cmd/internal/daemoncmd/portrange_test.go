package daemoncmd

import (
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string][2]uint16{"": {}, "61000-65535": {61000, 65535}, "40000-40000": {40000, 40000}} {
		got, err := ParsePortRange(in)
		if err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"61000", "0-10", "10-5", "1-65536", "a-b", "61000:65535"} {
		if _, err := ParsePortRange(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "FIRST-LAST") {
			t.Errorf("ParsePortRange(%q): %v, want an error naming it and the form", bad, err)
		}
	}
}
