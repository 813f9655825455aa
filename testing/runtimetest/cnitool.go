package runtimetest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// CnitoolModule is the module cnitool is built from, and
// CnitoolDefaultVersion the version used when the main module's go.mod
// does not require that module.
const (
	CnitoolModule         = "github.com/containernetworking/cni"
	CnitoolDefaultVersion = "v1.3.1"
)

var cnitool struct {
	once sync.Once
	path string
	err  error
}

// Cnitool returns the path of a cnitool binary, built from the Go module
// proxy the first time a test of this test binary asks (with `go
// install`, GOBIN a cache directory, so later test binaries on the same
// machine reuse it). The version is the one of
// github.com/containernetworking/cni in the main module's go.mod, or
// CnitoolDefaultVersion. The go command runs with the environment's
// GOPROXY, GOFLAGS and module cache, so it works on a fresh clone in CI.
// A failed build fails the test with the go command's output; only a
// missing go command skips it.
func Cnitool(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: no go command to build cnitool with: %v", err)
	}
	cnitool.once.Do(func() { cnitool.path, cnitool.err = buildCnitool(gobin) })
	if cnitool.err != nil {
		t.Fatal(cnitool.err)
	}
	return cnitool.path
}

func buildCnitool(gobin string) (string, error) {
	version, err := cniVersionInGoMod(gobin)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "switchyard-runtimetest", "cnitool-"+version)
	bin := filepath.Join(dir, "cnitool")
	// A binary a previous run left is used if it runs (a half-written
	// one, from an interrupted build, is rebuilt).
	if err := exec.Command(bin, "--help").Run(); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// go install pkg@version ignores the current module; running it from
	// an empty directory keeps any go.work or go.mod around out of it.
	work, err := os.MkdirTemp("", "runtimetest-cnitool-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	pkg := CnitoolModule + "/cnitool@" + version
	cmd := exec.Command(gobin, "install", pkg)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GO111MODULE=on", "CGO_ENABLED=0")
	if _, err := runBounded(cmd); err != nil {
		return "", fmt.Errorf("build cnitool: %w", err)
	}
	return bin, nil
}

// cniVersionInGoMod returns the version of CnitoolModule the main
// module's go.mod requires (as `go mod edit -json` reads it), or
// CnitoolDefaultVersion if it requires none or there is no main module.
func cniVersionInGoMod(gobin string) (string, error) {
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return CnitoolDefaultVersion, nil
	}
	out, err = exec.Command(gobin, "mod", "edit", "-json", gomod).Output()
	if err != nil {
		return "", fmt.Errorf("go mod edit -json %s: %w", gomod, err)
	}
	var mod struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod edit -json %s: %w", gomod, err)
	}
	for _, r := range mod.Require {
		if r.Path == CnitoolModule {
			return r.Version, nil
		}
	}
	return CnitoolDefaultVersion, nil
}
