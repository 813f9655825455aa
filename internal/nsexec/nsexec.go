// Package nsexec lets a freshly started Switchyard process join a user
// namespace and a network namespace before the Go runtime starts.
//
// A process can enter a user namespace with setns(2) only while it has a
// single thread, and a Go program never has one once main runs. So a
// process that must work inside someone else's user namespace (the
// rootless TAP helper; `switchyard run --network container:NAME`) is
// started with the namespaces to join named in its environment:
//
//	_SWITCHYARD_NSENTER_USER=/proc/1234/ns/user
//	_SWITCHYARD_NSENTER_NET=/proc/1234/ns/net
//
// and a C constructor, which runs before the Go runtime creates any
// thread, opens both, enters the user namespace then the network
// namespace, and removes the variables. In the user namespace the process
// has the capabilities its owner grants (all of them, for a namespace its
// own user created), which is what creating a TAP needs. If entering
// fails, the process prints why and exits with status 125 before Go runs.
//
// Import the package for its side effect in every binary that may be
// started that way. Without cgo the constructor is absent and such a
// process reports it (Available).
package nsexec

// Environment variables read by the constructor.
const (
	EnvUser = "_SWITCHYARD_NSENTER_USER"
	EnvNet  = "_SWITCHYARD_NSENTER_NET"
)

// ExitCode is the status of a process whose constructor could not enter a
// namespace.
const ExitCode = 125
