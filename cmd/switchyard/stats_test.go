package main

import (
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// stats prints a line for each network's loop, and no loop table when
// no network has a loop (--spin < 0).
func TestStatsPrintsTheLoop(t *testing.T) {
	s := api.Stats{Networks: []api.NetworkStats{
		{Network: "web", Loop: &api.LoopStats{Frames: 4000, Wakeups: 37, Holds: 12, Spins: 90210, Yields: 8, Contended: 3, WindowNS: 100000}},
		{Network: "db"},
	}}
	sock, _ := recordingDaemon(t, s)
	out, err := runApp(t, "--socket", sock, "stats")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "LOOP FRAMES") {
		t.Fatalf("stats printed no loop table:\n%s", out)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "web" && strings.Contains(l, "4000") {
			line = l
		}
	}
	if got, want := strings.Fields(line), []string{"web", "4000", "37", "12", "90210", "8", "3", "100µs"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("loop line %q, want the fields %q\n%s", line, want, out)
	}
	if strings.Count(out, "\ndb ") > 1 {
		t.Errorf("a network without a loop got a loop line:\n%s", out)
	}

	sock, _ = recordingDaemon(t, api.Stats{Networks: []api.NetworkStats{{Network: "db"}}})
	if out, err = runApp(t, "--socket", sock, "stats"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "LOOP FRAMES") {
		t.Errorf("stats printed a loop table with no loop:\n%s", out)
	}
}
