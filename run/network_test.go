package run

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestParseNetwork(t *testing.T) {
	for _, c := range []struct {
		in   string
		want networkMode
		err  string
	}{
		{"", networkMode{kind: modeOwn}, ""},
		{"none", networkMode{kind: modeNone}, ""},
		{"host", networkMode{kind: modeHost}, ""},
		{"10.5.0.0/24", networkMode{kind: modeOwn, subnet: netip.MustParsePrefix("10.5.0.0/24")}, ""},
		{"web", networkMode{kind: modeDaemonNet, name: "web"}, ""},
		{"container:web/a", networkMode{kind: modeContainer, name: "web/a"}, ""},
		{"container:", networkMode{}, `invalid --network "container:"`},
		// Not "network not found": the CIDR is named, and why it is wrong.
		{"10.5.0.0/33", networkMode{}, `invalid --network "10.5.0.0/33": not a CIDR prefix (prefix length out of range)`},
		{"10.5.0/24", networkMode{}, `invalid --network "10.5.0/24": not a CIDR prefix`},
	} {
		got, err := parseNetwork(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("parseNetwork(%q): %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseNetwork(%q): error %v, want one containing %q", c.in, err, c.err)
		case got != c.want:
			t.Errorf("parseNetwork(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// -P publishes --expose'd ports; with none it says so before anything
// is started.
func TestPublishAllNeedsExpose(t *testing.T) {
	_, err := Run(context.Background(), Config{PublishAll: true, Cmd: "true"})
	if err == nil || !strings.Contains(err.Error(), "--expose") {
		t.Fatalf("Run with -P and nothing exposed: %v, want an error pointing at --expose", err)
	}
}
