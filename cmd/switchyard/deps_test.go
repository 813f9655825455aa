package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The CLI, and with it `switchyard run`, does not link etcd's client or
// gRPC: their initialisation would slow every start (the daemon binary,
// switchyardd, links them; benchmarks/RESULTS.md, "Start-up").
func TestNoEtcdClientLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "go.etcd.io/etcd/client/v3") || pkg == "google.golang.org/grpc" {
			t.Errorf("switchyard links %s; only switchyardd may", pkg)
		}
	}
}
