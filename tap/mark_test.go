package tap_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/tap"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// Remove deletes only a TAP Switchyard made: a veth (whose deletion would
// take its peer along) or a TAP someone else made under the name is left
// alone, with ErrNotOurs.
func TestRemoveLeavesForeignInterfacesAlone(t *testing.T) {
	ns := netnstest.New(t)
	ns.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	ns.MustRun("ip", "tuntap", "add", "dev", "tap9", "mode", "tap")
	for _, name := range []string{"eth0", "tap9"} {
		if err := tap.Remove(ns.Path, name); !errors.Is(err, tap.ErrNotOurs) {
			t.Errorf("Remove(%s): %v, want ErrNotOurs", name, err)
		}
		if _, err := ns.Run("ip", "link", "show", name); err != nil {
			t.Errorf("%s was deleted: %v", name, err)
		}
	}
	// A re-attach (Existing) to the foreign TAP is refused too, and
	// leaves it.
	if _, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "tap9", Existing: true}); !errors.Is(err, tap.ErrNotOurs) {
		t.Errorf("Open(Existing) of a foreign TAP: %v, want ErrNotOurs", err)
	}
	// Its own are marked, and removed.
	p, err := tap.Open(tap.Config{NetNS: ns.Path, Name: "sy0"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if out := ns.MustRun("ip", "-o", "link", "show", "sy0"); !strings.Contains(out, "alias "+tap.Mark) {
		t.Errorf("the TAP Switchyard made has no mark: %s", out)
	}
	if err := tap.Remove(ns.Path, "sy0"); err != nil {
		t.Fatalf("Remove of its own TAP: %v", err)
	}
}
