package proxy_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-net/switchyard/testing/netnstest"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	netnstest.RootOnly("the netns dialer enters the namespace with setns, which the kernel refuses a multi-threaded process outside the namespace's user namespace")
	goleak.VerifyTestMain(m)
}
