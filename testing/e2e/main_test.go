package e2e_test

import (
	"os"
	"testing"

	"github.com/switchyard-net/switchyard/testing/clitest"
	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// TestMain keeps the end-to-end suite to root: the daemon under test is
// started in the tests' namespaces with nsenter --net, and tests reach
// them with ip netns exec, which need namespaces of the host's user
// namespace.
func TestMain(m *testing.M) {
	netnstest.RootOnly("the daemon under test is run inside the tests' namespaces with nsenter --net and ip netns exec")
	os.Exit(clitest.Main(m))
}
