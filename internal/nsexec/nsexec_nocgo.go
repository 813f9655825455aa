//go:build !cgo || !linux

package nsexec

// Available reports whether the constructor is built in: without cgo a
// process cannot join a user namespace, and rootless TAP creation fails
// with a message saying so.
func Available() bool { return false }
