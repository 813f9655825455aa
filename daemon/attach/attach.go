// Package attach is the daemon's seam to the host: it makes and removes
// the devices endpoints are attached by, and answers what the daemon asks
// about network namespaces. TAPs implements it with package tap (TAP
// devices inside namespaces, VM TAPs in the daemon's own); tests give the
// daemon an in-memory Attacher (testing/attachtest) so that its control
// plane runs without root, without TAPs and without namespaces.
//
// Every method may be slow (the rootless helper is a fork/exec, netlink
// calls are syscalls): the daemon calls them without holding its lock.
package attach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/switchyard-net/switchyard/internal/nsenter"
	"github.com/switchyard-net/switchyard/internal/rootfs"
	vswitch "github.com/switchyard-net/switchyard/switch"
	"github.com/switchyard-net/switchyard/tap"
)

// Port is an endpoint's device as a switch port.
type Port interface {
	vswitch.Port
	// Offload reports whether the device carries offloaded frames
	// (IFF_VNET_HDR).
	Offload() bool
	// Forget arranges for the device to be deleted when the port closes
	// (disconnect), instead of staying for the next daemon (shutdown).
	Forget() error
}

// Attacher opens endpoints' ports and inspects namespaces.
type Attacher interface {
	// NetNS identifies the network namespace at path, with an error
	// naming the path if it is not one.
	NetNS(path string) (nsenter.ID, error)
	// ForeignNetNS is NetNS that also refuses the daemon's own network
	// namespace, whatever path names it (wrapping nsenter.ErrOwnNamespace):
	// a TAP there would be a host interface.
	ForeignNetNS(path string) (nsenter.ID, error)
	// NetNSOfPID returns the path of process pid's network namespace,
	// with an error naming the pid if there is no such process.
	NetNSOfPID(pid int) (string, error)
	// SharesMountNS reports whether process pid is in the daemon's own
	// mount namespace, or it cannot tell: its /etc/resolv.conf is then the
	// host's.
	SharesMountNS(pid int) bool
	// Links lists the interface names in the namespace at nsPath.
	Links(ctx context.Context, nsPath string) ([]string, error)
	// Open creates, configures and opens a device in the namespace
	// cfg.NetNS ("" is the daemon's own: a network's host interface), or
	// re-attaches to it, with cfg.Existing. Its error wraps tap.ErrExists
	// when the name is taken.
	Open(ctx context.Context, cfg tap.Config) (Port, error)
	// OpenVM does the same for a VM's TAP in the daemon's namespace.
	OpenVM(ctx context.Context, cfg tap.VMConfig) (Port, error)
	// Marked lists the devices in the namespace at nsPath ("" is the
	// daemon's own) that a daemon with ID owner made (tap.Marked).
	Marked(nsPath, owner string) ([]string, error)
	// FindMarked returns the name of the device in the namespace at
	// nsPath that a daemon with ID owner made with MAC mac, or "" if none
	// is there (tap.FindMarked): a handoff TAP its runtime moved and
	// renamed.
	FindMarked(nsPath, owner string, mac vswitch.MAC) (string, error)
	// ProcessNetNSes lists a path (/proc/PID/ns/net) for each network
	// namespace some process is in, the daemon's own left out: where to
	// look for a handoff TAP whose sandbox path the daemon cannot open
	// (a runtime in a mount namespace of its own).
	ProcessNetNSes() ([]string, error)
	// Remove deletes the device name from the namespace at nsPath ("" is
	// the daemon's own: a VM TAP), if it is there: a device left by a
	// failed restore, whose Port is gone.
	Remove(nsPath, name string) error
	// WriteResolvConf writes data as an endpoint's resolv.conf: at path,
	// its directory made if missing, for a named namespace (pid 0); for
	// process pid, as etc/resolv.conf inside its root without following
	// the container's symlinks (package rootfs), returning what the file
	// held before.
	WriteResolvConf(path string, pid int, data []byte) (*rootfs.Previous, error)
	// RemoveResolvConf undoes WriteResolvConf: it removes the file at path
	// and its directory if that is left empty, or puts prev back inside
	// process pid's root.
	RemoveResolvConf(path string, pid int, prev *rootfs.Previous) error
}

// TAPs is the production Attacher: TAP devices made by package tap. Its
// zero value is ready to use.
type TAPs struct{}

var _ Attacher = TAPs{}

// NetNS implements Attacher.
func (TAPs) NetNS(path string) (nsenter.ID, error) { return nsenter.Stat(path) }

// ForeignNetNS implements Attacher.
func (TAPs) ForeignNetNS(path string) (nsenter.ID, error) { return nsenter.Foreign(path) }

// NetNSOfPID implements Attacher.
func (TAPs) NetNSOfPID(pid int) (string, error) { return nsenter.PathOfPID(pid) }

// SharesMountNS implements Attacher.
func (TAPs) SharesMountNS(pid int) bool {
	self, err1 := os.Stat("/proc/self/ns/mnt")
	other, err2 := os.Stat("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	if err1 != nil || err2 != nil {
		return true
	}
	return os.SameFile(self, other)
}

// Links implements Attacher. A listing under way is not interrupted by
// ctx; ctx ended before it starts makes it return ctx's error.
func (TAPs) Links(ctx context.Context, nsPath string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return tap.Links(nsPath)
}

// Open implements Attacher.
func (TAPs) Open(ctx context.Context, cfg tap.Config) (Port, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := tap.Open(cfg)
	if err != nil {
		return nil, err
	}
	return netnsPort{p}, nil
}

// OpenVM implements Attacher.
func (TAPs) OpenVM(ctx context.Context, cfg tap.VMConfig) (Port, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := tap.OpenVM(cfg)
	if err != nil {
		return nil, err
	}
	return vmPort{p}, nil
}

// Marked implements Attacher.
func (TAPs) Marked(nsPath, owner string) ([]string, error) { return tap.Marked(nsPath, owner) }

// ProcessNetNSes implements Attacher.
func (TAPs) ProcessNetNSes() ([]string, error) {
	self, err := nsenter.Current()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	seen := map[nsenter.ID]bool{self: true}
	var paths []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := "/proc/" + e.Name() + "/ns/net"
		id, err := nsenter.Stat(p)
		if err != nil || seen[id] {
			continue // gone, or not ours to see
		}
		seen[id] = true
		paths = append(paths, p)
	}
	return paths, nil
}

// FindMarked implements Attacher.
func (TAPs) FindMarked(nsPath, owner string, mac vswitch.MAC) (string, error) {
	return tap.FindMarked(nsPath, owner, mac)
}

// Remove implements Attacher.
func (TAPs) Remove(nsPath, name string) error {
	if nsPath == "" {
		return tap.RemoveVM(name)
	}
	return tap.Remove(nsPath, name)
}

// resolvConfIn is where a process's resolv.conf is, inside its root.
const resolvConfIn = "etc/resolv.conf"

func procRoot(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/root" }

// WriteResolvConf implements Attacher.
func (TAPs) WriteResolvConf(path string, pid int, data []byte) (*rootfs.Previous, error) {
	if pid > 0 {
		prev, err := rootfs.Replace(procRoot(pid), resolvConfIn, data, 0o644)
		if err != nil {
			return nil, err
		}
		return &prev, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return nil, nil
}

// RemoveResolvConf implements Attacher.
func (TAPs) RemoveResolvConf(path string, pid int, prev *rootfs.Previous) error {
	if pid > 0 {
		if prev == nil {
			return nil
		}
		return rootfs.Restore(procRoot(pid), resolvConfIn, *prev)
	}
	err := os.Remove(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	os.Remove(filepath.Dir(path)) // only if empty
	return nil
}

// netnsPort gives a namespace TAP the Port methods.
type netnsPort struct{ *tap.Port }

func (p netnsPort) Forget() error { return p.Unpersist() }

// vmPort gives a VM TAP the Port methods.
type vmPort struct{ *tap.VMPort }

func (vmPort) Offload() bool   { return false }
func (p vmPort) Forget() error { p.VMPort.Close(); return tap.RemoveVM(p.Name()) }
