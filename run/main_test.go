package run_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-net/switchyard/testing/clitest"
)

// TestMain fails the package's tests if any goroutine outlives them, and
// removes the switchyard binary the tests built.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(clitest.Cleaning(m))
}
