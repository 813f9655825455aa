package vnettest_test

import (
	"fmt"
	"os"
	"testing"
)

// exampleT stands in for the *testing.T an example has not got. In a test
// of your own, pass the test's t to vnettest.New instead.
type exampleT struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (t *exampleT) Helper()           {}
func (t *exampleT) Cleanup(fn func()) { t.cleanups = append(t.cleanups, fn) }
func (t *exampleT) Failed() bool      { return t.failed }
func (t *exampleT) ArtifactDir() string {
	dir, _ := os.MkdirTemp("", "vnettest-example")
	return dir
}
func (t *exampleT) Logf(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}
func (t *exampleT) Errorf(format string, args ...any) {
	t.failed = true
	fmt.Printf(format+"\n", args...)
}
func (t *exampleT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic("example failed")
}

// done runs the cleanups, as the end of a test does.
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
