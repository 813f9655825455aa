package docker

import (
	"os/exec"
	"strings"
	"testing"
)

// The plugin is a translator: of Switchyard it imports daemon/api (and
// what daemon/api imports), nothing of the daemon, the data plane or the
// CLI (DESIGN.md, "Next rooms": cmd → plugins → daemon/api).
func TestImportsOnlyTheAPI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/switchyard-net/switchyard/"
	allowed := map[string]bool{mod + "daemon/api": true, mod + "internal/privdir": true, mod + "plugins/docker": true}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, mod) && !allowed[pkg] {
			t.Errorf("plugins/docker depends on %s; it may use only daemon/api", pkg)
		}
	}
}
