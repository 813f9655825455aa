package tap_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-net/switchyard/tap"
)

// The test binary doubles as the TAP helper, and as the unprivileged
// child of TestRootlessTAP. As itself, it fails the package's tests if any
// goroutine outlives them.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == tap.HelperArg {
		os.Exit(tap.RunHelper())
	}
	if os.Getenv("SWITCHYARD_TEST_ROOTLESS_CHILD") != "" {
		os.Exit(rootlessChild())
	}
	goleak.VerifyTestMain(m)
}
