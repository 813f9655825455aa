package dhcp_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-net/switchyard/tap"
)

// TestMain fails the package's tests if any goroutine outlives them. The
// test binary doubles as the TAP helper, which opens TAPs in the tests'
// namespaces when they run as an ordinary user.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == tap.HelperArg {
		os.Exit(tap.RunHelper())
	}
	goleak.VerifyTestMain(m)
}
