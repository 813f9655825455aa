package runtimetest_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-net/switchyard/testing/runtimetest"
)

// TestMain fails the package's tests if any goroutine outlives them, or
// any process a fixture started (daemon, shim, conmon) does.
func TestMain(m *testing.M) {
	code := m.Run()
	if left := runtimetest.Leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes of this binary's fixtures outlived their tests:\n")
		for _, l := range left {
			fmt.Fprintf(os.Stderr, "  %s\n", l)
		}
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
